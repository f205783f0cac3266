package cliclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// AuditEvent is one entry of the audit trail as the API reports it.
type AuditEvent struct {
	ID        int64          `json:"id"`
	RequestID string         `json:"request_id,omitempty"`
	At        time.Time      `json:"at"`
	Actor     string         `json:"actor"`
	Event     string         `json:"event"`
	Details   map[string]any `json:"details"`

	// Raw is the event exactly as the server sent it, for JSON lines.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the event and keeps its bytes in Raw.
func (e *AuditEvent) UnmarshalJSON(b []byte) error {
	type plain AuditEvent // without this method
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*e = AuditEvent(p)
	e.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// AuditTrail is the answer of GET /api/v1/requests/{id}/audit.
type AuditTrail struct {
	RequestID string       `json:"request_id"`
	Events    []AuditEvent `json:"events"`

	Raw json.RawMessage `json:"-"`
}

// AuditPage is one page of GET /api/v1/audit; NextAfter is set when more
// may follow.
type AuditPage struct {
	Events    []AuditEvent `json:"events"`
	NextAfter *int64       `json:"next_after,omitempty"`
}

// AuditFilter narrows GET /api/v1/audit. Zero values mean "no filter";
// Limit 0 leaves the server's page size.
type AuditFilter struct {
	Since, Until time.Time
	CustomerID   string
	AgentID      string
	Event        string // a name, or a prefix ending in ".*"
	After        int64  // start after this event id
	Limit        int    // page size
}

func (f AuditFilter) query() url.Values {
	q := url.Values{}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	for k, v := range map[string]string{"customer": f.CustomerID, "agent": f.AgentID, "event": f.Event} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.After > 0 {
		q.Set("after", strconv.FormatInt(f.After, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// RequestAudit returns one request's audit trail, in order (GET
// /api/v1/requests/{id}/audit).
func (c *Client) RequestAudit(ctx context.Context, id string) (AuditTrail, error) {
	seg, err := segment("request id", id)
	if err != nil {
		return AuditTrail{}, err
	}
	var out AuditTrail
	err = c.call(ctx, http.MethodGet, "/api/v1/requests/"+seg+"/audit", nil, nil, &out, &out.Raw)
	return out, aboutRequest(err, id)
}

// AuditPage returns one page of the filtered audit export (GET
// /api/v1/audit; seniors).
func (c *Client) AuditPage(ctx context.Context, f AuditFilter) (AuditPage, error) {
	var out AuditPage
	err := c.call(ctx, http.MethodGet, "/api/v1/audit", f.query(), nil, &out, nil)
	return out, err
}

// EachAuditEvent pages through the filtered export from f.After on,
// calling fn for every event in order, until the last page or fn's error.
func (c *Client) EachAuditEvent(ctx context.Context, f AuditFilter, fn func(AuditEvent) error) error {
	for {
		page, err := c.AuditPage(ctx, f)
		if err != nil {
			return err
		}
		for _, e := range page.Events {
			if err := fn(e); err != nil {
				return err
			}
		}
		if page.NextAfter == nil {
			return nil
		}
		// The export is in transaction order, not id order (a later page may
		// hold a smaller id), so only a cursor that does not move is wrong.
		if *page.NextAfter == f.After {
			// A server that does not move forward would page for ever.
			return &TransportError{Method: http.MethodGet, Path: "/api/v1/audit",
				Err: fmt.Errorf("the next page starts after event %d again", f.After)}
		}
		f.After = *page.NextAfter
	}
}

// CustomerView is a customer as GET /api/v1/customers/{id} shows it to
// agents, without the PIN hash.
type CustomerView struct {
	ID                      string        `json:"id"`
	Name                    string        `json:"name"`
	PrimaryEmail            string        `json:"primary_email"`
	PrimaryEmailSince       time.Time     `json:"primary_email_since,omitzero"`
	PrimaryEstablished      bool          `json:"primary_established"`
	ImportedAt              time.Time     `json:"imported_at,omitzero"`
	Contacts                []ContactView `json:"contacts"`
	Phones                  []PhoneView   `json:"phones"`
	Servers                 []string      `json:"servers"`
	EstablishedAfterSeconds int64         `json:"established_after_seconds"`
	Lock                    LockView      `json:"lock"`

	Raw json.RawMessage `json:"-"`
}

// ContactView is a contact address and whether a notice would go to it now.
type ContactView struct {
	Email       string    `json:"email"`
	AddedAt     time.Time `json:"added_at,omitzero"`
	VerifiedAt  time.Time `json:"verified_at,omitzero"`
	Established bool      `json:"established"`
}

// PhoneView is a masked phone number and whether it is established for SMS
// notices.
type PhoneView struct {
	Masked      string    `json:"masked"`
	AddedAt     time.Time `json:"added_at,omitzero"`
	VerifiedAt  time.Time `json:"verified_at,omitzero"`
	Established bool      `json:"established"`
}

// LockView is a customer's PIN lockout as it stands.
type LockView struct {
	Locked         bool      `json:"locked"`
	LockedUntil    time.Time `json:"locked_until,omitzero"`
	RecentFailures int       `json:"recent_failures"`
	FirstFailureAt time.Time `json:"first_failure_at,omitzero"`
	MaxFailures    int       `json:"max_failures"`
	WindowSeconds  int64     `json:"window_seconds"`
}

// ShowCustomer returns a customer (GET /api/v1/customers/{id}).
func (c *Client) ShowCustomer(ctx context.Context, id string) (CustomerView, error) {
	seg, err := segment("customer id", id)
	if err != nil {
		return CustomerView{}, err
	}
	var out CustomerView
	err = c.call(ctx, http.MethodGet, "/api/v1/customers/"+seg, nil, nil, &out, &out.Raw)
	return out, err
}

// Unlocked is the answer of an unlock: the customer now, and what was lifted.
type Unlocked struct {
	Customer        CustomerView `json:"customer"`
	WasLockedUntil  time.Time    `json:"was_locked_until"`
	ClearedFailures int          `json:"cleared_failures"`

	Raw json.RawMessage `json:"-"`
}

// UnlockCustomer lifts a customer's PIN lockout (security role only).
func (c *Client) UnlockCustomer(ctx context.Context, id, reason string) (Unlocked, error) {
	seg, err := segment("customer id", id)
	if err != nil {
		return Unlocked{}, err
	}
	var out Unlocked
	err = c.call(ctx, http.MethodPost, "/api/v1/customers/"+seg+"/unlock", nil,
		jsonBody(struct {
			Reason string `json:"reason"`
		}{reason}), &out, &out.Raw)
	return out, err
}
