package panelstandin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/testpg"
)

const token = "standin-test-token"

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func setup(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	db := testpg.New(t)
	s, err := New(ctx(t), db, token, "", nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv
}

type reply struct {
	status   int
	replayed string
	body     map[string]any
}

func call(t *testing.T, c context.Context, method, url, key, auth, body string) (reply, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c, method, url, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed")}
	_ = json.NewDecoder(resp.Body).Decode(&r.body)
	return r, nil
}

func mustCall(t *testing.T, method, url, key, auth, body string) reply {
	t.Helper()
	r, err := call(t, ctx(t), method, url, key, auth, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

func errorCode(r reply) string {
	e, _ := r.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// eventually retries check for a few seconds: the stand-in writes a call's
// final status after answering, so a test can see the answer first.
func eventually(t *testing.T, what string, check func() bool) {
	t.Helper()
	for range 250 {
		if check() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// waitNotHeld blocks until no call is held.
func waitNotHeld(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		held, changed := s.held, s.heldChanged
		s.mu.Unlock()
		if held == 0 {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("a call stayed held")
		}
	}
}

func TestNew(t *testing.T) {
	db := testpg.New(t)
	if _, err := New(ctx(t), db, token, token, nil); err == nil {
		t.Fatal("New accepted a read token equal to the token")
	}
	if _, err := New(ctx(t), db, "", "", nil); err == nil {
		t.Fatal("New without token succeeded")
	}
	// Concurrent and repeated schema creation both succeed.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			_, err := New(ctx(t), db, token, "", nil)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("New: %v", err)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx(t), `SELECT count(*) FROM information_schema.tables WHERE table_name IN ('standin_panel_calls','standin_panel_actions')`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("tables: %d, %v", n, err)
	}
}

func TestEndpointsAndStatuses(t *testing.T) {
	_, srv := setup(t)
	auth := "Bearer " + token
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantKeys                 []string
	}{
		{"credentials", "POST", "/v1/customers/c1/servers/s1/credentials", "", 200, []string{"reference", "username", "password"}},
		{"reinstall", "POST", "/v1/customers/c1/servers/s1/reinstall", "", 202, []string{"reference"}},
		{"contact", "POST", "/v1/customers/c1/contacts", `{"email":"a@example.com"}`, 201, []string{"reference"}},
		{"email", "PUT", "/v1/customers/c1/email", `{"email":"b@example.com"}`, 200, []string{"reference"}},
		{"2fa", "DELETE", "/v1/customers/c1/2fa", "", 200, []string{"reference"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustCall(t, tt.method, srv.URL+tt.path, "key-"+tt.name, auth, tt.body)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d (%v)", r.status, tt.wantStatus, r.body)
			}
			for _, k := range tt.wantKeys {
				if v, _ := r.body[k].(string); v == "" {
					t.Errorf("response lacks %q: %v", k, r.body)
				}
			}
			if len(r.body) != len(tt.wantKeys) {
				t.Errorf("response has extra fields: %v", r.body)
			}
		})
	}
	if r := mustCall(t, "POST", srv.URL+"/v1/customers/c1/servers/s1/reinstall", "key-reinstall", auth, ""); !strings.HasPrefix(r.body["reference"].(string), "job-") {
		t.Errorf("reinstall reference %v", r.body["reference"])
	}
}

func TestRefusalsAreRecordedAndPerformNothing(t *testing.T) {
	s, srv := setup(t)
	auth := "Bearer " + token
	tests := []struct {
		name, method, path, key, auth, body string
		wantStatus                          int
		wantCode                            string
	}{
		{"no token", "DELETE", "/v1/customers/c1/2fa", "k1", "", "", 401, "unauthorized"},
		{"wrong token", "DELETE", "/v1/customers/c1/2fa", "k1", "Bearer nope", "", 401, "unauthorized"},
		{"no key", "DELETE", "/v1/customers/c1/2fa", "", auth, "", 400, "idempotency_key_required"},
		{"unknown endpoint", "POST", "/v1/customers/c1/servers/s1/format", "k1", auth, "", 404, "not_found"},
		{"wrong method", "GET", "/v1/customers/c1/2fa", "k1", auth, "", 405, "method_not_allowed"},
		{"bad json", "POST", "/v1/customers/c1/contacts", "k1", auth, `{"email":`, 400, "invalid_request"},
		{"unknown field", "POST", "/v1/customers/c1/contacts", "k1", auth, `{"email":"a@example.com","role":"owner"}`, 400, "invalid_request"},
		{"bad email", "PUT", "/v1/customers/c1/email", "k1", auth, `{"email":"nope"}`, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustCall(t, tt.method, srv.URL+tt.path, tt.key, tt.auth, tt.body)
			if r.status != tt.wantStatus || errorCode(r) != tt.wantCode {
				t.Fatalf("got %d %q, want %d %q", r.status, errorCode(r), tt.wantStatus, tt.wantCode)
			}
			if msg, _ := r.body["error"].(map[string]any)["message"].(string); msg == "" || strings.Contains(msg, token) {
				t.Fatalf("error message %q empty or leaks the token", msg)
			}
		})
	}
	var calls []Call
	eventually(t, "every call recorded with its status", func() bool {
		var err error
		calls, err = s.Calls(ctx(t))
		if err != nil {
			t.Fatalf("Calls: %v", err)
		}
		for _, c := range calls {
			if c.Status == 0 {
				return false
			}
		}
		return len(calls) == len(tests)
	})
	for i, c := range calls {
		if c.Status != tests[i].wantStatus || c.Method != tests[i].method || c.Path != tests[i].path {
			t.Errorf("call %d = %+v, want %s %s %d", i, c, tests[i].method, tests[i].path, tests[i].wantStatus)
		}
	}
	if p, err := s.Performed(ctx(t)); err != nil || len(p) != 0 {
		t.Fatalf("Performed = %v, %v; want nothing", p, err)
	}
	// A refused call does not consume its key.
	if r := mustCall(t, "DELETE", srv.URL+"/v1/customers/c1/2fa", "k1", auth, ""); r.status != 200 || r.replayed != "" {
		t.Fatalf("after refusals, first real call = %d replayed %q", r.status, r.replayed)
	}
}

func TestReplayAndKeyReuse(t *testing.T) {
	s, srv := setup(t)
	auth := "Bearer " + token
	first := mustCall(t, "POST", srv.URL+"/v1/customers/c1/servers/s1/credentials", "k", auth, "")
	again := mustCall(t, "POST", srv.URL+"/v1/customers/c1/servers/s1/credentials", "k", auth, "")
	if first.status != 200 || again.status != 200 || again.replayed != "true" || first.replayed != "" {
		t.Fatalf("first %+v, again %+v", first, again)
	}
	if first.body["password"] != again.body["password"] || first.body["reference"] != again.body["reference"] {
		t.Fatalf("replay differs: %v vs %v", first.body, again.body)
	}
	other := mustCall(t, "POST", srv.URL+"/v1/customers/c1/servers/s2/credentials", "k", auth, "")
	if other.status != 422 || errorCode(other) != "idempotency_key_reused" {
		t.Fatalf("reuse for another server = %d %q", other.status, errorCode(other))
	}
	p, err := s.Performed(ctx(t))
	if err != nil || len(p) != 1 || p[0].ServerID != "s1" || p[0].Status != 200 || p[0].Replayed {
		t.Fatalf("Performed = %+v, %v", p, err)
	}
}

func TestHoldRelease(t *testing.T) {
	s, srv := setup(t)
	auth := "Bearer " + token
	s.SetFault(Fault{Hold: true})

	done := make(chan reply, 1)
	go func() {
		r, err := call(t, context.Background(), "POST", srv.URL+"/v1/customers/c1/servers/s1/reinstall", "k-held", auth, "")
		if err != nil {
			t.Errorf("held call: %v", err)
		}
		done <- r
	}()
	if err := s.WaitHeld(ctx(t)); err != nil {
		t.Fatalf("WaitHeld: %v", err)
	}
	if p, _ := s.Performed(ctx(t)); len(p) != 0 {
		t.Fatalf("performed while held")
	}
	select {
	case r := <-done:
		t.Fatalf("held call answered before Release: %+v", r)
	default:
	}
	s.Release()
	if r := <-done; r.status != 202 {
		t.Fatalf("released call = %+v", r)
	}
	if p, _ := s.Performed(ctx(t)); len(p) != 1 {
		t.Fatalf("performed %d after release", len(p))
	}
	// Release stops holding: the next call goes straight through.
	if r := mustCall(t, "DELETE", srv.URL+"/v1/customers/c1/2fa", "k-after", auth, ""); r.status != 200 {
		t.Fatalf("after release: %+v", r)
	}
}

func TestHeldClientLeavesNothingPerformed(t *testing.T) {
	s, srv := setup(t)
	auth := "Bearer " + token
	s.SetFault(Fault{Hold: true})
	cctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := call(t, cctx, "POST", srv.URL+"/v1/customers/c1/servers/s1/reinstall", "k-crash", auth, "")
		errc <- err
	}()
	if err := s.WaitHeld(ctx(t)); err != nil {
		t.Fatalf("WaitHeld: %v", err)
	}
	cancel() // the worker dies while its call is held
	if err := <-errc; err == nil {
		t.Fatal("cancelled call returned no error")
	}
	waitNotHeld(t, s)
	s.Release()
	eventually(t, "status 499 recorded", func() bool {
		c, err := s.Calls(ctx(t))
		return err == nil && len(c) == 1 && c[0].Status == 499
	})
	if p, _ := s.Performed(ctx(t)); len(p) != 0 {
		t.Fatalf("the abandoned held call was performed")
	}
	// The restarted worker's retry with the same key performs it, once.
	r := mustCall(t, "POST", srv.URL+"/v1/customers/c1/servers/s1/reinstall", "k-crash", auth, "")
	if r.status != 202 || r.replayed != "" {
		t.Fatalf("retry = %+v, want a fresh 202", r)
	}
}

