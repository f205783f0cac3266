package testpg

import (
	"database/sql"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// adminDB opens the admin database the helper itself uses.
func adminDB(t *testing.T) *sql.DB {
	t.Helper()
	dsn := os.Getenv(EnvVar)
	if dsn == "" {
		dsn = DefaultAdminDSN
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("Postgres is not reachable at %s (%v): start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start` or set %s", Redact(dsn), err, EnvVar)
	}
	return db
}

func databaseExists(t *testing.T, admin *sql.DB, name string) bool {
	t.Helper()
	var n int
	if err := admin.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestNewGivesFreshWritableDatabase(t *testing.T) {
	a, b := New(t), New(t)
	var nameA, nameB string
	if err := a.QueryRow("SELECT current_database()").Scan(&nameA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow("SELECT current_database()").Scan(&nameB); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(nameA, "vigil_test_") || len(nameA) != len("vigil_test_")+16 {
		t.Fatalf("database name %q, want vigil_test_<16 hex>", nameA)
	}
	if nameA == nameB {
		t.Fatalf("two calls returned the same database %q", nameA)
	}
	var tables int
	if err := a.QueryRow("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("fresh database has %d tables, want 0 (New must not migrate)", tables)
	}
	if _, err := a.Exec("CREATE TABLE t (x int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatalf("write to fresh database: %v", err)
	}
	var x int
	if err := a.QueryRow("SELECT x FROM t").Scan(&x); err != nil || x != 42 {
		t.Fatalf("read back = %d, %v", x, err)
	}
	if err := b.QueryRow("SELECT x FROM t").Scan(&x); err == nil {
		t.Fatal("table created in one test database is visible in another")
	}
}

func TestCleanupDropsDatabase(t *testing.T) {
	admin := adminDB(t)
	var name string
	t.Run("use", func(t *testing.T) {
		db := New(t)
		if err := db.QueryRow("SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !databaseExists(t, admin, name) {
			t.Fatalf("database %s does not exist during the test", name)
		}
	})
	if name == "" {
		t.Fatal("subtest did not record the database name")
	}
	if databaseExists(t, admin, name) {
		t.Fatalf("database %s still exists after the test ended", name)
	}
}

func TestNewDSNDropsDatabaseWithOpenConnections(t *testing.T) {
	admin := adminDB(t)
	var name string
	var leftover *sql.DB
	t.Run("use", func(t *testing.T) {
		dsn := NewDSN(t)
		// Stands in for a child process still connected when the test ends.
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		leftover = db
		if err := db.QueryRow("SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	defer func() { _ = leftover.Close() }()
	if name == "" {
		t.Fatal("subtest did not record the database name")
	}
	if databaseExists(t, admin, name) {
		t.Fatalf("database %s survived cleanup while a connection was open", name)
	}
}

// fatalTB captures Fatalf instead of failing the real test.
type fatalTB struct {
	testing.TB
	mu       sync.Mutex
	msg      string
	cleanups []func()
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestUnreachableServerFailsWithHint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	t.Setenv(EnvVar, "postgres://vigil:s3cretpw@"+addr+"/postgres?sslmode=disable")

	for _, fn := range []struct {
		name string
		call func(testing.TB)
	}{
		{"New", func(tb testing.TB) { New(tb) }},
		{"NewDSN", func(tb testing.TB) { NewDSN(tb) }},
	} {
		t.Run(fn.name, func(t *testing.T) {
			fake := &fatalTB{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				fn.call(fake)
			}()
			<-done
			for _, c := range fake.cleanups {
				c()
			}
			for _, want := range []string{
				"Postgres is not reachable at",
				addr,
				"pg_ctlcluster --skip-systemctl-redirect 15 main start",
				EnvVar,
			} {
				if !strings.Contains(fake.msg, want) {
					t.Errorf("failure message %q lacks %q", fake.msg, want)
				}
			}
			if strings.Contains(fake.msg, "s3cretpw") {
				t.Errorf("failure message leaks the password: %q", fake.msg)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"},
		{"postgres://u:pw@db:5432/x", "postgres://u:xxxxx@db:5432/x"},
		{"postgresql://u:pw@db/x", "postgresql://u:xxxxx@db/x"},
		{"host=db password=pw", "<non-URL DSN>"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
