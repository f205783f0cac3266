package activities_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
)

// TestRecordNeedsTheRecordedClick: an approval or a rejection passes the
// approval gate only if the web front recorded the senior's Slack click for
// it. Without one (a decide Update sent around the web front, naming a
// senior who never clicked) Record refuses for good, the refusal is audited
// and alerted, and the request does not move.
func TestRecordNeedsTheRecordedClick(t *testing.T) {
	t.Parallel()
	w := newLiveWorld(t)
	ctx := context.Background()
	if err := w.st.CreateAgent(ctx, store.Agent{ID: "ag_sam", Name: "Sam", Email: "sam@vigil.test", Role: domain.RoleSenior}, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		id       string
		action   domain.Action
		decision domain.Decision
		status   domain.Status
		event    string
	}{
		{"approval", "req_dec_a", domain.ActionResendCredentials, domain.DecisionApprove, domain.StatusNotifying, "gate.approval.passed"},
		{"rejection", "req_dec_r", domain.ActionReinstallVPS, domain.DecisionReject, domain.StatusRejected, "request.rejected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.id
			w.open(t, id, tc.action, "srv-1", domain.StatusAwaitingApproval)
			// Decided now, well after migration 0017 began the binding.
			in := activities.RecordInput{RequestID: id, Status: tc.status, Event: tc.event, Actor: "agent:ag_sam",
				ApproverID: "ag_sam", Decision: tc.decision, DecisionReason: "why", DecidedAt: time.Now().Add(time.Second)}
			err := w.acts.Record(ctx, in)
			var app *temporal.ApplicationError
			if !errors.As(err, &app) || !app.NonRetryable() {
				t.Fatalf("unrecorded %s: %v, want a non-retryable refusal", tc.name, err)
			}
			var trail []string
			for _, e := range w.events(t, id) {
				trail = append(trail, e.Event)
			}
			if !slices.Contains(trail, "decision.unverified") || slices.Contains(trail, tc.event) {
				t.Fatalf("trail %v, want decision.unverified and no %s", trail, tc.event)
			}
			if r, err := w.st.Request(ctx, id); err != nil || r.Status != domain.StatusAwaitingApproval {
				t.Fatalf("request %+v %v, want it still awaiting approval", r.Status, err)
			}
			alerts, err := w.st.QueuedAlerts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(alerts, func(a store.Alert) bool {
				return a.Kind == store.AlertDecisionUnverified && a.Details["request"] == id
			}) {
				t.Fatalf("no decision_unverified alert for %s: %+v", id, alerts)
			}

			// Sam's click of the other decision does not stand for this one.
			other := domain.DecisionReject
			if tc.decision == domain.DecisionReject {
				other = domain.DecisionApprove
			}
			click := store.SlackDecision{RequestID: id, AgentID: "ag_sam", Decision: other, SlackUser: "U0SAM", ActionTS: "1.2", RecordedAt: time.Now()}
			if err := w.st.RecordSlackDecision(ctx, click); err != nil {
				t.Fatal(err)
			}
			if err := w.acts.Record(ctx, in); err == nil {
				t.Fatalf("a recorded %s passed a %s", other, tc.decision)
			}
			click.Decision = tc.decision
			if err := w.st.RecordSlackDecision(ctx, click); err != nil {
				t.Fatal(err)
			}
			if err := w.acts.Record(ctx, in); err != nil {
				t.Fatalf("recorded %s: %v", tc.name, err)
			}
			if r, err := w.st.Request(ctx, id); err != nil || r.Status != tc.status {
				t.Fatalf("request %+v %v, want %s", r.Status, err, tc.status)
			}
		})
	}
}
