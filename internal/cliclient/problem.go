package cliclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Problem is an RFC 9457 problem response from Vigil: the server understood
// the call and said no (4xx) or failed (5xx).
type Problem struct {
	Type      string `json:"type,omitempty"`
	Title     string `json:"title,omitempty"`
	Status    int    `json:"status,omitempty"`
	Detail    string `json:"detail,omitempty"`
	Code      string `json:"code,omitempty"`
	RequestID string `json:"request_id,omitempty"`

	// RetryAfter is the server's Retry-After, when it sent one (429, 503).
	RetryAfter time.Duration `json:"-"`
	// Raw is the problem document as the server sent it, or nil when the
	// server answered an error without one and the Problem was built here.
	Raw json.RawMessage `json:"-"`
}

// Error gives the code, the status and the server's words.
func (p *Problem) Error() string {
	code := p.Code
	if code == "" {
		code = "http_" + strconv.Itoa(p.Status)
	}
	msg := p.Detail
	if msg == "" {
		msg = p.Title
	}
	return fmt.Sprintf("vigil: %s (%d): %s", code, p.Status, msg)
}

// Refused reports whether Vigil refused the call (a 4xx): retrying the same
// call will not help.
func (p *Problem) Refused() bool { return p.Status >= 400 && p.Status < 500 }

// JSON returns the problem document: what the server sent, or an equivalent
// built from the fields.
func (p *Problem) JSON() []byte {
	if len(p.Raw) > 0 {
		return p.Raw
	}
	b, _ := json.Marshal(p) // plain strings and ints: cannot fail
	return b
}

// AsProblem returns the *Problem inside err, if any.
func AsProblem(err error) (*Problem, bool) {
	var p *Problem
	ok := errors.As(err, &p)
	return p, ok
}

// maxProblemSize bounds how much of an error body is read.
const maxProblemSize = 64 << 10

// problemTypePrefix is where the contract's problem types live.
const problemTypePrefix = "https://vigil.dev/problems/"

// readProblem turns an error response into a *Problem. A body that is not a
// problem document (a proxy's HTML page, say) still yields one, built from
// the status, without quoting the body.
func readProblem(resp *http.Response) *Problem {
	p := &Problem{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblemSize))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/problem+json" || mt == "application/json" {
		var doc Problem
		if err := json.Unmarshal(body, &doc); err == nil && (doc.Code != "" || doc.Type != "" || doc.Detail != "") {
			p.Type, p.Title, p.Detail, p.Code, p.RequestID = doc.Type, doc.Title, doc.Detail, doc.Code, doc.RequestID
			if p.Code == "" {
				p.Code, _ = strings.CutPrefix(doc.Type, problemTypePrefix)
				if p.Code == doc.Type {
					p.Code = ""
				}
			}
			// The HTTP status decides; a body that disagrees keeps its
			// text but not its number.
			if doc.Status == resp.StatusCode && json.Valid(body) {
				p.Raw = json.RawMessage(body)
			}
			return p
		}
	}
	p.Title = http.StatusText(resp.StatusCode)
	p.Detail = fmt.Sprintf("the server answered %d %s without a problem description", resp.StatusCode, http.StatusText(resp.StatusCode))
	return p
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d.Round(time.Second)
		}
	}
	return 0
}

// aboutRequest fills in the request id of a request_not_found problem that
// came without one (the server names only ids that look like request ids),
// so the caller can say which id was not found.
func aboutRequest(err error, id string) error {
	if p, ok := AsProblem(err); ok && p.Code == "request_not_found" && p.RequestID == "" {
		p.RequestID = id
	}
	return err
}
