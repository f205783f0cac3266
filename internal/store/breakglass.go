package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// Break-glass refusals a caller answers differently.
var (
	// ErrAlreadyConsented: the senior has a pending consent for the request.
	ErrAlreadyConsented = fmt.Errorf("%w: this senior's break-glass consent is already pending", ErrConflict)
	// ErrNotAwaiting: the request is not waiting for a decision.
	ErrNotAwaiting = errors.New("the request is not waiting for approval")
	// ErrOwnRequest: the senior opened the request.
	ErrOwnRequest = errors.New("the requester cannot consent to a break-glass decision of their own request")
	// ErrNotConsentingSenior: the agent is not an enabled senior.
	ErrNotConsentingSenior = errors.New("only enabled senior agents can consent to a break-glass decision")
)

// BreakGlassConsent is one senior's consent to decide a request outside Slack.
type BreakGlassConsent struct {
	ID        int64
	RequestID string
	AgentID   string
	Decision  domain.Decision
	Reason    string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// BreakGlassResult is what a consent led to: Pair is nil while the consent
// waits for a second senior, and otherwise holds the older consent first.
type BreakGlassResult struct {
	Consent BreakGlassConsent
	Pair    *[2]BreakGlassConsent
}

// ConsentBreakGlass records agent's consent to decide request c.RequestID
// outside Slack, valid for ttl from now, with its audit event. When another
// senior's pending, unexpired consent to the same decision exists, the two
// are paired in the same transaction, which also records
// decision.break_glass: the caller then sends the decision. The agent row is
// read here, in the transaction, so the role is never the caller's word.
func (s *Store) ConsentBreakGlass(ctx context.Context, c BreakGlassConsent, ttl time.Duration, now time.Time, warning string) (BreakGlassResult, error) {
	if ttl <= 0 {
		return BreakGlassResult{}, errors.New("store: break-glass consent: ttl must be positive")
	}
	if c.Decision != domain.DecisionApprove && c.Decision != domain.DecisionReject {
		return BreakGlassResult{}, fmt.Errorf("store: break-glass consent: decision %q", c.Decision)
	}
	var out BreakGlassResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// The request's row lock orders concurrent consents of one request,
		// so two seniors consenting at once pair exactly once.
		var status, requester string
		err := tx.QueryRowContext(ctx, `SELECT status, requester_id FROM requests WHERE id = $1 FOR UPDATE`, c.RequestID).Scan(&status, &requester)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("store: break-glass consent: request %s: %w", c.RequestID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: break-glass consent: %w", err)
		}
		var role string
		var disabled bool
		err = tx.QueryRowContext(ctx, `SELECT role, disabled_at IS NOT NULL FROM agents WHERE id = $1`, c.AgentID).Scan(&role, &disabled)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (disabled || role != string(domain.RoleSenior))) {
			return fmt.Errorf("store: break-glass consent of %s: %w", c.AgentID, ErrNotConsentingSenior)
		}
		if err != nil {
			return fmt.Errorf("store: break-glass consent: %w", err)
		}
		switch {
		case requester == c.AgentID:
			return fmt.Errorf("store: break-glass consent of %s: %w", c.AgentID, ErrOwnRequest)
		case domain.Status(status) != domain.StatusAwaitingApproval:
			return fmt.Errorf("store: break-glass consent: request %s is %s: %w", c.RequestID, status, ErrNotAwaiting)
		}
		var pending int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM break_glass_consents
			WHERE request_id = $1 AND agent_id = $2 AND used_at IS NULL AND expires_at > $3`,
			c.RequestID, c.AgentID, now).Scan(&pending); err != nil {
			return fmt.Errorf("store: break-glass consent: %w", err)
		}
		if pending > 0 {
			return fmt.Errorf("store: break-glass consent of %s: %w", c.AgentID, ErrAlreadyConsented)
		}
		c.CreatedAt, c.ExpiresAt = now, now.Add(ttl)
		if err := tx.QueryRowContext(ctx, `INSERT INTO break_glass_consents (request_id, agent_id, decision, reason, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			c.RequestID, c.AgentID, string(c.Decision), c.Reason, c.CreatedAt, c.ExpiresAt).Scan(&c.ID); err != nil {
			return fmt.Errorf("store: break-glass consent: %w", err)
		}
		out.Consent = c
		if err := auditIn(ctx, tx, AuditEvent{RequestID: c.RequestID, Actor: "agent:" + c.AgentID, Event: "break_glass.consented", Details: map[string]any{
			"consent_id": c.ID, "decision": string(c.Decision), "reason": c.Reason,
			"expires_at": c.ExpiresAt.UTC().Format(time.RFC3339), "warning": warning}}); err != nil {
			return fmt.Errorf("store: break-glass consent: %w", err)
		}
		first, err := scanConsent(tx.QueryRowContext(ctx, `SELECT `+consentColumns+` FROM break_glass_consents
			WHERE request_id = $1 AND agent_id <> $2 AND decision = $3 AND used_at IS NULL AND expires_at > $4
			ORDER BY created_at, id LIMIT 1`, c.RequestID, c.AgentID, string(c.Decision), now))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("store: break-glass consent: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE break_glass_consents SET pair_id = $1, used_at = $2 WHERE id IN ($1, $3)`,
			first.ID, now, c.ID); err != nil {
			return fmt.Errorf("store: break-glass pair: %w", err)
		}
		out.Pair = &[2]BreakGlassConsent{first, c}
		// Audited before the Update: a decision cannot be undone, so the
		// trail must show where it came from even if the answer is lost.
		if err := auditIn(ctx, tx, AuditEvent{RequestID: c.RequestID, Actor: "agent:" + c.AgentID, Event: "decision.break_glass", Details: map[string]any{
			"decision":    string(c.Decision),
			"approver_id": first.AgentID, "approver_role": string(domain.RoleSenior), "approver_reason": first.Reason,
			"second_approver_id": c.AgentID, "second_approver_role": string(domain.RoleSenior), "second_approver_reason": c.Reason,
			"consents": []int64{first.ID, c.ID}, "warning": warning}}); err != nil {
			return fmt.Errorf("store: break-glass pair: %w", err)
		}
		return nil
	})
	return out, err
}

