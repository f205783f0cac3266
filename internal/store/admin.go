package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/vigil-oss/vigil/internal/domain"
)

// ErrBootstrapDone: an enabled admin exists, so the bootstrap token may no
// longer create one.
var ErrBootstrapDone = errors.New("an enabled admin exists; the bootstrap token creates only the first")

// AgentDM is a direct message to an agent about something an admin did to
// their account, relayed to Slack with the security alerts.
type AgentDM struct {
	AgentID, SlackUserID string
}

// AuditAdmin appends e, an admin action (e.Actor names the admin), and in
// the same transaction queues its post for the security channel and, when
// dm is set, the direct message to the agent it concerns: an admin action
// the trail holds is announced, and none is announced that it does not hold.
// announce false records e only (the per-request echoes of one action).
func (s *Store) AuditAdmin(ctx context.Context, e AuditEvent, announce bool, dm *AgentDM) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return auditAdminTx(ctx, tx, e, announce, dm, "") })
}

// ErrNoSlackID: the agent has no Slack user id, so a token rotated for them
// by someone else could reach no one but the caller; they rotate their own.
var ErrNoSlackID = errors.New("the agent has no Slack user id to receive a new token")

// RotateTokenFor gives agent dm.AgentID the token whose SHA-256 is
// tokenHash, audits e (e.Actor names who did it), announces it, and queues
// token itself in a direct message to the agent's Slack user, all in one
// transaction: the new token reaches the agent and no one else, and a
// rotation that could not be told does not happen. The queued token is
// erased from the queue once sent (MarkAlertSent). An agent without a
// Slack id is refused with ErrNoSlackID and nothing changes.
func (s *Store) RotateTokenFor(ctx context.Context, e AuditEvent, dm AgentDM, tokenHash []byte, token string) error {
	if dm.SlackUserID == "" {
		return fmt.Errorf("store: rotate token of %s: %w", dm.AgentID, ErrNoSlackID)
	}
	if len(tokenHash) == 0 || token == "" {
		return fmt.Errorf("store: rotate token of %s: no token", dm.AgentID)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		// The Slack id is checked again under the row's lock, so a change
		// made since the caller read the agent cannot send the token to an
		// old (or no) address.
		res, err := tx.ExecContext(ctx, `UPDATE agents SET token_hash = $2 WHERE id = $1 AND slack_user_id = $3`,
			dm.AgentID, tokenHash, dm.SlackUserID)
		if err != nil {
			return fmt.Errorf("store: rotate token of %s: %w", dm.AgentID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: rotate token of %s: %w", dm.AgentID, err)
		} else if n == 0 {
			return fmt.Errorf("store: rotate token of %s: %w (or its Slack id changed)", dm.AgentID, ErrNotFound)
		}
		return auditAdminTx(ctx, tx, e, true, &dm, token)
	})
}

// RotateOwnToken gives agent id (the caller, whom e.Actor names) the token
// whose SHA-256 is tokenHash, audits e and announces it, in one
// transaction: a rotation the trail does not hold does not happen.
func (s *Store) RotateOwnToken(ctx context.Context, e AuditEvent, id string, tokenHash []byte) error {
	if len(tokenHash) == 0 {
		return fmt.Errorf("store: rotate own token of %s: no token", id)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE agents SET token_hash = $2 WHERE id = $1 AND disabled_at IS NULL`, id, tokenHash)
		if err != nil {
			return fmt.Errorf("store: rotate own token of %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: rotate own token of %s: %w", id, err)
		} else if n == 0 {
			return fmt.Errorf("store: rotate own token of %s: %w", id, ErrNotFound)
		}
		return auditAdminTx(ctx, tx, e, true, nil, "")
	})
}

// auditAdminTx is AuditAdmin inside tx; a non-empty token is carried in the
// direct message (only RotateTokenFor passes one).
func auditAdminTx(ctx context.Context, tx *sql.Tx, e AuditEvent, announce bool, dm *AgentDM, token string) error {
	var id int64
	details, err := auditDetails(e)
	if err != nil {
		return fmt.Errorf("store: audit %s: %w", e.Event, err)
	}
	if err := tx.QueryRowContext(ctx, `INSERT INTO audit_events (request_id, actor, event, details, at)
		VALUES ($1, $2, $3, $4, COALESCE($5, now())) RETURNING id`,
		nullString(e.RequestID), e.Actor, e.Event, string(details), nullTime(e.At)).Scan(&id); err != nil {
		return fmt.Errorf("store: audit %s: %w", e.Event, err)
	}
	if !announce {
		return nil
	}
	alert := map[string]any{"admin": e.Actor, "event": e.Event, "audit_id": id, "details": e.Details}
	if e.RequestID != "" {
		alert["request"] = e.RequestID
	}
	if err := queueAlert(ctx, tx, AlertAdminAction, "", alert); err != nil {
		return fmt.Errorf("store: announce %s: %w", e.Event, err)
	}
	if dm != nil && dm.SlackUserID != "" {
		d := map[string]any{"admin": e.Actor, "event": e.Event, "audit_id": id,
			"agent": dm.AgentID, "slack_user_id": dm.SlackUserID}
		if token != "" {
			d[AlertTokenKey] = token
		}
		if err := queueAlert(ctx, tx, AlertAgentDM, "", d); err != nil {
			// The error names the agent and the event, never the token.
			return fmt.Errorf("store: tell %s of %s: %w", dm.AgentID, e.Event, err)
		}
	}
	return nil
}

// CreateFirstAdmin creates agent a, of role admin, only while no enabled
// admin exists: the bootstrap token's one use. The check and the insert are
// one transaction under a lock, so two bootstrap calls make one admin.
func (s *Store) CreateFirstAdmin(ctx context.Context, a Agent, tokenHash []byte) error {
	if a.Role != domain.RoleAdmin {
		return fmt.Errorf("store: first admin %s: role %s is not admin", a.ID, a.Role)
	}
	if a.Team == "" {
		a.Team = "Support"
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, firstAdminLockKey); err != nil {
			return fmt.Errorf("store: first admin: %w", err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM agents WHERE role = 'admin' AND disabled_at IS NULL`).Scan(&n); err != nil {
			return fmt.Errorf("store: first admin: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("store: first admin %s: %w", a.ID, ErrBootstrapDone)
		}
		var hash any
		if len(tokenHash) > 0 {
			hash = tokenHash
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO agents (id, name, email, team, role, slack_user_id, token_hash)
			VALUES ($1, $2, $3, $4, 'admin', $5, $6)`, a.ID, a.Name, a.Email, a.Team, nullString(a.SlackUserID), hash)
		if code, constraint := pgCode(err); code == codeUniqueViolation {
			return fmt.Errorf("store: first admin %s: %w (%s)", a.ID, ErrConflict, constraint)
		}
		if err != nil {
			return fmt.Errorf("store: first admin %s: %w", a.ID, err)
		}
		return nil
	})
}

// firstAdminLockKey is the advisory lock that serialises CreateFirstAdmin.
const firstAdminLockKey = 0x76676c61646d696e // "vgladmin"
