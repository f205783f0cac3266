package workflows_test

import (
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/workflows"
)

// TestWorkerDecidesPolicy starts requests as a raw Temporal client could,
// with timings of its own in the input, and checks that each runs with the
// worker's policy (change policy-from-worker): the cooling period is the
// worker's, never below the action's floor unless the worker's development
// override says so, and request.policy says what the request ran with.
func TestWorkerDecidesPolicy(t *testing.T) {
	t.Parallel()
	nano := workflows.Policy{ApprovalTimeout: time.Nanosecond, CoolingPeriod: time.Nanosecond, NoticeTimeout: time.Nanosecond, ExecuteMaxAttempts: 1}
	cases := []struct {
		name        string
		action      domain.Action
		input       workflows.Policy // what the starter put in the input
		cooling     time.Duration    // the worker's cooling period for the action
		belowFloors bool             // the worker's development override
		wantCooling time.Duration
		wantAudit   map[string]any // details request.policy must carry
		noAudit     []string       // details it must not carry
	}{
		{
			name: "a raw start with a 1 ns cooling period runs the worker's", action: domain.ActionResendCredentials,
			input: nano, cooling: 30 * time.Hour, wantCooling: 30 * time.Hour,
			wantAudit: map[string]any{"source": "worker", "cooling_period": "30h0m0s", "cooling_floor": "24h0m0s",
				"approval_timeout": "4h0m0s", "notice_timeout": "1h0m0s", "execute_max_attempts": "3",
				"input_policy_ignored": "true", "input_cooling_period": "1ns"},
			noAudit: []string{"below_floor", "raised_to_floor"},
		},
		{
			name: "a start without a policy runs the worker's", action: domain.ActionReinstallVPS,
			cooling: 13 * time.Hour, wantCooling: 13 * time.Hour,
			wantAudit: map[string]any{"cooling_period": "13h0m0s", "cooling_floor": "12h0m0s"},
			noAudit:   []string{"input_policy_ignored", "below_floor", "raised_to_floor"},
		},
		{
			name: "a worker's cooling below the floor is raised to it", action: domain.ActionChangeAccountEmail,
			input: nano, cooling: time.Hour, wantCooling: 24 * time.Hour,
			wantAudit: map[string]any{"cooling_period": "24h0m0s", "raised_to_floor": "true", "input_policy_ignored": "true"},
			noAudit:   []string{"below_floor"},
		},
		{
			name: "the development override goes below the floor, and says so", action: domain.ActionDisable2FA,
			input: nano, cooling: time.Hour, belowFloors: true, wantCooling: time.Hour,
			wantAudit: map[string]any{"cooling_period": "1h0m0s", "below_floor": "true", "override": "VIGIL_DEV_BELOW_FLOORS"},
			noAudit:   []string{"raised_to_floor"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.acts.Settings.Policy.Cooling[tc.action] = tc.cooling
			h.acts.Settings.Policy.BelowFloors = tc.belowFloors
			reqID := "req-policy-" + string(tc.action)
			env := h.env(reqID)
			// A cancel a minute before the worker's cooling ends must still
			// find the request waiting: it has not executed.
			before := h.queryAt(env, time.Hour+tc.wantCooling-time.Minute)
			dec := h.decide(env, time.Hour, approve())
			in := input(reqID, tc.action)
			in.Policy = tc.input
			st := h.run(env, in)

			dec.mustAccept(t, "approval")
			before.check(t, domain.StatusCooling)
			if st.Status != domain.StatusExecuted {
				t.Fatalf("status %s (%q), want executed", st.Status, st.Failure)
			}
			if got := st.ExecutedAt.Sub(st.NotifiedAt); got < tc.wantCooling {
				t.Fatalf("executed %v after the notice, want at least the worker's cooling period %v", got, tc.wantCooling)
			}
			if !st.CoolingEndsAt.Equal(st.NotifiedAt.Add(tc.wantCooling)) {
				t.Fatalf("cooling ends %v, want the notice %v + %v", st.CoolingEndsAt, st.NotifiedAt, tc.wantCooling)
			}
			if d := st.ApprovalDeadline.Sub(st.OpenedAt); d < testPolicy.ApprovalTimeout || d > testPolicy.ApprovalTimeout+time.Minute {
				t.Fatalf("approval deadline %v, opened %v: want the worker's approval timeout %v", st.ApprovalDeadline, st.OpenedAt, testPolicy.ApprovalTimeout)
			}
			ev := eventNamed(t, h.trail(reqID), "request.policy")
			if ev.Actor != "system" {
				t.Fatalf("request.policy actor %q, want system", ev.Actor)
			}
			for k, v := range tc.wantAudit {
				if ev.Details[k] != v {
					t.Errorf("request.policy %s = %v, want %v (all: %v)", k, ev.Details[k], v, ev.Details)
				}
			}
			for _, k := range tc.noAudit {
				if v, ok := ev.Details[k]; ok {
					t.Errorf("request.policy has %s = %v, want none (all: %v)", k, v, ev.Details)
				}
			}
		})
	}
}
