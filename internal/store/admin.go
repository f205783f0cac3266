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
	return s.inTx(ctx, func(tx *sql.Tx) error {
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
			if err := queueAlert(ctx, tx, AlertAgentDM, "", map[string]any{"admin": e.Actor, "event": e.Event, "audit_id": id,
				"agent": dm.AgentID, "slack_user_id": dm.SlackUserID}); err != nil {
				return fmt.Errorf("store: tell %s of %s: %w", dm.AgentID, e.Event, err)
			}
		}
		return nil
	})
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
