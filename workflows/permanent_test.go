package workflows_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/workflows"
)

// typed is free text a person typed; the failure's record, the alert and
// the message must not repeat it, since it may be what the database refused.
const typed = "typed-by-a-person-K3V9"

// refuseSQL installs a trigger that refuses rows the way Postgres refuses bad
// data: with a data exception (SQLSTATE 22023) whose message quotes the row.
func refuseSQL(table, timing, when string) string {
	return fmt.Sprintf(`
		CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			RAISE EXCEPTION 'test refuses %%', row_to_json(NEW)::text USING ERRCODE = 'invalid_parameter_value';
		END $$;
		CREATE TRIGGER test_refuse %s ON %s FOR EACH ROW WHEN (%s) EXECUTE FUNCTION test_refuse();`, timing, table, when)
}

// TestPermanentDataErrorEndsFailed injects a data error Postgres raises on
// every attempt into one of the gates' activities. The request ends failed
// within a minute, with request.failed naming the gate and the class of the
// cause, a security alert and the approval message updated; the refused
// activity ran once, not for ever; and none of the typed text reaches the
// failure's record, the alert or the message.
func TestPermanentDataErrorEndsFailed(t *testing.T) {
	t.Parallel()
	veto := workflows.CancelInput{By: domain.CancelBySenior, ActorID: senior2ID, ActorRole: domain.RoleSenior, Reason: "the ticket does not fit " + typed}
	reject := workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: seniorID, ApproverRole: domain.RoleSenior, Reason: "no ticket " + typed}
	cases := []struct {
		name    string
		refuse  string
		drive   func(h *harness, env *testsuite.TestWorkflowEnvironment) []*updateOutcome
		gates   []string
		slack   slackWant
		trail   []string
		gate    string
		step    string // the Record that was refused ("" for Open)
		refused string // the activity that failed for good
		// row: the projection's status at the end ("" means no row).
		row domain.Status
		// since is the moment the failure was set off.
		since func(st workflows.Status) time.Time
	}{
		{
			// Its row's commit was lost after the start (the web front's
			// own INSERT would meet the same refusal), so Open writes it.
			name:   "the open is refused",
			refuse: refuseSQL("requests", "BEFORE INSERT", "true"),
			gates:  []string{"ConsumePINVerdict", "Open", "RecordFailure"},
			slack:  slackWant{alerts: 1},
			trail:  []string{"gate.pin.verdict_consumed", "request.failed"},
			gate:   "open", refused: "Open",
			since: func(st workflows.Status) time.Time { return st.OpenedAt },
		},
		{
			name:   "the approval gate's audit event is refused",
			refuse: refuseSQL("audit_events", "BEFORE INSERT", "NEW.event = 'gate.approval.waiting'"),
			gates:  []string{"ConsumePINVerdict", "Open", "Record", "RecordFailure"},
			slack:  slackWant{alerts: 1},
			trail:  []string{"request.opened", "gate.pin.verified", "gate.pin.verdict_consumed", "request.policy", "request.failed"},
			gate:   "approval", step: "gate.approval.waiting", refused: "Record", row: domain.StatusFailed,
			since: func(st workflows.Status) time.Time { return st.OpenedAt },
		},
		{
			name:   "the approval is refused",
			refuse: refuseSQL("requests", "BEFORE UPDATE", "NEW.status = 'notifying'"),
			drive: func(h *harness, env *testsuite.TestWorkflowEnvironment) []*updateOutcome {
				return []*updateOutcome{h.decide(env, time.Hour, approve())}
			},
			gates: []string{"ConsumePINVerdict", "Open", "Record", "CheckStanding", "Record", "RecordFailure"},
			slack: slackWant{posted: true, alerts: 1, updates: []string{string(domain.StatusFailed)}},
			trail: []string{"request.opened", "gate.pin.verified", "gate.pin.verdict_consumed", "request.policy", "gate.approval.waiting", "slack.approval_posted", "request.failed"},
			gate:  "approval", step: "gate.approval.passed", refused: "Record", row: domain.StatusFailed,
			since: func(st workflows.Status) time.Time { return st.Decision.At },
		},
		{
			name:   "the rejection cannot be recorded",
			refuse: refuseSQL("requests", "BEFORE UPDATE", "NEW.status = 'rejected'"),
			drive: func(h *harness, env *testsuite.TestWorkflowEnvironment) []*updateOutcome {
				return []*updateOutcome{h.decide(env, time.Hour, reject)}
			},
			gates: []string{"ConsumePINVerdict", "Open", "Record", "CheckStanding", "Record", "RecordFailure"},
			slack: slackWant{posted: true, alerts: 1, updates: []string{string(domain.StatusFailed)}},
			trail: []string{"request.opened", "gate.pin.verified", "gate.pin.verdict_consumed", "request.policy", "gate.approval.waiting", "slack.approval_posted", "request.failed"},
			gate:  "end", step: "request.rejected", refused: "Record", row: domain.StatusFailed,
			since: func(st workflows.Status) time.Time { return st.Decision.At },
		},
		{
			// The veto was accepted; its end state cannot be written. The
			// request still ends final, failed, and the veto is answered.
			name:   "an accepted veto cannot be recorded",
			refuse: refuseSQL("requests", "BEFORE UPDATE", "NEW.status = 'cancelled'"),
			drive: func(h *harness, env *testsuite.TestWorkflowEnvironment) []*updateOutcome {
				return []*updateOutcome{h.decide(env, time.Hour, approve()), h.cancel(env, 2*time.Hour, veto)}
			},
			gates: []string{"ConsumePINVerdict", "Open", "Record", "CheckStanding", "Record", "NotifyCustomer", "Record", "Record", "RecordFailure", "NotifyOutcome"},
			slack: slackWant{posted: true, alerts: 1, updates: []string{activities.MessageApproved, activities.MessageNotified, string(domain.StatusFailed)}},
			trail: []string{"request.opened", "gate.pin.verified", "gate.pin.verdict_consumed", "request.policy", "gate.approval.waiting", "slack.approval_posted", "gate.approval.passed",
				"notice.accepted", "notice.accepted", "gate.notice.sent", "request.failed"},
			gate: "end", step: "request.cancelled", refused: "Record", row: domain.StatusFailed,
			since: func(st workflows.Status) time.Time { return st.Cancellation.At },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if _, err := h.db.DB().ExecContext(h.ctx, tc.refuse); err != nil {
				t.Fatalf("install the refusing trigger: %v", err)
			}
			reqID := "req-refused"
			if tc.refused == "Open" {
				h.opened(input(reqID, domain.ActionReinstallVPS), rightPIN, false)
			}
			env := h.env(reqID)
			var sent []*updateOutcome
			if tc.drive != nil {
				sent = tc.drive(h, env)
			}
			st := h.run(env, input(reqID, domain.ActionReinstallVPS))

			for i, u := range sent {
				u.mustAccept(t, fmt.Sprintf("update %d", i))
			}
			// The veto is answered as soon as the request's end is set,
			// before it is recorded: a final status either way.
			if tc.step == "request.cancelled" && !sent[len(sent)-1].status.Status.Final() {
				t.Fatalf("the accepted veto was answered with %s, want a final status", sent[len(sent)-1].status.Status)
			}
			want := fmt.Sprintf("stopped at the %s gate: %s", tc.gate, activities.ErrTypeDataError)
			if st.Status != domain.StatusFailed || st.Failure != want {
				t.Fatalf("result %s (%q), want failed (%q)", st.Status, st.Failure, want)
			}
			if took := st.EndedAt.Sub(tc.since(st)); took < 0 || took > time.Minute {
				t.Fatalf("ended %v after the refusal was set off, want within a minute", took)
			}

			// The refused activity ran once: classified, not retried.
			refusedStarts := 0
			for _, raw := range h.started(tc.refused) {
				if tc.step == "" || strings.Contains(raw, `"Event":"`+tc.step+`"`) {
					refusedStarts++
				}
			}
			if refusedStarts != 1 {
				t.Fatalf("%s (%s) started %d times, want once", tc.refused, tc.step, refusedStarts)
			}
			h.wantActivities(tc.gates, tc.slack)
			h.wantEvents(reqID, tc.trail...)

			// request.failed names the gate and the class, nothing typed.
			trail := h.trail(reqID)
			failed := trail[len(trail)-1]
			projection := "updated"
			if tc.row == "" {
				projection = "missing"
			}
			wantDetails := map[string]string{"gate": tc.gate, "cause": activities.ErrTypeDataError, "status": "failed", "projection": projection, "step": tc.step}
			for k, v := range wantDetails {
				if got, _ := failed.Details[k].(string); got != v && (k != "step" || v != "") {
					t.Fatalf("request.failed detail %s = %q, want %q (details %v)", k, got, v, failed.Details)
				}
			}
			if _, ok := failed.Details["reason"]; ok || strings.Contains(fmt.Sprint(failed.Details), typed) {
				t.Fatalf("request.failed carries typed text: %v", failed.Details)
			}

			// The projection, if the request has one, says failed.
			row, err := h.db.Request(h.ctx, reqID)
			switch {
			case tc.row == "" && err == nil:
				t.Fatalf("a request row exists (%s) although its insert was refused", row.Status)
			case tc.row != "" && err != nil:
				t.Fatalf("request row: %v", err)
			case tc.row != "" && (row.Status != tc.row || row.OutcomeDetail != st.Failure ||
				strings.Contains(row.DecisionReason+row.CancelReason, typed)):
				t.Fatalf("projection %s detail %q decision reason %q cancel reason %q", row.Status, row.OutcomeDetail, row.DecisionReason, row.CancelReason)
			}

			// Security hears of it, in words of the product's own.
			alerts := h.securityPosts()
			if len(alerts) != 1 {
				t.Fatalf("%d security alerts, want 1", len(alerts))
			}
			for _, w := range []string{reqID, "the " + tc.gate + " gate", activities.ErrTypeDataError, requesterID} {
				if !strings.Contains(alerts[0].Text, w) {
					t.Fatalf("alert %q does not say %q", alerts[0].Text, w)
				}
			}
			// The approval message, where there is one, shows the end.
			if tc.slack.posted {
				m := h.approvalMessage(reqID, st)
				text := shown(t, m)
				if !strings.Contains(text, "Failed: "+want) || len(buttons(t, m)) != 0 {
					t.Fatalf("approval message does not show the failure, or keeps its buttons:\n%s", text)
				}
			}
			// The reasons typed with the decision or the cancel were never
			// recorded; nothing shows them.
			for _, m := range h.slack.Messages() {
				if strings.Contains(shown(t, m), typed) {
					t.Fatalf("Slack message %s/%s shows the typed reason:\n%s", m.Channel, m.TS, shown(t, m))
				}
			}
			if tc.step == "request.cancelled" {
				if out := h.mails(reqID, "outcome"); len(out) == 0 {
					t.Fatal("the customer, who got the notice, was not told how the request ended")
				}
			}
		})
	}
}

