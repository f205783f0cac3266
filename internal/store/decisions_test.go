package store

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// TestRecordSlackDecisionRefusals: a record missing what ties it to a click,
// or naming a request or agent the store does not know, is refused and
// writes neither a row nor an audit event.
func TestRecordSlackDecisionRefusals(t *testing.T) {
	t.Parallel()
	s, f := bgFixture(t)
	now := time.Now()
	good := SlackDecision{RequestID: f.request, AgentID: f.senior, Decision: domain.DecisionApprove, SlackUser: "U0BOB", ActionTS: "1700000000.1", RecordedAt: now}
	tests := []struct {
		name   string
		change func(*SlackDecision)
	}{
		{"no decision", func(d *SlackDecision) { d.Decision = "" }},
		{"an unknown decision", func(d *SlackDecision) { d.Decision = "maybe" }},
		{"no request", func(d *SlackDecision) { d.RequestID = "" }},
		{"no agent", func(d *SlackDecision) { d.AgentID = "" }},
		{"no Slack user", func(d *SlackDecision) { d.SlackUser = "" }},
		{"no action ts", func(d *SlackDecision) { d.ActionTS = "" }},
		{"no time", func(d *SlackDecision) { d.RecordedAt = time.Time{} }},
		{"an unknown request", func(d *SlackDecision) { d.RequestID = "req_none" }},
		{"an unknown agent", func(d *SlackDecision) { d.AgentID = "nobody" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := good
			tt.change(&d)
			if err := s.RecordSlackDecision(context.Background(), d); err == nil {
				t.Fatal("recorded, want refused")
			}
			if n := countRows(t, s, `SELECT count(*) FROM decisions`); n != 0 {
				t.Fatalf("%d decision rows", n)
			}
			if n := countRows(t, s, `SELECT count(*) FROM audit_events`); n != 0 {
				t.Fatalf("%d audit events", n)
			}
		})
	}
}

// TestDecisionRecorded: the worker's check finds the senior's recorded
// click for the same request and decision, taken shortly after it, and
// nothing else; a break-glass pair stands in for a rejection's click.
func TestDecisionRecorded(t *testing.T) {
	t.Parallel()
	s, f := bgFixture(t)
	ctx := context.Background()
	// Decisions taken after the binding began, as every new one is.
	now := time.Now().UTC().Add(time.Hour).Truncate(time.Microsecond)
	if err := s.RecordSlackDecision(ctx, SlackDecision{RequestID: f.request, AgentID: f.senior, Decision: domain.DecisionApprove,
		SlackUser: "U0BOB", ActionTS: "1700000000.1", RecordedAt: now}); err != nil {
		t.Fatal(err)
	}
	if ev := trailEvents(t, s, f.request); len(ev) != 1 || ev[0] != "decision.slack" {
		t.Fatalf("trail %v", ev)
	}
	checks := []struct {
		name     string
		request  string
		approver string
		decision domain.Decision
		at       time.Time
		want     bool
	}{
		{"the click", f.request, f.senior, domain.DecisionApprove, now, true},
		{"taken a moment later", f.request, f.senior, domain.DecisionApprove, now.Add(2 * time.Minute), true},
		{"taken a little earlier (clock skew)", f.request, f.senior, domain.DecisionApprove, now.Add(-30 * time.Second), true},
		{"the other decision", f.request, f.senior, domain.DecisionReject, now, false},
		{"another senior", f.request, "carol", domain.DecisionApprove, now, false},
		{"no approver", f.request, "", domain.DecisionApprove, now, false},
		{"another request", "req_other", f.senior, domain.DecisionApprove, now, false},
		{"taken long after", f.request, f.senior, domain.DecisionApprove, now.Add(time.Hour), false},
		{"taken long before", f.request, f.senior, domain.DecisionApprove, now.Add(-10 * time.Minute), false},
		{"taken before the binding began", f.request, "carol", domain.DecisionReject, now.Add(-24 * time.Hour), true},
	}
	for _, c := range checks {
		ok, err := s.DecisionRecorded(ctx, c.request, c.approver, c.decision, c.at)
		if err != nil || ok != c.want {
			t.Errorf("%s: DecisionRecorded = %v, %v; want %v", c.name, ok, err, c.want)
		}
	}
	// A break-glass rejection has its pair, not a click: either senior of
	// the pair is a recorded approver, within the consents' validity.
	if _, err := consent(s, f.request, "carol", domain.DecisionReject, now); err != nil {
		t.Fatal(err)
	}
	if res, err := consent(s, f.request, f.senior, domain.DecisionReject, now.Add(time.Second)); err != nil || res.Pair == nil {
		t.Fatalf("pair: %+v %v", res, err)
	}
	for _, c := range []struct {
		approver string
		at       time.Time
		want     bool
	}{
		{"carol", now.Add(2 * time.Second), true},
		{f.senior, now.Add(2 * time.Second), true},
		{"carol", now.Add(2 * time.Hour), false},
	} {
		if ok, err := s.DecisionRecorded(ctx, f.request, c.approver, domain.DecisionReject, c.at); err != nil || ok != c.want {
			t.Errorf("break-glass reject by %s at %v: %v, %v; want %v", c.approver, c.at, ok, err, c.want)
		}
	}
}

func TestRefuseDecisionOnce(t *testing.T) {
	t.Parallel()
	s, f := bgFixture(t)
	for range 2 {
		if err := s.RefuseDecision(context.Background(), f.request, f.senior, domain.DecisionApprove, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if ev := trailEvents(t, s, f.request); len(ev) != 1 || ev[0] != "decision.unverified" {
		t.Fatalf("trail %v", ev)
	}
	if k := alertKinds(t, s); len(k) != 1 || k[0] != AlertDecisionUnverified {
		t.Fatalf("alerts %v", k)
	}
}
