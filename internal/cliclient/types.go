package cliclient

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// Agent is a support agent as the API describes it.
type Agent struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Email       string      `json:"email"`
	Team        string      `json:"team"`
	Role        domain.Role `json:"role"`
	SlackUserID string      `json:"slack_user_id"`
	// Disabled is read when the server reports it; the v1 contract does not
	// promise it.
	Disabled bool `json:"disabled,omitempty"`

	// Raw is the JSON document the server sent, for --json output.
	Raw json.RawMessage `json:"-"`
}

// IssuedToken is an agent with the token just created for it; the server
// shows the token only this once.
type IssuedToken struct {
	Agent Agent  `json:"agent"`
	Token string `json:"token,omitempty"`
	// SentTo is set instead of Token when another agent's token was
	// rotated: where the new token went ("slack_dm").
	SentTo string `json:"sent_to,omitempty"`

	Raw json.RawMessage `json:"-"`
}

// String redacts the token.
func (t IssuedToken) String() string {
	return fmt.Sprintf("{agent: %s, token: [redacted]}", t.Agent.ID)
}

// GoString redacts the token in %#v output.
func (t IssuedToken) GoString() string {
	return fmt.Sprintf("cliclient.IssuedToken{Agent: %q, Token: \"[redacted]\"}", t.Agent.ID)
}

// LogValue redacts the token in slog output.
func (t IssuedToken) LogValue() slog.Value {
	return slog.GroupValue(slog.String("agent", t.Agent.ID), slog.String("token", "[redacted]"))
}

// NewAgent is the body of POST /admin/v1/agents.
type NewAgent struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Email       string      `json:"email"`
	Team        string      `json:"team"`
	Role        domain.Role `json:"role"`
	SlackUserID string      `json:"slack_user_id"`
}

// Decision is a senior's verdict as recorded on a request. BreakGlass and
// SecondApproverID are set when it was decided outside Slack by two seniors.
type Decision struct {
	Decision         domain.Decision `json:"decision"`
	ApproverID       string          `json:"approver_id"`
	SecondApproverID string          `json:"second_approver_id,omitempty"`
	BreakGlass       bool            `json:"break_glass,omitempty"`
	Reason           string          `json:"reason"`
	At               time.Time       `json:"at,omitzero"`
}

// Cancellation records who stopped a request, and why.
type Cancellation struct {
	By      domain.CancelParty `json:"by"`
	ActorID string             `json:"actor_id"`
	Reason  string             `json:"reason"`
	At      time.Time          `json:"at,omitzero"`
}

// Recipients is how many addresses the customer notice went to. It accepts
// either a count or a list of addresses, since the contract names the field
// without fixing its shape.
type Recipients int

// UnmarshalJSON reads a number or an array (counting its elements).
func (r *Recipients) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*r = Recipients(n)
		return nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("recipients: want a number or an array")
	}
	*r = Recipients(len(list))
	return nil
}

// Request is a sensitive request as the API reports it. Times are UTC and
// zero when the server omitted them.
type Request struct {
	ID               string        `json:"id"`
	Action           domain.Action `json:"action"`
	CustomerID       string        `json:"customer_id"`
	RequesterID      string        `json:"requester_id"`
	ServerID         string        `json:"server_id,omitempty"`
	Email            string        `json:"email,omitempty"`
	Status           domain.Status `json:"status"`
	Reason           string        `json:"reason,omitempty"`
	OpenedAt         time.Time     `json:"opened_at,omitzero"`
	PINVerifiedAt    time.Time     `json:"pin_verified_at,omitzero"`
	PINFailures      int           `json:"pin_failures,omitempty"`
	LockedUntil      time.Time     `json:"locked_until,omitzero"`
	ApprovalDeadline time.Time     `json:"approval_deadline,omitzero"`
	Decision         *Decision     `json:"decision,omitempty"`
	NotifiedAt       time.Time     `json:"notified_at,omitzero"`
	Recipients       Recipients    `json:"recipients,omitempty"`
	CoolingEndsAt    time.Time     `json:"cooling_ends_at,omitzero"`
	Cancellation     *Cancellation `json:"cancellation,omitempty"`
	ExecutedAt       time.Time     `json:"executed_at,omitzero"`
	Reference        string        `json:"reference,omitempty"`
	Failure          string        `json:"failure,omitempty"`
	EndedAt          time.Time     `json:"ended_at,omitzero"`
	Final            bool          `json:"final"`

	Raw json.RawMessage `json:"-"`
}