// TestFailureRecordRefusedFailsVisibly: when even the failure's own record
// (which carries no typed text) is refused, the workflow fails with the
// error instead of hanging, and security has heard of it.
func TestFailureRecordRefusedFailsVisibly(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if _, err := h.db.DB().ExecContext(h.ctx, refuseSQL("audit_events", "BEFORE INSERT", "NEW.event IN ('gate.approval.waiting', 'request.failed')")); err != nil {
		t.Fatalf("install the refusing trigger: %v", err)
	}
	reqID := "req-refused-twice"
	env := h.env(reqID)
	h.opened(input(reqID, domain.ActionDisable2FA), rightPIN, true)
	env.ExecuteWorkflow(workflows.WorkflowName, input(reqID, domain.ActionDisable2FA))
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "record the failure at the approval gate") || !strings.Contains(err.Error(), activities.ErrTypeDataError) {
		t.Fatalf("workflow error %v, want the failure's record refused as a DataError", err)
	}
	if strings.Contains(err.Error(), "test refuses") {
		t.Fatalf("workflow error carries the database's message, which quotes the row: %v", err)
	}
	if n := len(h.started("RecordFailure")); n != 1 {
		t.Fatalf("RecordFailure started %d times, want once", n)
	}
	if n := len(h.securityPosts()); n != 1 {
		t.Fatalf("%d security alerts, want 1", n)
	}
	if got := h.gateCalls(); !slices.Equal(got, []string{"ConsumePINVerdict", "Open", "Record", "RecordFailure"}) {
		t.Fatalf("activities %v", got)
	}
	// The projection moved (its update was allowed); the trail could not.
	if row := h.projection(reqID); row.Status != domain.StatusFailed {
		t.Fatalf("projection %s, want failed", row.Status)
	}
	if slices.Contains(h.events(reqID), "request.failed") {
		t.Fatal("request.failed recorded although the trigger refuses it")
	}
}

// TestExecuteDataErrorNotRetried: a data error inside the executor (here
// its bookkeeping row refused) fails the request at the execute gate at
// once, saying why, instead of after every retry.
func TestExecuteDataErrorNotRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	if _, err := h.db.DB().ExecContext(h.ctx, refuseSQL("executions", "BEFORE INSERT", "true")); err != nil {
		t.Fatalf("install the refusing trigger: %v", err)
	}
	reqID := "req-refused-execute"
	env := h.env(reqID)
	h.decide(env, time.Hour, approve())
	st := h.run(env, input(reqID, domain.ActionDisable2FA))
	if want := "the action failed: the database refused the data"; st.Status != domain.StatusFailed || st.Failure != want {
		t.Fatalf("result %s (%q), want failed (%q)", st.Status, st.Failure, want)
	}
	if n := len(h.started("Execute")); n != 1 {
		t.Fatalf("Execute started %d times, want once (policy allows %d)", n, testPolicy.ExecuteMaxAttempts)
	}
	if calls := h.panelCalls(); len(calls) != 0 {
		t.Fatalf("the panel was called %d times", len(calls))
	}
	if trail := h.events(reqID); trail[len(trail)-1] != "request.failed" {
		t.Fatalf("audit %q", trail)
	}
}
