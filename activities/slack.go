package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
)

// Approvals is the Slack side of the approval gate; *approvals.Client is the
// real one.
type Approvals interface {
	PostApproval(ctx context.Context, r approvals.Request) (channel, ts string, err error)
	UpdateApproval(ctx context.Context, channel, ts string, r approvals.Request, line string) error
	Remind(ctx context.Context, channel, ts string, r approvals.Request) error
	ReplaceApproval(ctx context.Context, channel, ts string, r approvals.Request, by string) error
	Security(ctx context.Context, text string) error
	Tell(ctx context.Context, user, text string) error
}

// ApprovalInput asks for the approval message in the approvals channel.
type ApprovalInput struct {
	RequestID     string
	PINVerifiedAt time.Time
	ExpiresAt     time.Time
	CoolingPeriod time.Duration
}

// ApprovalPosted says where the approval message is.
type ApprovalPosted struct {
	Channel string
	TS      string
}

// Events the approval message shows besides the end states.
const (
	MessageApproved = "approved"
	MessageNotified = "notified"
)

// MessageUpdate is a change the approval message must show. Event is
// MessageApproved, MessageNotified or an end state.
type MessageUpdate struct {
	RequestID string
	Event     string
	// ActorID is the agent who decided or cancelled, if any.
	ActorID string
	Party   domain.CancelParty
	Reason  string
	At      time.Time
	// ApprovalExpiresAt and CoolingPeriod rebuild the message summary.
	ApprovalExpiresAt time.Time
	CoolingPeriod     time.Duration
	PINVerifiedAt     time.Time
	// RunsAt is when the action will run, for the "customer notified" line.
	RunsAt time.Time
	// Channel and TS say where the message is, as PostApproval answered: a
	// message that landed after the request ended is not in the projection,
	// which a final request no longer takes. Empty means look it up there.
	Channel string
	TS      string
}

// AlertInput is a line for the security channel.
type AlertInput struct {
	RequestID string
	Text      string
}

var errNoSlack = errors.New("slack is not configured")

// slackRequest rebuilds the message summary from the projection, so that a
// retried or replayed activity shows the same thing.
func (a *Activities) slackRequest(ctx context.Context, id string, pinAt, expires time.Time, cooling time.Duration) (store.Request, approvals.Request, error) {
	req, err := a.Store.Request(ctx, id)
	if err != nil {
		return store.Request{}, approvals.Request{}, fmt.Errorf("load request %s: %w", id, err)
	}
	cust, err := a.Store.Customer(ctx, req.CustomerID)
	if err != nil {
		return store.Request{}, approvals.Request{}, fmt.Errorf("load customer: %w", err)
	}
	agent, err := a.Store.Agent(ctx, req.RequesterID)
	if err != nil {
		return store.Request{}, approvals.Request{}, fmt.Errorf("load requester: %w", err)
	}
	move, err := a.recentMove(ctx, req)
	if err != nil {
		return store.Request{}, approvals.Request{}, err
	}
	var risk *approvals.Risk
	if r, err := a.Store.RiskOf(ctx, req.ID); err != nil {
		return store.Request{}, approvals.Request{}, err
	} else if r != nil {
		risk = &approvals.Risk{Signals: r.Signals, FactorVerified: r.FactorVerified}
	}
	return req, approvals.Request{
		ID: req.ID, Action: req.Action, CustomerID: req.CustomerID,
		MaskedEmail: approvals.MaskEmail(cust.PrimaryEmail), ServerID: req.ServerID, NewEmail: req.Email,
		RequesterSlackID: agent.SlackUserID, RequesterName: agent.Name, Reason: req.Reason,
		PINVerifiedAt: pinAt, ExpiresAt: expires, CoolingPeriod: cooling, ServerMove: move, Risk: risk,
	}, nil
}

// recentMove is the move of req's server to its customer if it happened
// within the ageing period before the request opened: the card shows it
// for as long as the request lives, so it reads the same on every update.
func (a *Activities) recentMove(ctx context.Context, req store.Request) (*approvals.ServerMove, error) {
	if req.ServerID == "" {
		return nil, nil
	}
	arr, moved, err := a.Store.ServerArrival(ctx, req.CustomerID, req.ServerID)
	if err != nil {
		return nil, fmt.Errorf("server arrival: %w", err)
	}
	if !moved || req.CreatedAt.Sub(arr.At) >= a.Settings.EstablishedAfter {
		return nil, nil
	}
	return &approvals.ServerMove{From: arr.From, At: arr.At, EstablishedAt: arr.At.Add(a.Settings.EstablishedAfter)}, nil
}

