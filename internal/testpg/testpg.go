// Package testpg gives each test a fresh, empty Postgres database that is
// dropped when the test ends.
//
// It does not create any schema: callers run store.Open or Store.Migrate
// themselves, which also exercises the migrations on every test database.
package testpg

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/lib/pq" // registers the "postgres" driver
)

// EnvVar names the environment variable holding the admin DSN.
const EnvVar = "VIGIL_TEST_DATABASE_URL"

// DefaultAdminDSN is used when EnvVar is unset: the local trust-auth server.
const DefaultAdminDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// connectTimeout bounds how long a test waits for an unreachable server.
const connectTimeout = 10 * time.Second

// New creates a fresh database and returns a connection pool on it. The pool
// is closed and the database dropped in t.Cleanup. The database is empty:
// migrate it before use.
func New(t testing.TB) *sql.DB {
	t.Helper()
	dsn := NewDSN(t)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatalf("testpg: open test database %s: %v", Redact(dsn), err)
	}
	// Registered after NewDSN's cleanup, so it runs first: close, then drop.
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("testpg: connect to test database %s: %v", Redact(dsn), err)
	}
	return db
}

// NewDSN creates a fresh database like New but returns its DSN, for tests
// that hand it to another process. The database is dropped in t.Cleanup even
// if connections to it are still open.
func NewDSN(t testing.TB) string {
	t.Helper()
	adminDSN := os.Getenv(EnvVar)
	if adminDSN == "" {
		adminDSN = DefaultAdminDSN
	}
	u, err := url.Parse(adminDSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// Do not echo a DSN we could not parse: it may hold a password.
		t.Fatalf("testpg: %s must be a postgres:// URL", EnvVar)
	}

	admin, err := sql.Open("postgres", adminDSN)
	if err != nil {
		t.Fatalf("testpg: open %s: %v", Redact(adminDSN), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		_ = admin.Close()
		t.Fatalf("Postgres is not reachable at %s (%v): start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start` or set %s",
			Redact(adminDSN), err, EnvVar)
	}

	name := "vigil_test_" + randomHex(8)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		_ = admin.Close()
		t.Fatalf("testpg: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testpg: drop database %s: %v", name, err)
		}
	})

	u.Path = "/" + name
	return u.String()
}

// Redact returns dsn with any password replaced, for messages.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		// A key=value DSN is not a URL; it may hold password=... anywhere.
		return "<non-URL DSN>"
	}
	return u.Redacted()
}

// randomHex returns n random bytes as hex; names must not collide between
// test binaries running in parallel.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// AwaitAuditExport returns once every audit event committed so far in db is
// past the audit export's horizon: the export hands out only the events of
// transactions older than every transaction still running on the server
// (see store.AuditExport), and the other tests' transactions on a shared
// server (CREATE DATABASE, say) hold it back for a moment. It waits on that
// condition, not for a time; the test's deadline bounds it.
func AwaitAuditExport(t testing.TB, db *sql.DB) {
	t.Helper()
	for {
		var passed bool
		if err := db.QueryRow(`SELECT pg_snapshot_xmin(pg_current_snapshot()) >
			COALESCE((SELECT max(xid) FROM audit_events), '0'::xid8)`).Scan(&passed); err != nil {
			t.Fatalf("testpg: audit export horizon: %v", err)
		}
		if passed {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