const consentColumns = `id, request_id, agent_id, decision, reason, created_at, expires_at`

func scanConsent(row interface{ Scan(...any) error }) (BreakGlassConsent, error) {
	var c BreakGlassConsent
	var d string
	if err := row.Scan(&c.ID, &c.RequestID, &c.AgentID, &d, &c.Reason, &c.CreatedAt, &c.ExpiresAt); err != nil {
		return BreakGlassConsent{}, err
	}
	c.Decision = domain.Decision(d)
	return c, nil
}

// breakGlassSkew is how far Temporal's clock at the decision may be from the
// database's at the pairing: the Update is sent right after the pairing.
const breakGlassSkew = time.Minute

// BreakGlassPaired reports whether approver and second consented to decision
// on request and were paired while both consents were unexpired, with the
// decision made at decidedAt within their validity, and both are still
// enabled seniors. The worker asks before a break-glass approval passes the
// approval gate, so a decision sent to Temporal without the two consents
// (by an admin, an operator, a forged Update) does not.
func (s *Store) BreakGlassPaired(ctx context.Context, request, approver, second string, decision domain.Decision, decidedAt time.Time) (bool, error) {
	if approver == "" || second == "" || approver == second {
		return false, nil
	}
	var n int
	err := s.db.QueryRowContext(ctx, `
		SELECT count(*) FROM break_glass_consents a
		JOIN break_glass_consents b ON b.pair_id = a.pair_id AND b.id <> a.id
		JOIN agents aa ON aa.id = a.agent_id AND aa.role = 'senior' AND aa.disabled_at IS NULL
		JOIN agents ab ON ab.id = b.agent_id AND ab.role = 'senior' AND ab.disabled_at IS NULL
		JOIN requests r ON r.id = a.request_id AND r.requester_id NOT IN (a.agent_id, b.agent_id)
		WHERE a.request_id = $1 AND b.request_id = $1 AND a.agent_id = $2 AND b.agent_id = $3
		  AND a.decision = $4 AND b.decision = $4
		  AND a.used_at < a.expires_at AND b.used_at < b.expires_at
		  AND $5::timestamptz BETWEEN a.used_at - $6::interval AND least(a.expires_at, b.expires_at) + $6::interval`,
		request, approver, second, string(decision), decidedAt, fmt.Sprintf("%d seconds", int(breakGlassSkew/time.Second))).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("store: break-glass pair of %s: %w", request, err)
	}
	return n > 0, nil
}

// RefuseBreakGlass records that a break-glass decision without two paired
// consents reached the worker: the audit event and the security alert, in
// one transaction.
func (s *Store) RefuseBreakGlass(ctx context.Context, request, approver, second string, decision domain.Decision) error {
	details := map[string]any{"request": request, "decision": string(decision), "approver_id": approver, "second_approver_id": second}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := auditOnce(ctx, tx, AuditEvent{RequestID: request, Actor: "system", Event: "break_glass.unconsented", Details: details},
			"break_glass.unconsented"); err != nil {
			return fmt.Errorf("store: refuse break-glass: %w", err)
		}
		if err := queueAlert(ctx, tx, AlertBreakGlassUnconsented, "break_glass.unconsented/"+request, details); err != nil {
			return fmt.Errorf("store: refuse break-glass: %w", err)
		}
		return nil
	})
}
