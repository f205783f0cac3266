package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
)

// The timings a run falls back on when the worker answers a value that
// cannot be meant (zero or negative): production's.
const (
	fallbackApprovalTimeout = 4 * time.Hour
	fallbackNoticeTimeout   = 24 * time.Hour
	fallbackExecuteAttempts = 10
)

// takeWorkerPolicy replaces the input's policy with the worker's (change
// policy-from-worker): whoever can start a workflow cannot choose its
// timings. The answer is a local activity's, recorded in history as a
// marker, so a replay keeps the policy the run started with even if the
// worker's configuration changed since.
func (r *request) takeWorkerPolicy(ctx workflow.Context) error {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	var w activities.WorkerPolicy
	if err := workflow.ExecuteLocalActivity(lctx, acts.PolicyFor, r.in.Action).Get(ctx, &w); err != nil {
		return fmt.Errorf("read the worker's policy: %w", err)
	}
	p, audit := effectivePolicy(r.in.Action, w)
	if in := r.in.Policy; in != (Policy{}) && in != p {
		// Someone started the run with timings of their own: they are
		// ignored, and the trail says what they were.
		audit["input_policy_ignored"] = "true"
		audit["input_cooling_period"] = in.CoolingPeriod.String()
	}
	r.in.Policy, r.policyAudit = p, audit
	return nil
}

// effectivePolicy is the policy a run of action a takes from the worker's
// answer w: every cooling period at least the action's floor, unless the
// worker runs with the development override, and no timing that is not
// positive. audit describes it for request.policy.
func effectivePolicy(a domain.Action, w activities.WorkerPolicy) (Policy, map[string]string) {
	floor := a.Spec().CoolingFloor
	p := Policy{
		ApprovalTimeout: w.ApprovalTimeout, CoolingPeriod: w.CoolingPeriod, NoticeTimeout: w.NoticeTimeout,
		ExecuteMaxAttempts: w.ExecuteMaxAttempts, ReminderAfter: w.ReminderAfter,
	}
	audit := map[string]string{"source": "worker", "cooling_floor": floor.String()}
	switch {
	case p.CoolingPeriod <= 0:
		p.CoolingPeriod = floor
		audit["raised_to_floor"] = "true"
	case p.CoolingPeriod < floor && w.BelowFloors:
		audit["below_floor"] = "true"
		audit["override"] = "VIGIL_DEV_BELOW_FLOORS"
	case p.CoolingPeriod < floor:
		p.CoolingPeriod = floor
		audit["raised_to_floor"] = "true"
	}
	if p.ApprovalTimeout <= 0 {
		p.ApprovalTimeout = fallbackApprovalTimeout
	}
	if p.NoticeTimeout <= 0 {
		p.NoticeTimeout = fallbackNoticeTimeout
	}
	if p.ExecuteMaxAttempts <= 0 {
		// Zero would be unlimited attempts to Temporal.
		p.ExecuteMaxAttempts = fallbackExecuteAttempts
	}
	audit["approval_timeout"] = p.ApprovalTimeout.String()
	audit["cooling_period"] = p.CoolingPeriod.String()
	audit["notice_timeout"] = p.NoticeTimeout.String()
	audit["execute_max_attempts"] = fmt.Sprint(p.ExecuteMaxAttempts)
	if p.ReminderAfter > 0 {
		audit["reminder_after"] = p.ReminderAfter.String()
	}
	return p, audit
}
