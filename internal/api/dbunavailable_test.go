package api

import (
	"database/sql"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vigil-oss/vigil/internal/temporaltest"
	"github.com/vigil-oss/vigil/internal/testpg"
)

// pgRelay is a loopback TCP relay in front of the test Postgres. Cutting it
// takes the database away from the pools that connect through it the way an
// outage does: their connections drop, and every new one is hung up on.
type pgRelay struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

// startRelay relays a loopback port to target until the test ends.
func startRelay(t *testing.T, target string) *pgRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &pgRelay{ln: ln, target: target, conns: map[net.Conn]bool{}}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		r.cut()
		r.wg.Wait()
	})
	return r
}

func (r *pgRelay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", r.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		r.mu.Lock()
		if r.down {
			r.mu.Unlock()
			_ = c.Close()
			_ = up.Close()
			continue
		}
		r.conns[c], r.conns[up] = true, true
		r.wg.Add(2)
		r.mu.Unlock()
		go r.pipe(c, up)
		go r.pipe(up, c)
	}
}

// pipe copies src to dst; when either side ends, both are closed.
func (r *pgRelay) pipe(dst, src net.Conn) {
	defer r.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// refuseNew makes the relay hang up on every new connection, as a server
// that is shutting down does; connections already relayed go on.
func (r *pgRelay) refuseNew() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = true
}

// cut refuses new connections and drops every relayed one.
func (r *pgRelay) cut() {
	r.mu.Lock()
	r.down = true
	conns := r.conns
	r.conns = map[net.Conn]bool{}
	r.mu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// openPool opens a pool on dsn without connecting.
func openPool(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestDatabaseUnavailable cuts Postgres away from the API's store or from the
// requests service's store in three ways and checks that every call answers
// 503 database_unavailable with Retry-After, logs it, and changes nothing.
// Temporal is unreachable throughout, so an answer of temporal_unavailable
// would show that a call went past the database to Temporal.
func TestDatabaseUnavailable(t *testing.T) {
	t.Parallel()
	type call struct{ as, method, path, body string }
	open := call{"ag_req", "POST", "/api/v1/requests", validOpen}
	outages := []struct {
		name string
		// relayed says whether the cut-off pool goes through a relay (and so
		// works until the outage) rather than to a port nobody listens on.
		relayed bool
		outage  func(t *testing.T, r *pgRelay, db *sql.DB, appName string)
	}{
		{"connection refused", false, func(*testing.T, *pgRelay, *sql.DB, string) {}},
		{"connections dropped", true, func(t *testing.T, r *pgRelay, _ *sql.DB, _ string) { r.cut() }},
		{"backends terminated", true, func(t *testing.T, r *pgRelay, db *sql.DB, appName string) {
			r.refuseNew()
			// The timeout makes pg_terminate_backend wait until each backend
			// has exited, so the outage is complete before the calls.
			// It stays in the select list: in WHERE, Postgres may call it
			// before the filter, on every backend of the server.
			rows, err := db.Query(`SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
				WHERE application_name = $1`, appName)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			n := 0
			for rows.Next() {
				var ok bool
				if err := rows.Scan(&ok); err != nil {
					t.Fatal(err)
				}
				if !ok {
					t.Fatal("a backend of the cut-off pool outlived pg_terminate_backend")
				}
				n++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatal("no backend of the cut-off pool to terminate")
			}
		}},
	}
	sides := []struct {
		name string
		// apiDown cuts off the API's own store; otherwise only the requests
		// service's store, which Open asks about the customer and server.
		apiDown bool
		calls   []call
	}{
		{"requests service store", false, []call{open}},
		{"API store", true, []call{
			open,
			{"ag_req", "GET", "/api/v1/me", ""},
			{"ag_req", "GET", "/api/v1/requests?mine=true", ""},
			{"ag_senior", "POST", "/api/v1/requests/req_abc/veto", `{"reason":"suspicious"}`},
			{"admin", "GET", "/admin/v1/agents", ""},
			{"admin", "POST", "/admin/v1/agents", `{"id":"ag_new","name":"Nina New","role":"agent"}`},
		}},
	}
	for _, o := range outages {
		for _, side := range sides {
			t.Run(o.name+"/"+side.name, func(t *testing.T) {
				t.Parallel()
				dsn := testpg.NewDSN(t)
				db := openPool(t, dsn)
				u, err := url.Parse(dsn)
				if err != nil {
					t.Fatal(err)
				}
				var relay *pgRelay
				if o.relayed {
					relay = startRelay(t, u.Host)
					u.Host = relay.ln.Addr().String()
				} else {
					u.Host = temporaltest.ClosedAddr(t)
				}
				// Names the cut-off pool's backends; the database name is unique.
				appName := "cut_off_" + strings.TrimPrefix(u.Path, "/")
				q := u.Query()
				q.Set("application_name", appName)
				u.RawQuery = q.Encode()
				cutOff := openPool(t, u.String())

				apiDB, svcDB := db, cutOff
				if side.apiDown {
					apiDB, svcDB = cutOff, db
				}
				e := newEnvOn(t, adminToken, Options{}, db, apiDB, svcDB)

				if o.relayed {
					// Before the outage the relayed pool works and keeps its
					// connection, so the outage also hits a pooled one.
					unknown := openJSON(map[string]any{"action": "disable_2fa", "customer_id": "C-404", "reason": "r", "pin": testPIN})
					if res := e.as("ag_req", "POST", "/api/v1/requests", unknown); res.status != http.StatusNotFound {
						t.Fatalf("before the outage: status %d, want 404: %s", res.status, res.body)
					}
				}
				o.outage(t, relay, db, appName)

				rows := map[string]int{}
				for _, table := range []string{"requests", "audit_events", "agents", "customers"} {
					rows[table] = e.count(table)
				}
				for _, c := range side.calls {
					var res response
					if c.as == "admin" {
						res = e.admin(c.method, c.path, c.body)
					} else {
						res = e.as(c.as, c.method, c.path, c.body)
					}
					if res.status != http.StatusServiceUnavailable {
						t.Fatalf("%s %s: status %d, want 503: %s", c.method, c.path, res.status, res.body)
					}
					p := res.problem(t)
					if p.Code != "database_unavailable" || p.Type != "https://vigil.dev/problems/database_unavailable" {
						t.Fatalf("%s %s: problem %+v, want database_unavailable", c.method, c.path, p)
					}
					if strings.Contains(p.Detail, "127.0.0.1") || strings.Contains(p.Detail, "error id") {
						t.Fatalf("%s %s: detail %q leaks internals or an error id", c.method, c.path, p.Detail)
					}
					if s, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || s < 1 {
						t.Fatalf("%s %s: Retry-After = %q", c.method, c.path, res.header.Get("Retry-After"))
					}
				}
				for table, n := range rows {
					if got := e.count(table); got != n {
						t.Errorf("%s rows %d -> %d", table, n, got)
					}
				}

				e.srv.Close() // waits for the handlers, so every log line is written
				logs := e.logs.String()
				if got := strings.Count(logs, "msg=\"database unavailable\""); got != len(side.calls) {
					t.Errorf("%d 'database unavailable' log lines, want %d:\n%s", got, len(side.calls), logs)
				}
				if strings.Contains(logs, "error_id=") {
					t.Errorf("an outage was logged as an internal error:\n%s", logs)
				}
				if strings.Contains(logs, testPIN) {
					t.Error("PIN in the log")
				}
			})
		}
	}
}
