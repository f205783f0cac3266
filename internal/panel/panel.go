// Package panel executes approved actions by calling the hosting control
// panel's HTTP API (see API.md), once per idempotency key.
package panel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-oss/vigil/internal/action"
	"github.com/vigil-oss/vigil/internal/domain"
)

const (
	maxResponseBytes = 64 << 10
	maxKeyLen        = 255
	maxIDLen         = 200
	maxErrorMessage  = 200
)

// Job is one approved action to run on the panel.
type Job struct {
	IdempotencyKey string // the same key for every attempt of one request's execution
	Action         domain.Action
	CustomerID     string
	ServerID       string // for resend_credentials and reinstall_vps
	Email          string // for add_contact_email and change_account_email
}

// Credentials are a server's login details. Every formatting path redacts them.
type Credentials struct {
	Username string
	Password string
}

// String keeps the credentials out of %v and %s.
func (Credentials) String() string { return "panel.Credentials{[redacted]}" }

// GoString keeps the credentials out of %#v.
func (c Credentials) GoString() string { return c.String() }

// LogValue keeps the credentials out of slog output.
func (Credentials) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// MarshalJSON redacts, so credentials cannot reach a Temporal payload or a
// JSON log by accident; the executing activity must use the fields directly.
func (Credentials) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// Result is what the panel answered for a performed (or replayed) action.
type Result struct {
	Reference   string       // the panel's id for the operation, for the audit trail
	Credentials *Credentials // set only for resend_credentials
}

// Executor runs a Job on the hosting control panel.
type Executor interface {
	Execute(ctx context.Context, j Job) (Result, error)
}

// PermanentError means the panel refused the job in a way retrying cannot fix:
// a 4xx other than 408/409/425/429, an invalid job, or a malformed success.
type PermanentError struct {
	Status  int    // HTTP status; 0 when the job was refused before any call
	Code    string // the panel's error code, or our own for local refusals
	Message string // the panel's message, truncated
	Op      string // method and path of the call
}

// Error names the call, status, code and the panel's message (never the token).
func (e *PermanentError) Error() string {
	var b strings.Builder
	b.WriteString("panel: ")
	if e.Op != "" {
		b.WriteString(e.Op + ": ")
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, "status %d ", e.Status)
	}
	fmt.Fprintf(&b, "(%s)", e.Code)
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// IsPermanent reports whether err (or anything it wraps) is a PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// Client calls the panel API with a bearer token.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

var _ Executor = (*Client)(nil)

// NewClient checks baseURL (absolute http(s), no credentials, query or
// fragment) and token. hc nil means a client with a 30-second timeout.
func NewClient(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, errors.New("panel: base URL does not parse")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("panel: base URL must be absolute http(s), got scheme %q host %q", u.Scheme, u.Host)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("panel: base URL must not carry credentials, a query or a fragment")
	}
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return nil, errors.New("panel: token must be non-empty and contain no whitespace")
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return &Client{base: u, token: token, hc: hc}, nil
}

// String describes the client without its token.
func (c *Client) String() string { return "panel.Client{" + c.base.String() + ", token:[redacted]}" }

// GoString keeps the token out of %#v.
func (c *Client) GoString() string { return c.String() }

// call is one HTTP request derived from a Job.
type call struct {
	method string
	path   string // escaped
	body   any
}

func route(j Job) (call, error) {
	sp, ok := action.Lookup(j.Action)
	if !ok {
		return call{}, fmt.Errorf("unknown action %q", j.Action)
	}
	path := strings.NewReplacer("{customer}", url.PathEscape(j.CustomerID), "{server}", url.PathEscape(j.ServerID)).Replace(sp.PanelPath)
	c := call{method: sp.PanelMethod, path: path}
	if sp.BodyEmail {
		c.body = map[string]string{"email": j.Email}
	}
	return c, nil
}

func validate(j Job) error {
	if j.IdempotencyKey == "" || len(j.IdempotencyKey) > maxKeyLen {
		return fmt.Errorf("idempotency key must be 1..%d characters", maxKeyLen)
	}
	for i := 0; i < len(j.IdempotencyKey); i++ {
		if c := j.IdempotencyKey[i]; c <= ' ' || c > '~' {
			return errors.New("idempotency key must be printable ASCII without spaces")
		}
	}
	if _, err := domain.ParseAction(string(j.Action)); err != nil {
		return err
	}
	if err := checkID("customer id", j.CustomerID); err != nil {
		return err
	}
	if j.Action.NeedsServer() {
		if err := checkID("server id", j.ServerID); err != nil {
			return err
		}
	}
	if j.Action.NeedsEmail() {
		a, err := mail.ParseAddress(j.Email)
		if err != nil || a.Address != j.Email {
			return errors.New("email must be a plain address")
		}
	}
	return nil
}

