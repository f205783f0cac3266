package api

import (
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/workflows"
)

// Request is the JSON form of a sensitive request. Times are RFC 3339 UTC and
// left out when unknown; Reason is only filled in listings.
type Request struct {
	ID               string        `json:"id"`
	Action           domain.Action `json:"action"`
	CustomerID       string        `json:"customer_id"`
	RequesterID      string        `json:"requester_id"`
	ServerID         string        `json:"server_id,omitempty"`
	Email            string        `json:"email,omitempty"`
	Status           domain.Status `json:"status"`
	Reason           string        `json:"reason,omitempty"`
	OpenedAt         *time.Time    `json:"opened_at,omitempty"`
	PINVerifiedAt    *time.Time    `json:"pin_verified_at,omitempty"`
	PINFailures      int           `json:"pin_failures"`
	LockedUntil      *time.Time    `json:"locked_until,omitempty"`
	ApprovalDeadline *time.Time    `json:"approval_deadline,omitempty"`
	Decision         *Decision     `json:"decision,omitempty"`
	NotifiedAt       *time.Time    `json:"notified_at,omitempty"`
	Recipients       int           `json:"recipients"`
	CoolingEndsAt    *time.Time    `json:"cooling_ends_at,omitempty"`
	Cancellation     *Cancellation `json:"cancellation,omitempty"`
	ExecutedAt       *time.Time    `json:"executed_at,omitempty"`
	Reference        string        `json:"reference,omitempty"`
	Failure          string        `json:"failure,omitempty"`
	EndedAt          *time.Time    `json:"ended_at,omitempty"`
	Final            bool          `json:"final"`
}

// Decision is a senior's verdict in JSON. BreakGlass and SecondApproverID
// are set only on a decision made through the break-glass path.
type Decision struct {
	Decision         domain.Decision `json:"decision"`
	ApproverID       string          `json:"approver_id"`
	SecondApproverID string          `json:"second_approver_id,omitempty"`
	BreakGlass       bool            `json:"break_glass,omitempty"`
	Reason           string          `json:"reason,omitempty"`
	At               *time.Time      `json:"at,omitempty"`
}

// Cancellation says who stopped a request, in JSON.
type Cancellation struct {
	By      domain.CancelParty `json:"by"`
	ActorID string             `json:"actor_id,omitempty"`
	Reason  string             `json:"reason,omitempty"`
	At      *time.Time         `json:"at,omitempty"`
}

// Me is the authenticated agent as GET /api/v1/me shows it.
type Me struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Email       string      `json:"email"`
	Team        string      `json:"team"`
	Role        domain.Role `json:"role"`
	SlackUserID string      `json:"slack_user_id"`
}

// Agent is an agent record as the admin API shows it. It never holds the
// token or its hash.
type Agent struct {
	ID          string      `json:"id"`
	Name        string      `json:"name"`
	Email       string      `json:"email"`
	Team        string      `json:"team"`
	Role        domain.Role `json:"role"`
	SlackUserID string      `json:"slack_user_id"`
	Disabled    bool        `json:"disabled"`
	CreatedAt   *time.Time  `json:"created_at,omitempty"`
}

// AgentWithToken answers agent creation and token rotation. Token is set
// only for a new agent and for a caller's own token; rotating another
// agent's token leaves it empty and SentTo says where it went instead.
type AgentWithToken struct {
	Agent  Agent  `json:"agent"`
	Token  string `json:"token,omitempty"`
	SentTo string `json:"sent_to,omitempty"`
}

// Customer is an imported customer as the admin API shows it, without the
// PIN hash.
type Customer struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	PrimaryEmail string `json:"primary_email"`
	// PrimaryEmailSince is when the primary became the primary: it gets
	// notices once that is longer ago than VIGIL_ESTABLISHED_AFTER. Left
	// out for a primary imported with the customer (established at once).
	PrimaryEmailSince *time.Time `json:"primary_email_since,omitempty"`
	Contacts          []Contact  `json:"contacts"`
	Phones            []Phone    `json:"phones"`
	Servers           []string   `json:"servers"`
}

// Phone is a phone number of a customer, as the admin imported it.
type Phone struct {
	Number     string     `json:"number"`
	AddedAt    *time.Time `json:"added_at,omitempty"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
}

// Contact is an extra address of a customer.
type Contact struct {
	Email      string     `json:"email"`
	AddedAt    *time.Time `json:"added_at,omitempty"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
}

// ts returns a UTC copy of t to the microsecond, or nil for the zero time.
// Postgres keeps microseconds, so a listing and a status read give the
// same time.
func ts(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC().Round(time.Microsecond)
	return &u
}

// tsp is ts for a pointer.
func tsp(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	return ts(*t)
}

