// Package store keeps all of Vigil's Postgres state: customers and their PIN
// lockout, agents, the request projection, the append-only audit trail,
// execution bookkeeping and single-use cancel tokens.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// Errors callers decide on. Store methods wrap them with context; test with
// errors.Is.
var (
	// ErrNotFound means the row asked for (or one it refers to) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a row with the same unique key already exists.
	ErrConflict = errors.New("conflict")
	// ErrFinal means a request is in a final status and cannot move to another.
	ErrFinal = errors.New("request already in a final status")
	// ErrTokenUsed means a cancel token was already used.
	ErrTokenUsed = errors.New("cancel token already used")
	// ErrTokenExpired means a cancel token is past its expiry and was not used.
	ErrTokenExpired = errors.New("cancel token expired")
)

// Store is Vigil's Postgres state. It is safe for concurrent use.
type Store struct {
	db *sql.DB
}

// New wraps an open pool. It does not migrate; call Migrate.
func New(db *sql.DB) *Store { return &Store{db: db} }

// Open connects to dsn, checks the connection and applies pending migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		// lib/pq's parse errors do not echo the DSN, but say nothing more
		// than that to be sure no password ends up in a log.
		return nil, errors.New("store: invalid database DSN")
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(10)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	s := New(db)
	if err := s.Ping(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// DB returns the underlying pool, for health checks and tests.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the pool.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction, committing if fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Postgres error codes the store maps to its own errors.
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

// pgCode returns the SQLSTATE of err and the constraint it names, if any.
func pgCode(err error) (code, constraint string) {
	var pe *pq.Error
	if errors.As(err, &pe) {
		return string(pe.Code), pe.Constraint
	}
	return "", ""
}

// nullString maps "" to NULL.
func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// nullTime maps the zero time to NULL.
func nullTime(t time.Time) sql.NullTime { return sql.NullTime{Time: t, Valid: !t.IsZero()} }

// timePtr maps NULL to nil.
func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time
	return &v
}

// ptrTime maps nil to NULL.
func ptrTime(t *time.Time) sql.NullTime {
	if t == nil {
		return sql.NullTime{}
	}
	// Rounded here, as Postgres would, so the stored time is the one a
	// reader rounding the same way (the API) gets from the workflow.
	return sql.NullTime{Time: t.Round(time.Microsecond), Valid: true}
}
