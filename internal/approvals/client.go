package approvals

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// Config names where Vigil's Slack messages go and who may approve.
type Config struct {
	ApprovalsChannel string // channel id or name for approval messages
	SecurityChannel  string // channel for security alerts; empty turns them off
	UserGroup        string // usergroup id (S…) whose members may approve; empty allows anyone
}

// RetryPolicy bounds how Client retries transient Slack failures.
type RetryPolicy struct {
	Initial  time.Duration // first backoff
	Max      time.Duration // backoff ceiling
	Attempts int           // total attempts, the first included
}

// DefaultRetryPolicy waits 250 ms, doubling to 10 s, over at most 6 attempts.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Attempts: 6}
}

// Option adjusts a Client.
type Option func(*Client)

// WithRetryPolicy replaces the default retry policy (tests use short waits).
func WithRetryPolicy(p RetryPolicy) Option {
	return func(c *Client) {
		if p.Attempts < 1 {
			p.Attempts = 1
		}
		if p.Initial <= 0 {
			p.Initial = time.Millisecond
		}
		if p.Max < p.Initial {
			p.Max = p.Initial
		}
		c.retry = p
	}
}

// Client sends Vigil's Slack messages. Every Web API call goes through one
// retry loop; pass an api built without slack.OptionRetry so retries do not
// multiply.
type Client struct {
	api   *slack.Client
	cfg   Config
	log   *slog.Logger
	retry RetryPolicy
}

// NewClient returns a Client using api (see slack.New and slack.OptionAPIURL).
func NewClient(api *slack.Client, cfg Config, logger *slog.Logger, opts ...Option) *Client {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{api: api, cfg: cfg, log: logger, retry: DefaultRetryPolicy()}
	for _, o := range opts {
		o(c)
	}
	return c
}

// PermanentError is a Slack failure that retrying cannot fix: a logical error
// such as channel_not_found, invalid_auth or not_in_channel, or a 4xx answer.
type PermanentError struct {
	Method string // Web API method, e.g. chat.postMessage
	Code   string // Slack's error code, or http_<status>
	Err    error
}

func (e *PermanentError) Error() string {
	return fmt.Sprintf("slack %s failed permanently: %s", e.Method, e.Code)
}

func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err (or one it wraps) is a *PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// transientCodes are {"ok":false} answers that mean "try again later".
var transientCodes = map[string]bool{
	"ratelimited": true, "rate_limited": true, "internal_error": true, "fatal_error": true,
	"service_unavailable": true, "request_timeout": true,
}

type outcome int

const (
	retryable outcome = iota
	permanent
	stop // the caller's context ended
)

// classify sorts a failed call; wait is Slack's Retry-After when it gave one.
func classify(err error) (o outcome, wait time.Duration, code string) {
	var (
		rl *slack.RateLimitedError
		sc slack.StatusCodeError
		se slack.SlackErrorResponse
	)
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return stop, 0, ""
	case errors.As(err, &rl):
		return retryable, rl.RetryAfter, "ratelimited"
	case errors.As(err, &sc):
		if sc.Retryable() {
			return retryable, 0, fmt.Sprintf("http_%d", sc.Code)
		}
		return permanent, 0, fmt.Sprintf("http_%d", sc.Code)
	case errors.As(err, &se):
		if transientCodes[se.Err] {
			return retryable, 0, se.Err
		}
		return permanent, 0, se.Err
	}
	// Connection refused or reset, timeouts, truncated or garbled bodies.
	return retryable, 0, "transport"
}

