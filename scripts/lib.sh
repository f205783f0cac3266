# shellcheck shell=bash
# Helpers shared by scripts/run-local and scripts/test. Source it; it runs nothing itself.

# say prints a progress line on stderr, so stdout stays for real output.
say() { printf '==> %s\n' "$*" >&2; }

# die prints an error and exits non-zero.
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# require_go checks the Go toolchain is on PATH.
require_go() {
	if ! command -v go >/dev/null 2>&1; then
		die "go is not on PATH. This project needs Go 1.26 (GOTOOLCHAIN=local); on the dev machines it is /usr/local/go/bin/go."
	fi
}

# pg_up reports whether a Postgres server answers at 127.0.0.1:$1.
pg_up() {
	local port=$1
	if command -v pg_isready >/dev/null 2>&1; then
		pg_isready -q -h 127.0.0.1 -p "$port" -t 2
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
	fi
}

# pg_cluster_version prints the newest installed PostgreSQL cluster version (e.g. 15), or nothing.
pg_cluster_version() {
	[ -d /etc/postgresql ] || return 0
	# Versions are directory names such as 15 or 16; the newest sorts last.
	find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -n | tail -1
}

# pg_trust_local lets every local user in over 127.0.0.1 and ::1 without a password. Only used on a
# Postgres this script installed itself (CI), where Debian's default would ask for a password.
pg_trust_local() {
	local v=$1 hba
	hba="/etc/postgresql/$v/main/pg_hba.conf"
	[ -f "$hba" ] || die "cannot find $hba to allow local connections"
	{
		echo "# added by vigil scripts/test: trust loopback connections (throwaway CI database)"
		echo "host all all 127.0.0.1/32 trust"
		echo "host all all ::1/128 trust"
		cat "$hba"
	} >"$hba.vigil" && mv "$hba.vigil" "$hba"
	chmod 0640 "$hba"
	chown postgres:postgres "$hba" 2>/dev/null || true
}

# ensure_postgres makes sure a Postgres server answers at 127.0.0.1:${PGPORT:-5432}, starting the
# installed cluster if needed. With "install" as its argument it installs Debian's postgresql when
# none is installed (used by CI); otherwise it says how to install it and fails.
ensure_postgres() {
	local mode=${1:-} port=${PGPORT:-5432} v installed_now=false i
	if pg_up "$port"; then
		return 0
	fi
	v=$(pg_cluster_version)
	if [ -z "$v" ]; then
		if [ "$mode" != install ]; then
			die "PostgreSQL is not installed. Install it with: apt-get install -y postgresql   (then run this again)"
		fi
		say "installing PostgreSQL (apt-get install -y postgresql)"
		apt-get update -qq >/dev/null || die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || die "apt-get install -y postgresql failed"
		v=$(pg_cluster_version)
		[ -n "$v" ] || die "postgresql installed but no cluster under /etc/postgresql"
		installed_now=true
	fi
	if $installed_now; then
		pg_trust_local "$v"
	fi
	say "starting PostgreSQL $v (pg_ctlcluster $v main start)"
	pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null ||
		pg_ctlcluster --skip-systemctl-redirect "$v" main reload 2>/dev/null || true
	for ((i = 0; i < 60; i++)); do
		if pg_up "$port"; then
			return 0
		fi
		sleep 0.5
	done
	die "PostgreSQL $v does not answer on 127.0.0.1:$port after 30 s; try: pg_ctlcluster --skip-systemctl-redirect $v main start, and look at /var/log/postgresql/"
}

# port_in_use reports whether something already listens on 127.0.0.1:$1.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# port_of prints the port of a host:port or a URL such as http://127.0.0.1:8080/x.
port_of() {
	local s=${1#*://}
	s=${s%%/*}
	printf '%s\n' "${s##*:}"
}
