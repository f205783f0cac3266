package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/metrics/metricstest"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/syncbuf"
	"github.com/vigil-oss/vigil/internal/testpg"
)

// TestRuntimeAndProcessMetrics: every registry carries the Go runtime and
// process collectors.
func TestRuntimeAndProcessMetrics(t *testing.T) {
	s := metricstest.Serve(t, Handler(NewRegistry(), nil))
	for _, tt := range []struct {
		name string
		min  float64 // the value must be at least this
	}{
		{"go_goroutines", 1},
		{"go_threads", 1},
		{"go_memstats_heap_alloc_bytes", 1},
		{"go_gc_duration_seconds", 0},
		{"process_cpu_seconds_total", 0},
		{"process_resident_memory_bytes", 1},
		{"process_open_fds", 1},
		{"process_start_time_seconds", 1},
	} {
		v, ok := s.Sum(tt.name, nil)
		if !ok || v < tt.min {
			t.Errorf("%s = %v (present %v), want at least %v; families: %v", tt.name, v, ok, tt.min, s.Names())
		}
	}
}

func TestHandlerMethods(t *testing.T) {
	h := Handler(NewRegistry(), nil)
	for _, tt := range []struct {
		method string
		want   int
		allow  string
	}{
		{http.MethodGet, http.StatusOK, ""},
		{http.MethodHead, http.StatusOK, ""},
		{http.MethodPost, http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodDelete, http.StatusMethodNotAllowed, "GET, HEAD"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, "/metrics", strings.NewReader("x")))
		if rec.Code != tt.want || rec.Header().Get("Allow") != tt.allow {
			t.Errorf("%s: %d, Allow %q; want %d, Allow %q", tt.method, rec.Code, rec.Header().Get("Allow"), tt.want, tt.allow)
		}
		if tt.want == http.StatusOK && rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", tt.method, rec.Header().Get("Cache-Control"))
		}
	}
}

// copyingMiddleware does what the API's and the cancel pages' middleware
// do: it hands the next handler a copy of the request.
func copyingMiddleware(next http.Handler) http.Handler {
	type k struct{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), k{}, "copied")))
	})
}

