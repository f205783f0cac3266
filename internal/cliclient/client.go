// Package cliclient is a small typed client for Vigil's HTTP API (v1), as the
// starter CLI uses it: agent endpoints with an agent token, admin endpoints
// with the admin token. Refusals come back as *Problem errors.
package cliclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultTimeout bounds one call. Opening a request waits up to ~10 s on
// the server for the PIN gate, so it is well above that.
const DefaultTimeout = 30 * time.Second

// maxResponseSize bounds a success body; the largest is a list of requests.
const maxResponseSize = 8 << 20

// Client calls one Vigil server with one bearer token.
type Client struct {
	base      string // normalized, no trailing slash
	token     string
	hc        *http.Client
	userAgent string
}

// Option adjusts a Client.
type Option func(*Client)

// WithHTTPClient makes the client use hc (a copy; redirects are still
// refused unless hc sets its own CheckRedirect).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		cp := *hc
		if cp.CheckRedirect == nil {
			cp.CheckRedirect = refuseRedirect
		}
		c.hc = &cp
	}
}

// WithTimeout bounds each call to d.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.hc.Timeout = d } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// refuseRedirect stops at the first redirect: following one would turn a
// POST into a GET, or send the token somewhere the user did not name.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// New returns a client for the server at baseURL that authenticates with
// token (an agent token or the admin token; empty sends none).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	base, err := NormalizeBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if !validToken(token) {
		// Never quote the token.
		return nil, errors.New("cliclient: the token contains spaces or characters a token cannot have")
	}
	c := &Client{
		base:      base,
		token:     token,
		hc:        &http.Client{Timeout: DefaultTimeout, CheckRedirect: refuseRedirect},
		userAgent: "vigil-starter",
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// validToken accepts printable ASCII without spaces: anything else could not
// travel in a header, and is certainly a paste error.
func validToken(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return false
		}
	}
	return true
}

// NormalizeBaseURL checks that s is an http(s) URL without credentials,
// query or fragment, and returns it without a trailing slash, so two
// spellings of one server compare equal.
func NormalizeBaseURL(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("cliclient: server address %q is not a URL", s)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("cliclient: server address %q must start with http:// or https://", s)
	case u.Host == "":
		return "", fmt.Errorf("cliclient: server address %q has no host", s)
	case u.User != nil:
		return "", errors.New("cliclient: server address must not carry a user name or password")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", fmt.Errorf("cliclient: server address %q must not have a query or fragment", s)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	return strings.TrimRight(u.String(), "/"), nil
}

// At returns a copy of c that talks to base instead, with the same
// credential: the admin API, on its own address, for a signed-in admin.
func (c *Client) At(base string) (*Client, error) {
	u, err := NormalizeBaseURL(base)
	if err != nil {
		return nil, err
	}
	cp := *c
	cp.base = u
	return &cp, nil
}

// BaseURL is the server address the client calls.
func (c *Client) BaseURL() string { return c.base }

// String redacts the token.
func (c *Client) String() string { return "cliclient.Client{" + c.base + ", token: [redacted]}" }

// GoString redacts the token in %#v output.
func (c *Client) GoString() string { return c.String() }

// LogValue redacts the token in slog output.
func (c *Client) LogValue() slog.Value { return slog.StringValue(c.String()) }

// TransportError is a call that got no usable answer from Vigil: the network
// failed, the call timed out or was cancelled, or the reply made no sense.
type TransportError struct {
	Method string
	Path   string
	Err    error
}

// Error names the call and the cause.
func (e *TransportError) Error() string {
	return fmt.Sprintf("cliclient: %s %s: %v", e.Method, e.Path, e.Err)
}

// Unwrap exposes the cause (context.Canceled, a *url.Error, ...).
func (e *TransportError) Unwrap() error { return e.Err }

// Timeout reports whether the call ran out of time.
func (e *TransportError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.Is(e.Err, context.DeadlineExceeded) || (errors.As(e.Err, &t) && t.Timeout())
}

