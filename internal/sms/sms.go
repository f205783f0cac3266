// Package sms sends text messages through a provider's HTTP API in the shape
// of Twilio's Messages API.
package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Config names the provider account messages are sent from.
type Config struct {
	// BaseURL is the API's root, e.g. https://api.twilio.com.
	BaseURL string
	// AccountSID is the account, used in the path and as the basic-auth user.
	AccountSID string
	// AuthToken is the basic-auth password. It never appears in an error.
	AuthToken string
	// From is the sender number, E.164.
	From string
}

// Client sends SMS. It is safe for concurrent use.
type Client struct {
	cfg      Config
	endpoint string
	http     *http.Client
}

// Error is a send the provider refused or could not be reached for.
// Retryable says whether the same send may succeed later (a 5xx, a 429, a
// transport failure); a 4xx other than 429 is permanent.
type Error struct {
	Status    int // 0 for a transport failure
	Code      int // the provider's error code, when it gave one
	Message   string
	Retryable bool
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return "sms: provider unreachable: " + e.Message
	}
	return fmt.Sprintf("sms: provider answered %d (code %d): %s", e.Status, e.Code, e.Message)
}

// ErrConfig means the client's settings are incomplete.
var ErrConfig = errors.New("sms: incomplete configuration")

// New returns a client for cfg using hc (nil: a client with no timeout of
// its own; callers bound each send with the context).
func New(cfg Config, hc *http.Client) (*Client, error) {
	switch {
	case cfg.BaseURL == "" || cfg.AccountSID == "" || cfg.AuthToken == "" || cfg.From == "":
		return nil, fmt.Errorf("%w: base URL, account, auth token and from number are all required", ErrConfig)
	case strings.ContainsAny(cfg.AccountSID, "/?#% "):
		return nil, fmt.Errorf("%w: the account id must be a plain id", ErrConfig)
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%w: the base URL must be http(s)://host[:port] with no credentials", ErrConfig)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	endpoint := strings.TrimRight(cfg.BaseURL, "/") + "/2010-04-01/Accounts/" + cfg.AccountSID + "/Messages.json"
	return &Client{cfg: cfg, endpoint: endpoint, http: hc}, nil
}

// Sent is the provider's answer to an accepted message.
type Sent struct {
	SID    string `json:"sid"`
	Status string `json:"status"`
}

// Send sends body to the E.164 number to. An error is an *Error.
func (c *Client) Send(ctx context.Context, to, body string) (Sent, error) {
	form := url.Values{"To": {to}, "From": {c.cfg.From}, "Body": {body}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Sent{}, &Error{Message: "cannot build the request", Retryable: false}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(c.cfg.AccountSID, c.cfg.AuthToken)
	res, err := c.http.Do(req)
	if err != nil {
		// A *url.Error names the URL, which holds no secret (the token is
		// in a header); keep only the cause's text all the same.
		var ue *url.Error
		msg := err.Error()
		if errors.As(err, &ue) {
			msg = ue.Err.Error()
		}
		return Sent{}, &Error{Message: msg, Retryable: true}
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode/100 != 2 {
		var e struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		if e.Message == "" {
			e.Message = http.StatusText(res.StatusCode)
		}
		return Sent{}, &Error{Status: res.StatusCode, Code: e.Code, Message: e.Message,
			Retryable: res.StatusCode >= 500 || res.StatusCode == http.StatusTooManyRequests}
	}
	var s Sent
	if err := json.Unmarshal(data, &s); err != nil || s.SID == "" {
		// Accepted, but the answer is unreadable: the message may be out,
		// so it is not retryable (a retry could send it twice).
		return Sent{}, &Error{Status: res.StatusCode, Message: "the answer has no message sid", Retryable: false}
	}
	return s, nil
}
