package workflows_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/workflows"
)

// The payload key the fixtures were recorded with (see e2e/histories_test.go,
// which holds the same value). It is a fixed, test-only key that protects
// nothing: it exists so the recorded histories can be decoded at replay time,
// and must never be used anywhere else.
const (
	replayKeyID = "replay"
	replayKey   = "dmlnaWwtcmVwbGF5LWZpeHR1cmVzLXRlc3Qtb25seSE=" // base64("vigil-replay-fixtures-test-only!")
)

const historiesDir = "testdata/histories"

// replayFixtures lists every recorded history and the end state it reached.
// A fixture that is listed but missing fails the test; see
// testdata/histories/README.md before touching any of them.
var replayFixtures = []struct {
	file     string
	status   domain.Status
	cancelBy domain.CancelParty
}{
	{"executed.json", domain.StatusExecuted, ""},
	{"pin_rejected.json", domain.StatusPINRejected, ""},
	{"pin_rejected_lockout.json", domain.StatusPINRejected, ""},
	{"locked.json", domain.StatusLocked, ""},
	{"rejected.json", domain.StatusRejected, ""},
	{"expired.json", domain.StatusExpired, ""},
	{"cancelled_by_customer.json", domain.StatusCancelled, domain.CancelByCustomer},
	{"vetoed.json", domain.StatusCancelled, domain.CancelBySenior},
	{"withdrawn.json", domain.StatusWithdrawn, domain.CancelByRequester},
	{"failed.json", domain.StatusFailed, ""},
	// Recorded after change "cancel-stops-notice" (workflow.GetVersion 1):
	// the end states whose path passes the version marker.
	{"executed.cancel-stops-notice.json", domain.StatusExecuted, ""},
	{"failed.cancel-stops-notice.json", domain.StatusFailed, ""},
	{"cancelled_by_customer.cancel-stops-notice.json", domain.StatusCancelled, domain.CancelByCustomer},
	{"vetoed.cancel-stops-notice.json", domain.StatusCancelled, domain.CancelBySenior},
	{"cancelled_during_notice.cancel-stops-notice.json", domain.StatusCancelled, domain.CancelByCustomer},
	// Recorded after change "fail-on-permanent-error" (workflow.GetVersion
	// 1), whose marker only a history whose gate activity failed for good
	// carries: the database refuses the approval (a data error), and the
	// request ends failed instead of retrying. It stops before the notice,
	// so it has no cancel-stops-notice marker.
	{"failed_data_error.fail-on-permanent-error.json", domain.StatusFailed, ""},
	// Recorded after change "pin-verdict-before-start" (workflow.GetVersion
	// 1): the web front checked the PIN before the start, the input has
	// none, and the PIN gate consumed the verdict before Open. Every run
	// passes the marker; a wrong PIN starts no workflow, so pin_rejected
	// and locked have no new fixture. verdict_refused is a run started
	// directly that reuses a verified request's id for another customer.
	{"executed.cancel-stops-notice.pin-verdict-before-start.json", domain.StatusExecuted, ""},
	{"failed.cancel-stops-notice.pin-verdict-before-start.json", domain.StatusFailed, ""},
	{"cancelled_by_customer.cancel-stops-notice.pin-verdict-before-start.json", domain.StatusCancelled, domain.CancelByCustomer},
	{"vetoed.cancel-stops-notice.pin-verdict-before-start.json", domain.StatusCancelled, domain.CancelBySenior},
	{"cancelled_during_notice.cancel-stops-notice.pin-verdict-before-start.json", domain.StatusCancelled, domain.CancelByCustomer},
	{"rejected.pin-verdict-before-start.json", domain.StatusRejected, ""},
	{"expired.pin-verdict-before-start.json", domain.StatusExpired, ""},
	{"withdrawn.pin-verdict-before-start.json", domain.StatusWithdrawn, domain.CancelByRequester},
	{"failed_data_error.fail-on-permanent-error.pin-verdict-before-start.json", domain.StatusFailed, ""},
	{"verdict_refused.pin-verdict-before-start.json", domain.StatusFailed, ""},
	// Recorded after payloads were bound to their workflow (no change id:
	// the commands are the same). They replay on a strict codec; the
	// files above need the migration switch.
	{"executed.cancel-stops-notice.pin-verdict-before-start.bound.json", domain.StatusExecuted, ""},
	{"failed.cancel-stops-notice.pin-verdict-before-start.bound.json", domain.StatusFailed, ""},
	{"cancelled_by_customer.cancel-stops-notice.pin-verdict-before-start.bound.json", domain.StatusCancelled, domain.CancelByCustomer},
	{"vetoed.cancel-stops-notice.pin-verdict-before-start.bound.json", domain.StatusCancelled, domain.CancelBySenior},
	{"cancelled_during_notice.cancel-stops-notice.pin-verdict-before-start.bound.json", domain.StatusCancelled, domain.CancelByCustomer},
	{"rejected.pin-verdict-before-start.bound.json", domain.StatusRejected, ""},
	{"expired.pin-verdict-before-start.bound.json", domain.StatusExpired, ""},
	{"withdrawn.pin-verdict-before-start.bound.json", domain.StatusWithdrawn, domain.CancelByRequester},
	{"failed_data_error.fail-on-permanent-error.pin-verdict-before-start.bound.json", domain.StatusFailed, ""},
	{"verdict_refused.pin-verdict-before-start.bound.json", domain.StatusFailed, ""},
	// A run that received the repost Update (no change id: the Update adds
	// commands only to runs that receive one): the approval message was
	// deleted, the requester had it posted again, a senior rejected on the
	// new one. TestReplayFixtureOfARepost checks it holds the repost.
	{"reposted_rejected.pin-verdict-before-start.bound.json", domain.StatusRejected, ""},
	// Recorded after change "policy-from-worker" (workflow.GetVersion 1):
	// the run takes its timings from the worker (a local activity's
	// marker), raised to each action's floor unless the worker's
	// development override says otherwise, and Open audits them. Every run
	// passes the marker. forged_policy is a run started directly with a
	// raw client and a 1 ns cooling period: it cooled for the worker's 30
	// minutes until a senior vetoed it.
	{"executed.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.json", domain.StatusExecuted, ""},
	{"failed.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.json", domain.StatusFailed, ""},
	{"cancelled_by_customer.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.json", domain.StatusCancelled, domain.CancelByCustomer},
	{"vetoed.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.json", domain.StatusCancelled, domain.CancelBySenior},
	{"cancelled_during_notice.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.json", domain.StatusCancelled, domain.CancelByCustomer},
	{"rejected.pin-verdict-before-start.policy-from-worker.json", domain.StatusRejected, ""},
	{"expired.pin-verdict-before-start.policy-from-worker.json", domain.StatusExpired, ""},
	{"withdrawn.pin-verdict-before-start.policy-from-worker.json", domain.StatusWithdrawn, domain.CancelByRequester},
	{"failed_data_error.fail-on-permanent-error.pin-verdict-before-start.policy-from-worker.json", domain.StatusFailed, ""},
	{"verdict_refused.pin-verdict-before-start.policy-from-worker.json", domain.StatusFailed, ""},
	{"forged_policy.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.json", domain.StatusCancelled, domain.CancelBySenior},
	// Recorded after change "standing-checks" (workflow.GetVersion 1,
	// asked where a decision was accepted): CheckStanding reads the
	// approver and requester in the agents table after the decision and
	// again just before executing. Only runs with a decision carry the
	// marker (expired, withdrawn and verdict_refused have no new fixture).
	// approver_disabled: an admin disables the approver during cooling and
	// the request is stopped by security at once; forged_decision: a decide
	// Update sent with a raw client naming an agent as a senior, refused by
	// the check, the request stopped by security before any notice.
	{"executed.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.json", domain.StatusExecuted, ""},
	{"failed.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.json", domain.StatusFailed, ""},
	{"cancelled_by_customer.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.json", domain.StatusCancelled, domain.CancelByCustomer},
	{"vetoed.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.json", domain.StatusCancelled, domain.CancelBySenior},
	{"cancelled_during_notice.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.json", domain.StatusCancelled, domain.CancelByCustomer},
	{"rejected.pin-verdict-before-start.policy-from-worker.standing-checks.json", domain.StatusRejected, ""},
	{"failed_data_error.fail-on-permanent-error.pin-verdict-before-start.policy-from-worker.standing-checks.json", domain.StatusFailed, ""},
	{"forged_policy.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.json", domain.StatusCancelled, domain.CancelBySenior},
	{"approver_disabled.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.json", domain.StatusCancelled, domain.CancelBySecurity},
	{"forged_decision.pin-verdict-before-start.policy-from-worker.standing-checks.json", domain.StatusCancelled, domain.CancelBySecurity},
	// Recorded after change "notice-newly-established" (workflow.GetVersion
	// 1, asked where the cooling period ran out uncancelled): the runs that
	// got that far asked UnnotifiedEstablished before executing.
	{"executed.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.notice-newly-established.json", domain.StatusExecuted, ""},
	{"failed.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.notice-newly-established.json", domain.StatusFailed, ""},
	// The three changes above, recorded again once payloads were bound to
	// their workflow: every end state the current workflow reaches, on a
	// strict codec (the files above, recorded before the binding, replay
	// with the migration switch).
	{"executed.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.notice-newly-established.bound.json", domain.StatusExecuted, ""},
	{"failed.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.notice-newly-established.bound.json", domain.StatusFailed, ""},
	{"cancelled_by_customer.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.bound.json", domain.StatusCancelled, domain.CancelByCustomer},
	{"vetoed.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.bound.json", domain.StatusCancelled, domain.CancelBySenior},
	{"cancelled_during_notice.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.bound.json", domain.StatusCancelled, domain.CancelByCustomer},
	{"rejected.pin-verdict-before-start.policy-from-worker.standing-checks.bound.json", domain.StatusRejected, ""},
	{"expired.pin-verdict-before-start.policy-from-worker.bound.json", domain.StatusExpired, ""},
	{"withdrawn.pin-verdict-before-start.policy-from-worker.bound.json", domain.StatusWithdrawn, domain.CancelByRequester},
	{"failed_data_error.fail-on-permanent-error.pin-verdict-before-start.policy-from-worker.standing-checks.bound.json", domain.StatusFailed, ""},
	{"verdict_refused.pin-verdict-before-start.policy-from-worker.bound.json", domain.StatusFailed, ""},
	{"forged_policy.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.bound.json", domain.StatusCancelled, domain.CancelBySenior},
	{"approver_disabled.cancel-stops-notice.pin-verdict-before-start.policy-from-worker.standing-checks.bound.json", domain.StatusCancelled, domain.CancelBySecurity},
	{"forged_decision.pin-verdict-before-start.policy-from-worker.standing-checks.bound.json", domain.StatusCancelled, domain.CancelBySecurity},
}

