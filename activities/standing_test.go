package activities_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
)

// TestCheckStanding reads the agents table, never a caller's word: each
// person a request rests on is checked for what their part needs.
func TestCheckStanding(t *testing.T) {
	t.Parallel()
	w := newLiveWorld(t)
	ctx := context.Background()
	for _, a := range []store.Agent{
		{ID: "ag_sam", Name: "Sam", Email: "sam@vigil.test", Role: domain.RoleSenior},
		{ID: "ag_sue", Name: "Sue", Email: "sue@vigil.test", Role: domain.RoleSenior},
		{ID: "ag_gone", Name: "Gone", Email: "gone@vigil.test", Role: domain.RoleSenior},
		{ID: "ag_jay", Name: "Jay", Email: "jay@vigil.test", Role: domain.RoleAgent},
		{ID: "ag_root", Name: "Root", Email: "root@vigil.test", Role: domain.RoleAdmin},
		{ID: "ag_lead", Name: "Lead", Email: "lead@vigil.test", Role: domain.RoleSenior},
	} {
		if err := w.st.CreateAgent(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.st.DisableAgent(ctx, "ag_gone", time.Now()); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		in   activities.StandingInput
		want []activities.StandingProblem
	}{
		{"a senior approves an agent's request", activities.StandingInput{RequesterID: requester, ApproverID: "ag_sam"}, nil},
		{"break-glass with two seniors", activities.StandingInput{RequesterID: requester, ApproverID: "ag_sam", SecondApproverID: "ag_sue"}, nil},
		{"a senior's own request, approved by another", activities.StandingInput{RequesterID: "ag_lead", ApproverID: "ag_sam"}, nil},
		{"an agent approves", activities.StandingInput{RequesterID: requester, ApproverID: "ag_jay"},
			[]activities.StandingProblem{{AgentID: "ag_jay", Part: "approver", Why: activities.StandingNotSenior}}},
		{"an admin approves", activities.StandingInput{RequesterID: requester, ApproverID: "ag_root"},
			[]activities.StandingProblem{{AgentID: "ag_root", Part: "approver", Why: activities.StandingNotSenior}}},
		{"a disabled senior approves", activities.StandingInput{RequesterID: requester, ApproverID: "ag_gone"},
			[]activities.StandingProblem{{AgentID: "ag_gone", Part: "approver", Why: activities.StandingDisabled}}},
		{"nobody of that id", activities.StandingInput{RequesterID: requester, ApproverID: "ag_ghost"},
			[]activities.StandingProblem{{AgentID: "ag_ghost", Part: "approver", Why: activities.StandingUnknown}}},
		{"a senior approves their own request", activities.StandingInput{RequesterID: "ag_sam", ApproverID: "ag_sam"},
			[]activities.StandingProblem{{AgentID: "ag_sam", Part: "approver", Why: activities.StandingIsRequester}}},
		{"a disabled requester", activities.StandingInput{RequesterID: "ag_gone", ApproverID: "ag_sam"},
			[]activities.StandingProblem{{AgentID: "ag_gone", Part: "requester", Why: activities.StandingDisabled}}},
		{"a break-glass second approver who is an agent", activities.StandingInput{RequesterID: requester, ApproverID: "ag_sam", SecondApproverID: "ag_jay"},
			[]activities.StandingProblem{{AgentID: "ag_jay", Part: "second approver", Why: activities.StandingNotSenior}}},
	}
	for _, tc := range cases {
		for _, stage := range []string{activities.StandingAtDecision, activities.StandingAtExecution} {
			tc.in.RequestID, tc.in.Stage = "req-standing", stage
			got, err := w.acts.CheckStanding(ctx, tc.in)
			if err != nil {
				t.Fatalf("%s (%s): %v", tc.name, stage, err)
			}
			if got.OK != (len(tc.want) == 0) || !slices.Equal(got.Problems, tc.want) {
				t.Errorf("%s (%s): %+v, want problems %+v", tc.name, stage, got, tc.want)
			}
		}
	}
	if _, err := w.acts.CheckStanding(ctx, activities.StandingInput{RequestID: "req-standing", Stage: activities.StandingAtExecution}); err == nil {
		t.Error("a check naming nobody passed")
	}
}