func checkID(name, v string) error {
	if v == "" || len(v) > maxIDLen {
		return fmt.Errorf("%s must be 1..%d characters", name, maxIDLen)
	}
	if v == "." || v == ".." {
		return fmt.Errorf("%s may not be a dot segment", name)
	}
	for _, r := range v {
		if r < ' ' || r == 0x7f {
			return fmt.Errorf("%s contains a control character", name)
		}
	}
	return nil
}

// apiResponse is the success body; username and password only for credentials.
type apiResponse struct {
	Reference string `json:"reference"`
	Username  string `json:"username"`
	Password  string `json:"password"`
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Execute performs j on the panel. A repeated call with the same key returns
// the panel's first answer without acting again.
func (c *Client) Execute(ctx context.Context, j Job) (Result, error) {
	if err := validate(j); err != nil {
		return Result{}, &PermanentError{Code: "invalid_job", Message: err.Error()}
	}
	cl, err := route(j)
	if err != nil {
		return Result{}, &PermanentError{Code: "invalid_job", Message: err.Error()}
	}
	op := cl.method + " " + cl.path
	status, raw, err := c.do(ctx, cl.method, cl.path, j.IdempotencyKey, cl.body)
	if err != nil {
		return Result{}, err
	}
	if err := answerError(op, status, raw); err != nil {
		return Result{}, err
	}
	var ok apiResponse
	if err := json.Unmarshal(raw, &ok); err != nil {
		// A replay would return the same body, so retrying cannot help.
		return Result{}, &PermanentError{Status: status, Code: "bad_response", Message: "success body is not the expected JSON", Op: op}
	}
	if ok.Reference == "" {
		return Result{}, &PermanentError{Status: status, Code: "bad_response", Message: "success without a reference", Op: op}
	}
	res := Result{Reference: ok.Reference}
	if j.Action == domain.ActionResendCredentials {
		if ok.Username == "" || ok.Password == "" {
			return Result{}, &PermanentError{Status: status, Code: "bad_response", Message: "credentials response without username or password", Op: op}
		}
		res.Credentials = &Credentials{Username: ok.Username, Password: ok.Password}
	}
	return res, nil
}

// do sends one call (path escaped, with an optional encoded "?query"; body
// JSON-encoded when not nil; key as the Idempotency-Key when not empty) and
// returns the status and body.
func (c *Client) do(ctx context.Context, method, path, key string, body any) (int, []byte, error) {
	path, query, _ := strings.Cut(path, "?")
	op := method + " " + path
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("panel: %s: encode body: %w", op, err)
		}
		rd = bytes.NewReader(b)
	}
	u := *c.base
	u.Path = c.base.Path + mustUnescape(path)
	u.RawPath = c.base.EscapedPath() + path
	u.RawQuery = query
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, nil, fmt.Errorf("panel: %s: build request: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("panel: %s: %w", op, unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return 0, nil, fmt.Errorf("panel: %s: read response: %w", op, err)
	}
	if len(raw) > maxResponseBytes {
		return 0, nil, fmt.Errorf("panel: %s: response larger than %d bytes", op, maxResponseBytes)
	}
	return resp.StatusCode, raw, nil
}

// answerError is the error a non-2xx answer to op means: a *PermanentError
// for a request the panel will never accept, a plain (retryable) error
// otherwise; nil for a 2xx.
func answerError(op string, status int, raw []byte) error {
	if status >= 200 && status <= 299 {
		return nil
	}
	var e apiError
	_ = json.Unmarshal(raw, &e)
	code, msg := e.Error.Code, truncate(e.Error.Message)
	if code == "" {
		code = "http_" + fmt.Sprint(status)
	}
	if permanentStatus(status) {
		return &PermanentError{Status: status, Code: code, Message: msg, Op: op}
	}
	return fmt.Errorf("panel: %s: status %d (%s): %s", op, status, code, msg)
}

// permanentStatus: 4xx means the request itself is wrong, except the ones
// that describe a passing condition (timeout, conflict in flight, too early, rate limit).
func permanentStatus(status int) bool {
	if status < 400 || status > 499 {
		return false
	}
	switch status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return true
}

func truncate(s string) string {
	if len(s) <= maxErrorMessage {
		return s
	}
	return s[:maxErrorMessage] + "…"
}

func mustUnescape(p string) string {
	s, err := url.PathUnescape(p)
	if err != nil {
		return p // PathEscape output always unescapes; keep going with the escaped form
	}
	return s
}

// unwrapURLError drops *url.Error's "Method URL:" prefix: op already names the call.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