// RequestFromStatus renders the workflow's live status, as GET /requests/{id} answers it.
func RequestFromStatus(s workflows.Status) Request {
	out := Request{
		ID: s.RequestID, Action: s.Action, CustomerID: s.CustomerID, RequesterID: s.RequesterID,
		ServerID: s.ServerID, Email: s.Email, Status: s.Status,
		OpenedAt: ts(s.OpenedAt), PINVerifiedAt: ts(s.PINVerifiedAt), PINFailures: s.PINFailures,
		LockedUntil: ts(s.LockedUntil), ApprovalDeadline: ts(s.ApprovalDeadline),
		NotifiedAt: ts(s.NotifiedAt), Recipients: s.Recipients, CoolingEndsAt: ts(s.CoolingEndsAt),
		ExecutedAt: ts(s.ExecutedAt), Reference: s.Reference, Failure: s.Failure,
		EndedAt: ts(s.EndedAt), Final: s.Status.Final(),
	}
	if d := s.Decision; d != nil {
		out.Decision = &Decision{Decision: d.Decision, ApproverID: d.ApproverID, SecondApproverID: d.SecondApproverID,
			BreakGlass: d.BreakGlass, Reason: d.Reason, At: ts(d.At)}
	}
	if c := s.Cancellation; c != nil {
		out.Cancellation = &Cancellation{By: c.By, ActorID: c.ActorID, Reason: c.Reason, At: ts(c.At)}
	}
	return out
}

// RequestFromRow renders the Postgres projection, as GET /requests lists it. The
// projection keeps every field of the workflow's status, so a listing and
// a status read answer alike (issue 14); Reason is the one field only the
// listing has.
func RequestFromRow(r store.Request) Request {
	out := Request{
		ID: r.ID, Action: r.Action, CustomerID: r.CustomerID, RequesterID: r.RequesterID,
		ServerID: r.ServerID, Email: r.Email, Status: r.Status, Reason: r.Reason,
		OpenedAt: ts(r.OpenedAt), PINVerifiedAt: tsp(r.PINVerifiedAt), PINFailures: r.PINFailures,
		LockedUntil: tsp(r.LockedUntil), ApprovalDeadline: tsp(r.ApprovalDeadline),
		NotifiedAt: tsp(r.NotifiedAt), Recipients: r.Recipients, CoolingEndsAt: tsp(r.CoolingEndsAt),
		ExecutedAt: tsp(r.ExecutedAt), Reference: r.Reference,
		EndedAt: tsp(r.EndedAt), Final: r.Status.Final(),
	}
	if r.Decision != "" {
		out.Decision = &Decision{Decision: domain.Decision(r.Decision), ApproverID: r.ApproverID,
			SecondApproverID: r.SecondApproverID, BreakGlass: r.BreakGlass, Reason: r.DecisionReason, At: tsp(r.DecidedAt)}
	}
	if r.CancelledBy != "" {
		out.Cancellation = &Cancellation{By: domain.CancelParty(r.CancelledBy), ActorID: r.CancelActorID,
			Reason: r.CancelReason, At: tsp(r.CancelledAt)}
	}
	if r.Status == domain.StatusFailed {
		out.Failure = r.OutcomeDetail
	}
	return out
}

func meFromAgent(a store.Agent) Me {
	return Me{ID: a.ID, Name: a.Name, Email: a.Email, Team: a.Team, Role: a.Role, SlackUserID: a.SlackUserID}
}

func agentFromStore(a store.Agent) Agent {
	return Agent{ID: a.ID, Name: a.Name, Email: a.Email, Team: a.Team, Role: a.Role,
		SlackUserID: a.SlackUserID, Disabled: a.Disabled, CreatedAt: ts(a.CreatedAt)}
}

func customerFromStore(c store.Customer) Customer {
	out := Customer{ID: c.ID, Name: c.Name, PrimaryEmail: c.PrimaryEmail, Contacts: []Contact{}, Phones: []Phone{}, Servers: []string{}}
	if c.PrimaryEmailSince.After(time.Unix(0, 0)) {
		out.PrimaryEmailSince = ts(c.PrimaryEmailSince)
	}
	for _, ct := range c.Contacts {
		out.Contacts = append(out.Contacts, Contact{Email: ct.Email, AddedAt: ts(ct.AddedAt), VerifiedAt: tsp(ct.VerifiedAt)})
	}
	for _, p := range c.Phones {
		out.Phones = append(out.Phones, Phone{Number: p.Number, AddedAt: ts(p.AddedAt), VerifiedAt: tsp(p.VerifiedAt)})
	}
	out.Servers = append(out.Servers, c.Servers...)
	return out
}

// BreakGlassConsent is one senior's recorded consent, waiting for a second.
type BreakGlassConsent struct {
	RequestID string          `json:"request_id"`
	AgentID   string          `json:"agent_id"`
	Decision  domain.Decision `json:"decision"`
	ExpiresAt time.Time       `json:"expires_at"`
	Waiting   string          `json:"waiting_for"`
}

func consentFromStore(c store.BreakGlassConsent) BreakGlassConsent {
	return BreakGlassConsent{RequestID: c.RequestID, AgentID: c.AgentID, Decision: c.Decision,
		ExpiresAt: c.ExpiresAt.UTC(), Waiting: "a second senior's consent to the same decision"}
}
