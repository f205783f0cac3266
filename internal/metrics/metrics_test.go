package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
	return rec.Body.String()
}

func TestExposition(t *testing.T) {
	r := NewRegistry(nil)
	c := r.Counter("vigil_things_total", "Things done.\nSecond line.")
	c.Inc(Labels{"kind": "b"})
	c.Add(Labels{"kind": "a"}, 2)
	c.Add(Labels{"kind": "a"}, -5) // a counter never goes down
	g := r.Gauge("vigil_level", "")
	g.Set(nil, 1.5)
	g.Add(nil, -0.5)
	h := r.Histogram("vigil_wait_seconds", "Waits.", []float64{1, 0.1})
	h.Observe(Labels{"route": `a"b\c` + "\n"}, 0.05)
	h.Observe(Labels{"route": `a"b\c` + "\n"}, 0.1)
	h.Observe(Labels{"route": `a"b\c` + "\n"}, 7)
	r.Gauge("vigil_unused", "never set")

	got := scrape(t, r)
	wantLines := []string{
		`# HELP vigil_things_total Things done.\nSecond line.`,
		`# TYPE vigil_things_total counter`,
		`vigil_things_total{kind="a"} 2`,
		`vigil_things_total{kind="b"} 1`,
		`# TYPE vigil_level gauge`,
		`vigil_level 1`,
		`# TYPE vigil_wait_seconds histogram`,
		`vigil_wait_seconds_bucket{route="a\"b\\c\n",le="0.1"} 2`,
		`vigil_wait_seconds_bucket{route="a\"b\\c\n",le="1"} 2`,
		`vigil_wait_seconds_bucket{route="a\"b\\c\n",le="+Inf"} 3`,
		`vigil_wait_seconds_sum{route="a\"b\\c\n"} 7.15`,
		`vigil_wait_seconds_count{route="a\"b\\c\n"} 3`,
	}
	for _, l := range wantLines {
		if !strings.Contains(got, l+"\n") {
			t.Errorf("exposition lacks %q:\n%s", l, got)
		}
	}
	if strings.Contains(got, "vigil_unused") {
		t.Errorf("a family without series is written:\n%s", got)
	}
	// Families in name order, series in label order: scrapes are stable.
	if i, j := strings.Index(got, "vigil_level"), strings.Index(got, "vigil_things_total"); i < 0 || j < 0 || i > j {
		t.Errorf("families out of order:\n%s", got)
	}
	if got2 := scrape(t, r); got2 != got {
		t.Errorf("two scrapes differ:\n%s\n---\n%s", got, got2)
	}
}

func TestBadLabelsAndNames(t *testing.T) {
	r := NewRegistry(nil)
	r.Counter("vigil_x_total", "").Inc(Labels{"ok": "1", "bad-name": "2", "__reserved": "3", "le": "4"})
	if got := scrape(t, r); !strings.Contains(got, `vigil_x_total{ok="1"} 1`+"\n") {
		t.Fatalf("invalid label names should be dropped:\n%s", got)
	}
	for _, tt := range []struct {
		name string
		fn   func()
	}{
		{"invalid metric name", func() { r.Counter("vigil-x", "") }},
		{"kind changes", func() { r.Gauge("vigil_x_total", "") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.fn()
		})
	}
}

func TestOnScrape(t *testing.T) {
	r := NewRegistry(nil)
	g := r.Gauge("vigil_rows", "Rows.")
	n := 0
	r.OnScrape(func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("refresh runs without a deadline")
		}
		n++
		g.Set(nil, float64(n))
		return nil
	})
	r.OnScrape(func(context.Context) error { return errors.New("database away") })
	first, second := scrape(t, r), scrape(t, r)
	if !strings.Contains(first, "vigil_rows 1\n") || !strings.Contains(second, "vigil_rows 2\n") {
		t.Fatalf("gauge not refreshed per scrape:\n%s\n%s", first, second)
	}
	if !strings.Contains(second, "vigil_metrics_scrape_errors_total 2\n") {
		t.Fatalf("failed refreshes not counted:\n%s", second)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	r := NewRegistry(nil)
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", strings.NewReader("x")))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}

// TestInstrument serves real HTTP through a ServeMux and checks the route
// label is the pattern, never the path with its token.
func TestInstrument(t *testing.T) {
	r := NewRegistry(nil)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /c/{token}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusGone) })
	mux.HandleFunc("POST /api/v1/requests", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	srv := httptest.NewServer(r.Instrument(mux))
	defer srv.Close()
	for _, c := range []struct{ method, path string }{
		{"GET", "/c/secret-token-1"}, {"GET", "/c/secret-token-2"}, {"POST", "/api/v1/requests"}, {"GET", "/nowhere"},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := scrape(t, r)
	for _, l := range []string{
		`vigil_http_requests_total{code="410",method="GET",route="GET /c/{token}"} 2`,
		`vigil_http_requests_total{code="200",method="POST",route="POST /api/v1/requests"} 1`,
		`vigil_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`vigil_http_request_duration_seconds_count{route="GET /c/{token}"} 2`,
	} {
		if !strings.Contains(got, l+"\n") {
			t.Errorf("lacks %q:\n%s", l, got)
		}
	}
	if strings.Contains(got, "secret-token") {
		t.Fatalf("a path token became a label:\n%s", got)
	}
}

func TestTemporalHandler(t *testing.T) {
	r := NewRegistry(nil)
	h := TemporalHandler(r).WithTags(map[string]string{"namespace": "default"}).WithTags(map[string]string{"activity_type": "Execute"})
	h.Counter("temporal_activity_execution_failed").Inc(2)
	h.Gauge("temporal_num_pollers").Update(3)
	h.Timer("temporal_activity_execution_latency").Record(1500 * time.Millisecond)
	got := scrape(t, r)
	for _, l := range []string{
		`temporal_activity_execution_failed{activity_type="Execute",namespace="default"} 2`,
		`temporal_num_pollers{activity_type="Execute",namespace="default"} 3`,
		`temporal_activity_execution_latency_seconds_bucket{activity_type="Execute",namespace="default",le="2.5"} 1`,
		`temporal_activity_execution_latency_seconds_sum{activity_type="Execute",namespace="default"} 1.5`,
	} {
		if !strings.Contains(got, l+"\n") {
			t.Errorf("lacks %q:\n%s", l, got)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	r := NewRegistry(nil)
	c := r.Counter("vigil_n_total", "")
	h := r.Histogram("vigil_d_seconds", "", nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 1000 {
				c.Inc(Labels{"w": string(rune('a' + i%2))})
				h.Observe(nil, 0.01)
			}
		})
		wg.Go(func() { _ = scrape(t, r) })
	}
	wg.Wait()
	got := scrape(t, r)
	if !strings.Contains(got, `vigil_n_total{w="a"} 4000`) || !strings.Contains(got, "vigil_d_seconds_count 8000") {
		t.Fatalf("lost updates:\n%s", got)
	}
}
