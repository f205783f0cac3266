package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/vigil-oss/vigil/internal/metrics/metricstest"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/temporaltest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	temporaltest.RemoveBuilt()
	os.Exit(code)
}

// greet runs one activity that succeeds and one that fails for good.
func greet(ctx workflow.Context, name string) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var out string
	if err := workflow.ExecuteActivity(ctx, "Shout", name).Get(ctx, &out); err != nil {
		return "", err
	}
	_ = workflow.ExecuteActivity(ctx, "Fail").Get(ctx, nil)
	return out, nil
}

// broken fails every workflow task, as a non-deterministic deploy would.
func broken(workflow.Context) error { panic("a workflow bug") }

// TestTemporalHandler runs a client and a worker against a real Temporal
// (the devserver) with the SDK's metrics going to one registry, and reads
// the SDK's own metrics back from the scrape; with the web front's metrics
// in the same registry, that scrape checks the names the README gives.
func TestTemporalHandler(t *testing.T) {
	addr := temporaltest.StartDevServer(t)
	reg := NewRegistry()
	mh, err := TemporalHandler(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := client.Dial(client.Options{HostPort: addr, Namespace: "default", MetricsHandler: mh,
		Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	const queue = "metrics-test"
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(greet, workflow.RegisterOptions{Name: "Greet"})
	w.RegisterWorkflowWithOptions(broken, workflow.RegisterOptions{Name: "Broken"})
	w.RegisterActivityWithOptions(func(_ context.Context, s string) (string, error) { return strings.ToUpper(s), nil }, activity.RegisterOptions{Name: "Shout"})
	w.RegisterActivityWithOptions(func(context.Context) error { return errors.New("refused") }, activity.RegisterOptions{Name: "Fail"})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "metrics-greet", TaskQueue: queue}, "Greet", "ann")
	if err != nil {
		t.Fatal(err)
	}
	var out string
	if err := run.Get(ctx, &out); err != nil || out != "ANN" {
		t.Fatalf("workflow: %q, %v", out, err)
	}

	// A workflow task that fails is retried, not failed: the counter is what
	// says so.
	bad, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "metrics-broken", TaskQueue: queue}, "Broken")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tc.TerminateWorkflow(context.Background(), bad.GetID(), "", "test over") }()
	failed := map[string]string{"workflow_type": "Broken"}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		s := metricstest.Serve(t, Handler(reg, nil))
		if v, _ := s.Sum("temporal_workflow_task_execution_failed_total", failed); v >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no temporal_workflow_task_execution_failed_total%v; families: %v", failed, s.Names())
		}
	}

	// What the web front adds, so that one scrape holds every name the
	// README lists.
	hm := NewHTTP(reg)
	reg.MustRegister(NewRequests(func(context.Context) ([]store.StatusCount, error) { return nil, nil }, time.Second, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(http.ResponseWriter, *http.Request) {})
	hm.Instrument(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil))

	s := metricstest.Serve(t, Handler(reg, nil))
	checkREADME(t, s)
	t.Logf("families: %s", strings.Join(s.Names(), " "))
	for _, tt := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"temporal_request_total", map[string]string{"operation": "StartWorkflowExecution", "namespace": "default"}, 1},
		{"temporal_request_latency_seconds", map[string]string{"operation": "StartWorkflowExecution"}, 1},
		{"temporal_workflow_completed_total", map[string]string{"workflow_type": "Greet", "task_queue": queue}, 1},
		{"temporal_workflow_endtoend_latency_seconds", map[string]string{"workflow_type": "Greet"}, 1},
		{"temporal_workflow_task_execution_latency_seconds", map[string]string{"workflow_type": "Greet"}, 1},
		{"temporal_activity_execution_latency_seconds", map[string]string{"activity_type": "Shout"}, 1},
		{"temporal_activity_execution_failed_total", map[string]string{"activity_type": "Fail"}, 1},
		{"temporal_workflow_task_queue_poll_succeed_total", map[string]string{"task_queue": queue}, 1},
		{"go_goroutines", nil, 1},
	} {
		if v, ok := s.Sum(tt.name, tt.labels); !ok || v < tt.min {
			t.Errorf("%s%v = %v (present %v), want at least %v", tt.name, tt.labels, v, ok, tt.min)
		}
	}
	if _, ok := s.Families["target_info"]; ok {
		t.Error("target_info is exported")
	}
	// Histograms use seconds buckets, not OpenTelemetry's millisecond ones.
	f := s.Families["temporal_activity_execution_latency_seconds"]
	if f == nil || len(f.GetMetric()) == 0 || f.GetMetric()[0].GetHistogram().GetBucket()[0].GetUpperBound() != LatencyBuckets[0] {
		t.Errorf("activity latency buckets are not LatencyBuckets: %v", f)
	}
}

// readmeMetric is a metric name in backquotes, with the label names or
// matchers that follow it in braces.
var readmeMetric = regexp.MustCompile("`((?:vigil|temporal|go|process)_[a-z_]+)(?:\\{([^}]*)\\})?`")

// checkREADME: every metric the README's paragraph on metrics names is in
// the scrape s, with the labels it names.
func checkREADME(t *testing.T, s metricstest.Scrape) {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, para, ok := strings.Cut(string(readme), "- **Metrics**")
	if !ok {
		t.Fatal("README has no **Metrics** paragraph")
	}
	para, _, _ = strings.Cut(para, "\n\n")
	found := readmeMetric.FindAllStringSubmatch(para, -1)
	if len(found) < 10 {
		t.Fatalf("only %d metric names found in the README's paragraph:\n%s", len(found), para)
	}
	for _, m := range found {
		name := m[1]
		if _, ok := s.Families[name]; !ok {
			t.Errorf("the README names %s, which the scrape does not have", name)
			continue
		}
		if m[2] == "" {
			continue
		}
		for _, l := range strings.Split(m[2], ",") {
			l, _, _ = strings.Cut(l, "=")
			seen := false
			for _, series := range s.Series(name) {
				if _, ok := series[l]; ok {
					seen = true
				}
			}
			if !seen {
				t.Errorf("the README gives %s a label %q it does not have", name, l)
			}
		}
	}
}