// PostApproval posts the approval message once and stores where it is. A
// retry after a crash finds the stored message and does not post again.
func (a *Activities) PostApproval(ctx context.Context, in ApprovalInput) (ApprovalPosted, error) {
	if a.Approvals == nil {
		return ApprovalPosted{}, permanent(errNoSlack, "cannot post the approval message")
	}
	req, msg, err := a.slackRequest(ctx, in.RequestID, in.PINVerifiedAt, in.ExpiresAt, in.CoolingPeriod)
	if err != nil {
		return ApprovalPosted{}, err
	}
	if req.SlackChannel != "" && req.SlackTS != "" {
		return ApprovalPosted{Channel: req.SlackChannel, TS: req.SlackTS}, nil
	}
	channel, ts, err := a.Approvals.PostApproval(ctx, msg)
	if err != nil {
		if approvals.IsPermanent(err) {
			return ApprovalPosted{}, permanent(err, "Slack refused the approval message for %s", in.RequestID)
		}
		return ApprovalPosted{}, fmt.Errorf("post approval message for %s: %w", in.RequestID, err)
	}
	if err := a.Store.UpdateRequest(ctx, in.RequestID, store.RequestUpdate{SlackChannel: &channel, SlackTS: &ts}, a.now()); err != nil {
		return ApprovalPosted{}, fmt.Errorf("store approval message of %s: %w", in.RequestID, err)
	}
	if err := a.Store.AuditOnce(ctx, store.AuditEvent{RequestID: in.RequestID, Actor: "system", Event: "slack.approval_posted",
		Details: map[string]any{"channel": channel, "ts": ts}}, "approval-message"); err != nil {
		return ApprovalPosted{}, fmt.Errorf("audit approval message: %w", err)
	}
	return ApprovalPosted{Channel: channel, TS: ts}, nil
}

// UpdateApprovalMessage replaces the message's buttons or status line.
func (a *Activities) UpdateApprovalMessage(ctx context.Context, in MessageUpdate) error {
	if a.Approvals == nil {
		return permanent(errNoSlack, "cannot update the approval message")
	}
	req, msg, err := a.slackRequest(ctx, in.RequestID, in.PINVerifiedAt, in.ApprovalExpiresAt, in.CoolingPeriod)
	if err != nil {
		return err
	}
	channel, ts := in.Channel, in.TS
	if channel == "" || ts == "" {
		channel, ts = req.SlackChannel, req.SlackTS
	}
	if channel == "" || ts == "" {
		// The post has not landed yet; retrying waits for it.
		return fmt.Errorf("approval message of %s is not posted yet", in.RequestID)
	}
	line, err := a.statusLine(ctx, in, req)
	if err != nil {
		return err
	}
	approved, notified, err := a.pastLines(ctx, req)
	if err != nil {
		return err
	}
	switch in.Event {
	case MessageApproved:
		if approved != "" {
			line = approved // names a break-glass decision, which in does not carry
		}
	case MessageNotified:
		msg.History = nonEmpty(approved)
	default:
		msg.History = nonEmpty(approved, notified)
	}
	if err := a.Approvals.UpdateApproval(ctx, channel, ts, msg, line); err != nil {
		if approvals.IsPermanent(err) {
			return permanent(err, "Slack refused to update the approval message of %s", in.RequestID)
		}
		return fmt.Errorf("update approval message of %s: %w", in.RequestID, err)
	}
	return a.tellRequester(ctx, in.RequestID, in.Event, msg, line)
}

// tellRequester sends the requester a direct message when a senior decided
// and when the request ended, once per event: the card is in a busy channel,
// and the agent who promised the customer an answer should not have to
// watch it. Their own withdrawal and the notice need no message. A requester
// without a Slack id is told nothing.
//
// The audit row comes first, so that no message exists which the trail does
// not name: slack.requester_told means the message was handed to Slack, at
// most once per event. Slack has no idempotency key that would make a second
// send safe, and the client already retries what is transient; a message
// that still fails is audited as slack.requester_tell_failed and not sent
// again (the card says it all).
func (a *Activities) tellRequester(ctx context.Context, requestID, event string, msg approvals.Request, line string) error {
	switch domain.Status(event) {
	case MessageNotified, domain.StatusWithdrawn:
		return nil
	}
	if msg.RequesterSlackID == "" {
		return nil
	}
	const told = "slack.requester_told"
	trail, err := a.Store.AuditTrail(ctx, requestID)
	if err != nil {
		return fmt.Errorf("audit trail of %s: %w", requestID, err)
	}
	for _, e := range trail {
		if e.Event == told && e.Details["dedupe"] == event {
			return nil
		}
	}
	if err := a.Store.AuditOnce(ctx, store.AuditEvent{RequestID: requestID, Actor: "system", Event: told,
		Details: map[string]any{"event": event}}, event); err != nil {
		return fmt.Errorf("audit the requester's message: %w", err)
	}
	err = a.Approvals.Tell(ctx, msg.RequesterSlackID, approvals.LineForRequester(msg, line))
	if err == nil {
		return nil
	}
	a.log(ctx).Warn("direct message to the requester not sent; it is not retried", "request", requestID, "event", event,
		"permanent", approvals.IsPermanent(err), "error", err)
	if err := a.Store.AuditOnce(ctx, store.AuditEvent{RequestID: requestID, Actor: "system", Event: "slack.requester_tell_failed",
		Details: map[string]any{"event": event, "permanent": approvals.IsPermanent(err)}}, event); err != nil {
		return fmt.Errorf("audit the requester's failed message: %w", err)
	}
	return nil
}

