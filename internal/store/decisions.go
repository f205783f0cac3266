package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// SlackDecision is a senior's decision the web front verified in Slack: a
// signed click (or the reject dialog's submission) by SlackUser, who maps
// to AgentID, on the request's own approval message.
type SlackDecision struct {
	RequestID string
	AgentID   string
	Decision  domain.Decision
	SlackUser string
	// ActionTS is Slack's action_ts of the click, or "view:" and the
	// dialog's view id for a reject dialog's submission.
	ActionTS   string
	RecordedAt time.Time
}

// decisionWindow is how long after the web front recorded a decision the
// workflow may take it: the Update is sent right after the record and given
// up after the web front's decide timeout (2 minutes by default).
const decisionWindow = 5 * time.Minute

// RecordSlackDecision records d with its audit event (decision.slack) in
// one transaction, before the web front sends the decision to Temporal:
// the worker lets a decision through the approval gate only with such a
// record, so the trail shows every decision's click even if the Update's
// answer is lost.
func (s *Store) RecordSlackDecision(ctx context.Context, d SlackDecision) error {
	switch {
	case d.Decision != domain.DecisionApprove && d.Decision != domain.DecisionReject:
		return fmt.Errorf("store: record decision: decision %q", d.Decision)
	case d.RequestID == "" || d.AgentID == "" || d.SlackUser == "" || d.ActionTS == "":
		return errors.New("store: record decision: request, agent, Slack user and action ts are required")
	case d.RecordedAt.IsZero():
		return errors.New("store: record decision: no time")
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var id int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO decisions (request_id, agent_id, decision, slack_user, action_ts, recorded_at)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			d.RequestID, d.AgentID, string(d.Decision), d.SlackUser, d.ActionTS, d.RecordedAt).Scan(&id); err != nil {
			return fmt.Errorf("store: record decision on %s: %w", d.RequestID, err)
		}
		if err := auditIn(ctx, tx, AuditEvent{RequestID: d.RequestID, Actor: "agent:" + d.AgentID, Event: "decision.slack", Details: map[string]any{
			"decision_id": id, "decision": string(d.Decision), "slack_user": d.SlackUser, "action_ts": d.ActionTS}}); err != nil {
			return fmt.Errorf("store: record decision on %s: %w", d.RequestID, err)
		}
		return nil
	})
}

// DecisionRecorded reports whether approver's decision on request, taken
// by the workflow at decidedAt, was recorded by the web front: a Slack
// decision recorded shortly before, or a break-glass pair of consents that
// includes approver. Decisions taken before migration 0017 began the
// binding pass: the web front of the time recorded none. The worker asks
// before an approval or a rejection passes the approval gate.
func (s *Store) DecisionRecorded(ctx context.Context, request, approver string, decision domain.Decision, decidedAt time.Time) (bool, error) {
	if request == "" || approver == "" {
		return false, nil
	}
	var ok bool
	err := s.db.QueryRowContext(ctx, `
		SELECT $4::timestamptz < (SELECT enforced_from FROM decision_binding)
		    OR EXISTS (SELECT 1 FROM decisions
		        WHERE request_id = $1 AND agent_id = $2 AND decision = $3
		          AND $4::timestamptz BETWEEN recorded_at - $5::interval AND recorded_at + $6::interval)
		    OR EXISTS (SELECT 1 FROM break_glass_consents a
		        JOIN break_glass_consents b ON b.pair_id = a.pair_id AND b.id <> a.id
		        WHERE a.request_id = $1 AND b.request_id = $1 AND a.agent_id = $2
		          AND a.decision = $3 AND b.decision = $3
		          AND $4::timestamptz BETWEEN a.used_at - $5::interval AND least(a.expires_at, b.expires_at) + $5::interval)`,
		request, approver, string(decision), decidedAt,
		fmt.Sprintf("%d seconds", int(breakGlassSkew/time.Second)), fmt.Sprintf("%d seconds", int(decisionWindow/time.Second))).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("store: decision of %s on %s: %w", approver, request, err)
	}
	return ok, nil
}

// RefuseDecision records that a decision the web front never recorded
// reached the worker: the audit event (decision.unverified) and the
// security alert, in one transaction.
func (s *Store) RefuseDecision(ctx context.Context, request, approver string, decision domain.Decision, decidedAt time.Time) error {
	details := map[string]any{"request": request, "decision": string(decision), "approver_id": approver,
		"decided_at": decidedAt.UTC().Format(time.RFC3339Nano)}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := auditOnce(ctx, tx, AuditEvent{RequestID: request, Actor: "system", Event: "decision.unverified", Details: details},
			"decision.unverified"); err != nil {
			return fmt.Errorf("store: refuse decision: %w", err)
		}
		if err := queueAlert(ctx, tx, AlertDecisionUnverified, "decision.unverified/"+request, details); err != nil {
			return fmt.Errorf("store: refuse decision: %w", err)
		}
		return nil
	})
}
