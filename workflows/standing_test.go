package workflows_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/workflows"
)

// TestDecisionCheckedInAgentsTable sends decide Updates as anyone with
// write access to the Temporal namespace could, each claiming
// ApproverRole senior (change standing-checks): the workflow reads the
// approver in the agents table itself, so a decision by someone who is
// not an enabled senior is refused and the request ends cancelled by
// security, before any notice, audited, alerted and shown in Slack.
func TestDecisionCheckedInAgentsTable(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		decide   workflows.DecideInput
		prepare  func(h *harness)
		standing string // the request.cancelled detail naming who and why
	}{
		{
			name:     "an agent who is not a senior approves",
			decide:   workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: juniorID, ApproverRole: domain.RoleSenior},
			standing: juniorID + " (approver: not_senior)",
		},
		{
			name:     "an agent who is not a senior rejects",
			decide:   workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: juniorID, ApproverRole: domain.RoleSenior, Reason: "no"},
			standing: juniorID + " (approver: not_senior)",
		},
		{
			name:     "an approver who does not exist",
			decide:   workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: "ag_ghost", ApproverRole: domain.RoleSenior},
			standing: "ag_ghost (approver: unknown)",
		},
		{
			name:   "a disabled senior approves",
			decide: approve(),
			prepare: func(h *harness) {
				if err := h.db.DisableAgent(h.ctx, seniorID, time.Now()); err != nil {
					h.t.Fatal(err)
				}
			},
			standing: seniorID + " (approver: disabled)",
		},
		{
			name: "a break-glass second approver who is not a senior",
			decide: workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: seniorID, ApproverRole: domain.RoleSenior,
				BreakGlass: true, SecondApproverID: juniorID, SecondApproverRole: domain.RoleSenior, Reason: "Slack is down"},
			standing: juniorID + " (second approver: not_senior)",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if tc.prepare != nil {
				tc.prepare(h)
			}
			reqID := "req-forged-decision"
			env := h.env(reqID)
			dec := h.decide(env, time.Hour, tc.decide)
			st := h.run(env, input(reqID, domain.ActionChangeAccountEmail))

			if !dec.accepted || !dec.done {
				t.Fatalf("decide: accepted %v done %v rejected %v", dec.accepted, dec.done, dec.rejected)
			}
			var app *temporal.ApplicationError
			if !errors.As(dec.err, &app) || app.Type() != workflows.RefusedNotInGoodStanding {
				t.Fatalf("decide answered %v, want a %s refusal", dec.err, workflows.RefusedNotInGoodStanding)
			}
			wantStoppedBySecurity(t, h, reqID, st, tc.standing, false)
			if !st.NotifiedAt.IsZero() || len(h.started("NotifyCustomer")) != 0 || len(h.mails(reqID, "notice")) != 0 {
				t.Fatal("the customer was notified on a decision the agents table refuses")
			}
			h.wantEvents(reqID, "request.opened", "gate.pin.verified", "gate.pin.verdict_consumed", "request.policy",
				"gate.approval.waiting", "slack.approval_posted", "request.cancelled")
		})
	}
}

