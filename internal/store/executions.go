package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vigil-oss/vigil/internal/domain"
)

// ExecutionResult is what ExecuteOnce reports: the executor's reference and
// whether it came from an earlier, finished execution.
type ExecutionResult struct {
	Reference   string
	AlreadyDone bool
}

// executionResult is the JSON kept in executions.result.
type executionResult struct {
	Reference string `json:"reference"`
}

// ExecuteOnce runs an action for a request at most once to completion. It
// holds the request's execution row locked (SELECT ... FOR UPDATE) while run
// executes, so concurrent callers wait; once one has finished, the others
// get its reference with AlreadyDone and run is not called again. If run
// fails, the row stays 'started' with the attempt counted and the next call
// runs again.
//
// Each waiting caller holds a pooled connection, so run itself should not
// need many more from the same pool.
//
// run's error is returned exactly as run returned it, not wrapped: Temporal
// decides retryability by the error's dynamic type (*temporal.ApplicationError),
// which wrapping would hide. Errors of the store itself are wrapped.
func (s *Store) ExecuteOnce(ctx context.Context, requestID string, action domain.Action, idempotencyKey string, run func(ctx context.Context) (reference string, err error)) (ExecutionResult, error) {
	if requestID == "" || idempotencyKey == "" || run == nil {
		return ExecutionResult{}, errors.New("store: execute: empty request id, idempotency key or run func")
	}
	wrap := func(err error) error { return fmt.Errorf("store: execute %s: %w", requestID, err) }

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return ExecutionResult{}, wrap(err)
	}
	defer func() { _ = tx.Rollback() }()

	_, err = tx.ExecContext(ctx, `
		INSERT INTO executions (request_id, action, idempotency_key, state)
		VALUES ($1, $2, $3, 'started') ON CONFLICT DO NOTHING`,
		requestID, string(action), idempotencyKey)
	switch code, constraint := pgCode(err); {
	case code == codeForeignKeyViolation:
		return ExecutionResult{}, wrap(fmt.Errorf("request %s: %w", requestID, ErrNotFound))
	case code == codeUniqueViolation:
		return ExecutionResult{}, wrap(fmt.Errorf("idempotency key used by another request: %w (%s)", ErrConflict, constraint))
	case err != nil:
		return ExecutionResult{}, wrap(err)
	}

	var (
		gotAction, gotKey, state string
		result                   []byte
	)
	// No conflict target above: with concurrent callers, Postgres may meet
	// the idempotency_key index before the primary key, and a targeted
	// ON CONFLICT (request_id) would then fail instead of waiting. A row
	// missing here means the key belongs to another request.
	err = tx.QueryRowContext(ctx, `
		SELECT action, idempotency_key, state, result FROM executions
		WHERE request_id = $1 FOR UPDATE`, requestID).Scan(&gotAction, &gotKey, &state, &result)
	if errors.Is(err, sql.ErrNoRows) {
		return ExecutionResult{}, wrap(fmt.Errorf("idempotency key used by another request: %w", ErrConflict))
	}
	if err != nil {
		return ExecutionResult{}, wrap(err)
	}
	if gotAction != string(action) || gotKey != idempotencyKey {
		return ExecutionResult{}, wrap(fmt.Errorf("recorded as %s with another idempotency key: %w", gotAction, ErrConflict))
	}
	if state == "done" {
		var r executionResult
		if len(result) > 0 {
			if err := json.Unmarshal(result, &r); err != nil {
				return ExecutionResult{}, wrap(fmt.Errorf("decode result: %w", err))
			}
		}
		if err := tx.Commit(); err != nil {
			return ExecutionResult{}, wrap(err)
		}
		return ExecutionResult{Reference: r.Reference, AlreadyDone: true}, nil
	}

	if _, err := tx.ExecContext(ctx, `UPDATE executions SET attempts = attempts + 1 WHERE request_id = $1`, requestID); err != nil {
		return ExecutionResult{}, wrap(err)
	}
	ref, err := run(ctx)
	if err != nil {
		// Keep the 'started' row and the attempt count for operators; a
		// failed commit (say, ctx cancelled) loses only that bookkeeping.
		_ = tx.Commit()
		return ExecutionResult{}, err
	}
	body, err := json.Marshal(executionResult{Reference: ref})
	if err != nil {
		return ExecutionResult{}, wrap(err)
	}
	if _, err := tx.ExecContext(ctx, `
		UPDATE executions SET state = 'done', finished_at = now(), result = $2
		WHERE request_id = $1`, requestID, string(body)); err != nil {
		return ExecutionResult{}, wrap(fmt.Errorf("record result of a finished run: %w", err))
	}
	if err := tx.Commit(); err != nil {
		return ExecutionResult{}, wrap(fmt.Errorf("record result of a finished run: %w", err))
	}
	return ExecutionResult{Reference: ref}, nil
}
