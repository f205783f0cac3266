//go:build crash

package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"
)

// pgServer is a PostgreSQL server of the test's own, so that it can be
// crashed and restarted without touching the shared one the other tests
// use. It runs Debian's server binaries on a free loopback port, as the
// postgres user when the test runs as root (initdb refuses root).
type pgServer struct {
	t    *testing.T
	bin  string // directory of initdb, postgres
	dir  string // data directory and socket directory live here
	port int
	cred *syscall.Credential

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{}
	log  *os.File
}

// pgBinDir finds the server binaries: $VIGIL_PG_BIN, else the newest
// /usr/lib/postgresql/<version>/bin, else initdb on PATH.
func pgBinDir() (string, error) {
	if d := os.Getenv("VIGIL_PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL's server binaries (initdb, postgres) were not found: install them with " +
		"`apt-get install -y postgresql`, or point VIGIL_PG_BIN at their directory")
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// startPGServer initialises a fresh cluster and starts it. It is stopped and
// removed when the test ends.
func startPGServer(t *testing.T) *pgServer {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "vigil-crash-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s := &pgServer{t: t, bin: bin, dir: dir}
	t.Cleanup(func() {
		s.stop(syscall.SIGINT) // fast shutdown
		if s.log != nil {
			s.log.Close()
		}
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, and there is no postgres user to run the test's own server as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if s.log, err = os.Create(filepath.Join(t.TempDir(), "postgres.log")); err != nil {
		t.Fatal(err)
	}
	initdb := s.command("initdb", "-D", s.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	_, portStr, _ := strings.Cut(freeAddr(t), ":")
	s.port, _ = strconv.Atoi(portStr)
	s.start()
	db, err := sql.Open("postgres", s.url("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE DATABASE vigil`); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return s
}

func (s *pgServer) data() string { return filepath.Join(s.dir, "data") }

func (s *pgServer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

// url is the address of database name on this server.
func (s *pgServer) url(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, name)
}

// DSN is the database the stack uses.
func (s *pgServer) DSN() string { return s.url("vigil") }

// start runs the postmaster and waits until it accepts connections. fsync
// is off: the crashes here are of processes, not of the machine, and the
// kernel keeps what was written.
func (s *pgServer) start() {
	s.t.Helper()
	cmd := s.command("postgres", "-D", s.data(), "-p", strconv.Itoa(s.port), "-k", s.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200")
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start postgres: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.proc, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := s.ping()
		if err == nil {
			return
		}
		select {
		case <-done:
			s.t.Fatalf("postgres exited while starting; its log is in %s", s.log.Name())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("postgres not accepting connections after 60 s: %v (log: %s)", err, s.log.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *pgServer) ping() error {
	db, err := sql.Open("postgres", s.url("postgres")+"&connect_timeout=2")
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// stop signals the postmaster and waits for it to exit: SIGQUIT is the
// immediate shutdown (every backend dies at once, no checkpoint, crash
// recovery at the next start), SIGINT the fast one.
func (s *pgServer) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.proc, s.done
	s.proc = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// crash stops the server as a crash would, keeps it down for down, and
// starts it again on the same port and data; it returns how long it was
// unreachable.
func (s *pgServer) crash(down time.Duration) time.Duration {
	s.t.Helper()
	began := time.Now()
	s.stop(syscall.SIGQUIT)
	time.Sleep(down)
	s.start()
	return time.Since(began)
}