// segment checks an id that goes into a URL path: it must stay one segment.
func segment(kind, id string) (string, error) {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\\") || !utf8.ValidString(id) {
		return "", fmt.Errorf("cliclient: %s %q is not a valid id", kind, id)
	}
	for _, r := range id {
		if r < ' ' || r == 0x7f {
			return "", fmt.Errorf("cliclient: %s contains control characters", kind)
		}
	}
	return url.PathEscape(id), nil
}

// call sends one request. body, when non-nil, is sent as JSON; out, when
// non-nil, receives the decoded 2xx answer and raw its bytes.
func (c *Client) call(ctx context.Context, method, path string, query url.Values, body []byte, out any, raw *json.RawMessage) error {
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return &TransportError{Method: method, Path: path, Err: err}
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &TransportError{Method: method, Path: path, Err: err}
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode >= 400:
		return readProblem(resp)
	case resp.StatusCode >= 300:
		return &TransportError{Method: method, Path: path, Err: fmt.Errorf(
			"the server redirected (%d) to %q; use the final address as the Vigil URL", resp.StatusCode, resp.Header.Get("Location"))}
	case resp.StatusCode < 200:
		return &TransportError{Method: method, Path: path, Err: fmt.Errorf("unexpected status %d", resp.StatusCode)}
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return &TransportError{Method: method, Path: path, Err: fmt.Errorf("read answer: %w", err)}
	}
	if len(data) > maxResponseSize {
		return &TransportError{Method: method, Path: path, Err: errors.New("answer larger than 8 MiB")}
	}
	if out == nil {
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return &TransportError{Method: method, Path: path, Err: fmt.Errorf("answer is %q, not JSON; is %s a Vigil server?", mt, c.base)}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &TransportError{Method: method, Path: path, Err: fmt.Errorf("decode answer: %w", err)}
	}
	if raw != nil {
		*raw = json.RawMessage(data)
	}
	return nil
}

// jsonBody encodes v for a request body.
func jsonBody(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only plain structs of strings reach here.
		panic(fmt.Sprintf("cliclient: encode body: %v", err))
	}
	return b
}

// Me returns the agent the token belongs to (GET /api/v1/me).
func (c *Client) Me(ctx context.Context) (Agent, error) {
	var a Agent
	err := c.call(ctx, http.MethodGet, "/api/v1/me", nil, nil, &a, &a.Raw)
	return a, err
}

// OpenRequest opens a sensitive request (POST /api/v1/requests). The server
// waits for the PIN gate, so the answer's status is usually already
// awaiting_approval, pin_rejected or locked. The encoded body, which holds
// the PIN, is wiped once the call returns; the caller wipes r.PIN.
func (c *Client) OpenRequest(ctx context.Context, r NewRequest) (Request, error) {
	if err := checkPIN(r.PIN); err != nil {
		return Request{}, err
	}
	if r.FactorCode != nil && !validCode(r.FactorCode) {
		return Request{}, ErrBadFactorCode
	}
	body := encodeNewRequest(r)
	defer clear(body)
	var out Request
	err := c.call(ctx, http.MethodPost, "/api/v1/requests", nil, body, &out, &out.Raw)
	return out, err
}

// ErrBadPIN is returned, before anything is sent, for a PIN that is empty,
// longer than 128 bytes, or holds control characters or invalid UTF-8.
var ErrBadPIN = errors.New("cliclient: the PIN must be 1 to 128 printable characters")

// ErrBadFactorCode is returned, before anything is sent, for an
// authenticator code that is not 6 to 10 digits.
var ErrBadFactorCode = errors.New("cliclient: the code from the authenticator app is 6 to 10 digits")

// CodeFactorRequired is the problem code of an open that needs the code
// from the customer's authenticator besides the PIN.
const CodeFactorRequired = "factor_required"

func validCode(code []byte) bool {
	if len(code) < 6 || len(code) > 10 {
		return false
	}
	for _, b := range code {
		if b < '0' || b > '9' {
			return false
		}
	}
	return true
}

func checkPIN(pin []byte) error {
	if len(pin) == 0 || len(pin) > 128 || !utf8.Valid(pin) {
		return ErrBadPIN
	}
	for _, b := range pin {
		if b < ' ' || b == 0x7f {
			return ErrBadPIN
		}
	}
	return nil
}