// TestInstrument serves real HTTP through a ServeMux with sub-muxes mounted
// the way the web front mounts them, and checks the route label is the
// pattern that matched, never the path with its id or token.
func TestInstrument(t *testing.T) {
	reg := NewRegistry()
	hm := NewHTTP(reg)

	// Like the API: a sub-mux behind copying middleware, noting its pattern.
	api := http.NewServeMux()
	api.HandleFunc("POST /api/v1/requests", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) })
	api.HandleFunc("GET /api/v1/requests/{id}", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "{}") })
	apiRouted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := api.Handler(r)
		NoteRoute(r.Context(), pattern)
		if pattern == "" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	})
	// Like the cancel pages: a sub-mux with a catch-all, through Routed.
	pages := http.NewServeMux()
	pages.HandleFunc("GET /c/{token}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) })
	pages.HandleFunc("POST /c/{token}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) })
	pages.HandleFunc("/c/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })

	mux := http.NewServeMux()
	mux.Handle("/api/", copyingMiddleware(apiRouted))
	mux.Handle("/c/", copyingMiddleware(Routed(pages)))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		NoteRoute(r.Context(), "")
		w.WriteHeader(http.StatusNotFound)
	})
	srv := httptest.NewServer(hm.Instrument(mux))
	defer srv.Close()

	tests := []struct {
		method, path string
		route        string
		code         string
		times        int
	}{
		{"POST", "/api/v1/requests", "POST /api/v1/requests", "201", 2},
		{"GET", "/api/v1/requests/req_secret-id-1", "GET /api/v1/requests/{id}", "200", 1},
		{"GET", "/api/v1/requests/req_secret-id-2", "GET /api/v1/requests/{id}", "200", 1},
		{"GET", "/api/v1/nothing-here", Unmatched, "404", 1},
		{"GET", "/c/secret-token-1", "GET /c/{token}", "410", 1},
		{"POST", "/c/secret-token-2", "POST /c/{token}", "403", 3},
		{"GET", "/c/secret-token-3/extra", "/c/", "404", 1},
		{"GET", "/healthz", "GET /healthz", "200", 1},
		{"GET", "/secret-path-nobody-routes", Unmatched, "404", 1},
		{"BREW", "/healthz", Unmatched, "404", 1},
	}
	for _, tt := range tests {
		for range tt.times {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
		}
	}
	s := metricstest.Serve(t, Handler(reg, nil))
	want := map[[3]string]float64{}
	for _, tt := range tests {
		method := strings.ToLower(tt.method)
		if tt.method == "BREW" {
			method = "unknown"
		}
		want[[3]string{tt.route, method, tt.code}] += float64(tt.times)
	}
	for k, n := range want {
		got, _ := s.Sum("vigil_http_requests_total", map[string]string{"route": k[0], "method": k[1], "code": k[2]})
		if got != n {
			t.Errorf("vigil_http_requests_total{route=%q,method=%q,code=%q} = %v, want %v", k[0], k[1], k[2], got, n)
		}
	}
	var total float64
	for _, tt := range tests {
		total += float64(tt.times)
	}
	if got, _ := s.Sum("vigil_http_requests_total", nil); got != total {
		t.Errorf("%v requests counted, want %v (a series too many or too few)", got, total)
	}
	if got, _ := s.Sum("vigil_http_request_duration_seconds", map[string]string{"route": "POST /c/{token}"}); got != 3 {
		t.Errorf("duration of POST /c/{token}: %v observations, want 3", got)
	}
	if got, ok := s.Sum("vigil_http_requests_in_flight", nil); !ok || got != 0 {
		t.Errorf("vigil_http_requests_in_flight = %v (present %v), want 0", got, ok)
	}
	if strings.Contains(s.Raw, "secret") {
		t.Fatalf("a path became a label:\n%s", s.Raw)
	}
}