// RequestList is the answer of GET /api/v1/requests, newest first.
type RequestList struct {
	Requests []Request `json:"requests"`

	Raw json.RawMessage `json:"-"`
}

// AgentList is the answer of GET /admin/v1/agents.
type AgentList struct {
	Agents []Agent `json:"agents"`

	Raw json.RawMessage `json:"-"`
}

// ListFilter narrows GET /api/v1/requests. Zero values mean "no filter";
// Limit 0 leaves the server's default.
type ListFilter struct {
	Mine       bool
	Open       bool
	CustomerID string
	Limit      int
}

// NewRequest opens a sensitive request. PIN is a byte slice so the caller
// can wipe it once OpenRequest returns; it is never printed.
type NewRequest struct {
	Action     domain.Action
	CustomerID string
	ServerID   string // resend_credentials, reinstall_vps
	Email      string // add_contact_email, change_account_email
	Reason     string
	PIN        []byte
	// FactorCode is the code from the customer's authenticator, sent when
	// the server asked for it (factor_required); wiped like the PIN.
	FactorCode []byte
}

// String redacts the PIN.
func (r NewRequest) String() string {
	return fmt.Sprintf("{action: %s, customer: %s, server: %s, email: %s, reason: %q, pin: [redacted]}",
		r.Action, r.CustomerID, r.ServerID, r.Email, r.Reason)
}

// GoString redacts the PIN in %#v output.
func (r NewRequest) GoString() string { return "cliclient.NewRequest" + r.String() }

// LogValue redacts the PIN in slog output.
func (r NewRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("action", string(r.Action)),
		slog.String("customer", r.CustomerID),
		slog.String("server", r.ServerID),
		slog.String("email", r.Email),
		slog.String("pin", "[redacted]"),
	)
}

// Contact is a customer's contact address in an import.
type Contact struct {
	Email      string    `json:"email"`
	AddedAt    time.Time `json:"added_at,omitzero"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
}

// Phone is a customer's phone number (E.164) in an import.
type Phone struct {
	Number     string    `json:"number"`
	AddedAt    time.Time `json:"added_at,omitzero"`
	VerifiedAt time.Time `json:"verified_at,omitzero"`
}

// Customer is the body of PUT /admin/v1/customers/{id}.
type Customer struct {
	Name         string    `json:"name"`
	PrimaryEmail string    `json:"primary_email"`
	PINHash      string    `json:"pin_hash"`
	Contacts     []Contact `json:"contacts"`
	Phones       []Phone   `json:"phones"`
	Servers      []string  `json:"servers"`
}

// String leaves the PIN hash out: it is not the PIN, but it is what an
// offline guesser would need.
func (c Customer) String() string {
	return fmt.Sprintf("{name: %q, primary_email: %s, pin_hash: [redacted], contacts: %d, phones: %d, servers: %v}",
		c.Name, c.PrimaryEmail, len(c.Contacts), len(c.Phones), c.Servers)
}

// GoString redacts the PIN hash in %#v output.
func (c Customer) GoString() string { return "cliclient.Customer" + c.String() }

// LogValue redacts the PIN hash in slog output.
func (c Customer) LogValue() slog.Value { return slog.StringValue(c.String()) }

// BreakGlassDecision is the body of POST
// /api/v1/requests/{id}/break-glass: the caller's decision and the reason
// Slack could not be used (required for both decisions). The caller is the
// consenting senior; there is no approver field.
type BreakGlassDecision struct {
	Decision domain.Decision `json:"decision"`
	Reason   string          `json:"reason"`
}

// BreakGlassConsent is a senior's recorded consent, waiting until ExpiresAt
// for a second senior's.
type BreakGlassConsent struct {
	RequestID string          `json:"request_id"`
	AgentID   string          `json:"agent_id"`
	Decision  domain.Decision `json:"decision"`
	ExpiresAt time.Time       `json:"expires_at"`
	Waiting   string          `json:"waiting_for"`
}

// BreakGlassAnswer is what a consent led to: Consent while it waits for a
// second senior, or Request once both consented and the decision was sent.
type BreakGlassAnswer struct {
	Consent *BreakGlassConsent
	Request *Request
	Raw     json.RawMessage
}
