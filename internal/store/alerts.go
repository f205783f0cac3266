package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Kinds of queued security alert.
const (
	// AlertCustomerLocked: wrong PINs locked a customer (the short window
	// or the daily budget; details say which).
	AlertCustomerLocked = "customer_locked"
	// AlertSlowGuessing: a customer's wrong PINs of the day reached the
	// short window's limit while staying under it.
	AlertSlowGuessing = "slow_guessing"
	// AlertAgentBlocked: an agent's wrong PINs across customers reached
	// the limit; their PIN checks stop.
	AlertAgentBlocked = "agent_blocked"
	// AlertVerdictRefused: a workflow run claimed a PIN verdict it may not
	// pass on (another customer's, consumed, ...).
	AlertVerdictRefused = "pin_verdict_refused"
	// AlertEndedOutside: a request's workflow ended without Vigil (an
	// operator terminated, cancelled or deleted it in Temporal); its row
	// was ended so it stops holding its customer's slot.
	AlertEndedOutside = "ended_outside_vigil"
	// AlertRiskRefused: the risk check refused an open because the
	// account's recent security events mean its caller cannot be verified.
	AlertRiskRefused = "risk_refused"
	// AlertServerMoved: an import moved a server from one customer to
	// another (details: server, from, to, at, new_customer).
	AlertServerMoved = "server_moved"
	// AlertBreakGlassUnconsented: a break-glass decision reached the
	// worker without two seniors' paired consents; it was refused.
	AlertBreakGlassUnconsented = "break_glass_unconsented"
	// AlertDecisionUnverified: a decision reached the worker that the web
	// front never recorded from a Slack click; it was refused.
	AlertDecisionUnverified = "decision_unverified"
	// AlertAdminAction: a named admin (or the bootstrap token) changed
	// agents, customers or tried to decide a request.
	AlertAdminAction = "admin_action"
	// AlertAgentDM: a direct message to an agent about their own account
	// (an admin rotated their token); relayed to the agent, not the channel.
	AlertAgentDM = "agent_dm"
)

// AlertTokenKey is the detail of an AlertAgentDM that carries a new token
// to its agent (RotateTokenFor); MarkAlertSent erases it.
const AlertTokenKey = "token"

// Alert is one queued line for the security channel: what happened, as
// facts; the relay puts it into words.
type Alert struct {
	ID        int64
	Kind      string
	Details   map[string]any
	CreatedAt time.Time
	Attempts  int
}

// queueAlert queues an alert through q, inside the transaction that records
// what it reports. A non-empty dedupe key queues it once.
func queueAlert(ctx context.Context, q queryer, kind, dedupe string, details map[string]any) error {
	b, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("alert %s: %w", kind, err)
	}
	if _, err := q.ExecContext(ctx, `INSERT INTO security_alerts (kind, dedupe, details) VALUES ($1, $2, $3)
		ON CONFLICT (dedupe) DO NOTHING`, kind, nullString(dedupe), string(b)); err != nil {
		return fmt.Errorf("alert %s: %w", kind, err)
	}
	return nil
}

// ClaimAlerts leases up to limit unsent alerts, oldest first, for lease:
// another relay (another worker replica) does not see them until the lease
// runs out, so an alert whose relay died is sent by the next. An alert is
// sent at least once; MarkAlertSent ends it.
func (s *Store) ClaimAlerts(ctx context.Context, limit int, lease time.Duration) ([]Alert, error) {
	rows, err := s.db.QueryContext(ctx, `
		UPDATE security_alerts SET claimed_until = now() + $2 * interval '1 microsecond', attempts = attempts + 1
		WHERE id IN (SELECT id FROM security_alerts
			WHERE sent_at IS NULL AND (claimed_until IS NULL OR claimed_until < now())
			ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING id, kind, details, created_at, attempts`, limit, lease.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("store: claim alerts: %w", err)
	}
	out, err := scanAlerts(rows)
	if err != nil {
		return nil, fmt.Errorf("store: claim alerts: %w", err)
	}
	// UPDATE ... RETURNING has no order of its own.
	slices.SortFunc(out, func(a, b Alert) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// MarkAlertSent records that alert id reached the security channel.
// A token a direct message carried is erased with it, so the queue keeps
// no usable credential once it is delivered.
func (s *Store) MarkAlertSent(ctx context.Context, id int64) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE security_alerts SET sent_at = now(), claimed_until = NULL,
		details = details - '`+AlertTokenKey+`' WHERE id = $1`, id); err != nil {
		return fmt.Errorf("store: mark alert %d sent: %w", id, err)
	}
	return nil
}

// QueuedAlerts returns every alert, sent or not, oldest first: for tests and
// operators.
func (s *Store) QueuedAlerts(ctx context.Context) ([]Alert, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, kind, details, created_at, attempts FROM security_alerts ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: alerts: %w", err)
	}
	out, err := scanAlerts(rows)
	if err != nil {
		return nil, fmt.Errorf("store: alerts: %w", err)
	}
	return out, nil
}

// scanAlerts reads rows of (id, kind, details, created_at, attempts) and
// closes them.
func scanAlerts(rows *sql.Rows) ([]Alert, error) {
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		var a Alert
		var raw []byte
		if err := rows.Scan(&a.ID, &a.Kind, &raw, &a.CreatedAt, &a.Attempts); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &a.Details); err != nil {
			return nil, fmt.Errorf("alert %d details: %w", a.ID, err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