// call runs fn until it succeeds, fails permanently, runs out of attempts or
// ctx ends. Rate limits wait exactly Slack's Retry-After; other transient
// failures back off exponentially.
//
// Retrying a write is only safe when the failure means Slack did nothing. A
// 429 guarantees that; a 5xx or a dropped connection after chat.postMessage
// does not — Slack may have posted before failing, and the retry then posts a
// second copy. We accept that risk rather than search the channel history
// before every retry: a duplicate approval message carries the same request
// id, so a click on either reaches the same workflow, which accepts one
// decision only; a click on the copy Vigil did not record is refused, and the
// interactions endpoint then retires that copy (RetireApproval) so its stale
// buttons go away. (The stand-in never posts on a 5xx, so tests see exactly
// one message.)
func (c *Client) call(ctx context.Context, method string, fn func(context.Context) error) error {
	backoff := c.retry.Initial
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			if attempt > 1 {
				c.log.Info("slack call succeeded after retries", "method", method, "attempts", attempt)
			}
			return nil
		}
		o, wait, code := classify(err)
		switch o {
		case permanent:
			c.log.Warn("slack call failed permanently", "method", method, "code", code, "err", err)
			return &PermanentError{Method: method, Code: code, Err: err}
		case stop:
			return fmt.Errorf("slack %s: %w", method, err)
		}
		if attempt >= c.retry.Attempts {
			c.log.Warn("slack call gave up", "method", method, "attempts", attempt, "code", code, "err", err)
			return fmt.Errorf("slack %s: giving up after %d attempts: %w", method, attempt, err)
		}
		if wait <= 0 {
			wait = backoff
			backoff = min(backoff*2, c.retry.Max)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return fmt.Errorf("slack %s: next attempt in %s would pass the deadline: %w", method, wait, err)
		}
		c.log.Info("slack call failed, retrying", "method", method, "attempt", attempt, "code", code, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("slack %s: %w (last failure: %w)", method, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// PostApproval posts the approval message for r and returns where it landed
// (the channel id and the message ts, which UpdateApproval and Remind need).
func (c *Client) PostApproval(ctx context.Context, r Request) (channel, ts string, err error) {
	if c.cfg.ApprovalsChannel == "" {
		return "", "", &PermanentError{Method: "chat.postMessage", Code: "no_approvals_channel_configured",
			Err: errors.New("approvals channel is not configured")}
	}
	text := "Approval needed: " + Title(r.Action) + " for " + md(r.CustomerID, maxShortRunes, " ") +
		", requested by " + person(r.RequesterSlackID, r.RequesterName)
	if g := c.groupMention(); g != "" {
		text = g + " " + text
	}
	blocks := ApprovalBlocks(r)
	err = c.call(ctx, "chat.postMessage", func(ctx context.Context) error {
		var err error
		channel, ts, err = c.api.PostMessageContext(ctx, c.cfg.ApprovalsChannel,
			slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
	if err != nil {
		return "", "", err
	}
	c.log.Info("approval posted", "request", r.ID, "channel", channel, "ts", ts)
	return channel, ts, nil
}

// UpdateApproval replaces the approval message at channel/ts with the
// summary and line, removing the buttons.
func (c *Client) UpdateApproval(ctx context.Context, channel, ts string, r Request, line string) error {
	text := Title(r.Action) + " for " + md(r.CustomerID, maxShortRunes, " ") + ": " + line
	blocks := StatusBlocks(r, line)
	return c.call(ctx, "chat.update", func(ctx context.Context) error {
		_, _, _, err := c.api.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
}

// RetireApproval replaces a stray copy of an approval message (a post that
// Slack carried out although it answered with an error, then retried; or a
// post that landed after its request had ended) with a line pointing to the
// request's real message, removing the copy's buttons.
func (c *Client) RetireApproval(ctx context.Context, channel, ts, requestID string) error {
	id := md(requestID, maxShortRunes, " ")
	text := "Out of date: this is not the approval message of " + id + ". Decide on it from its current approval message."
	blocks := []slack.Block{slack.NewSectionBlock(mrkdwn("🗄️ "+text), nil, nil)}
	return c.call(ctx, "chat.update", func(ctx context.Context) error {
		_, _, _, err := c.api.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
}

// ReplaceApproval updates an approval message that was posted again (at
// by's ask) to say so, removing its buttons: the new message below is the
// request's.
func (c *Client) ReplaceApproval(ctx context.Context, channel, ts string, r Request, by string) error {
	text := "Posted again: the approval message of " + md(r.ID, maxShortRunes, " ") + " (" + Title(r.Action) + " for " +
		md(r.CustomerID, maxShortRunes, " ") + ") was replaced by a new one at " + md(by, maxShortRunes, " ") + "'s request. Decide on the new message."
	blocks := []slack.Block{slack.NewSectionBlock(mrkdwn("🔁 "+text), nil, nil)}
	return c.call(ctx, "chat.update", func(ctx context.Context) error {
		_, _, _, err := c.api.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
		return err
	})
}

// Remind replies in the approval message's thread that it still waits.
func (c *Client) Remind(ctx context.Context, channel, ts string, r Request) error {
	text := "⏳ Still waiting for a senior: expires at " + stamp(r.ExpiresAt) + "."
	if g := c.groupMention(); g != "" {
		text = g + " " + text
	}
	return c.call(ctx, "chat.postMessage", func(ctx context.Context) error {
		_, _, err := c.api.PostMessageContext(ctx, channel, slack.MsgOptionText(text, false), slack.MsgOptionTS(ts))
		return err
	})
}

// Security posts text (mrkdwn) to the security channel; without one it only logs.
func (c *Client) Security(ctx context.Context, text string) error {
	if c.cfg.SecurityChannel == "" {
		c.log.Debug("no security channel configured; alert not sent to Slack")
		return nil
	}
	return c.call(ctx, "chat.postMessage", func(ctx context.Context) error {
		_, _, err := c.api.PostMessageContext(ctx, c.cfg.SecurityChannel, slack.MsgOptionText(text, false))
		return err
	})
}

// Tell sends text (mrkdwn) to user as a direct message from the app.
func (c *Client) Tell(ctx context.Context, user, text string) error {
	if !slackUserID.MatchString(user) {
		return &PermanentError{Method: "chat.postMessage", Code: "not_a_user_id", Err: errors.New("not a Slack user id")}
	}
	return c.call(ctx, "chat.postMessage", func(ctx context.Context) error {
		_, _, err := c.api.PostMessageContext(ctx, user, slack.MsgOptionText(text, false))
		return err
	})
}

// LineForRequester is the direct message telling the requester of r where
// their request stands now: line, from LineApproved and the like.
func LineForRequester(r Request, line string) string {
	return "Your request " + md(r.ID, maxShortRunes, " ") + " (" + Title(r.Action) + " for " + md(r.CustomerID, maxShortRunes, " ") + "): " + line
}

// Ephemeral shows text (mrkdwn) to user only, in channel.
func (c *Client) Ephemeral(ctx context.Context, channel, user, text string) error {
	return c.call(ctx, "chat.postEphemeral", func(ctx context.Context) error {
		_, err := c.api.PostEphemeralContext(ctx, channel, user, slack.MsgOptionText(text, false))
		return err
	})
}

// IsGroupMember reports whether userID belongs to the approvers' usergroup
// (always true when none is configured). When Slack cannot say, it returns an
// error and the caller must refuse the click.
func (c *Client) IsGroupMember(ctx context.Context, userID string) (bool, error) {
	if c.cfg.UserGroup == "" {
		return true, nil
	}
	var members []string
	err := c.call(ctx, "usergroups.users.list", func(ctx context.Context) error {
		var err error
		members, err = c.api.GetUserGroupMembersContext(ctx, c.cfg.UserGroup)
		return err
	})
	if err != nil {
		return false, err
	}
	return slices.Contains(members, userID), nil
}

// UserName returns the user's real name, falling back to their handle.
func (c *Client) UserName(ctx context.Context, userID string) (string, error) {
	var u *slack.User
	err := c.call(ctx, "users.info", func(ctx context.Context) error {
		var err error
		u, err = c.api.GetUserInfoContext(ctx, userID)
		return err
	})
	if err != nil {
		return "", err
	}
	for _, name := range []string{u.RealName, u.Profile.RealName, u.Profile.DisplayName, u.Name} {
		if name = strings.TrimSpace(name); name != "" {
			return name, nil
		}
	}
	return userID, nil
}

func (c *Client) groupMention() string {
	if c.cfg.UserGroup == "" {
		return ""
	}
	return "<!subteam^" + c.cfg.UserGroup + ">"
}
