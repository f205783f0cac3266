package e2e

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"

	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/internal/codecaudit"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/workflows"
)

// rawTemporal is a client with no codec: what anyone with write access to
// the namespace, but not the payload key, holds.
func rawTemporal(t *testing.T, s *stack) client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tc, err := client.DialContext(ctx, client.Options{HostPort: s.temporal, Namespace: "default",
		Logger: tlog.NewStructuredLogger(histDiscardLogger())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	return tc
}

// sendDecide sends the decide Update and waits for its outcome; the error is
// the rejection, if any.
func sendDecide(tc client.Client, workflowID string, arg any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflowID, UpdateName: workflows.UpdateDecide,
		Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		return err
	}
	var st workflows.Status
	return h.Get(ctx, &st)
}

// acceptedDecide is the argument payload of the decide Update a history
// accepted: the real approval, sealed for that workflow.
func acceptedDecide(t *testing.T, s *stack, workflowID string) *commonpb.Payload {
	t.Helper()
	for _, ev := range fetchHistory(t, s, workflowID).GetEvents() {
		if a := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes(); a != nil && a.GetAcceptedRequest().GetInput().GetName() == workflows.UpdateDecide {
			if ps := a.GetAcceptedRequest().GetInput().GetArgs().GetPayloads(); len(ps) == 1 {
				return ps[0]
			}
		}
	}
	t.Fatalf("no accepted decide Update in the history of %s", workflowID)
	return nil
}

// refusalsOn waits for the codec refusals audited on a request's trail.
func refusalsOn(t *testing.T, st *store.Store, requestID string, want int) []store.AuditEvent {
	t.Helper()
	var out []store.AuditEvent
	eventually(t, 30*time.Second, "refusals audited on "+requestID, func() (bool, string) {
		trail, err := st.AuditTrail(context.Background(), requestID)
		if err != nil {
			return false, err.Error()
		}
		out = out[:0]
		for _, e := range trail {
			if e.Event == codecaudit.Event {
				out = append(out, e)
			}
		}
		return len(out) >= want, ""
	})
	return out
}

