package panel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// SecurityEventKind is one kind of account event the panel reports.
type SecurityEventKind string

// The security events the panel reports (API.md, "Account security").
const (
	EventPasswordReset   SecurityEventKind = "password_reset" // Channel says how: email, sms, support
	EventEmailChanged    SecurityEventKind = "email_changed"  // the account's primary email changed
	Event2FAChanged      SecurityEventKind = "2fa_changed"    // 2FA enrolled, reset or disabled
	EventNewLocation     SecurityEventKind = "new_location"   // a login from a country or network not seen before
	EventPINViewed       SecurityEventKind = "pin_viewed"     // the support PIN was shown on the account page
	EventPINChanged      SecurityEventKind = "pin_changed"    // the support PIN was changed
	maxSecurityEvents                      = 200              // a full answer (this many) is refused: it may be cut
	maxEventField                          = 200              // bytes per free field
	maxCodeLen                             = 16               // a one-time code is digits, at most this long
	defaultEventLookback                   = 30 * 24 * time.Hour
)

// KnownEventKinds lists every kind, so a policy can be checked against it.
func KnownEventKinds() []SecurityEventKind {
	return []SecurityEventKind{EventPasswordReset, EventEmailChanged, Event2FAChanged, EventNewLocation, EventPINViewed, EventPINChanged}
}

// SecurityEvent is one thing that happened to the customer's account.
type SecurityEvent struct {
	Kind    SecurityEventKind `json:"kind"`
	Channel string            `json:"channel,omitempty"` // for password_reset: email, sms, support
	Detail  string            `json:"detail,omitempty"`  // e.g. the new country; shown escaped
	At      time.Time         `json:"at"`
}

// ErrTooManyEvents means the panel's answer was full, so it may have left
// events out: the account cannot be judged on it.
var ErrTooManyEvents = errors.New("too many security events to judge the account on")

// ErrNotEnrolled means the customer has no authenticator app enrolled, so no
// TOTP code can verify them.
var ErrNotEnrolled = errors.New("panel: the customer has no authenticator enrolled")

// SecurityEvents returns the customer's security events since since (zero:
// the last 30 days), oldest first. Events of a kind this client does not
// know are kept (a newer panel may report more); a malformed answer is an
// error, never an empty list, so a broken panel cannot hide a signal.
func (c *Client) SecurityEvents(ctx context.Context, customerID string, since time.Time) ([]SecurityEvent, error) {
	if err := checkID("customer id", customerID); err != nil {
		return nil, &PermanentError{Code: "invalid_query", Message: err.Error()}
	}
	if since.IsZero() {
		since = time.Now().Add(-defaultEventLookback)
	}
	path := "/v1/customers/" + url.PathEscape(customerID) + "/security-events?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339))
	op := http.MethodGet + " /v1/customers/{customer}/security-events"
	status, raw, err := c.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return nil, err
	}
	if err := answerError(op, status, raw); err != nil {
		return nil, err
	}
	var body struct {
		Events []SecurityEvent `json:"events"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Events == nil {
		return nil, &PermanentError{Status: status, Code: "bad_response", Message: "security events body is not {\"events\":[...]}", Op: op}
	}
	if len(body.Events) >= maxSecurityEvents {
		// A full page may be a cut one: 200 harmless events can push the
		// one that matters (a 2FA change) out of it. Vigil cannot tell, so
		// it refuses to judge the account on it.
		return nil, fmt.Errorf("panel: %s: %d security events, the most one answer holds: %w", op, len(body.Events), ErrTooManyEvents)
	}
	for _, e := range body.Events {
		if e.Kind == "" || e.At.IsZero() || len(e.Kind) > maxEventField || len(e.Channel) > maxEventField || len(e.Detail) > maxEventField {
			return nil, &PermanentError{Status: status, Code: "bad_response", Message: "a security event without kind or time, or with an oversized field", Op: op}
		}
	}
	return body.Events, nil
}

// VerifyTOTP asks the panel whether code is the customer's current code from
// the authenticator they enrolled. Vigil never holds the seed; the panel
// also refuses a code already used. It returns ErrNotEnrolled when the
// customer has none. The code appears in no error.
func (c *Client) VerifyTOTP(ctx context.Context, customerID, code string) (bool, error) {
	if err := checkID("customer id", customerID); err != nil {
		return false, &PermanentError{Code: "invalid_query", Message: err.Error()}
	}
	if !digits(code, maxCodeLen) {
		// Not worth a call: it cannot be a code. Counted as wrong by the caller.
		return false, nil
	}
	path := "/v1/customers/" + url.PathEscape(customerID) + "/2fa/verify"
	op := http.MethodPost + " /v1/customers/{customer}/2fa/verify"
	status, raw, err := c.do(ctx, http.MethodPost, path, "", map[string]string{"code": code})
	if err != nil {
		return false, err
	}
	if status == http.StatusNotFound {
		var e apiError
		if json.Unmarshal(raw, &e) == nil && e.Error.Code == "not_enrolled" {
			return false, ErrNotEnrolled
		}
	}
	if err := answerError(op, status, raw); err != nil {
		return false, err
	}
	var body struct {
		Valid *bool `json:"valid"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.Valid == nil {
		return false, &PermanentError{Status: status, Code: "bad_response", Message: "verify body is not {\"valid\":bool}", Op: op}
	}
	return *body.Valid, nil
}

// digits reports whether s is 1..max ASCII digits.
func digits(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