// TestStandingLostDuringCooling approves a request properly, then changes
// the agents table while it cools, as an admin disabling or demoting
// someone would: the check just before the action runs ends the request
// cancelled by security, and the control panel is never called.
func TestStandingLostDuringCooling(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		change   func(h *harness) error
		standing string
	}{
		{"the approver is disabled", func(h *harness) error { return h.db.DisableAgent(h.ctx, seniorID, time.Now()) },
			seniorID + " (approver: disabled)"},
		{"the approver is demoted", func(h *harness) error { return h.db.SetAgentRole(h.ctx, seniorID, domain.RoleAgent) },
			seniorID + " (approver: not_senior)"},
		{"the requester is disabled", func(h *harness) error { return h.db.DisableAgent(h.ctx, requesterID, time.Now()) },
			requesterID + " (requester: disabled)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			reqID := "req-standing-lost"
			env := h.env(reqID)
			dec := h.decide(env, time.Hour, approve())
			cooling := h.queryAt(env, 3*time.Hour)
			env.RegisterDelayedCallback(func() {
				if err := tc.change(h); err != nil {
					t.Errorf("change the agents table: %v", err)
				}
			}, 3*time.Hour+time.Minute)
			st := h.run(env, input(reqID, domain.ActionResendCredentials))

			dec.mustAccept(t, "approval")
			cooling.check(t, domain.StatusCooling)
			wantStoppedBySecurity(t, h, reqID, st, tc.standing, true)
			if st.NotifiedAt.IsZero() || st.EndedAt.Sub(st.NotifiedAt) < testPolicy.CoolingPeriod {
				t.Fatalf("notified %v, ended %v: want the stop at the end of the cooling period", st.NotifiedAt, st.EndedAt)
			}
			outcome := h.mails(reqID, "outcome")
			if len(outcome) == 0 || !strings.Contains(outcome[0].Text, "security checks stopped it") {
				t.Fatalf("outcome mails %+v, want one saying the security checks stopped it", outcome)
			}
			if len(h.mails(reqID, "credentials")) != 0 {
				t.Fatal("credentials were mailed for a stopped request")
			}
			h.wantEvents(reqID, "request.opened", "gate.pin.verified", "gate.pin.verdict_consumed", "request.policy",
				"gate.approval.waiting", "slack.approval_posted", "gate.approval.passed", "notice.accepted", "notice.accepted",
				"gate.notice.sent", "gate.cooling.elapsed", "request.cancelled")
		})
	}
}

// wantStoppedBySecurity checks a request the standing check ended: the end
// state, the audit event, the security alert, the Slack message and that
// the action never ran. notified: the stop came after the notice.
func wantStoppedBySecurity(t *testing.T, h *harness, reqID string, st workflows.Status, standing string, notified bool) {
	t.Helper()
	if st.Status != domain.StatusCancelled || st.Cancellation == nil || st.Cancellation.By != domain.CancelBySecurity {
		t.Fatalf("result %s cancelled by %+v, want cancelled by security", st.Status, st.Cancellation)
	}
	if slices.Contains(h.calls(), "Execute") || len(h.performed()) != 0 || len(h.panelCalls()) != 0 {
		t.Fatalf("the action ran: activities %v, panel %+v", h.calls(), h.panelCalls())
	}
	row := h.projection(reqID)
	if row.Status != domain.StatusCancelled || row.CancelledBy != string(domain.CancelBySecurity) {
		t.Fatalf("projection %s cancelled by %q", row.Status, row.CancelledBy)
	}
	ev := eventNamed(t, h.trail(reqID), "request.cancelled")
	if ev.Actor != "system" || ev.Details["by"] != "security" || ev.Details["standing"] != standing ||
		!strings.Contains(ev.Details["reason"].(string), "not in good standing") {
		t.Fatalf("request.cancelled %s %v, want by security, standing %q", ev.Actor, ev.Details, standing)
	}
	alerted := false
	for _, m := range h.securityPosts() {
		alerted = alerted || (strings.Contains(m.Text, "SECURITY: request "+reqID) && strings.Contains(m.Text, "Nothing was done"))
	}
	if !alerted {
		t.Fatalf("no security alert for %s: %+v", reqID, h.securityPosts())
	}
	ups := h.messageUpdates()
	if len(ups) == 0 || ups[len(ups)-1].Event != string(domain.StatusCancelled) || ups[len(ups)-1].Party != domain.CancelBySecurity {
		t.Fatalf("approval message updates %+v, want the last to show the stop by security", ups)
	}
	if want := []string{activities.MessageApproved, activities.MessageNotified, string(domain.StatusCancelled)}; notified {
		var got []string
		for _, u := range ups {
			got = append(got, u.Event)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("approval message updates %q, want %q", got, want)
		}
	}
}
