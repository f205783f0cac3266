package activities

import (
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// OpenInput records a new request in the projection and the audit trail.
type OpenInput struct {
	RequestID   string
	WorkflowID  string
	Action      domain.Action
	CustomerID  string
	RequesterID string
	ServerID    string
	Email       string
	Reason      string
	// Policy describes the timings the request runs with, which the
	// workflow took from the worker (change policy-from-worker); Open
	// audits it as request.policy. Empty in runs from before the change.
	Policy map[string]string `json:",omitempty"`
}

// VerifyPINInput asks whether pin is the customer's support PIN: the PIN
// gate of workflows started with the PIN in their input, before change
// pin-verdict-before-start. The payload codec encrypts it in history; it
// never reaches a log.
type VerifyPINInput struct {
	RequestID  string
	CustomerID string
	PIN        string
}

// String keeps the PIN out of any accidental %v.
func (in VerifyPINInput) String() string {
	return "VerifyPINInput{RequestID:" + in.RequestID + " CustomerID:" + in.CustomerID + " PIN:[redacted]}"
}

// PINVerdictInput is the PIN gate of a workflow started without the PIN:
// the workflow's own input, which the verdict the web front recorded must
// match. The workflow and run ids come from Temporal, not from here.
type PINVerdictInput struct {
	RequestID   string
	Action      domain.Action
	CustomerID  string
	RequesterID string
	ServerID    string
	Email       string
	// PINInInput says the workflow's input carried a PIN, which the web
	// front never sends any more: the verdict is refused and voided.
	PINInInput bool
}

// PINVerdictResult is what the PIN gate read. Refused is an answer, not an
// error: the refusal is already audited, alerted and, when the request is
// this workflow's own, its row ended failed.
type PINVerdictResult struct {
	// CheckedAt is when the web front verified the PIN.
	CheckedAt time.Time
	Refused   bool
	// Reason is why it was refused (store.Verdict*): missing, mismatch,
	// voided, expired, consumed, not_verified or pin_in_input.
	Reason string `json:",omitempty"`
	// Fields are the bound fields that differ, for a mismatch.
	Fields []string `json:",omitempty"`
}

// VerifyPINResult is the PIN gate's verdict.
type VerifyPINResult struct {
	Verified bool
	// Locked means the customer's sensitive requests are locked; the PIN was
	// not checked (or this attempt was the one that locked them).
	Locked      bool
	JustLocked  bool
	LockedUntil time.Time
	Failures    int
	CheckedAt   time.Time
}

// RecordInput moves the request projection to Status and appends an audit
// event. It is idempotent per (request, event, status), so retries and replays
// write each gate once.
type RecordInput struct {
	RequestID string
	Status    domain.Status
	Event     string
	Actor     string
	Details   map[string]string

	ApproverID     string
	Decision       domain.Decision
	DecisionReason string
	DecidedAt      time.Time
	NotifiedAt     time.Time
	CoolingEndsAt  time.Time
	CancelledBy    domain.CancelParty
	CancelReason   string
	OutcomeDetail  string

	// The rest of the workflow's status, so the listing shows what a
	// status read shows. Zero values are not written.
	OpenedAt         time.Time
	EndedAt          time.Time
	PINVerifiedAt    time.Time
	PINFailures      int
	LockedUntil      time.Time
	ApprovalDeadline time.Time
	BreakGlass       bool
	SecondApproverID string
	Recipients       int
	CancelActorID    string
	CancelledAt      time.Time
	ExecutedAt       time.Time
	Reference        string
}

// FailureInput records that a request failed at a gate because one of its
// activities failed for good. It has no free-text field on purpose: the
// request's reasons may be what the database refused.
type FailureInput struct {
	RequestID string
	// Gate is where the request stopped: open, pin, approval, notice,
	// cooling or end (recording its end state).
	Gate string
	// Step is the audit event whose recording failed, if it was a Record.
	Step string
	// Cause is the class of the error (an error type such as DataError).
	Cause string
	// OutcomeDetail is the projection's one-line why, made by the workflow.
	OutcomeDetail string
}

// NotifyInput asks for the customer notice with cancel links.
type NotifyInput struct {
	RequestID     string
	Action        domain.Action
	CustomerID    string
	ServerID      string
	Email         string
	RequesterID   string
	CoolingPeriod time.Duration
	// CancelUntil, when set, is a time until which the cancel links must
	// work at least (CancelGrace is added): the latest moment the workflow
	// may still run the action, if it knows one. Zero leaves it to the
	// activity, which counts the cooling period from the notice gate's own
	// deadline (see NotifyCustomer).
	CancelUntil time.Time `json:",omitzero"`
}

// NotifyResult says the mail server accepted the notice.
type NotifyResult struct {
	Recipients int
	AcceptedAt time.Time
	RunsAt     time.Time
}

// ExecuteInput runs the action itself. RequestID is the idempotency key.
type ExecuteInput struct {
	RequestID  string
	Action     domain.Action
	CustomerID string
	ServerID   string
	Email      string
}

// ExecuteResult says the action ran; credentials never appear here.
type ExecuteResult struct {
	Reference   string
	AlreadyDone bool
}

// OutcomeInput asks for the outcome email to the customer.
type OutcomeInput struct {
	RequestID   string
	Action      domain.Action
	CustomerID  string
	ServerID    string
	Email       string
	Outcome     domain.Status
	CancelledBy domain.CancelParty
}
