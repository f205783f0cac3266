package store

import (
	"context"
	"database/sql"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/testpg"
)

// t0 is a fixed instant at microsecond precision, as Postgres stores it.
var t0 = time.Date(2030, 3, 14, 9, 26, 53, 589793000, time.UTC)

// newStore returns a migrated store on a fresh database.
func newStore(t testing.TB) *Store {
	t.Helper()
	s := New(testpg.New(t))
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

// fixture is a customer, a requester, a senior and one request.
type fixture struct {
	customer, requester, senior, request string
}

// seed creates the fixture rows; the customer's PIN is "246810".
func seed(t testing.TB, s *Store) fixture {
	t.Helper()
	ctx := context.Background()
	hash, err := pinhash.Hash("246810", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{customer: "cus_1", requester: "alice", senior: "bob", request: "req_1"}
	if err := s.UpsertCustomer(ctx, CustomerImport{ID: f.customer, Name: "Acme", PrimaryEmail: "owner@acme.test", PINHash: hash, Servers: []string{"srv_1"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAgent(ctx, Agent{ID: f.requester, Name: "Alice", Role: domain.RoleAgent}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAgent(ctx, Agent{ID: f.senior, Name: "Bob", Role: domain.RoleSenior}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRequest(ctx, Request{ID: f.request, WorkflowID: "wf-" + f.request, Action: domain.ActionReinstallVPS,
		CustomerID: f.customer, RequesterID: f.requester, ServerID: "srv_1", Reason: "customer asked", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	return f
}

// warmPool opens n connections up front, so goroutines racing on the store
// are not staggered by connection setup (which would hide races).
func warmPool(t *testing.T, s *Store, n int) {
	t.Helper()
	s.DB().SetMaxIdleConns(n)
	conns := make([]*sql.Conn, n)
	for i := range conns {
		c, err := s.DB().Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	for _, c := range conns {
		_ = c.Close()
	}
}

func countRows(t *testing.T, s *Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestMigrateTwiceIsNoOp(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].version != 1 {
		t.Fatalf("embedded migrations = %+v, want 0001 first", ms)
	}
	var appliedAt time.Time
	if err := s.DB().QueryRow("SELECT applied_at FROM schema_migrations WHERE version = 1").Scan(&appliedAt); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if n := countRows(t, s, "SELECT count(*) FROM schema_migrations"); n != len(ms) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(ms))
	}
	var again time.Time
	if err := s.DB().QueryRow("SELECT applied_at FROM schema_migrations WHERE version = 1").Scan(&again); err != nil {
		t.Fatal(err)
	}
	if !again.Equal(appliedAt) {
		t.Fatalf("migration 1 re-applied: applied_at %v -> %v", appliedAt, again)
	}
	for _, table := range []string{"customers", "customer_contacts", "customer_servers", "agents", "requests", "audit_events", "executions", "cancel_tokens"} {
		if n := countRows(t, s, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = $1", table); n != 1 {
			t.Errorf("table %s missing after Migrate", table)
		}
	}
}

func TestMigrateConcurrentOnFreshDatabase(t *testing.T) {
	t.Parallel()
	dsn := testpg.NewDSN(t)
	ctx := context.Background()
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(ctx, dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d: %v", i, err)
		}
	}
	for _, s := range stores {
		if s != nil {
			t.Cleanup(func() { _ = s.Close() })
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if got := countRows(t, stores[0], "SELECT count(*) FROM schema_migrations"); got != len(ms) {
		t.Fatalf("schema_migrations has %d rows, want %d", got, len(ms))
	}
	// The lock must have been released: another Migrate does not hang.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := stores[1].Migrate(ctx); err != nil {
		t.Fatalf("Migrate after concurrent start: %v", err)
	}
}

func TestOpenUnreachableDoesNotLeakPassword(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, "postgres://vigil:hunter2pw@"+addr+"/vigil?sslmode=disable")
	if err == nil {
		_ = s.Close()
		t.Fatal("Open succeeded against a closed port")
	}
	if strings.Contains(err.Error(), "hunter2pw") {
		t.Fatalf("Open error leaks the password: %v", err)
	}
}