// pastLines rebuilds the card's lines for the steps the request passed, from
// the projection and the audit trail, so every update shows the whole story:
// who approved (and whether by break-glass) and when the customer was told.
// A step not passed gives "".
func (a *Activities) pastLines(ctx context.Context, req store.Request) (approved, notified string, err error) {
	if req.Decision == string(domain.DecisionApprove) && req.DecidedAt != nil {
		approved = approvals.LineApproved(a.slackID(ctx, req.ApproverID), *req.DecidedAt)
		if req.BreakGlass {
			approved = approvals.LineBreakGlass("approved", a.slackID(ctx, req.ApproverID), a.slackID(ctx, req.SecondApproverID), *req.DecidedAt)
			return approved, notifiedLine(req), nil
		}
		// A row from before the projection kept break_glass: the trail says.
		trail, err := a.Store.AuditTrail(ctx, req.ID)
		if err != nil {
			return "", "", fmt.Errorf("audit trail of %s: %w", req.ID, err)
		}
		for _, e := range trail {
			if e.Event != "gate.approval.passed" || fmt.Sprint(e.Details["break_glass"]) != "true" {
				continue
			}
			second, _ := e.Details["second_approver"].(string)
			approved = approvals.LineBreakGlass("approved", a.slackID(ctx, req.ApproverID), a.slackID(ctx, second), *req.DecidedAt)
		}
	}
	return approved, notifiedLine(req), nil
}

// notifiedLine is the card's history line for the notice, or "".
func notifiedLine(req store.Request) string {
	if req.NotifiedAt != nil && req.CoolingEndsAt != nil {
		return approvals.LineWasNotified(*req.NotifiedAt, *req.CoolingEndsAt)
	}
	return ""
}

func nonEmpty(lines ...string) []string {
	var out []string
	for _, l := range lines {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (a *Activities) slackID(ctx context.Context, agentID string) string {
	if agentID == "" {
		return ""
	}
	ag, err := a.Store.Agent(ctx, agentID)
	if err != nil || ag.SlackUserID == "" {
		return agentID
	}
	return ag.SlackUserID
}

// statusLine is the card's line for in; req, the projection, says what in
// does not carry: whether a rejection was break-glass, why a request was
// cancelled.
func (a *Activities) statusLine(ctx context.Context, in MessageUpdate, req store.Request) (string, error) {
	switch domain.Status(in.Event) {
	case MessageApproved:
		return approvals.LineApproved(a.slackID(ctx, in.ActorID), in.At), nil
	case MessageNotified:
		return approvals.LineNotified(in.RunsAt), nil
	case domain.StatusRejected:
		if req.BreakGlass && req.Decision == string(domain.DecisionReject) {
			at := in.At
			if req.DecidedAt != nil {
				at = *req.DecidedAt
			}
			return approvals.LineBreakGlassRejected(a.slackID(ctx, req.ApproverID), a.slackID(ctx, req.SecondApproverID), in.Reason, at), nil
		}
		return approvals.LineRejected(a.slackID(ctx, in.ActorID), in.Reason), nil
	case domain.StatusCancelled, domain.StatusWithdrawn:
		return approvals.LineCancelled(in.Party, a.slackID(ctx, in.ActorID), req.CancelReason), nil
	case domain.StatusExecuted:
		return approvals.LineExecuted(in.At), nil
	case domain.StatusFailed:
		return approvals.LineFailed(in.Reason), nil
	case domain.StatusExpired:
		return approvals.LineExpired(), nil
	}
	return "", permanent(nil, "no approval message line for %q", in.Event)
}

// RemindApprovers nudges the approvals channel in the message's thread.
func (a *Activities) RemindApprovers(ctx context.Context, in ApprovalInput) error {
	if a.Approvals == nil {
		return permanent(errNoSlack, "cannot remind approvers")
	}
	req, msg, err := a.slackRequest(ctx, in.RequestID, in.PINVerifiedAt, in.ExpiresAt, in.CoolingPeriod)
	if err != nil {
		return err
	}
	if req.SlackChannel == "" || req.SlackTS == "" {
		return fmt.Errorf("approval message of %s is not posted yet", in.RequestID)
	}
	if err := a.Approvals.Remind(ctx, req.SlackChannel, req.SlackTS, msg); err != nil {
		if approvals.IsPermanent(err) {
			return permanent(err, "Slack refused the reminder for %s", in.RequestID)
		}
		return fmt.Errorf("remind approvers of %s: %w", in.RequestID, err)
	}
	return nil
}

// AlertSecurity posts to the security channel and records that it did.
func (a *Activities) AlertSecurity(ctx context.Context, in AlertInput) error {
	if a.Approvals == nil {
		a.log(ctx).Warn("security alert (no Slack configured)", "request", in.RequestID, "alert", in.Text)
		return nil
	}
	if err := a.Approvals.Security(ctx, in.Text); err != nil {
		if approvals.IsPermanent(err) {
			return permanent(err, "Slack refused the security alert")
		}
		return fmt.Errorf("security alert: %w", err)
	}
	return nil
}