func TestHangAfterPerform(t *testing.T) {
	s, srv := setup(t)
	auth := "Bearer " + token
	s.SetFault(Fault{HangAfterPerform: 10 * time.Second})
	c, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := call(t, c, "DELETE", srv.URL+"/v1/customers/c1/2fa", "k-hang", auth, ""); err == nil {
		t.Fatal("hanging call answered")
	}
	if p, _ := s.Performed(ctx(t)); len(p) != 1 {
		t.Fatalf("performed %d, want 1 before the hang", len(p))
	}
	eventually(t, "status 499 recorded", func() bool {
		c, err := s.Calls(ctx(t))
		return err == nil && len(c) == 1 && c[0].Status == 499
	})
	r := mustCall(t, "DELETE", srv.URL+"/v1/customers/c1/2fa", "k-hang", auth, "")
	if r.status != 200 || r.replayed != "true" {
		t.Fatalf("retry = %+v, want a replayed 200 without hanging", r)
	}
}

func TestAdminEndpoints(t *testing.T) {
	_, srv := setup(t)
	auth := "Bearer " + token

	if r := mustCall(t, "POST", srv.URL+"/_standin/faults", "", "", `{"fail_next":1,"status":503}`); r.status != 204 {
		t.Fatalf("faults = %d", r.status)
	}
	if r := mustCall(t, "DELETE", srv.URL+"/v1/customers/c1/2fa", "k1", auth, ""); r.status != 503 || errorCode(r) != "injected_fault" {
		t.Fatalf("after fail_next: %+v", r)
	}
	if r := mustCall(t, "DELETE", srv.URL+"/v1/customers/c1/2fa", "k1", auth, ""); r.status != 200 {
		t.Fatalf("second call: %+v", r)
	}

	for _, bad := range []string{`{"fail_next":-1}`, `{"status":200,"fail_next":1}`, `{"hang_after_perform":"soon"}`, `{"nope":1}`} {
		if r := mustCall(t, "POST", srv.URL+"/_standin/faults", "", "", bad); r.status != 400 {
			t.Errorf("faults %s = %d, want 400", bad, r.status)
		}
	}

	// Nothing held: the wait times out.
	if r := mustCall(t, "GET", srv.URL+"/_standin/held?wait=50ms", "", "", ""); r.status != 504 {
		t.Fatalf("held with nothing held = %d", r.status)
	}
	if r := mustCall(t, "POST", srv.URL+"/_standin/faults", "", "", `{"hold":true}`); r.status != 204 {
		t.Fatalf("hold = %d", r.status)
	}
	done := make(chan int, 1)
	go func() {
		r, err := call(t, context.Background(), "DELETE", srv.URL+"/v1/customers/c2/2fa", "k2", auth, "")
		if err != nil {
			t.Errorf("held call: %v", err)
		}
		done <- r.status
	}()
	if r := mustCall(t, "GET", srv.URL+"/_standin/held?wait=10s", "", "", ""); r.status != 200 || r.body["held"] != true {
		t.Fatalf("held = %+v", r)
	}
	if r := mustCall(t, "POST", srv.URL+"/_standin/release", "", "", ""); r.status != 204 {
		t.Fatalf("release = %d", r.status)
	}
	if st := <-done; st != 200 {
		t.Fatalf("released call = %d", st)
	}

	eventually(t, "calls listed with statuses", func() bool {
		resp, err := http.Get(srv.URL + "/_standin/calls")
		if err != nil {
			t.Fatalf("GET calls: %v", err)
		}
		defer resp.Body.Close()
		var calls []Call
		if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
			t.Fatalf("decode calls: %v", err)
		}
		return len(calls) == 3 && calls[0].Status == 503 && calls[1].Status == 200 && calls[2].Status == 200 && calls[2].CustomerID == "c2"
	})
	resp, err := http.Get(srv.URL + "/_standin/performed")
	if err != nil {
		t.Fatalf("GET performed: %v", err)
	}
	var perf []Call
	_ = json.NewDecoder(resp.Body).Decode(&perf)
	resp.Body.Close()
	if len(perf) != 2 || perf[0].IdempotencyKey != "k1" || perf[1].IdempotencyKey != "k2" {
		t.Fatalf("performed = %+v", perf)
	}
}

func TestAdminLoopbackOnly(t *testing.T) {
	s, _ := setup(t)
	h := s.Handler()
	for _, remote := range []string{"192.0.2.10:5555", "[2001:db8::1]:5555", "garbage"} {
		req := httptest.NewRequest("GET", "/_standin/calls", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("admin from %s = %d, want 403", remote, rec.Code)
		}
	}
	req := httptest.NewRequest("GET", "/_standin/calls", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("admin from loopback = %d, want 200", rec.Code)
	}
}
