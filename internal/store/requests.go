package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"
	"github.com/vigil-oss/vigil/internal/domain"
)

// Request is the listing projection of a sensitive request. The workflow is
// the source of truth; activities keep this row in step with it.
type Request struct {
	ID, WorkflowID                                                  string
	Action                                                          domain.Action
	CustomerID, RequesterID, ServerID, Email, Reason                string
	Status                                                          domain.Status
	ApproverID, Decision, DecisionReason                            string
	DecidedAt, NotifiedAt, CoolingEndsAt, EndedAt                   *time.Time
	SlackChannel, SlackTS, CancelledBy, CancelReason, OutcomeDetail string
	CreatedAt, UpdatedAt                                            time.Time
}

// RequestUpdate changes a request; nil fields and an empty Status are left
// as they are.
type RequestUpdate struct {
	Status                                                          domain.Status
	ApproverID, Decision, DecisionReason                            *string
	DecidedAt, NotifiedAt, CoolingEndsAt                            *time.Time
	SlackChannel, SlackTS, CancelledBy, CancelReason, OutcomeDetail *string
}

// ListFilter narrows ListRequests. Empty fields match everything.
type ListFilter struct {
	RequesterID, CustomerID string
	OpenOnly                bool // only requests not yet in a final status
	Limit                   int  // default 50, at most 500
}

// List limits.
const (
	defaultListLimit = 50
	maxListLimit     = 500
)

// knownStatuses guards against a typo'd status reaching the projection.
var knownStatuses = func() map[domain.Status]bool {
	m := map[domain.Status]bool{}
	for _, s := range domain.Statuses() {
		m[s] = true
	}
	return m
}()

// finalStatuses lists the end states, for SQL filters.
func finalStatuses() []string {
	var out []string
	for st := range knownStatuses {
		if st.Final() {
			out = append(out, string(st))
		}
	}
	return out
}

const requestColumns = `id, workflow_id, action, customer_id, requester_id, server_id, email, reason, status,
	COALESCE(approver_id, ''), COALESCE(decision, ''), COALESCE(decision_reason, ''),
	decided_at, notified_at, cooling_ends_at, ended_at,
	COALESCE(slack_channel, ''), COALESCE(slack_ts, ''), COALESCE(cancelled_by, ''),
	COALESCE(cancel_reason, ''), COALESCE(outcome_detail, ''), created_at, updated_at`

// scanRequest reads requestColumns.
func scanRequest(row interface{ Scan(...any) error }) (Request, error) {
	var r Request
	var action, status string
	var decided, notified, cooling, ended sql.NullTime
	err := row.Scan(&r.ID, &r.WorkflowID, &action, &r.CustomerID, &r.RequesterID, &r.ServerID, &r.Email,
		&r.Reason, &status, &r.ApproverID, &r.Decision, &r.DecisionReason,
		&decided, &notified, &cooling, &ended,
		&r.SlackChannel, &r.SlackTS, &r.CancelledBy, &r.CancelReason, &r.OutcomeDetail,
		&r.CreatedAt, &r.UpdatedAt)
	if err != nil {
		return Request{}, err
	}
	r.Action, r.Status = domain.Action(action), domain.Status(status)
	r.DecidedAt, r.NotifiedAt, r.CoolingEndsAt, r.EndedAt = timePtr(decided), timePtr(notified), timePtr(cooling), timePtr(ended)
	return r, nil
}

