package workflows_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/workflows"
)

// TestPINVerdictGate: a run started without the PIN passes its PIN gate
// only on the verdict the web front recorded for exactly this request, once.
// Every other claim ends the run failed at the gate, before any other
// activity: nothing of the request is written by the run, the refusal is on
// the request id's trail and queued for security, and the request's own row
// is ended only when the run is the request's own.
func TestPINVerdictGate(t *testing.T) {
	t.Parallel()
	const reqID = "req-verdict"
	tests := []struct {
		name string
		// prepare records what the web front did (or did not) for the
		// request, and returns the input the run is started with.
		prepare func(h *harness) workflows.Input
		reason  string
		// row is the request row's status afterwards ("" for none).
		row domain.Status
	}{
		{
			// The replay: the verified request's id, another customer.
			name: "another customer", reason: store.VerdictMismatch, row: domain.StatusPINCheck,
			prepare: func(h *harness) workflows.Input {
				in := input(reqID, domain.ActionChangeAccountEmail)
				h.opened(in, rightPIN, true)
				in.CustomerID = otherCustomerID
				return in
			},
		},
		{
			name: "another target", reason: store.VerdictMismatch, row: domain.StatusPINCheck,
			prepare: func(h *harness) workflows.Input {
				in := input(reqID, domain.ActionChangeAccountEmail)
				h.opened(in, rightPIN, true)
				in.Email = "attacker@evil.test"
				return in
			},
		},
		{
			name: "consumed by another run", reason: store.VerdictConsumed, row: domain.StatusFailed,
			prepare: func(h *harness) workflows.Input {
				in := input(reqID, domain.ActionDisable2FA)
				h.opened(in, rightPIN, true)
				if _, err := h.db.ConsumePINVerdict(h.ctx, store.VerdictClaim{RequestID: reqID, WorkflowID: workflows.WorkflowID(reqID),
					RunID: "the-first-run", Action: in.Action, CustomerID: in.CustomerID, RequesterID: in.RequesterID}, time.Now()); err != nil {
					h.t.Fatal(err)
				}
				return in
			},
		},
		{
			name: "a PIN in the input", reason: store.VerdictPINInInput, row: domain.StatusFailed,
			prepare: func(h *harness) workflows.Input {
				in := input(reqID, domain.ActionDisable2FA)
				h.opened(in, rightPIN, true)
				in.PIN = rightPIN
				return in
			},
		},
		{
			name: "a wrong PIN's verdict", reason: store.VerdictNotVerified, row: domain.StatusPINRejected,
			prepare: func(h *harness) workflows.Input {
				in := input(reqID, domain.ActionDisable2FA)
				h.opened(in, wrongPIN, true)
				return in
			},
		},
		{
			name: "no PIN checked", reason: store.VerdictMissing,
			prepare: func(h *harness) workflows.Input {
				in := input(reqID, domain.ActionDisable2FA)
				// A verdict of another request exists; this one has none.
				h.opened(input("req-other", domain.ActionDisable2FA), rightPIN, false)
				return in
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			in := tt.prepare(h)
			before := h.events(reqID)
			env := h.env(reqID)
			env.ExecuteWorkflow(workflows.WorkflowName, in)
			if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
				t.Fatalf("workflow: completed %v, error %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
			}
			var st workflows.Status
			if err := env.GetWorkflowResult(&st); err != nil {
				t.Fatal(err)
			}
			if st.Status != domain.StatusFailed || st.Failure != "stopped at the pin gate: the PIN verdict was refused ("+tt.reason+")" ||
				!st.PINVerifiedAt.IsZero() || st.EndedAt.IsZero() {
				t.Fatalf("result %+v, want failed, refused (%s)", st, tt.reason)
			}
			if got := h.calls(); !slices.Equal(got, []string{"ConsumePINVerdict"}) {
				t.Fatalf("activities %v, want the PIN gate alone", got)
			}
			added := h.events(reqID)[len(before):]
			want := []string{"gate.pin.verdict_refused"}
			if tt.row == domain.StatusFailed {
				want = append(want, "request.failed")
			}
			if !slices.Equal(added, want) {
				t.Fatalf("events added to %s: %v, want %v", reqID, added, want)
			}
			alerts, err := h.db.QueuedAlerts(h.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(alerts) != 1 || alerts[0].Kind != store.AlertVerdictRefused || alerts[0].Details["reason"] != tt.reason {
				t.Fatalf("queued alerts %+v, want the refusal", alerts)
			}
			row, err := h.db.Request(h.ctx, reqID)
			switch {
			case tt.row == "" && err == nil:
				t.Fatalf("a run with no verdict wrote a row: %+v", row)
			case tt.row != "" && (err != nil || row.Status != tt.row):
				t.Fatalf("row %+v (%v), want %s", row, err, tt.row)
			}
			if tt.row == domain.StatusFailed && !strings.Contains(row.OutcomeDetail, "("+tt.reason+")") {
				t.Fatalf("row's outcome %q does not say why", row.OutcomeDetail)
			}
			h.assertNowhere(rightPIN, "the PIN", []workflows.Status{st}, nil, nil)
		})
	}
}

// TestPINVerdictGatePasses: the request's own run consumes its verdict and
// goes on to the approval gate, with the time the web front verified the
// PIN; the verdict is marked consumed by it.
func TestPINVerdictGatePasses(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const reqID = "req-verdict-ok"
	in := input(reqID, domain.ActionDisable2FA)
	h.opened(in, rightPIN, true)
	env := h.env(reqID)
	h.decide(env, time.Hour, workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: seniorID, ApproverRole: domain.RoleSenior, Reason: "no ticket"})
	st := h.run(env, in)
	v, err := h.db.PINVerdictOf(h.ctx, reqID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != domain.StatusRejected || !st.PINVerifiedAt.Equal(v.CheckedAt) || v.ConsumedAt == nil || v.ConsumedByRun == "" {
		t.Fatalf("result %+v, verdict %+v", st, v)
	}
	h.wantEvents(reqID, "request.opened", "gate.pin.verified", "gate.pin.verdict_consumed", "request.policy", "gate.approval.waiting", "slack.approval_posted", "request.rejected")
}