// changeIDs are the workflow's change ids. A fixture took version 1 of
// each one its file name carries (<end_state>.<change-id>.json) and no
// marker of the others.
var changeIDs = []string{"cancel-stops-notice", "fail-on-permanent-error", "pin-verdict-before-start", "policy-from-worker", "standing-checks", "notice-newly-established"}

// versionOf is the version a history recorded for a change id, or
// workflow.DefaultVersion if it has no marker for it.
func versionOf(t *testing.T, dc converter.DataConverter, evs []*historypb.HistoryEvent, changeID string) workflow.Version {
	t.Helper()
	for _, e := range evs {
		m := e.GetMarkerRecordedEventAttributes()
		if m.GetMarkerName() != "Version" {
			continue
		}
		var id string
		var v workflow.Version
		if err := dc.FromPayloads(m.GetDetails()["change-id"], &id); err != nil {
			t.Fatalf("version marker without a readable change id: %v", err)
		}
		if id != changeID {
			continue
		}
		if err := dc.FromPayloads(m.GetDetails()["version"], &v); err != nil {
			t.Fatalf("version marker of %s without a readable version: %v", id, err)
		}
		return v
	}
	return workflow.DefaultVersion
}

func replayCodec(t *testing.T) *codec.Codec {
	t.Helper()
	keys, err := codec.ParseKeys(replayKeyID + ":" + replayKey)
	if err != nil {
		t.Fatal(err)
	}
	// The fixtures were recorded before payloads were bound to their
	// workflow: they replay with the migration switch on, as running
	// requests of that release do on an upgraded worker.
	c, err := codec.New(replayKeyID, keys, codec.AcceptUnbound(true))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newReplayer registers wf under the workflow's real name, as the worker
// does, with the codec the recording stack used.
func newReplayer(t *testing.T, wf any, interceptors ...interceptor.WorkerInterceptor) worker.WorkflowReplayer {
	t.Helper()
	c := replayCodec(t)
	r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		DataConverter:    c.DataConverter(),
		FailureConverter: c.FailureConverter(),
		Interceptors:     interceptors,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: workflows.WorkflowName})
	return r
}