// encodeNewRequest builds the JSON body by hand around the PIN, so the PIN
// is never turned into an immutable string that could not be wiped.
func encodeNewRequest(r NewRequest) []byte {
	type fields struct {
		Action     string `json:"action"`
		CustomerID string `json:"customer_id"`
		ServerID   string `json:"server_id,omitempty"`
		Email      string `json:"email,omitempty"`
		Reason     string `json:"reason"`
	}
	head := jsonBody(fields{string(r.Action), r.CustomerID, r.ServerID, r.Email, r.Reason})
	// Room for everything, so the buffer holding the PIN never grows
	// (a grown buffer would leave a copy behind that no one wipes).
	buf := make([]byte, 0, len(head)+len(r.PIN)*6+len(r.FactorCode)+32)
	buf = append(buf, head[:len(head)-1]...) // drop the closing brace
	buf = append(buf, `,"pin":"`...)
	buf = appendJSONStringBody(buf, r.PIN)
	if r.FactorCode != nil {
		// Digits only (validCode): nothing to escape.
		buf = append(buf, `","factor_code":"`...)
		buf = append(buf, r.FactorCode...)
	}
	buf = append(buf, `"}`...)
	return buf
}

// appendJSONStringBody appends s escaped for the inside of a JSON string.
// s is valid UTF-8 without control characters (checkPIN), so only quote and
// backslash need escaping; < > & are escaped as encoding/json does.
func appendJSONStringBody(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	for _, b := range s {
		switch b {
		case '"', '\\':
			dst = append(dst, '\\', b)
		case '<', '>', '&':
			dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xf])
		default:
			dst = append(dst, b)
		}
	}
	return dst
}

