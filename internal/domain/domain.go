// Package domain holds Vigil's vocabulary: the sensitive actions, the gates a
// request passes and the states it ends in.
package domain

import (
	"fmt"
	"time"
)

// Action is a sensitive operation on a customer's account.
type Action string

// The actions Vigil guards.
const (
	ActionResendCredentials  Action = "resend_credentials"
	ActionReinstallVPS       Action = "reinstall_vps"
	ActionAddContactEmail    Action = "add_contact_email"
	ActionChangeAccountEmail Action = "change_account_email"
	ActionDisable2FA         Action = "disable_2fa"
)

// Actions lists every action in a stable order.
var Actions = []Action{
	ActionResendCredentials,
	ActionReinstallVPS,
	ActionAddContactEmail,
	ActionChangeAccountEmail,
	ActionDisable2FA,
}

// ParseAction returns the action named s or an error naming the valid ones.
func ParseAction(s string) (Action, error) {
	for _, a := range Actions {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown action %q (valid: resend_credentials, reinstall_vps, add_contact_email, change_account_email, disable_2fa)", s)
}

// NeedsServer reports whether the action targets one of the customer's servers.
func (a Action) NeedsServer() bool {
	return a == ActionResendCredentials || a == ActionReinstallVPS
}

// NeedsEmail reports whether the action carries a new email address.
func (a Action) NeedsEmail() bool {
	return a == ActionAddContactEmail || a == ActionChangeAccountEmail
}

// Describe says in plain words what the action does, for messages and audit.
func (a Action) Describe(serverID, email string) string {
	switch a {
	case ActionResendCredentials:
		return fmt.Sprintf("email the login credentials of server %s to the customer's primary address", serverID)
	case ActionReinstallVPS:
		return fmt.Sprintf("erase and reinstall VPS %s (all data on it is wiped)", serverID)
	case ActionAddContactEmail:
		return fmt.Sprintf("add %s as a contact email", email)
	case ActionChangeAccountEmail:
		return fmt.Sprintf("change the account email to %s", email)
	case ActionDisable2FA:
		return "turn off two-factor authentication"
	}
	return string(a)
}

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
// unless they are also senior (a separate record).
const (
	RoleAgent  Role = "agent"
	RoleSenior Role = "senior"
	RoleAdmin  Role = "admin"
)

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleAgent, RoleSenior, RoleAdmin:
		return Role(s), nil
	}
	return "", fmt.Errorf("unknown role %q (valid: agent, senior, admin)", s)
}

// CancelParty is who stops a request before it runs.
type CancelParty string

// The parties that can cancel.
const (
	CancelByCustomer  CancelParty = "customer"  // through the emailed link
	CancelByRequester CancelParty = "requester" // the agent withdraws
	CancelBySenior    CancelParty = "senior"    // a senior vetoes
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

// DefaultCoolingPeriods are the production defaults.
func DefaultCoolingPeriods() CoolingPeriods {
	return CoolingPeriods{
		ActionResendCredentials:  24 * time.Hour,
		ActionReinstallVPS:       48 * time.Hour,
		ActionAddContactEmail:    72 * time.Hour,
		ActionChangeAccountEmail: 72 * time.Hour,
		ActionDisable2FA:         48 * time.Hour,
	}
}