// newStrictReplayer is newReplayer without the migration switch: the codec
// of an installation that has finished upgrading.
func newStrictReplayer(t *testing.T, wf any) worker.WorkflowReplayer {
	t.Helper()
	keys, err := codec.ParseKeys(replayKeyID + ":" + replayKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := codec.New(replayKeyID, keys)
	if err != nil {
		t.Fatal(err)
	}
	r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		DataConverter: c.DataConverter(), FailureConverter: c.FailureConverter()})
	if err != nil {
		t.Fatal(err)
	}
	r.RegisterWorkflowWithOptions(wf, workflow.RegisterOptions{Name: workflows.WorkflowName})
	return r
}

// replayLogger collects the replayer's log for a failure message.
func replayLogger() (tlog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))), &buf
}

// TestReplayRecordedHistories replays a real history of every end state
// against today's workflow code. A failure means the change would break
// requests that are running now: guard it with workflow.GetVersion instead of
// re-recording (testdata/histories/README.md).
func TestReplayRecordedHistories(t *testing.T) {
	c := replayCodec(t)
	for _, fx := range replayFixtures {
		t.Run(strings.TrimSuffix(fx.file, ".json"), func(t *testing.T) {
			path := filepath.Join(historiesDir, fx.file)
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("fixture %s is missing (%v); every end state needs a recorded history", path, err)
			}

			// The fixture is what its name says, and its payloads are
			// encrypted with the fixed key, as on any real installation.
			hist, err := client.HistoryFromJSON(bytes.NewReader(raw), client.HistoryJSONOptions{})
			if err != nil {
				t.Fatalf("read %s: %v", path, err)
			}
			evs := hist.GetEvents()
			if len(evs) < 10 {
				t.Fatalf("%s has only %d events", path, len(evs))
			}
			in := evs[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
			if len(in) != 1 || string(in[0].GetMetadata()[codec.MetadataKeyID]) != replayKeyID {
				t.Fatalf("%s: the input is not one payload encrypted with key %q", path, replayKeyID)
			}
			done := evs[len(evs)-1].GetWorkflowExecutionCompletedEventAttributes()
			if done == nil {
				t.Fatalf("%s ends with %s, not a completed workflow", path, evs[len(evs)-1].GetEventType())
			}
			var st workflows.Status
			if err := c.DataConverter().FromPayloads(done.GetResult(), &st); err != nil {
				t.Fatalf("%s: decode the result with the fixed key: %v", path, err)
			}
			var by domain.CancelParty
			if st.Cancellation != nil {
				by = st.Cancellation.By
			}
			if st.Status != fx.status || by != fx.cancelBy {
				t.Fatalf("%s records a request that ended %s (cancelled by %q), want %s (%q)", path, st.Status, by, fx.status, fx.cancelBy)
			}

			// Each fixture covers the branch its name says: the old ones
			// predate the change, the new ones took version 1.
			for _, id := range changeIDs {
				wantVersion := workflow.DefaultVersion
				if strings.Contains(fx.file, "."+id+".") {
					wantVersion = 1
				}
				if got := versionOf(t, c.DataConverter(), evs, id); got != wantVersion {
					t.Fatalf("%s recorded version %d of %s, want %d", path, got, id, wantVersion)
				}
			}

			// A fixture recorded since payloads are bound to their workflow
			// replays under the workflow id its input was sealed for (older
			// ones carry none and replay under the replayer's own).
			// A fixture recorded since payloads are bound to their workflow
			// (".bound") replays on a strict codec under the workflow id its
			// input was sealed for; the older ones carry no binding and need
			// the migration switch.
			bound := strings.Contains(fx.file, ".bound.")
			boundTo := string(in[0].GetMetadata()[codec.MetadataWorkflowID])
			if bound != (boundTo != "") {
				t.Fatalf("%s: input bound to %q; the name says bound=%v", path, boundTo, bound)
			}
			rep := newReplayer(t, workflows.SensitiveRequest)
			if bound {
				rep = newStrictReplayer(t, workflows.SensitiveRequest)
			}
			logger, logs := replayLogger()
			opts := worker.ReplayWorkflowHistoryOptions{OriginalExecution: workflow.Execution{ID: boundTo}}
			if err := rep.ReplayWorkflowHistoryWithOptions(logger, hist, opts); err != nil {
				t.Fatalf("replaying %s against the current workflow failed: %v\n"+
					"This change would break requests that are running now. Guard it with workflow.GetVersion "+
					"and add fixtures for the new version; do not re-record this one.\n%s", path, err, logs)
			}
		})
	}
}