// newStatsStore is a migrated store with a customer and an agent, and one
// request in each of the given statuses.
func newStatsStore(t *testing.T, statuses ...domain.Status) *store.Store {
	t.Helper()
	st := store.New(testpg.New(t))
	ctx := context.Background()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	hash, err := pinhash.Hash("1234", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	servers := make([]string, len(statuses))
	for i := range servers {
		servers[i] = fmt.Sprintf("srv-%d", i)
	}
	if err := st.UpsertCustomer(ctx, store.CustomerImport{ID: "C-1", Name: "Ann", PrimaryEmail: "ann@example.test", PINHash: hash, Servers: servers}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAgent(ctx, store.Agent{ID: "ag_req", Name: "Rita", Role: domain.RoleAgent}, nil); err != nil {
		t.Fatal(err)
	}
	for i, s := range statuses {
		id := "req_" + string(s) + "_" + string(rune('a'+i))
		// One server each: only one request per target may be open.
		r := store.Request{ID: id, WorkflowID: "wf-" + id, Status: s, Action: domain.ActionReinstallVPS, ServerID: servers[i],
			CustomerID: "C-1", RequesterID: "ag_req", Reason: "because"}
		if s.Final() {
			ended := time.Now()
			r.EndedAt = &ended
		}
		if err := st.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestRequestsCollector reads real rows at each scrape.
func TestRequestsCollector(t *testing.T) {
	st := newStatsStore(t, domain.StatusAwaitingApproval, domain.StatusAwaitingApproval, domain.StatusCooling, domain.StatusExecuted)
	// The longest-waiting request awaiting approval has not moved for an hour.
	if _, err := st.DB().Exec(`UPDATE requests SET updated_at = now() - interval '1 hour' WHERE id = 'req_awaiting_approval_a'`); err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry()
	reg.MustRegister(NewRequests(st.RequestsByStatus, time.Second, nil))
	s := metricstest.Serve(t, Handler(reg, nil))

	for _, tt := range []struct {
		family, status string
		min, max       float64
		absent         bool
	}{
		{family: "vigil_requests", status: "awaiting_approval", min: 2, max: 2},
		{family: "vigil_requests", status: "cooling", min: 1, max: 1},
		{family: "vigil_requests", status: "executed", min: 1, max: 1},
		{family: "vigil_requests", status: "failed", min: 0, max: 0},
		{family: "vigil_request_oldest_in_status_seconds", status: "awaiting_approval", min: 3600, max: 3660},
		{family: "vigil_request_oldest_in_status_seconds", status: "cooling", min: 0, max: 60},
		{family: "vigil_request_oldest_in_status_seconds", status: "executing", min: 0, max: 0},
		{family: "vigil_request_oldest_in_status_seconds", status: "executed", absent: true},
	} {
		v, ok := s.Sum(tt.family, map[string]string{"status": tt.status})
		switch {
		case tt.absent && ok:
			t.Errorf("%s{status=%q} is exported for an end state", tt.family, tt.status)
		case !tt.absent && (!ok || v < tt.min || v > tt.max):
			t.Errorf("%s{status=%q} = %v (present %v), want %v..%v", tt.family, tt.status, v, ok, tt.min, tt.max)
		}
	}
	if n := len(s.Series("vigil_requests")); n != len(domain.Statuses()) {
		t.Errorf("vigil_requests has %d series, want one per status (%d)", n, len(domain.Statuses()))
	}
	if v, ok := s.Sum("vigil_metrics_scrape_errors_total", nil); !ok || v != 0 {
		t.Errorf("vigil_metrics_scrape_errors_total = %v (present %v), want 0", v, ok)
	}
}

// TestRequestsCollectorFailures: a database that is gone or slow fails the
// gauges, not the scrape, and every failure is counted and logged.
func TestRequestsCollectorFailures(t *testing.T) {
	closed := newStatsStore(t)
	if err := closed.DB().Close(); err != nil {
		t.Fatal(err)
	}
	var sawDeadline bool
	var mu sync.Mutex
	tests := []struct {
		name string
		read RequestCounts
	}{
		{"database closed", closed.RequestsByStatus},
		{"query outlives the timeout", func(ctx context.Context) ([]store.StatusCount, error) {
			_, ok := ctx.Deadline()
			mu.Lock()
			sawDeadline = ok
			mu.Unlock()
			<-ctx.Done()
			return nil, ctx.Err()
		}},
		{"other error", func(context.Context) ([]store.StatusCount, error) { return nil, errors.New("boom") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncbuf.Buffer{}
			reg := NewRegistry()
			reg.MustRegister(NewRequests(tt.read, 50*time.Millisecond, slog.New(slog.NewTextHandler(logs, nil))))
			h := Handler(reg, nil)
			for i := 1; i <= 2; i++ {
				s := metricstest.Serve(t, h)
				if v, _ := s.Sum("vigil_metrics_scrape_errors_total", nil); v != float64(i) {
					t.Fatalf("scrape %d: vigil_metrics_scrape_errors_total = %v, want %d", i, v, i)
				}
				if _, ok := s.Families["vigil_requests"]; ok {
					t.Fatalf("scrape %d: vigil_requests exported though the read failed", i)
				}
				if _, ok := s.Families["go_goroutines"]; !ok {
					t.Fatalf("scrape %d: the rest of the scrape is gone", i)
				}
			}
			if n := strings.Count(logs.String(), "reading the requests per status failed"); n != 2 {
				t.Fatalf("%d failures logged, want 2:\n%s", n, logs.String())
			}
		})
	}
	if !sawDeadline {
		t.Error("the read ran without a deadline")
	}
}
