// Package alertrelay delivers the security alerts queued in Postgres to the
// security channel. They are queued where no workflow runs to send them: the
// web front's PIN checks (a lockout, slow guessing, an agent stopped) and
// the workflow's PIN gate refusing a verdict (queued in the refusal's own
// transaction, so a run that is terminated at once cannot silence it), and
// imports that move a server between customers. The
// worker runs the relay: it holds the Slack client, and the web front, which
// faces the internet, keeps no Slack retry loop of its own.
package alertrelay

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// Poster sends one line to the security channel, or to one Slack user;
// *approvals.Client is the real one.
type Poster interface {
	Security(ctx context.Context, text string) error
	Tell(ctx context.Context, user, text string) error
}

// Relay sends queued alerts, oldest first, at least once each.
type Relay struct {
	store  *store.Store
	poster Poster
	logger *slog.Logger
	// Every is the pause between two passes over the queue.
	Every time.Duration
	// Lease is how long a claimed alert is hidden from other relays (other
	// worker replicas) while it is being sent; a failed send is retried
	// once it runs out.
	Lease time.Duration
	// Batch bounds the alerts claimed in one pass.
	Batch int
}

// New builds a Relay with a two-second pass and a one-minute lease.
func New(st *store.Store, p Poster, logger *slog.Logger) *Relay {
	if logger == nil {
		logger = slog.Default()
	}
	return &Relay{store: st, poster: p, logger: logger.With("component", "alertrelay"), Every: 2 * time.Second, Lease: time.Minute, Batch: 20}
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	t := time.NewTicker(r.Every)
	defer t.Stop()
	for {
		if _, err := r.SendPending(ctx); err != nil && ctx.Err() == nil {
			r.logger.Warn("security alerts not relayed; retrying", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SendPending makes one pass: it claims up to Batch alerts and sends each,
// marking those that went out. It returns how many were sent; an alert
// that could not be sent stays queued and its lease runs out.
func (r *Relay) SendPending(ctx context.Context) (int, error) {
	alerts, err := r.store.ClaimAlerts(ctx, r.Batch, r.Lease)
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, a := range alerts {
		sctx, cancel := context.WithTimeout(ctx, r.Lease/2)
		var err error
		if a.Kind == store.AlertAgentDM {
			// The agent the admin acted on hears of it, not the channel
			// (which got the admin action's own alert).
			err = r.poster.Tell(sctx, fmt.Sprint(a.Details["slack_user_id"]), Text(a))
		} else {
			err = r.poster.Security(sctx, Text(a))
		}
		cancel()
		if err != nil {
			return sent, fmt.Errorf("alert %d (%s), attempt %d: %w", a.ID, a.Kind, a.Attempts, err)
		}
		if err := r.store.MarkAlertSent(ctx, a.ID); err != nil {
			// Sent, but it will be sent again: at least once.
			return sent, err
		}
		sent++
		r.logger.Info("security alert sent", "alert", a.ID, "kind", a.Kind)
	}
	return sent, nil
}

// field is one detail of a, made safe for a Slack line: the text rule's
// escapes for anything invisible or controlling, and Slack's own for &, <
// and > (a forged id must not become a mention or a link).
// maxField caps one quoted fact of an alert.
const maxField = 300

func field(a store.Alert, key string) string {
	v, ok := a.Details[key]
	if !ok || v == nil {
		return "?"
	}
	// The approval card's escaping: the relay's alerts quote reasons, names
	// and the panel's words, which must not format, mention or quote.
	return approvals.Literal(fmt.Sprint(v), maxField)
}

// detailList is an admin action's details as key=value pairs, sorted, each
// value made safe like field's.
func detailList(d map[string]any) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, textrule.Escape(k)+"="+field(store.Alert{Details: d}, k))
	}
	return strings.Join(parts, ", ")
}

// Text words an alert for the security channel.
func Text(a store.Alert) string {
	f := func(key string) string { return field(a, key) }
	switch a.Kind {
	case store.AlertCustomerLocked:
		why := "within the short window"
		if f("reason") == store.LockDay {
			why = "within 24 hours (the daily budget: slow guessing)"
		}
		return fmt.Sprintf("Customer %s is locked until %s after %s wrong support PINs %s (request %s, opened by %s).",
			f("customer"), f("locked_until"), f("failures"), why, f("request"), f("agent"))
	case store.AlertSlowGuessing:
		return fmt.Sprintf("Slow PIN guessing: customer %s has had %s wrong support PINs within 24 hours, spread out below the lockout window (the last by %s, request %s). The daily budget will lock them if it goes on.",
			f("customer"), f("day_failures"), f("agent"), f("request"))
	case store.AlertAgentBlocked:
		return fmt.Sprintf("Agent %s has typed %s wrong support PINs across customers; Vigil checks no more PINs for them until %s (the last for customer %s, request %s).",
			f("agent"), f("failures"), f("blocked_until"), f("customer"), f("request"))
	case store.AlertCustomerUnlocked:
		return fmt.Sprintf("Customer %s was unlocked by %s (security role) before their PIN lockout ended at %s; %s wrong PINs no longer count. Reason: %s",
			f("customer"), f("agent"), f("locked_until"), f("failures"), f("reason"))
	case store.AlertVerdictRefused:
		s := fmt.Sprintf("A workflow was refused the PIN verdict of request %s (%s", f("request"), f("reason"))
		if _, ok := a.Details["fields"]; ok {
			s += ": " + f("fields") + " differ"
		}
		return s + fmt.Sprintf(") and did not pass the PIN gate. Workflow %s, run %s, claimed %s for customer %s by %s. A workflow started outside Vigil's web front, or a replay, is the likely cause.",
			f("workflow_id"), f("run_id"), f("action"), f("customer"), f("requester"))
	case store.AlertRiskRefused:
		return fmt.Sprintf("Vigil refused to open %s for customer %s (asked by %s): %s. The account shows: %s. The customer must be verified another way; if they did not do these things, their account may be taken over.",
			f("action"), f("customer"), f("agent"), f("why"), f("signals"))
	case store.AlertEndedOutside:
		return fmt.Sprintf("Request %s (%s for customer %s, opened by %s) was %s in Temporal while %s, outside Vigil: no gate recorded its end. Vigil marked it failed so it no longer holds the customer's slot; find out who did it from Temporal's own records.",
			f("request"), f("action"), f("customer"), f("agent"), f("temporal"), f("was"))
	case store.AlertServerMoved:
		s := fmt.Sprintf("Server %s was moved from customer %s to customer %s by an import at %s", f("server"), f("from"), f("to"), f("at"))
		if a.Details["new_customer"] == true {
			s += " (a customer created by that import, whose address dates came with it)"
		}
		return s + ". Requests on it count none of the new customer's addresses as established until the server has been theirs for the ageing period; check the move with billing."
	case store.AlertAdminAction:
		who := "Admin action"
		if strings.HasPrefix(fmt.Sprint(a.Details["admin"]), "agent:") {
			// An agent's action on their own account (their own token).
			who = "Agent's own action"
		}
		s := fmt.Sprintf("%s by %s: %s", who, f("admin"), f("event"))
		if _, ok := a.Details["request"]; ok {
			s += " on request " + f("request")
		}
		if d, ok := a.Details["details"].(map[string]any); ok && len(d) > 0 {
			s += " (" + detailList(d) + ")"
			if d["pin_changed"] == true {
				s += ". ⚠️ The import replaced the customer's support PIN: whoever set it knows it"
			}
		}
		return s + fmt.Sprintf(". Audit event %s.", f("audit_id"))
	case store.AlertAgentDM:
		if tok, ok := a.Details[store.AlertTokenKey]; ok && fmt.Sprint(a.Details["event"]) == "agent.token_rotated" {
			// The only place the new token is shown: the caller who rotated
			// it never sees it, so they cannot act as this agent.
			return fmt.Sprintf("Vigil security notice: %s issued a new personal token for your Vigil account %s and revoked your old one. Your new token is %s (store it now; Vigil shows it nowhere else, and erases this copy from its queue). Only you received it. If you did not ask for this, tell the security team now.",
				f("admin"), f("agent"), textrule.Escape(fmt.Sprint(tok)))
		}
		if fmt.Sprint(a.Details["event"]) == "agent.token_rotated" {
			return fmt.Sprintf("Vigil security notice: %s issued a new personal token for your Vigil account %s and revoked your old one. Whoever holds the new token can act as you. If you did not ask for this, tell the security team now.",
				f("admin"), f("agent"))
		}
		return fmt.Sprintf("Vigil security notice: %s changed your Vigil account %s (%s). If you did not ask for this, tell the security team now.",
			f("admin"), f("agent"), f("event"))
	case store.AlertBreakGlassUnconsented:
		return fmt.Sprintf("BREAK-GLASS REFUSED: request %s received a break-glass %s naming %s and %s without both seniors' consents; it did not pass the approval gate and ends failed. Someone sent the decision to Temporal around Vigil's API.",
			f("request"), f("decision"), f("approver_id"), f("second_approver_id"))
	case store.AlertDecisionUnverified:
		return fmt.Sprintf("DECISION REFUSED: request %s received a %s naming %s that Vigil never recorded from their Slack click; it ends failed. Someone sent the decision to Temporal around Vigil's web front.",
			f("request"), f("decision"), f("approver_id"))
	}
	return fmt.Sprintf("Security alert %s: %v", textrule.Escape(a.Kind), a.Details)
}
