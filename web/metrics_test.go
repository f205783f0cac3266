package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/agentauth"
	"github.com/vigil-oss/vigil/internal/api"
	"github.com/vigil-oss/vigil/internal/cancelpage"
	"github.com/vigil-oss/vigil/internal/domain"
	vmail "github.com/vigil-oss/vigil/internal/mail"
	"github.com/vigil-oss/vigil/internal/mailcatcher"
	"github.com/vigil-oss/vigil/internal/metrics"
	"github.com/vigil-oss/vigil/internal/metrics/metricstest"
	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/panelstandin"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/syncbuf"
	"github.com/vigil-oss/vigil/internal/temporaltest"
	"github.com/vigil-oss/vigil/internal/testpg"
	"github.com/vigil-oss/vigil/internal/tokens"
	"github.com/vigil-oss/vigil/workflows"
)

func TestMain(m *testing.M) {
	code := m.Run()
	temporaltest.RemoveBuilt()
	os.Exit(code)
}

// startWorker runs the real workflow and activities in process, as the
// worker binary does, against the devserver at addr, with the SDK's
// metrics in a registry of its own; it returns that registry's handler.
func startWorker(t *testing.T, addr string, st *store.Store, signer *tokens.Signer, publicURL string, logger *slog.Logger) http.Handler {
	t.Helper()
	ctx := context.Background()
	reg := metrics.NewRegistry()
	mh, err := metrics.TemporalHandler(reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	wc, err := client.Dial(client.Options{HostPort: addr, Namespace: "default", MetricsHandler: mh, Logger: tlog.NewStructuredLogger(logger)})
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(wc.Close)
	catcher := mailcatcher.New(logger)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	smtpDone := make(chan error, 1)
	go func() { smtpDone <- catcher.ServeSMTP(l) }()
	t.Cleanup(func() {
		_ = catcher.Close()
		<-smtpDone
	})
	sender, err := vmail.NewSender(vmail.SMTPConfig{Addr: l.Addr().String(), From: "vigil@vigil.test", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := panelstandin.New(ctx, st.DB(), "panel-token-for-tests", "", logger)
	if err != nil {
		t.Fatal(err)
	}
	panelSrv := httptest.NewServer(ps.Handler())
	t.Cleanup(panelSrv.Close)
	pc, err := panel.NewClient(panelSrv.URL, "panel-token-for-tests", panelSrv.Client())
	if err != nil {
		t.Fatal(err)
	}
	acts, err := activities.New(st, pc, sender, signer, activities.Settings{
		CancelBaseURL: publicURL, MailFrom: "Vigil <vigil@vigil.test>", SupportEmail: "help@acme-hosting.test",
		ProductName: "Acme Hosting", EstablishedAfter: time.Nanosecond,
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(wc, workflows.TaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.SensitiveRequest, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)
	return metrics.Handler(reg, logger)
}

// TestMetricsAfterTraffic sends real traffic through the web front's whole
// handler tree, with a real Temporal, worker and database behind it, and
// reads both scrapes: per-route series by pattern, the requests per status,
// the Go runtime and process, the SDK's metrics of the web front's client
// and of the worker, and none of the secrets that went through.
func TestMetricsAfterTraffic(t *testing.T) {
	const pin = "73918264"
	ctx := context.Background()
	addr := temporaltest.StartDevServer(t)
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})

	st := store.New(testpg.New(t))
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	hash, err := pinhash.Hash(pin, pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertCustomer(ctx, store.CustomerImport{ID: "C-1", Name: "Ann", PrimaryEmail: "ann@example.test", PINHash: hash, Servers: []string{"srv-1"}}); err != nil {
		t.Fatal(err)
	}
	agentToken, err := agentauth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAgent(ctx, store.Agent{ID: "ag_req", Name: "Rita", Role: domain.RoleAgent}, agentauth.Hash(agentToken)); err != nil {
		t.Fatal(err)
	}
	key := []byte("token-key-for-web-tests-0123456789")
	signer, err := tokens.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	workerMetrics := startWorker(t, addr, st, signer, base, logger)

	// The web front as run() builds it.
	wm, err := newWebMetrics(st, logger)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := client.Dial(client.Options{HostPort: addr, Namespace: "default", MetricsHandler: wm.temporal, Logger: tlog.NewStructuredLogger(logger)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	svc, err := requests.New(tc, st, requests.Timings{ApprovalTimeout: time.Hour, NoticeTimeout: time.Hour, ExecuteMaxAttempts: 3,
		Cooling: domain.DefaultCoolingPeriods()}, requests.RiskChecks{Off: true}, logger)
	if err != nil {
		t.Fatal(err)
	}
	pages := cancelpage.New(svc, st, signer, cancelpage.Options{PublicURL: base, CSRFKey: csrfKey(key)}, logger)
	slackRoute := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := newServer(routes(api.New(svc, st, "", logger, api.Options{}).Handler(), pages.Handler(), slackRoute, nil,
		func(context.Context) error { return nil }, logger, wm.http), logger)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	webMetrics := httptest.NewServer(metrics.Handler(wm.reg, logger))
	t.Cleanup(webMetrics.Close)

	send := func(method, path, body string, wantCode int) []byte {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(path, "/api/") {
			req.Header.Set("Authorization", "Bearer "+agentToken)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != wantCode {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, wantCode, b)
		}
		return b
	}

	open, _ := json.Marshal(map[string]string{"action": "reinstall_vps", "customer_id": "C-1", "server_id": "srv-1",
		"reason": "customer locked out after a bad kernel upgrade", "pin": pin})
	var opened struct{ ID string }
	if err := json.Unmarshal(send("POST", "/api/v1/requests", string(open), http.StatusCreated), &opened); err != nil || opened.ID == "" {
		t.Fatalf("open: id %q, %v", opened.ID, err)
	}
	send("GET", "/api/v1/requests", "", http.StatusOK)
	send("GET", "/api/v1/requests/"+opened.ID, "", http.StatusOK)
	send("GET", "/api/v1/requests/"+opened.ID, "", http.StatusOK)
	send("GET", "/api/v1/me", "", http.StatusOK)
	send("GET", "/api/v1/no-such-endpoint", "", http.StatusNotFound)

	// A cancel link for the request, as the notice carries it.
	linkID, err := tokens.NewID()
	if err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(time.Hour)
	if err := st.CreateCancelToken(ctx, store.CancelToken{ID: linkID, RequestID: opened.ID, Recipient: "ann@example.test", ExpiresAt: expires}); err != nil {
		t.Fatal(err)
	}
	cancelToken, err := signer.Sign(tokens.Claims{ID: linkID, RequestID: opened.ID, Expires: expires})
	if err != nil {
		t.Fatal(err)
	}
	send("GET", "/c/"+cancelToken, "", http.StatusOK)
	send("POST", "/c/"+cancelToken, "", http.StatusForbidden) // no CSRF cookie: refused, and still counted
	send("GET", "/healthz", "", http.StatusOK)
	send("GET", "/nowhere/"+cancelToken, "", http.StatusNotFound)

	web := metricstest.Get(t, webMetrics.URL)
	for _, tt := range []struct {
		route, method, code string
		want                float64
	}{
		{"POST /api/v1/requests", "post", "201", 1},
		{"GET /api/v1/requests", "get", "200", 1},
		{"GET /api/v1/requests/{id}", "get", "200", 2},
		{"GET /api/v1/me", "get", "200", 1},
		{"GET /c/{token}", "get", "200", 1},
		{"POST /c/{token}", "post", "403", 1},
		{"GET /healthz", "get", "200", 1},
		{metrics.Unmatched, "get", "404", 2}, // the unknown API endpoint and /nowhere
	} {
		got, _ := web.Sum("vigil_http_requests_total", map[string]string{"route": tt.route, "method": tt.method, "code": tt.code})
		if got != tt.want {
			t.Errorf("vigil_http_requests_total{route=%q,method=%q,code=%q} = %v, want %v; series: %v",
				tt.route, tt.method, tt.code, got, tt.want, web.Series("vigil_http_requests_total"))
		}
	}
	if got, _ := web.Sum("vigil_http_requests_total", nil); got != 10 {
		t.Errorf("%v requests counted, want 10; series: %v", got, web.Series("vigil_http_requests_total"))
	}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"vigil_http_request_duration_seconds", map[string]string{"route": "POST /api/v1/requests"}, 1},
		{"vigil_requests", nil, 1}, // the one request, in whatever status it has reached
		{"vigil_requests", map[string]string{"status": "executed"}, 0},
		{"vigil_request_oldest_in_status_seconds", map[string]string{"status": "awaiting_approval"}, 0},
		{"vigil_metrics_scrape_errors_total", nil, 0},
		{"go_goroutines", nil, 1},
		{"process_cpu_seconds_total", nil, 0},
		{"process_resident_memory_bytes", nil, 1},
		// The web front's own Temporal client.
		{"temporal_request_total", map[string]string{"namespace": "default"}, 1},
		{"temporal_request_latency_seconds", map[string]string{"namespace": "default"}, 1},
	} {
		if v, ok := web.Sum(tt.name, tt.labels); !ok || v < tt.min {
			t.Errorf("web: %s%v = %v (present %v), want at least %v", tt.name, tt.labels, v, ok, tt.min)
		}
	}
	if v, _ := web.Sum("vigil_requests", nil); v != 1 {
		t.Errorf("vigil_requests adds up to %v, want 1", v)
	}

	// The SDK records an activity's or a task's latency after it returns,
	// which can be a moment after the row it wrote is visible: scrape
	// until every family is there (or 15 s have passed).
	workerWants := []struct {
		name   string
		labels map[string]string
	}{
		{"temporal_workflow_task_execution_latency_seconds", map[string]string{"workflow_type": workflows.WorkflowName}},
		{"temporal_activity_execution_latency_seconds", map[string]string{"task_queue": workflows.TaskQueue}},
		{"temporal_workflow_task_queue_poll_succeed_total", map[string]string{"task_queue": workflows.TaskQueue}},
		{"go_goroutines", nil},
		{"process_cpu_seconds_total", nil},
	}
	var wk metricstest.Scrape
	var missing []string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		wk, missing = metricstest.Serve(t, workerMetrics), nil
		for _, tt := range workerWants {
			if _, ok := wk.Sum(tt.name, tt.labels); !ok {
				missing = append(missing, fmt.Sprint(tt.name, tt.labels))
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		t.Errorf("worker: no %v; families: %v", missing, wk.Names())
	}

	claims, err := signer.Parse(cancelToken, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for what, secret := range map[string]string{
		"the PIN": pin, "the agent's token": agentToken, "the cancel token": cancelToken,
		"the cancel link": base + "/c/" + cancelToken, "the link's id": claims.ID, "the request id": opened.ID,
	} {
		for name, raw := range map[string]string{"web": web.Raw, "worker": wk.Raw} {
			if strings.Contains(raw, secret) {
				t.Errorf("the %s scrape contains %s", name, what)
			}
		}
	}
}
