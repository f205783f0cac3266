// Package workflows holds the SensitiveRequest workflow: the five gates, their
// timers, the decide and cancel Updates and the status Query.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/vigil-oss/vigil/internal/domain"
)

// Names clients use to reach the workflow.
const (
	WorkflowName = "SensitiveRequest"
	TaskQueue    = "vigil-sensitive-requests"
	UpdateDecide = "decide"
	UpdateCancel = "cancel"
	// UpdateRepost posts the approval message again (RepostInput).
	UpdateRepost = "repost"
	QueryStatus  = "status"
)

// Search attributes: ids and status only, because they are not encrypted.
var (
	SAAction    = temporal.NewSearchAttributeKeyKeyword("VigilAction")
	SACustomer  = temporal.NewSearchAttributeKeyKeyword("VigilCustomer")
	SAStatus    = temporal.NewSearchAttributeKeyKeyword("VigilStatus")
	SARequester = temporal.NewSearchAttributeKeyKeyword("VigilRequester")
)

// Refusal types carried by the ApplicationError a validator returns, so that
// fronts can tell a person why without parsing messages.
const (
	RefusedSelfApproval   = "SelfApproval"
	RefusedNotSenior      = "NotSenior"
	RefusedAlreadyDecided = "AlreadyDecided"
	RefusedNotAwaiting    = "NotAwaitingApproval"
	RefusedInvalid        = "InvalidInput"
	RefusedNotRequester   = "NotRequester"
	RefusedNotCustomer    = "NotCustomer"
	RefusedAlreadyEnded   = "AlreadyEnded"
	RefusedExecuting      = "AlreadyExecuting"
	// RefusedSlack: Slack did not take a message the Update needed.
	RefusedSlack = "SlackFailed"
	// RefusedNotInGoodStanding: the workflow's own check of the agents
	// table refused the decision (change standing-checks).
	RefusedNotInGoodStanding = "NotInGoodStanding"
)

// WorkflowID is the Temporal workflow id of a request.
func WorkflowID(requestID string) string { return "vigil-request-" + requestID }

// Policy fixes a request's timings when it starts, so that a configuration
// change never alters a running request.
type Policy struct {
	ApprovalTimeout time.Duration
	CoolingPeriod   time.Duration
	// NoticeTimeout bounds how long mail may keep failing before the request
	// fails: the cooling period only starts once the notice is accepted.
	NoticeTimeout      time.Duration
	ExecuteMaxAttempts int32
	// ReminderAfter, when positive, is when the approvers are reminded.
	ReminderAfter time.Duration
}

// DefaultPolicy returns the production timings for an action.
func DefaultPolicy(a domain.Action, cooling domain.CoolingPeriods) Policy {
	return Policy{
		ApprovalTimeout:    4 * time.Hour,
		CoolingPeriod:      cooling[a],
		NoticeTimeout:      24 * time.Hour,
		ExecuteMaxAttempts: 10,
	}
}

// Input starts a request. It carries no PIN: the web front checks the PIN
// before the start and the PIN gate reads its verdict (change
// pin-verdict-before-start). PIN is only set in the inputs of requests
// started before that change, which still replay (the payload codec
// encrypts it in their history; the workflow drops it once checked); a run
// that carries one now is refused at the PIN gate.
type Input struct {
	RequestID   string
	Action      domain.Action
	CustomerID  string
	RequesterID string
	ServerID    string
	Email       string
	Reason      string
	PIN         string
	Policy      Policy
}

// String keeps the PIN out of any accidental %v.
func (in Input) String() string {
	return "Input{RequestID:" + in.RequestID + " Action:" + string(in.Action) + " CustomerID:" + in.CustomerID + " PIN:[redacted]}"
}

// DecideInput is a senior's approval or rejection. The front that calls the
// Update sets ApproverID and ApproverRole from an authenticated identity.
type DecideInput struct {
	Decision     domain.Decision
	ApproverID   string
	ApproverRole domain.Role
	Reason       string
	// BreakGlass marks a decision made outside Slack, which needs a second,
	// distinct senior and is announced to security.
	BreakGlass         bool
	SecondApproverID   string
	SecondApproverRole domain.Role
}

// CancelInput stops a request before it executes. ActorID is the customer id
// for CancelByCustomer and an agent id otherwise.
type CancelInput struct {
	By        domain.CancelParty
	ActorID   string
	ActorRole domain.Role
	Reason    string
}

// RepostInput asks for the approval message to be posted again. The front
// sets ActorID and ActorRole from an authenticated identity.
type RepostInput struct {
	ActorID   string
	ActorRole domain.Role
}

// Decision records the verdict on a request.
type Decision struct {
	Decision         domain.Decision
	ApproverID       string
	SecondApproverID string `json:",omitempty"`
	BreakGlass       bool   `json:",omitempty"`
	Reason           string
	At               time.Time
}

// Cancellation records who stopped a request.
type Cancellation struct {
	By      domain.CancelParty
	ActorID string
	Reason  string
	At      time.Time
}

// Status is what the status Query answers: never a secret.
type Status struct {
	RequestID        string
	Action           domain.Action
	CustomerID       string
	RequesterID      string
	ServerID         string
	Email            string
	Status           domain.Status
	OpenedAt         time.Time
	SlackChannel     string `json:",omitempty"`
	SlackTS          string `json:",omitempty"`
	PINVerifiedAt    time.Time
	PINFailures      int
	LockedUntil      time.Time
	ApprovalDeadline time.Time
	Decision         *Decision
	NotifiedAt       time.Time
	Recipients       int
	CoolingEndsAt    time.Time
	Cancellation     *Cancellation
	ExecutedAt       time.Time
	Reference        string
	Failure          string
	EndedAt          time.Time
}

// Result is the workflow's return value: its final status.
type Result = Status
