package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// Agent is a support staff member who opens, approves or administers
// requests. Its API token is stored only as a hash and never loaded into it.
type Agent struct {
	ID, Name, Email, Team string
	Role                  domain.Role
	SlackUserID           string
	Disabled              bool
	CreatedAt             time.Time
}

const agentColumns = `id, name, email, team, role, COALESCE(slack_user_id, ''), disabled_at IS NOT NULL, created_at`

// scanAgent reads agentColumns.
func scanAgent(row interface{ Scan(...any) error }) (Agent, error) {
	var a Agent
	var role string
	if err := row.Scan(&a.ID, &a.Name, &a.Email, &a.Team, &role, &a.SlackUserID, &a.Disabled, &a.CreatedAt); err != nil {
		return Agent{}, err
	}
	a.Role = domain.Role(role)
	return a, nil
}

// CreateAgent adds an agent with an optional token hash (nil for none). An
// existing id, Slack user or token hash is ErrConflict. An empty Team
// becomes "Support".
func (s *Store) CreateAgent(ctx context.Context, a Agent, tokenHash []byte) error {
	if a.ID == "" {
		return errors.New("store: create agent: empty id")
	}
	if _, err := domain.ParseRole(string(a.Role)); err != nil {
		return fmt.Errorf("store: create agent %s: %w", a.ID, err)
	}
	if a.Team == "" {
		a.Team = "Support"
	}
	var hash any
	if len(tokenHash) > 0 {
		hash = tokenHash
	}
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO agents (id, name, email, team, role, slack_user_id, token_hash, disabled_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8 THEN now() END, COALESCE($9, now()))`,
		a.ID, a.Name, a.Email, a.Team, string(a.Role), nullString(a.SlackUserID), hash, a.Disabled, nullTime(a.CreatedAt))
	if code, constraint := pgCode(err); code == codeUniqueViolation {
		return fmt.Errorf("store: create agent %s: %w (%s)", a.ID, ErrConflict, constraint)
	}
	if err != nil {
		return fmt.Errorf("store: create agent %s: %w", a.ID, err)
	}
	return nil
}

// Agent returns the agent with id, disabled or not.
func (s *Store) Agent(ctx context.Context, id string) (Agent, error) {
	a, err := scanAgent(s.db.QueryRowContext(ctx, `SELECT `+agentColumns+` FROM agents WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Agent{}, fmt.Errorf("store: agent %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("store: agent %s: %w", id, err)
	}
	return a, nil
}

// AgentByTokenHash returns the enabled agent whose API token hashes to hash.
// Disabled agents and unknown hashes are ErrNotFound.
func (s *Store) AgentByTokenHash(ctx context.Context, hash []byte) (Agent, error) {
	if len(hash) == 0 {
		return Agent{}, fmt.Errorf("store: agent by token: %w", ErrNotFound)
	}
	a, err := scanAgent(s.db.QueryRowContext(ctx,
		`SELECT `+agentColumns+` FROM agents WHERE token_hash = $1 AND disabled_at IS NULL`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return Agent{}, fmt.Errorf("store: agent by token: %w", ErrNotFound)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("store: agent by token: %w", err)
	}
	return a, nil
}

// AgentBySlackUser returns the enabled agent linked to a Slack user id.
// Disabled agents are ErrNotFound too, so a disabled senior cannot approve.
func (s *Store) AgentBySlackUser(ctx context.Context, slackUserID string) (Agent, error) {
	if slackUserID == "" {
		return Agent{}, fmt.Errorf("store: agent by Slack user: empty id: %w", ErrNotFound)
	}
	a, err := scanAgent(s.db.QueryRowContext(ctx,
		`SELECT `+agentColumns+` FROM agents WHERE slack_user_id = $1 AND disabled_at IS NULL`, slackUserID))
	if errors.Is(err, sql.ErrNoRows) {
		return Agent{}, fmt.Errorf("store: agent by Slack user %s: %w", slackUserID, ErrNotFound)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("store: agent by Slack user %s: %w", slackUserID, err)
	}
	return a, nil
}

// SetAgentRole changes an agent's role.
func (s *Store) SetAgentRole(ctx context.Context, id string, r domain.Role) error {
	if _, err := domain.ParseRole(string(r)); err != nil {
		return fmt.Errorf("store: set role of %s: %w", id, err)
	}
	return s.updateAgent(ctx, id, "set role", `UPDATE agents SET role = $2 WHERE id = $1`, string(r))
}

// SetAgentToken replaces an agent's token hash; nil removes the token.
func (s *Store) SetAgentToken(ctx context.Context, id string, tokenHash []byte) error {
	var hash any
	if len(tokenHash) > 0 {
		hash = tokenHash
	}
	return s.updateAgent(ctx, id, "set token", `UPDATE agents SET token_hash = $2 WHERE id = $1`, hash)
}

// DisableAgent marks an agent disabled from at on; its token and Slack
// identity stop resolving. Disabling twice keeps the first time.
func (s *Store) DisableAgent(ctx context.Context, id string, at time.Time) error {
	return s.updateAgent(ctx, id, "disable",
		`UPDATE agents SET disabled_at = COALESCE(disabled_at, $2, now()) WHERE id = $1`, nullTime(at))
}

// updateAgent runs a one-row update, mapping no row to ErrNotFound and a
// unique violation to ErrConflict.
func (s *Store) updateAgent(ctx context.Context, id, what, query string, arg any) error {
	res, err := s.db.ExecContext(ctx, query, id, arg)
	if code, constraint := pgCode(err); code == codeUniqueViolation {
		return fmt.Errorf("store: %s of agent %s: %w (%s)", what, id, ErrConflict, constraint)
	}
	if err != nil {
		return fmt.Errorf("store: %s of agent %s: %w", what, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: %s of agent %s: %w", what, id, err)
	}
	if n == 0 {
		return fmt.Errorf("store: %s: agent %s: %w", what, id, ErrNotFound)
	}
	return nil
}

// ListAgents returns every agent, disabled ones included, by id.
func (s *Store) ListAgents(ctx context.Context) ([]Agent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+agentColumns+` FROM agents ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list agents: %w", err)
	}
	defer rows.Close()
	var out []Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list agents: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list agents: %w", err)
	}
	return out, nil
}
