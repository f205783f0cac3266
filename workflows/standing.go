package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
)

// checkStanding reads the requester and the approvers of the decision in
// the agents table (CheckStanding) at stage; gate names where the request
// stands, for a failure. It ends the request cancelled by party security if
// one of them is not in good standing: the decision names an agent who is
// not an enabled senior, or who opened the request, or the requester or an
// approver was disabled or demoted since. The caller's word about roles
// (DecideInput.ApproverRole) never counts here.
func (r *request) checkStanding(ctx workflow.Context, gate, stage string) *ending {
	d := r.st.Decision
	in := activities.StandingInput{RequestID: r.in.RequestID, Stage: stage, RequesterID: r.in.RequesterID, ApproverID: d.ApproverID}
	if d.BreakGlass {
		in.SecondApproverID = d.SecondApproverID
	}
	var res activities.StandingResult
	if err := workflow.ExecuteActivity(shortOptions(ctx), acts.CheckStanding, in).Get(ctx, &res); err != nil {
		return end(r.gateError(ctx, gate, fmt.Errorf("check standing: %w", err)))
	}
	if r.st.Cancellation != nil {
		return end(r.cancelled(ctx))
	}
	if res.OK {
		return nil
	}
	r.standing = &res
	r.decisionRefused = stage == activities.StandingAtDecision
	when := "when the decision came in"
	if stage == activities.StandingAtExecution {
		when = "just before the action was to run"
	}
	why := res.Text()
	r.st.Cancellation = &Cancellation{By: domain.CancelBySecurity, Reason: "not in good standing " + when + ": " + why, At: workflow.Now(ctx)}
	r.alert(ctx, fmt.Sprintf("SECURITY: request %s (%s for %s, opened by %s, decided by %s) was stopped %s: %s. Nothing was done.",
		r.in.RequestID, r.in.Action, r.in.CustomerID, r.in.RequesterID, d.ApproverID, when, why))
	return end(r.cancelled(ctx))
}