// CreateRequest records a new request. Creating the same id again changes
// nothing (activities retry). An empty Status means pin_check; a zero
// CreatedAt means now. A missing customer or requester is ErrNotFound; a
// workflow id already used by another request is ErrConflict.
func (s *Store) CreateRequest(ctx context.Context, r Request) error {
	if r.ID == "" || r.WorkflowID == "" {
		return errors.New("store: create request: empty id or workflow id")
	}
	if _, err := domain.ParseAction(string(r.Action)); err != nil {
		return fmt.Errorf("store: create request %s: %w", r.ID, err)
	}
	if r.Status == "" {
		r.Status = domain.StatusPINCheck
	}
	if !knownStatuses[r.Status] {
		return fmt.Errorf("store: create request %s: unknown status %q", r.ID, r.Status)
	}
	var endedAt time.Time // used only for a final status; zero falls back to created_at
	if r.EndedAt != nil {
		endedAt = *r.EndedAt
	}
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO requests (id, workflow_id, action, customer_id, requester_id, server_id, email, reason,
			status, approver_id, decision, decision_reason, decided_at, slack_channel, slack_ts,
			notified_at, cooling_ends_at, cancelled_by, cancel_reason, outcome_detail,
			created_at, updated_at, ended_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
			COALESCE($21, now()), COALESCE($21, now()),
			CASE WHEN $22 THEN COALESCE($23, $21, now()) END)
		ON CONFLICT (id) DO NOTHING`,
		r.ID, r.WorkflowID, string(r.Action), r.CustomerID, r.RequesterID, r.ServerID, r.Email, r.Reason,
		string(r.Status), nullString(r.ApproverID), nullString(r.Decision), nullString(r.DecisionReason),
		ptrTime(r.DecidedAt), nullString(r.SlackChannel), nullString(r.SlackTS),
		ptrTime(r.NotifiedAt), ptrTime(r.CoolingEndsAt), nullString(r.CancelledBy),
		nullString(r.CancelReason), nullString(r.OutcomeDetail),
		nullTime(r.CreatedAt), r.Status.Final(), nullTime(endedAt))
	switch code, constraint := pgCode(err); {
	case code == codeForeignKeyViolation:
		what := "customer " + r.CustomerID
		if strings.Contains(constraint, "requester") {
			what = "requester " + r.RequesterID
		}
		return fmt.Errorf("store: create request %s: %s: %w", r.ID, what, ErrNotFound)
	case code == codeUniqueViolation:
		return fmt.Errorf("store: create request %s: %w (%s)", r.ID, ErrConflict, constraint)
	case err != nil:
		return fmt.Errorf("store: create request %s: %w", r.ID, err)
	}
	return nil
}

// Request returns the request with id.
func (s *Store) Request(ctx context.Context, id string) (Request, error) {
	r, err := scanRequest(s.db.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM requests WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, fmt.Errorf("store: request %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Request{}, fmt.Errorf("store: request %s: %w", id, err)
	}
	return r, nil
}

// UpdateRequest applies u at time at (zero: now), setting updated_at, and
// ended_at when the new status is final. A request in a final status is
// frozen: an update with no status or the same status is a no-op returning
// nil (a retried activity), any other status is ErrFinal.
func (s *Store) UpdateRequest(ctx context.Context, id string, u RequestUpdate, at time.Time) error {
	if u.Status != "" && !knownStatuses[u.Status] {
		return fmt.Errorf("store: update request %s: unknown status %q", id, u.Status)
	}
	if at.IsZero() {
		at = time.Now()
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT status FROM requests WHERE id = $1 FOR UPDATE`, id).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("request %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if current := domain.Status(cur); current.Final() {
			if u.Status == "" || u.Status == current {
				return nil
			}
			return fmt.Errorf("%s -> %s: %w", current, u.Status, ErrFinal)
		}
		var status sql.NullString
		if u.Status != "" {
			status = sql.NullString{String: string(u.Status), Valid: true}
		}
		_, err = tx.ExecContext(ctx, `
			UPDATE requests SET
				status          = COALESCE($2, status),
				approver_id     = COALESCE($3, approver_id),
				decision        = COALESCE($4, decision),
				decision_reason = COALESCE($5, decision_reason),
				decided_at      = COALESCE($6, decided_at),
				notified_at     = COALESCE($7, notified_at),
				cooling_ends_at = COALESCE($8, cooling_ends_at),
				slack_channel   = COALESCE($9, slack_channel),
				slack_ts        = COALESCE($10, slack_ts),
				cancelled_by    = COALESCE($11, cancelled_by),
				cancel_reason   = COALESCE($12, cancel_reason),
				outcome_detail  = COALESCE($13, outcome_detail),
				updated_at      = $14,
				ended_at        = CASE WHEN $15 THEN $14 ELSE ended_at END
			WHERE id = $1`,
			id, status, ptrString(u.ApproverID), ptrString(u.Decision), ptrString(u.DecisionReason),
			ptrTime(u.DecidedAt), ptrTime(u.NotifiedAt), ptrTime(u.CoolingEndsAt),
			ptrString(u.SlackChannel), ptrString(u.SlackTS), ptrString(u.CancelledBy),
			ptrString(u.CancelReason), ptrString(u.OutcomeDetail), at, u.Status.Final())
		return err
	})
	if err != nil {
		return fmt.Errorf("store: update request %s: %w", id, err)
	}
	return nil
}

// ptrString maps nil to NULL; a non-nil empty string is stored as is.
func ptrString(p *string) sql.NullString {
	if p == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: *p, Valid: true}
}

// ListRequests returns requests matching f, newest first.
func (s *Store) ListRequests(ctx context.Context, f ListFilter) ([]Request, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	limit = min(limit, maxListLimit)
	rows, err := s.db.QueryContext(ctx, `SELECT `+requestColumns+` FROM requests
		WHERE ($1 = '' OR requester_id = $1)
		  AND ($2 = '' OR customer_id = $2)
		  AND (NOT $3 OR status <> ALL($4))
		ORDER BY created_at DESC, id DESC
		LIMIT $5`,
		f.RequesterID, f.CustomerID, f.OpenOnly, pq.Array(finalStatuses()), limit)
	if err != nil {
		return nil, fmt.Errorf("store: list requests: %w", err)
	}
	defer rows.Close()
	var out []Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list requests: %w", err)
	}
	return out, nil
}
