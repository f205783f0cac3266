package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// PolicySettings are the worker's timings for new requests. Whoever starts
// a workflow has no say in them: the workflow asks the worker (WorkerPolicy)
// at the start of every run.
type PolicySettings struct {
	ApprovalTimeout time.Duration
	// NoticeTimeout bounds how long mail may keep failing before the
	// request fails.
	NoticeTimeout      time.Duration
	ExecuteMaxAttempts int32
	// ReminderAfter, when positive, is when the approvers are reminded.
	ReminderAfter time.Duration
	Cooling       domain.CoolingPeriods
	// BelowFloors is the development override (VIGIL_DEV_BELOW_FLOORS):
	// the workflow then runs cooling periods shorter than each action's
	// floor, and says so in the request's request.policy audit event.
	BelowFloors bool
}

// DefaultPolicySettings are the production timings.
func DefaultPolicySettings() PolicySettings {
	return PolicySettings{
		ApprovalTimeout:    4 * time.Hour,
		NoticeTimeout:      24 * time.Hour,
		ExecuteMaxAttempts: 10,
		Cooling:            domain.DefaultCoolingPeriods(),
	}
}

// ErrBelowFloor is a cooling period below its action's floor without the
// development override.
var ErrBelowFloor = errors.New("cooling period below the action's floor")

// CheckFloors refuses settings whose cooling periods are not positive, or
// below their action's floor without the development override, so a worker
// does not start with a policy its workflows would overrule.
func (p PolicySettings) CheckFloors() error {
	var errs []error
	for _, a := range domain.Actions {
		c, floor := p.Cooling[a], a.Spec().CoolingFloor
		switch {
		case c <= 0:
			errs = append(errs, fmt.Errorf("%s: cooling period %v is not positive", a.Spec().CoolingSetting, c))
		case c < floor && !p.BelowFloors:
			errs = append(errs, fmt.Errorf("%s=%v: %w %v (set VIGIL_DEV_BELOW_FLOORS=true for a development or test stack)",
				a.Spec().CoolingSetting, c, ErrBelowFloor, floor))
		}
	}
	if p.ApprovalTimeout <= 0 || p.NoticeTimeout <= 0 || p.ExecuteMaxAttempts <= 0 {
		errs = append(errs, errors.New("the approval timeout, the notice timeout and the execute attempts must be positive"))
	}
	return errors.Join(errs...)
}

// WorkerPolicy is the worker's policy for one action, as the workflow asks
// for it at the start of a run (a local activity: its answer is recorded in
// history as a marker, so replays keep the policy the run started with).
type WorkerPolicy struct {
	ApprovalTimeout    time.Duration
	CoolingPeriod      time.Duration
	NoticeTimeout      time.Duration
	ExecuteMaxAttempts int32
	ReminderAfter      time.Duration
	BelowFloors        bool
}

// PolicyFor answers the worker's policy for action a. It reads only the
// worker's configuration.
func (a *Activities) PolicyFor(_ context.Context, act domain.Action) (WorkerPolicy, error) {
	if _, err := domain.ParseAction(string(act)); err != nil {
		return WorkerPolicy{}, permanent(err, "no policy for action %q", act)
	}
	p := a.Settings.Policy
	return WorkerPolicy{
		ApprovalTimeout: p.ApprovalTimeout, CoolingPeriod: p.Cooling[act], NoticeTimeout: p.NoticeTimeout,
		ExecuteMaxAttempts: p.ExecuteMaxAttempts, ReminderAfter: p.ReminderAfter, BelowFloors: p.BelowFloors,
	}, nil
}
