package activities_test

import (
	"context"
	"log/slog"
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

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/mailcatcher"
	"github.com/vigil-oss/vigil/internal/temporaltest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	temporaltest.RemoveBuilt()
	os.Exit(code)
}

// noticeGate runs NotifyCustomer as a workflow's notice gate does: retried
// every 200 ms until it succeeds or its schedule-to-close timeout is up.
func noticeGate(ctx workflow.Context, in activities.NotifyInput, scheduleToClose time.Duration) (activities.NotifyResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second, ScheduleToCloseTimeout: scheduleToClose,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 1, MaximumInterval: 200 * time.Millisecond},
	})
	var out activities.NotifyResult
	err := workflow.ExecuteActivity(ctx, "NotifyCustomer", in).Get(ctx, &out)
	return out, err
}

var linkInMail = regexp.MustCompile(`/c/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)`)

// TestNoticeLinksOutliveTheNoticeGate: a mail outage makes the notice
// retry, and every retry mails every address again with new links; the
// cooling period starts only when the last attempt is accepted, as late as
// the gate's deadline. A link mailed by the first attempt, before the
// outage, must still cancel until a cooling period started then has run
// out: every link is valid until the gate's deadline plus the cooling
// period plus the grace, or until the time the workflow names if later.
func TestNoticeLinksOutliveTheNoticeGate(t *testing.T) {
	t.Parallel()
	w := newLiveWorld(t)
	ctx := context.Background()
	addr := temporaltest.StartDevServer(t)
	tc, err := client.Dial(client.Options{HostPort: addr, Namespace: "default", Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(tc.Close)
	const queue = "activities-notice-test"
	wk := worker.New(tc, queue, worker.Options{})
	wk.RegisterWorkflowWithOptions(noticeGate, workflow.RegisterOptions{Name: "noticeGate"})
	wk.RegisterActivityWithOptions(w.acts, activity.RegisterOptions{})
	if err := wk.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wk.Stop)

	const (
		gate    = 3 * time.Hour
		cooling = 2 * time.Hour
		grace   = time.Hour // activities.New's default CancelGrace
	)
	tests := []struct {
		name        string
		outage      bool
		cancelUntil time.Duration // from the start; 0: not set
		want        time.Duration // the links' expiry, from the start
	}{
		{"mail outage during the notice", true, 0, gate + cooling + grace},
		{"the workflow names a later deadline", false, 10 * time.Hour, 10*time.Hour + grace},
		{"the workflow names an earlier one", false, time.Hour, gate + cooling + grace},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := []string{"req_outage", "req_later", "req_earlier"}[i]
			server := "srv-" + id
			if _, err := w.st.DB().ExecContext(ctx, `INSERT INTO customer_servers (server_id, customer_id) VALUES ($1, $2)`, server, victim); err != nil {
				t.Fatal(err)
			}
			w.open(t, id, domain.ActionReinstallVPS, server, domain.StatusNotifying)
			isNotice := func(m mailcatcher.Message) bool {
				return strings.Contains(string(m.Raw), "X-Vigil-Request: "+id+"\r\n") && strings.Contains(string(m.Raw), "X-Vigil-Kind: notice")
			}
			if tt.outage {
				// The primary is mailed first; the contact's server refuses.
				w.catcher.RefuseRecipient(victimOps, true)
			}
			start := time.Now()
			in := activities.NotifyInput{RequestID: id, Action: domain.ActionReinstallVPS, CustomerID: victim, ServerID: server,
				RequesterID: requester, CoolingPeriod: cooling}
			if tt.cancelUntil > 0 {
				in.CancelUntil = start.Add(tt.cancelUntil)
			}
			run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "notice-" + id, TaskQueue: queue}, "noticeGate", in, gate)
			if err != nil {
				t.Fatal(err)
			}
			if tt.outage {
				// Two attempts mailed the primary and failed on the contact.
				deadline := time.Now().Add(time.Minute)
				for n := 0; n < 2; time.Sleep(50 * time.Millisecond) {
					n = 0
					for _, m := range w.catcher.Messages() {
						if isNotice(m) {
							n++
						}
					}
					if time.Now().After(deadline) {
						t.Fatalf("the notice was not retried: %d notices", n)
					}
				}
				w.catcher.RefuseRecipient(victimOps, false)
			}
			var res activities.NotifyResult
			if err := run.Get(ctx, &res); err != nil {
				t.Fatalf("notice gate: %v", err)
			}
			end := time.Now()

			var mailed []string
			for _, m := range w.catcher.Messages() {
				if !isNotice(m) {
					continue
				}
				text, _, err := mailcatcher.Parts(m.Raw)
				if err != nil {
					t.Fatal(err)
				}
				link := linkInMail.FindStringSubmatch(text)
				if link == nil {
					t.Fatalf("no cancel link in the notice:\n%s", text)
				}
				mailed = append(mailed, link[1])
			}
			wantMails := 2
			if tt.outage {
				wantMails = 4 // the primary twice before the outage ended, then both
			}
			if len(mailed) < wantMails {
				t.Fatalf("%d notices mailed, want at least %d", len(mailed), wantMails)
			}
			// The latest moment the action can run, as far as the notice
			// can know: a cooling period started at the gate's deadline.
			latestRun := start.Add(gate + cooling)
			if tt.cancelUntil > gate+cooling {
				latestRun = start.Add(tt.cancelUntil)
			}
			for i, tok := range mailed {
				claims, err := w.signer.Parse(tok, latestRun)
				if err != nil {
					t.Fatalf("link %d of %d no longer works at %s, when the action may still run: %v", i+1, len(mailed), latestRun.Format(time.RFC3339), err)
				}
				row, err := w.st.CancelToken(ctx, claims.ID)
				if err != nil {
					t.Fatal(err)
				}
				lo, hi := start.Add(tt.want), end.Add(tt.want)
				if row.ExpiresAt.Before(lo.Add(-time.Second)) || row.ExpiresAt.After(hi.Add(time.Second)) {
					t.Fatalf("link %d expires at %s, want between %s and %s", i+1, row.ExpiresAt, lo, hi)
				}
			}
			if res.Recipients != 2 || res.RunsAt.After(start.Add(gate+cooling)) {
				t.Fatalf("result %+v", res)
			}
		})
	}
}