// ListRequests lists requests newest first (GET /api/v1/requests).
func (c *Client) ListRequests(ctx context.Context, f ListFilter) (RequestList, error) {
	q := url.Values{}
	if f.Mine {
		q.Set("mine", "true")
	}
	if f.Open {
		q.Set("open", "true")
	}
	if f.CustomerID != "" {
		q.Set("customer", f.CustomerID)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out RequestList
	err := c.call(ctx, http.MethodGet, "/api/v1/requests", q, nil, &out, &out.Raw)
	return out, err
}

// GetRequest returns a request's live status (GET /api/v1/requests/{id}).
func (c *Client) GetRequest(ctx context.Context, id string) (Request, error) {
	seg, err := segment("request id", id)
	if err != nil {
		return Request{}, err
	}
	var out Request
	err = c.call(ctx, http.MethodGet, "/api/v1/requests/"+seg, nil, nil, &out, &out.Raw)
	return out, aboutRequest(err, id)
}

// Withdraw cancels the caller's own request.
func (c *Client) Withdraw(ctx context.Context, id, reason string) (Request, error) {
	return c.cancel(ctx, id, "withdraw", reason)
}

// Veto cancels someone's request; the caller must be a senior.
func (c *Client) Veto(ctx context.Context, id, reason string) (Request, error) {
	return c.cancel(ctx, id, "veto", reason)
}

func (c *Client) cancel(ctx context.Context, id, verb, reason string) (Request, error) {
	seg, err := segment("request id", id)
	if err != nil {
		return Request{}, err
	}
	var out Request
	err = c.call(ctx, http.MethodPost, "/api/v1/requests/"+seg+"/"+verb, nil,
		jsonBody(struct {
			Reason string `json:"reason"`
		}{reason}), &out, &out.Raw)
	return out, aboutRequest(err, id)
}

// CreateAgent creates an agent and its first token (admin).
func (c *Client) CreateAgent(ctx context.Context, a NewAgent) (IssuedToken, error) {
	var out IssuedToken
	err := c.call(ctx, http.MethodPost, "/admin/v1/agents", nil, jsonBody(a), &out, &out.Raw)
	return out, err
}

// SetRole changes an agent's role (admin).
func (c *Client) SetRole(ctx context.Context, id string, role string) (Agent, error) {
	seg, err := segment("agent id", id)
	if err != nil {
		return Agent{}, err
	}
	var out Agent
	err = c.call(ctx, http.MethodPatch, "/admin/v1/agents/"+seg, nil,
		jsonBody(struct {
			Role string `json:"role"`
		}{role}), &out, &out.Raw)
	return out, err
}

// DisableAgent disables an agent; its token stops working at once (admin).
func (c *Client) DisableAgent(ctx context.Context, id string) (Agent, error) {
	seg, err := segment("agent id", id)
	if err != nil {
		return Agent{}, err
	}
	var out Agent
	err = c.call(ctx, http.MethodPost, "/admin/v1/agents/"+seg+"/disable", nil, nil, &out, &out.Raw)
	return out, err
}

// RotateToken issues a new token for an agent, replacing the old (admin).
func (c *Client) RotateToken(ctx context.Context, id string) (IssuedToken, error) {
	seg, err := segment("agent id", id)
	if err != nil {
		return IssuedToken{}, err
	}
	var out IssuedToken
	err = c.call(ctx, http.MethodPost, "/admin/v1/agents/"+seg+"/token", nil, nil, &out, &out.Raw)
	return out, err
}

// ListAgents lists every agent (admin).
func (c *Client) ListAgents(ctx context.Context) (AgentList, error) {
	var out AgentList
	err := c.call(ctx, http.MethodGet, "/admin/v1/agents", nil, nil, &out, &out.Raw)
	return out, err
}

// PutCustomer creates or replaces a customer record (admin import).
func (c *Client) PutCustomer(ctx context.Context, id string, cust Customer) error {
	seg, err := segment("customer id", id)
	if err != nil {
		return err
	}
	if cust.Contacts == nil {
		cust.Contacts = []Contact{}
	}
	if cust.Phones == nil {
		cust.Phones = []Phone{}
	}
	if cust.Servers == nil {
		cust.Servers = []string{}
	}
	return c.call(ctx, http.MethodPut, "/admin/v1/customers/"+seg, nil, jsonBody(cust), nil, nil)
}

// BreakGlass records the caller's consent to decide a request outside Slack
// (POST /api/v1/requests/{id}/break-glass, seniors). The first senior's
// consent waits for a second senior's to the same decision (the answer's
// Consent); the second one's sends the decision naming both (its Request).
func (c *Client) BreakGlass(ctx context.Context, id string, d BreakGlassDecision) (BreakGlassAnswer, error) {
	seg, err := segment("request id", id)
	if err != nil {
		return BreakGlassAnswer{}, err
	}
	var out BreakGlassAnswer
	var fields map[string]json.RawMessage
	if err := c.call(ctx, http.MethodPost, "/api/v1/requests/"+seg+"/break-glass", nil, jsonBody(d), &fields, &out.Raw); err != nil {
		return out, aboutRequest(err, id)
	}
	if _, waiting := fields["waiting_for"]; waiting {
		out.Consent = &BreakGlassConsent{}
		err = json.Unmarshal(out.Raw, out.Consent)
	} else {
		out.Request = &Request{Raw: out.Raw}
		err = json.Unmarshal(out.Raw, out.Request)
	}
	if err != nil {
		return out, &TransportError{Method: http.MethodPost, Path: "/api/v1/requests/" + seg + "/break-glass", Err: fmt.Errorf("decode answer: %w", err)}
	}
	return out, nil
}

// Reposted says where a request's approval message is after a repost.
type Reposted struct {
	RequestID string `json:"request_id"`
	Channel   string `json:"channel"`
	TS        string `json:"ts"`

	Raw json.RawMessage `json:"-"`
}

// Repost has a request's approval message posted again (the requester or a
// senior, while it waits for approval).
func (c *Client) Repost(ctx context.Context, id string) (Reposted, error) {
	seg, err := segment("request id", id)
	if err != nil {
		return Reposted{}, err
	}
	var out Reposted
	err = c.call(ctx, http.MethodPost, "/api/v1/requests/"+seg+"/repost", nil, jsonBody(struct{}{}), &out, &out.Raw)
	return out, aboutRequest(err, id)
}
