package workflows_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/vigil-oss/vigil/internal/api"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/workflows"
)

// TestListingAgreesWithStatus: for requests that reached several end
// states, the entry GET /requests lists (from the Postgres projection the
// activities wrote) and the answer of GET /requests/{id} (from the
// workflow) are the same JSON, field by field (issue 14). The requester's
// reason is the one field only listings carry.
func TestListingAgreesWithStatus(t *testing.T) {
	t.Parallel()
	bgReject := breakGlass(seniorID, senior2ID, domain.RoleSenior)
	bgReject.Decision, bgReject.Reason = domain.DecisionReject, "caller failed the callback"
	veto := workflows.CancelInput{By: domain.CancelBySenior, ActorID: senior2ID, ActorRole: domain.RoleSenior, Reason: "fraud pattern"}
	customerCancel := workflows.CancelInput{By: domain.CancelByCustomer, ActorID: customerID, Reason: "this was not me"}
	reject := workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: senior2ID, ApproverRole: domain.RoleSenior, Reason: "no ticket"}
	cases := []struct {
		name  string
		drive func(d *testDriver) []*updateOutcome
		want  domain.Status
		// set are JSON fields that must be set in both answers, so the
		// comparison is not one of two empty answers.
		set []string
	}{
		{"executed", func(d *testDriver) []*updateOutcome { return d.decide(time.Hour, approve()) },
			domain.StatusExecuted, []string{"pin_verified_at", "approval_deadline", "recipients", "executed_at", "reference", "ended_at"}},
		{"break-glass approved", func(d *testDriver) []*updateOutcome {
			return d.decide(time.Hour, breakGlass(seniorID, senior2ID, domain.RoleSenior))
		}, domain.StatusExecuted, []string{"decision.break_glass", "decision.second_approver_id", "recipients", "reference"}},
		{"break-glass rejected", func(d *testDriver) []*updateOutcome { return d.decide(time.Hour, bgReject) },
			domain.StatusRejected, []string{"decision.break_glass", "decision.second_approver_id", "decision.reason"}},
		{"rejected", func(d *testDriver) []*updateOutcome { return d.decide(time.Hour, reject) },
			domain.StatusRejected, []string{"decision.reason", "decision.at", "approval_deadline"}},
		{"vetoed in the cooling period", func(d *testDriver) []*updateOutcome {
			return append(d.decide(time.Hour, approve()), d.h.cancel(d.env, 24*time.Hour, veto))
		}, domain.StatusCancelled, []string{"cancellation.actor_id", "cancellation.at", "cancellation.reason", "recipients", "cooling_ends_at"}},
		{"cancelled by the customer", func(d *testDriver) []*updateOutcome {
			return append(d.decide(time.Hour, approve()), d.h.cancel(d.env, 2*time.Hour, customerCancel))
		}, domain.StatusCancelled, []string{"cancellation.actor_id", "cancellation.at", "cancellation.reason", "notified_at"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			reqID := "req-listing"
			d := &testDriver{h: h, env: h.env(reqID)}
			sent := tc.drive(d)
			st := h.run(d.env, input(reqID, domain.ActionReinstallVPS))
			for _, u := range sent {
				u.mustAccept(t, tc.name)
			}
			if st.Status != tc.want {
				t.Fatalf("status %s (%s), want %s", st.Status, st.Failure, tc.want)
			}
			list := asJSON(t, api.RequestFromRow(h.projection(reqID)))
			status := asJSON(t, api.RequestFromStatus(st))
			if list["reason"] == nil {
				t.Fatalf("the listing lost the requester's reason: %v", list)
			}
			delete(list, "reason")
			for _, k := range union(list, status) {
				if !reflect.DeepEqual(list[k], status[k]) {
					t.Errorf("%s: list %v, status %v", k, list[k], status[k])
				}
			}
			for _, path := range tc.set {
				if isZero(field(status, path)) || isZero(field(list, path)) {
					t.Errorf("%s: list %v, status %v; want it set in both", path, field(list, path), field(status, path))
				}
			}
		})
	}
}

// testDriver sends Updates to one test workflow.
type testDriver struct {
	h   *harness
	env *testsuite.TestWorkflowEnvironment
}

func (d *testDriver) decide(delay time.Duration, in workflows.DecideInput) []*updateOutcome {
	return []*updateOutcome{d.h.decide(d.env, delay, in)}
}

// asJSON is v as a JSON object.
func asJSON(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func union(a, b map[string]any) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// field is the value at a dotted path of m, nil if absent.
func field(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = o[k]
	}
	return v
}

func isZero(v any) bool {
	return v == nil || v == "" || v == false || v == float64(0)
}