// TestReplayFixtureOfARepost checks the repost fixture holds what its name
// says: an accepted repost Update and its RepostApproval, after the first
// PostApproval and before the rejection's message update.
func TestReplayFixtureOfARepost(t *testing.T) {
	path := filepath.Join(historiesDir, "reposted_rejected.pin-verdict-before-start.bound.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := client.HistoryFromJSON(bytes.NewReader(raw), client.HistoryJSONOptions{})
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var seen []string
	for _, e := range hist.GetEvents() {
		if a := e.GetWorkflowExecutionUpdateAcceptedEventAttributes(); a != nil {
			seen = append(seen, "update:"+a.GetAcceptedRequest().GetInput().GetName())
		}
		if a := e.GetActivityTaskScheduledEventAttributes(); a != nil {
			switch n := a.GetActivityType().GetName(); n {
			case "PostApproval", "RepostApproval", "UpdateApprovalMessage":
				seen = append(seen, n)
			}
		}
	}
	want := []string{"PostApproval", "update:" + workflows.UpdateRepost, "RepostApproval", "update:" + workflows.UpdateDecide, "UpdateApprovalMessage"}
	if !slices.Equal(seen, want) {
		t.Fatalf("%s holds %v, want %v", path, seen, want)
	}
}

// extraActivityFirst is SensitiveRequest with one more activity before the
// gates: the kind of innocent-looking edit that breaks running requests.
func extraActivityFirst(ctx workflow.Context, in workflows.Input) (workflows.Result, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	if err := workflow.ExecuteActivity(ctx, "AuditOpenAttempt", in.RequestID).Get(ctx, nil); err != nil {
		return workflows.Result{}, err
	}
	return workflows.SensitiveRequest(ctx, in)
}

// changeActivities rewrites the activities the workflow schedules, so that a
// test can change the workflow in the middle without copying it.
type changeActivities struct {
	interceptor.WorkerInterceptorBase
	// skip is an activity replaced by an immediate success.
	skip string
	// before is an activity that an extra "Extra" activity now precedes.
	before string
}

func (c *changeActivities) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	i := &changeInbound{change: c}
	i.Next = next
	return i
}

