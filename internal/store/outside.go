package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// EventEndedOutside is the audit event of a request whose workflow ended
// without Vigil recording an end state.
const EventEndedOutside = "request.ended_outside_vigil"

// EndOutsideVigil ends request id, still open in the projection, whose
// workflow is no longer running in Temporal (how says what Temporal
// reports: terminated, cancelled, not found, ...). In one transaction it
// moves the row to failed, appends EventEndedOutside and queues a security
// alert, so the request stops holding its slot and someone is told. It
// reports whether it ended the row; a row already final is left as it is.
func (s *Store) EndOutsideVigil(ctx context.Context, id, how string, at time.Time) (bool, error) {
	if at.IsZero() {
		at = time.Now()
	}
	ended := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var r struct {
			status, action, customer, requester string
		}
		err := tx.QueryRowContext(ctx, `SELECT status, action, customer_id, requester_id FROM requests WHERE id = $1 FOR UPDATE`, id).
			Scan(&r.status, &r.action, &r.customer, &r.requester)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("request %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if domain.Status(r.status).Final() {
			return nil
		}
		detail := "the request's workflow ended outside Vigil (" + how + "); nothing was executed by Vigil after that"
		if domain.Status(r.status) == domain.StatusExecuting {
			// The executor may have reached the panel before the end.
			detail = "the request's workflow ended outside Vigil (" + how + ") while executing: the action may have run; check the control panel"
		}
		if err := updateRequest(ctx, tx, id, RequestUpdate{Status: domain.StatusFailed, OutcomeDetail: &detail}, at); err != nil {
			return err
		}
		details := map[string]any{"status": string(domain.StatusFailed), "temporal": how, "was": r.status}
		if err := auditOnce(ctx, tx, AuditEvent{RequestID: id, Actor: "system", Event: EventEndedOutside, Details: details, At: at}, EventEndedOutside); err != nil {
			return err
		}
		ended = true
		return queueAlert(ctx, tx, AlertEndedOutside, EventEndedOutside+"/"+id, map[string]any{
			"request": id, "action": r.action, "customer": r.customer, "agent": r.requester, "temporal": how, "was": r.status,
		})
	})
	if err != nil {
		return false, fmt.Errorf("store: end request %s outside Vigil: %w", id, err)
	}
	return ended, nil
}

// EventRiskRefused is the audit event of an open the risk check refused.
// It names no request: none was opened.
const EventRiskRefused = "risk.refused"

// RecordRiskRefusal audits and queues for the security channel, in one
// transaction, an open of r refused by the risk check: signals is the
// summary of the account's events, why the reason in words.
func (s *Store) RecordRiskRefusal(ctx context.Context, r Request, signals, why string, at time.Time) error {
	details := map[string]any{"customer": r.CustomerID, "action": string(r.Action), "agent": r.RequesterID,
		"server": r.ServerID, "signals": signals, "why": why}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := auditIn(ctx, tx, AuditEvent{Actor: "agent:" + r.RequesterID, Event: EventRiskRefused, Details: details, At: at}); err != nil {
			return err
		}
		return queueAlert(ctx, tx, AlertRiskRefused, "", details)
	})
	if err != nil {
		return fmt.Errorf("store: record risk refusal for %s: %w", r.CustomerID, err)
	}
	return nil
}

// RequestRisk is what the risk check at the open recorded for a request.
type RequestRisk struct {
	Signals        string
	FactorVerified bool
}

// RiskOf returns the risk check's record of request id (gate.risk.assessed,
// gate.factor.verified), or nil when the open found no risk.
func (s *Store) RiskOf(ctx context.Context, id string) (*RequestRisk, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT event, COALESCE(details->>'signals', '') FROM audit_events
		WHERE request_id = $1 AND event IN ('gate.risk.assessed', 'gate.factor.verified') ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("store: risk of %s: %w", id, err)
	}
	defer rows.Close()
	var out *RequestRisk
	factor := false
	for rows.Next() {
		var ev, signals string
		if err := rows.Scan(&ev, &signals); err != nil {
			return nil, fmt.Errorf("store: risk of %s: %w", id, err)
		}
		switch ev {
		case "gate.risk.assessed":
			out = &RequestRisk{Signals: signals}
		case "gate.factor.verified":
			factor = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: risk of %s: %w", id, err)
	}
	if out != nil {
		out.FactorVerified = factor
	}
	return out, nil
}
