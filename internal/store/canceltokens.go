package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CancelToken is a single-use permission for one recipient to cancel one
// request. The id is what the signed link carries.
type CancelToken struct {
	ID, RequestID, Recipient string
	ExpiresAt                time.Time
	UsedAt                   *time.Time
}

// CreateCancelToken stores t. Creating the same id again changes nothing. A
// missing request is ErrNotFound.
func (s *Store) CreateCancelToken(ctx context.Context, t CancelToken) error {
	if t.ID == "" || t.RequestID == "" || t.ExpiresAt.IsZero() {
		return errors.New("store: create cancel token: empty id, request id or expiry")
	}
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO cancel_tokens (id, request_id, recipient, expires_at, used_at)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
		t.ID, t.RequestID, t.Recipient, t.ExpiresAt, ptrTime(t.UsedAt))
	if code, _ := pgCode(err); code == codeForeignKeyViolation {
		return fmt.Errorf("store: create cancel token: request %s: %w", t.RequestID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: create cancel token for %s: %w", t.RequestID, err)
	}
	return nil
}

// CancelToken returns the token with id.
func (s *Store) CancelToken(ctx context.Context, id string) (CancelToken, error) {
	t := CancelToken{ID: id}
	var used sql.NullTime
	err := s.db.QueryRowContext(ctx,
		`SELECT request_id, recipient, expires_at, used_at FROM cancel_tokens WHERE id = $1`, id).
		Scan(&t.RequestID, &t.Recipient, &t.ExpiresAt, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return CancelToken{}, fmt.Errorf("store: cancel token: %w", ErrNotFound)
	}
	if err != nil {
		return CancelToken{}, fmt.Errorf("store: cancel token: %w", err)
	}
	t.UsedAt = timePtr(used)
	return t, nil
}

// UseCancelToken marks the token used at now, atomically: of any number of
// concurrent calls exactly one succeeds. A used token is ErrTokenUsed, an
// expired one ErrTokenExpired (and stays unused), an unknown one ErrNotFound.
// Error messages never include the token id.
func (s *Store) UseCancelToken(ctx context.Context, id string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `
		UPDATE cancel_tokens SET used_at = $2
		WHERE id = $1 AND used_at IS NULL AND expires_at > $2`, id, now)
	if err != nil {
		return fmt.Errorf("store: use cancel token: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: use cancel token: %w", err)
	}
	if n == 1 {
		return nil
	}
	t, err := s.CancelToken(ctx, id)
	if err != nil {
		return fmt.Errorf("store: use cancel token: %w", errors.Unwrap(err))
	}
	if t.UsedAt != nil {
		return fmt.Errorf("store: use cancel token: %w", ErrTokenUsed)
	}
	return fmt.Errorf("store: use cancel token: %w", ErrTokenExpired)
}
