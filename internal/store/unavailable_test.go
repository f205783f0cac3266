package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/vigil-oss/vigil/internal/testpg"
)

// storeAt returns a store whose DSN is a fresh test database's with the host
// replaced by addr, so its calls meet whatever listens there (or nothing).
func storeAt(t *testing.T, addr string) *Store {
	t.Helper()
	u, err := url.Parse(testpg.NewDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	q := u.Query()
	q.Set("connect_timeout", "10")
	u.RawQuery = q.Encode()
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return New(db)
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// hangUpServer listens on loopback and closes every connection as soon as it
// is accepted, like a server that is going down.
func hangUpServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

// pinnedConn returns one connection of s's pool and its backend's pid.
func pinnedConn(t *testing.T, s *Store) (*sql.Conn, int) {
	t.Helper()
	c, err := s.DB().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	var pid int
	if err := c.QueryRowContext(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return c, pid
}

// TestIsUnavailableRealFailures produces each failure for real, against the
// test Postgres or a loopback socket, and classifies what the driver returned.
func TestIsUnavailableRealFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name string
		err  func(t *testing.T) error
		want bool
	}{
		{"connection refused", func(t *testing.T) error {
			_, err := storeAt(t, closedPort(t)).Customer(ctx, "C-1")
			return err
		}, true},
		{"server hangs up on connect", func(t *testing.T) error {
			_, err := storeAt(t, hangUpServer(t)).Customer(ctx, "C-1")
			return err
		}, true},
		{"backend terminated", func(t *testing.T) error {
			s := newStore(t)
			c, pid := pinnedConn(t, s)
			var ok bool
			// The timeout makes pg_terminate_backend wait until the backend is gone.
			if err := s.DB().QueryRow("SELECT pg_terminate_backend($1, 10000)", pid).Scan(&ok); err != nil || !ok {
				t.Fatalf("pg_terminate_backend: %v %v", ok, err)
			}
			_, err := c.ExecContext(ctx, "SELECT 1")
			return err
		}, true},
		{"statement timeout", func(t *testing.T) error {
			c, _ := pinnedConn(t, newStore(t))
			if _, err := c.ExecContext(ctx, "SET statement_timeout = '1ms'"); err != nil {
				t.Fatal(err)
			}
			_, err := c.ExecContext(ctx, "SELECT pg_sleep(30)")
			return err
		}, true},
		{"deadline already passed", func(t *testing.T) error {
			dctx, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
			defer cancel()
			_, err := newStore(t).Customer(dctx, "C-1")
			return err
		}, true},
		{"caller cancelled", func(t *testing.T) error {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := newStore(t).Customer(cctx, "C-1")
			return err
		}, false},
		{"row not found", func(t *testing.T) error {
			_, err := newStore(t).Customer(ctx, "C-404")
			return err
		}, false},
		{"unique violation", func(t *testing.T) error {
			s := newStore(t)
			seed(t, s)
			_, err := s.DB().Exec("INSERT INTO agents (id, name, role) VALUES ('alice', 'Alice again', 'agent')")
			return err
		}, false},
		{"syntax error", func(t *testing.T) error {
			_, err := newStore(t).DB().Exec("SELEC 1")
			return err
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.err(t)
			if err == nil {
				t.Fatal("the failure did not happen")
			}
			t.Logf("%T: %v", err, err)
			if got := IsUnavailable(err); got != tt.want {
				t.Fatalf("IsUnavailable(%T %v) = %v, want %v", err, err, got, tt.want)
			}
			if got := IsUnavailable(fmt.Errorf("store: wrapped: %w", err)); got != tt.want {
				t.Fatalf("IsUnavailable(wrapped %v) = %v, want %v", err, got, tt.want)
			}
		})
	}
}

// TestIsUnavailableClassification covers the SQLSTATEs and error values that
// cannot be produced on demand here (a crashed or starting server, a full
// disk) by the values lib/pq and the net package return for them.
func TestIsUnavailableClassification(t *testing.T) {
	t.Parallel()
	pqErr := func(code string) error { return &pq.Error{Severity: "FATAL", Code: pqerror.Code(code), Message: "x"} }
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("boom"), false},
		{"08000 connection exception", pqErr("08000"), true},
		{"08001 unable to establish connection", pqErr("08001"), true},
		{"08006 connection failure", pqErr("08006"), true},
		{"08P01 protocol violation", pqErr("08P01"), false},
		{"57P01 admin shutdown", pqErr("57P01"), true},
		{"57P02 crash shutdown", pqErr("57P02"), true},
		{"57P03 cannot connect now", pqErr("57P03"), true},
		{"57014 query canceled", pqErr("57014"), true},
		{"53300 too many connections", pqErr("53300"), true},
		{"53100 disk full", pqErr("53100"), true},
		{"53200 out of memory", pqErr("53200"), true},
		{"23505 unique violation", pqErr("23505"), false},
		{"40001 serialization failure", pqErr("40001"), false},
		{"42P01 undefined table", pqErr("42P01"), false},
		{"a SQLSTATE decides even beside a wrapped EOF", fmt.Errorf("%w: %w", pqErr("23505"), io.EOF), false},
		{"driver.ErrBadConn", driver.ErrBadConn, true},
		{"io.EOF", io.EOF, true},
		{"io.ErrUnexpectedEOF", io.ErrUnexpectedEOF, true},
		{"ECONNREFUSED", syscall.ECONNREFUSED, true},
		{"ECONNRESET", syscall.ECONNRESET, true},
		{"dial refused", refused, true},
		{"DNS failure", &net.DNSError{Err: "server misbehaving", Name: "db.internal", IsTemporary: true}, true},
		{"deadline exceeded", context.DeadlineExceeded, true},
		{"canceled", context.Canceled, false},
		{"not found", ErrNotFound, false},
		{"conflict", ErrConflict, false},
		{"no rows", sql.ErrNoRows, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsUnavailable(tt.err); got != tt.want {
				t.Fatalf("IsUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
			if tt.err == nil {
				return
			}
			if got := IsUnavailable(fmt.Errorf("load customer: %w", tt.err)); got != tt.want {
				t.Fatalf("IsUnavailable(wrapped %v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
