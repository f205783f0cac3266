package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/mail"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/tokens"
)

// NotifyCustomer emails every established address on file, each with its own
// single-use cancel link. It returns only once the mail server accepted every
// message, because the cooling period must not start before that.
func (a *Activities) NotifyCustomer(ctx context.Context, in NotifyInput) (NotifyResult, error) {
	now := a.now()
	cust, err := a.Store.Customer(ctx, in.CustomerID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return NotifyResult{}, permanent(err, "customer %s does not exist", in.CustomerID)
		}
		return NotifyResult{}, fmt.Errorf("load customer: %w", err)
	}
	agent, err := a.Store.Agent(ctx, in.RequesterID)
	if err != nil {
		return NotifyResult{}, fmt.Errorf("load requester: %w", err)
	}
	if err := a.checkServerAged(ctx, in, now); err != nil {
		return NotifyResult{}, err
	}
	to, err := a.Store.EstablishedEmails(ctx, in.CustomerID, now, a.Settings.EstablishedAfter)
	if err != nil {
		return NotifyResult{}, fmt.Errorf("established addresses: %w", err)
	}
	if in.Action == domain.ActionAddContactEmail {
		// The address being added never gets a link to cancel its own addition.
		to = without(to, in.Email)
	}
	if len(to) == 0 {
		return NotifyResult{}, permanent(nil, "customer %s has no established address to notify", in.CustomerID)
	}
	// A slow relay can hold one message for longer than the heartbeat
	// timeout; heartbeat in the background so a live attempt is never
	// given up (and its messages sent again) while it waits.
	stop := keepAlive(ctx)
	defer stop()
	runsAt := now.Add(in.CoolingPeriod)
	expires := a.linkExpiry(ctx, now, in)
	for i, rcpt := range to {
		// A cancel accepted while the notice is retried cancels this
		// attempt: stop before the next message, not after the last.
		if err := heartbeat(ctx, i); err != nil {
			a.log(ctx).Info("notice stopped: the request was cancelled", "request", in.RequestID, "sent", i, "of", len(to))
			return NotifyResult{}, fmt.Errorf("notice for request %s stopped after %d of %d messages: %w", in.RequestID, i, len(to), err)
		}
		id, err := tokens.NewID()
		if err != nil {
			return NotifyResult{}, fmt.Errorf("cancel token id: %w", err)
		}
		if err := a.Store.CreateCancelToken(ctx, store.CancelToken{ID: id, RequestID: in.RequestID, Recipient: rcpt, ExpiresAt: expires}); err != nil {
			return NotifyResult{}, fmt.Errorf("store cancel token: %w", err)
		}
		tok, err := a.Tokens.Sign(tokens.Claims{ID: id, RequestID: in.RequestID, Expires: expires})
		if err != nil {
			return NotifyResult{}, fmt.Errorf("sign cancel token: %w", err)
		}
		subject, text, html, err := mail.RenderNotice(mail.NoticeData{
			CustomerName: cust.Name, Action: in.Action, ServerID: in.ServerID, NewEmail: in.Email,
			AgentFirstName: firstName(agent.Name), AgentTeam: agent.Team,
			RunsAt: runsAt, Location: a.Settings.Location, CoolingPeriod: in.CoolingPeriod,
			CancelURL:    a.Settings.CancelBaseURL + "/c/" + tok,
			SupportEmail: a.Settings.SupportEmail, ProductName: a.Settings.ProductName,
			OnFile: onFile(cust), Recipient: rcpt,
		})
		if err != nil {
			return NotifyResult{}, permanent(err, "render notice")
		}
		msg := mail.Message{From: a.Settings.MailFrom, To: []string{rcpt}, Subject: subject, Text: text, HTML: html,
			Headers: map[string]string{"X-Vigil-Request": in.RequestID, "X-Vigil-Kind": "notice"}}
		if err := a.Mailer.Send(ctx, msg); err != nil {
			if mail.IsPermanent(err) {
				// One bad address must not stop the others; a retry resends.
				a.log(ctx).Error("notice refused permanently", "request", in.RequestID, "error", err)
			}
			return NotifyResult{}, fmt.Errorf("send notice for request %s: %w", in.RequestID, err)
		}
		if err := a.Store.AuditOnce(ctx, store.AuditEvent{RequestID: in.RequestID, Actor: "system", Event: "notice.accepted",
			Details: map[string]any{"recipient": rcpt}}, "notice/"+strings.ToLower(rcpt)); err != nil {
			return NotifyResult{}, fmt.Errorf("audit notice: %w", err)
		}
	}
	a.log(ctx).Info("customer notified", "request", in.RequestID, "recipients", len(to))
	return NotifyResult{Recipients: len(to), AcceptedAt: a.now(), RunsAt: runsAt}, nil
}