// TestTemporalWritersWithoutTheCodecCannotDecide, on real processes: someone
// who can write to the Temporal namespace but holds no payload key sends
// the decide Update in plaintext (the issue's
// `temporal workflow update execute --name decide`), replays a real
// approval copied from another request's history, and starts the workflow
// with a plaintext or a copied input. The worker refuses each payload; the
// Update is rejected and the request keeps waiting for a real senior, the
// starts fail at once instead of retrying; each refusal is in the worker's
// log and on the audit trail with no byte of the payload, and nothing but
// the really approved request reaches the control panel.
func TestTemporalWritersWithoutTheCodecCannotDecide(t *testing.T) {
	s := startStack(t, stackOptions{extraEnv: []string{"VIGIL_COOLING_RESEND_CREDENTIALS=3s"}})
	alice, _ := seed(t, s)
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := store.New(db)
	raw := rawTemporal(t, s)

	open := func(server string) request {
		r := s.open(t, alice, map[string]any{"action": "resend_credentials", "customer_id": customerID, "server_id": server,
			"reason": "customer asked in live chat", "pin": customerPIN})
		return s.waitStatus(t, alice, r.ID, "awaiting_approval", time.Minute)
	}
	forgedDecision := workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: "ag_bob", ApproverRole: domain.RoleSenior}

	// 1. The plaintext approval is rejected; the request still waits, and a
	// real senior's click still decides it.
	a := open("srv-1")
	wfA := workflows.WorkflowID(a.ID)
	if err := sendDecide(raw, wfA, forgedDecision); err == nil {
		t.Fatal("a plaintext decide Update was accepted")
	}
	if got := s.status(t, alice, a.ID); got.Status != "awaiting_approval" {
		t.Fatalf("after the plaintext decide the request is %s, want awaiting_approval", got.Status)
	}
	refused := refusalsOn(t, st, a.ID, 1)
	if d := refused[0].Details; d["reason"] != codec.ReasonPlaintext || d["scope"] != codec.ScopeWorkflow || d["workflow_id"] != wfA ||
		d["encoding"] != "json/plain" || d["process"] != "worker" || refused[0].Actor != codecaudit.Actor {
		t.Fatalf("plaintext refusal audited as %+v", refused[0])
	}
	s.click(t, a.ID, "approve", "U0BOB")
	s.waitStatus(t, alice, a.ID, "executed", 2*time.Minute)

	// 2. Bob's real approval of A, copied into B, is refused as A's.
	b := open("srv-2")
	wfB := workflows.WorkflowID(b.ID)
	if err := sendDecide(raw, wfB, converter.NewRawValue(acceptedDecide(t, s, wfA))); err == nil {
		t.Fatal("an approval copied from another request's history was accepted")
	}
	if got := s.status(t, alice, b.ID); got.Status != "awaiting_approval" {
		t.Fatalf("after the copied decide the request is %s, want awaiting_approval", got.Status)
	}
	refused = refusalsOn(t, st, b.ID, 1)
	if d := refused[0].Details; d["reason"] != codec.ReasonMisbound || d["workflow_id"] != wfB || d["sealed_for"] != wfA ||
		d["sealed_scope"] != codec.ScopeWorkflow {
		t.Fatalf("copied approval audited as %+v", refused[0])
	}

	// 3. Starts: a plaintext input and A's real input copied under a new
	// id. Each run fails on its first task: no activity, no retry loop.
	starts := []struct {
		name, requestID string
		arg             any
		reason          string
	}{
		{"plaintext start", "req_plainstart", workflows.Input{RequestID: "req_plainstart", Action: domain.ActionResendCredentials,
			CustomerID: customerID, RequesterID: "ag_alice", ServerID: "srv-2", Reason: "forged",
			Policy: workflows.DefaultPolicy(domain.ActionResendCredentials, domain.CoolingPeriods{domain.ActionResendCredentials: time.Nanosecond})},
			codec.ReasonPlaintext},
		{"copied start", "req_copiedstart", converter.NewRawValue(fetchHistory(t, s, wfA).GetEvents()[0].
			GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0]), codec.ReasonMisbound},
	}
	for _, f := range starts {
		t.Run(f.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			wid := workflows.WorkflowID(f.requestID)
			run, err := raw.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: wid, TaskQueue: workflows.TaskQueue}, workflows.WorkflowName, f.arg)
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			if err := run.Get(ctx, nil); err == nil {
				t.Fatal("the forged start completed")
			}
			d, err := raw.DescribeWorkflowExecution(ctx, wid, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := d.GetWorkflowExecutionInfo().GetStatus(); got != enums.WORKFLOW_EXECUTION_STATUS_FAILED {
				t.Fatalf("forged start ended %s, want failed", got)
			}
			hist := fetchHistory(t, s, wid)
			if acts := scheduled(hist); len(acts) != 0 {
				t.Fatalf("forged start scheduled %v", acts)
			}
			for _, ev := range hist.GetEvents() {
				if ev.GetEventType() == enums.EVENT_TYPE_WORKFLOW_TASK_FAILED {
					t.Fatal("a workflow task failed: the start would be retried, not ended")
				}
			}
			refused := refusalsOn(t, st, f.requestID, 1)
			if dd := refused[0].Details; dd["reason"] != f.reason || dd["workflow_id"] != wid {
				t.Fatalf("forged start audited as %+v", refused[0])
			}
		})
	}

	// Only A, approved by a real click, reached the control panel; nothing
	// of the forged payloads is in the audit trail or the worker's log.
	if calls := s.panelCalls(t); len(calls) != 1 || calls[0].IdempotencyKey != "vigil-"+a.ID {
		t.Fatalf("panel calls %+v, want only %s's", calls, a.ID)
	}
	var details []string
	for _, id := range []string{a.ID, b.ID, "req_plainstart", "req_copiedstart"} {
		for _, e := range refusalsOn(t, st, id, 1) {
			for k, v := range e.Details {
				if s, ok := v.(string); ok {
					details = append(details, k+"="+s)
				}
			}
		}
	}
	for _, secret := range []string{customerPIN, "forged", "resend_credentials"} {
		if slices.ContainsFunc(details, func(d string) bool { return strings.Contains(d, secret) }) {
			t.Errorf("a refusal's audit details repeat the payload (%q): %v", secret, details)
		}
	}
	// Nothing else was refused: the real requests' own payloads, bound to
	// their workflows and activities, all passed.
	var total int
	if err := db.QueryRow(`SELECT count(*) FROM audit_events WHERE event = $1`, codecaudit.Event).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 4 {
		t.Errorf("%d refusals audited, want the 4 forged payloads'", total)
	}
	if n := strings.Count(s.logs("worker"), "temporal payload refused"); n < 4 {
		t.Errorf("the worker logged %d refusals, want at least 4", n)
	}
}
