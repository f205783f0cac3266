// Package domain holds Vigil's vocabulary: the sensitive actions, the gates a
// request passes and the states it ends in.
package domain

import (
	"fmt"
	"time"

	"github.com/vigil-oss/vigil/internal/action"
)

// Action is a sensitive operation on a customer's account; what each one is
// lives in its spec in internal/action.
type Action = action.Name

// The actions Vigil guards.
const (
	ActionResendCredentials  = action.ResendCredentials
	ActionReinstallVPS       = action.ReinstallVPS
	ActionAddContactEmail    = action.AddContactEmail
	ActionChangeAccountEmail = action.ChangeAccountEmail
	ActionDisable2FA         = action.Disable2FA
)

// Actions lists every action in a stable order.
var Actions = action.Names()

// ParseAction returns the action named s or an error naming the valid ones.
func ParseAction(s string) (Action, error) { return action.Parse(s) }

// Status is where a request stands. The final ones never change again.
type Status string

// Request states, in gate order, then the end states.
const (
	StatusPINCheck         Status = "pin_check"
	StatusAwaitingApproval Status = "awaiting_approval"
	StatusNotifying        Status = "notifying"
	StatusCooling          Status = "cooling"
	StatusExecuting        Status = "executing"

	StatusExecuted    Status = "executed"
	StatusPINRejected Status = "pin_rejected"
	StatusLocked      Status = "locked"
	StatusRejected    Status = "rejected"
	StatusExpired     Status = "expired"
	StatusCancelled   Status = "cancelled"
	StatusWithdrawn   Status = "withdrawn"
	StatusFailed      Status = "failed"
)

// Statuses returns every status, in gate order, then the end states.
func Statuses() []Status {
	return []Status{
		StatusPINCheck, StatusAwaitingApproval, StatusNotifying, StatusCooling, StatusExecuting,
		StatusExecuted, StatusPINRejected, StatusLocked, StatusRejected, StatusExpired,
		StatusCancelled, StatusWithdrawn, StatusFailed,
	}
}

// Final reports whether s is an end state.
func (s Status) Final() bool {
	switch s {
	case StatusExecuted, StatusPINRejected, StatusLocked, StatusRejected,
		StatusExpired, StatusCancelled, StatusWithdrawn, StatusFailed:
		return true
	}
	return false
}

// Role is what an agent may do.
type Role string

// Agent roles. Seniors approve; admins manage agents and may not approve
// unless they are also senior (a separate record). Security (the security
// team) unlocks customers that wrong PINs locked and exports the audit
// trail; it cannot approve, reject or veto.
const (
	RoleAgent    Role = "agent"
	RoleSenior   Role = "senior"
	RoleAdmin    Role = "admin"
	RoleSecurity Role = "security"
)

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleAgent, RoleSenior, RoleAdmin, RoleSecurity:
		return Role(s), nil
	}
	return "", fmt.Errorf("unknown role %q (valid: agent, senior, admin, security)", s)
}

// CancelParty is who stops a request before it runs.
type CancelParty string

// The parties that can cancel.
const (
	CancelByCustomer  CancelParty = "customer"  // through the emailed link
	CancelByRequester CancelParty = "requester" // the agent withdraws
	CancelBySenior    CancelParty = "senior"    // a senior vetoes
	// CancelBySecurity: Vigil itself stopped the request because the
	// requester or an approver is no longer in good standing (disabled,
	// demoted, unknown), found by the workflow's own check or when an
	// admin disabled or demoted them.
	CancelBySecurity CancelParty = "security"
)

// Decision is a senior's verdict on a request.
type Decision string

// The two verdicts.
const (
	DecisionApprove Decision = "approve"
	DecisionReject  Decision = "reject"
)

// CoolingPeriods maps each action to how long the customer has to cancel.
type CoolingPeriods map[Action]time.Duration

// DefaultCoolingPeriods are the production defaults, from the action specs.
func DefaultCoolingPeriods() CoolingPeriods {
	c := CoolingPeriods{}
	for _, sp := range action.Specs() {
		c[sp.Name] = sp.CoolingDefault
	}
	return c
}