// checkServerAged refuses the notice of a request on a server that moved to
// its customer less than the ageing period ago. Such a customer may be one
// an import just created, with addresses dated as billing (or whoever holds
// the import) likes: for this server none of them is established yet, as
// none of an address added minutes ago is. The request ends failed.
func (a *Activities) checkServerAged(ctx context.Context, in NotifyInput, now time.Time) error {
	if in.ServerID == "" {
		return nil
	}
	arr, moved, err := a.Store.ServerArrival(ctx, in.CustomerID, in.ServerID)
	if err != nil {
		return fmt.Errorf("server arrival: %w", err)
	}
	if !moved || now.Sub(arr.At) >= a.Settings.EstablishedAfter {
		return nil
	}
	return permanent(nil, "server %s moved to customer %s from customer %s at %s, less than the ageing period ago: no address of %s is established for it yet, so nobody can be notified",
		in.ServerID, in.CustomerID, arr.From, arr.At.UTC().Format(time.RFC3339), in.CustomerID)
}

// linkExpiry is when this notice's cancel links stop working: after the
// latest moment the action can run, as far as the attempt can know it. The
// cooling period starts once the notice is accepted, and that may be as late
// as the notice gate's own deadline: its first scheduling plus its
// schedule-to-close timeout, which the attempts that retry it share. Every
// attempt mails every address again with new links, but the links of the
// first must still work when a cooling period started by the last runs
// out. So they all get that deadline plus the cooling period, or
// in.CancelUntil if the workflow names a later one, plus CancelGrace.
// Outside an activity (or with no schedule-to-close timeout) the deadline
// is now.
func (a *Activities) linkExpiry(ctx context.Context, now time.Time, in NotifyInput) time.Time {
	accepted := now
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		if info.ScheduleToCloseTimeout > 0 {
			if d := info.ScheduledTime.Add(info.ScheduleToCloseTimeout); d.After(accepted) {
				accepted = d
			}
		}
	}
	until := accepted.Add(in.CoolingPeriod)
	if in.CancelUntil.After(until) {
		until = in.CancelUntil
	}
	return until.Add(a.Settings.CancelGrace).UTC()
}

// NotifyOutcome tells the customer how a request they were told about ended.
func (a *Activities) NotifyOutcome(ctx context.Context, in OutcomeInput) error {
	now := a.now()
	cust, err := a.Store.Customer(ctx, in.CustomerID)
	if err != nil {
		return fmt.Errorf("load customer: %w", err)
	}
	// The outcome goes to the addresses that got the notice: after an email
	// change the old address is the one that must hear about it.
	to, err := a.noticeRecipients(ctx, in.RequestID)
	if err != nil {
		return err
	}
	subject, text, html, err := mail.RenderOutcome(mail.OutcomeData{
		CustomerName: cust.Name, Action: in.Action, ServerID: in.ServerID, NewEmail: in.Email,
		Outcome: in.Outcome, CancelledBy: in.CancelledBy, At: now, Location: a.Settings.Location,
		SupportEmail: a.Settings.SupportEmail, ProductName: a.Settings.ProductName,
	})
	if err != nil {
		return permanent(err, "render outcome email")
	}
	for _, rcpt := range to {
		msg := mail.Message{From: a.Settings.MailFrom, To: []string{rcpt}, Subject: subject, Text: text, HTML: html,
			Headers: map[string]string{"X-Vigil-Request": in.RequestID, "X-Vigil-Kind": "outcome"}}
		if err := a.Mailer.Send(ctx, msg); err != nil {
			return fmt.Errorf("send outcome for request %s: %w", in.RequestID, err)
		}
	}
	return nil
}

func (a *Activities) noticeRecipients(ctx context.Context, requestID string) ([]string, error) {
	trail, err := a.Store.AuditTrail(ctx, requestID)
	if err != nil {
		return nil, fmt.Errorf("audit trail of %s: %w", requestID, err)
	}
	var to []string
	for _, ev := range trail {
		if ev.Event != "notice.accepted" {
			continue
		}
		if r, ok := ev.Details["recipient"].(string); ok && !slices.Contains(to, r) {
			to = append(to, r)
		}
	}
	return to, nil
}

// onFile lists cust's addresses, primary first, for the notice to compare a
// new address with.
func onFile(cust store.Customer) []string {
	out := []string{cust.PrimaryEmail}
	for _, c := range cust.Contacts {
		out = append(out, c.Email)
	}
	return out
}

func without(list []string, email string) []string {
	out := list[:0:0]
	for _, e := range list {
		if !strings.EqualFold(e, email) {
			out = append(out, e)
		}
	}
	return out
}

func firstName(name string) string {
	if f := strings.Fields(name); len(f) > 0 {
		return f[0]
	}
	return "A support agent"
}