type changeInbound struct {
	interceptor.WorkflowInboundInterceptorBase
	change *changeActivities
}

func (i *changeInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	o := &changeOutbound{change: i.change}
	o.Next = outbound
	return i.Next.Init(o)
}

type changeOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
	change *changeActivities
}

func (o *changeOutbound) ExecuteActivity(ctx workflow.Context, activityType string, args ...any) workflow.Future {
	switch activityType {
	case o.change.skip:
		f, set := workflow.NewFuture(ctx)
		set.Set(nil, nil)
		return f
	case o.change.before:
		_ = o.Next.ExecuteActivity(ctx, "Extra").Get(ctx, nil)
	}
	return o.Next.ExecuteActivity(ctx, activityType, args...)
}

// TestReplayCatchesIncompatibleChanges is the negative control: the replay
// test above can fail. Changed workflows replayed against the fixtures are
// reported as nondeterministic (TMPRL1100), and a change only on a path a history never
// took leaves that history replayable — which is why every end state needs
// its own fixture.
func TestReplayCatchesIncompatibleChanges(t *testing.T) {
	tests := []struct {
		name    string
		fixture string
		wf      any
		change  *changeActivities
		breaks  bool
	}{
		{"extra activity before the gates", "executed.json", extraActivityFirst, nil, true},
		{"extra activity before the gates, short history", "pin_rejected.json", extraActivityFirst, nil, true},
		{"Open activity skipped", "withdrawn.json", workflows.SensitiveRequest, &changeActivities{skip: "Open"}, true},
		{"extra activity before the notice", "vetoed.json", workflows.SensitiveRequest, &changeActivities{before: "NotifyCustomer"}, true},
		{"extra activity before the notice, path not taken", "pin_rejected.json", workflows.SensitiveRequest, &changeActivities{before: "NotifyCustomer"}, false},
		{"execute skipped", "failed.json", workflows.SensitiveRequest, &changeActivities{skip: "Execute"}, true},
		{"execute skipped, path not taken", "expired.json", workflows.SensitiveRequest, &changeActivities{skip: "Execute"}, false},
		{"the failure's own record skipped", "failed_data_error.fail-on-permanent-error.json", workflows.SensitiveRequest, &changeActivities{skip: "RecordFailure"}, true},
		{"the PIN verdict not consumed", "rejected.pin-verdict-before-start.json", workflows.SensitiveRequest, &changeActivities{skip: "ConsumePINVerdict"}, true},
		{"VerifyPIN skipped, path not taken", "withdrawn.pin-verdict-before-start.json", workflows.SensitiveRequest, &changeActivities{skip: "VerifyPIN"}, false},
		{"VerifyPIN skipped in an old history", "withdrawn.json", workflows.SensitiveRequest, &changeActivities{skip: "VerifyPIN"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(historiesDir, tt.fixture)
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("fixture %s is missing: %v", path, err)
			}
			var ics []interceptor.WorkerInterceptor
			if tt.change != nil {
				ics = append(ics, tt.change)
			}
			logger, _ := replayLogger()
			err := newReplayer(t, tt.wf, ics...).ReplayWorkflowHistoryFromJSONFile(logger, path)
			if !tt.breaks {
				if err != nil {
					t.Fatalf("a change on a path %s never took broke its replay: %v", tt.fixture, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("replaying %s against a changed workflow succeeded; the replay test could never fail", tt.fixture)
			}
			// TMPRL1100 is the SDK's code for every nondeterminism error.
			if !strings.Contains(err.Error(), "TMPRL1100") {
				t.Fatalf("replay of %s failed, but not as nondeterminism: %v", tt.fixture, err)
			}
		})
	}
}
