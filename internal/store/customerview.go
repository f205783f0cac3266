package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// CustomerStanding is what the customer view shows beside Customer: since
// when the primary address is the primary, and the PIN lockout as it stands.
// It is read-only and never holds the PIN hash.
type CustomerStanding struct {
	// PrimaryEmailSince is when the primary address became the primary;
	// zero when it has been the primary since the first import (such an
	// address counts as established from the start).
	PrimaryEmailSince time.Time
	// LockedUntil is set while wrong PINs keep the customer locked.
	LockedUntil *time.Time
	// RecentFailures is how many wrong PINs count toward a lockout now:
	// those within the policy's window.
	RecentFailures int
	// FirstFailureAt is when the counted failures began; nil when none count.
	FirstFailureAt *time.Time
}

// CustomerStanding reads the customer's primary address date and PIN
// counters as CheckPIN keeps them, judged at now under p: a lockout that
// has ended is not shown, and failures older than p.Window do not count
// (CheckPIN starts counting afresh after them). It changes nothing. A
// missing customer is ErrNotFound.
func (s *Store) CustomerStanding(ctx context.Context, customerID string, now time.Time, p PINPolicy) (CustomerStanding, error) {
	var (
		since              time.Time
		failures           int
		firstFailed, until sql.NullTime
	)
	err := s.db.QueryRowContext(ctx, `
		SELECT primary_email_since, pin_failed_attempts, pin_first_failed_at, pin_locked_until
		FROM customers WHERE id = $1`, customerID).Scan(&since, &failures, &firstFailed, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return CustomerStanding{}, fmt.Errorf("store: standing of customer %s: %w", customerID, ErrNotFound)
	}
	if err != nil {
		return CustomerStanding{}, fmt.Errorf("store: standing of customer %s: %w", customerID, err)
	}
	var out CustomerStanding
	if since.After(time.Unix(0, 0)) {
		// The column's default, the epoch, marks an address from the import.
		out.PrimaryEmailSince = since
	}
	if until.Valid && until.Time.After(now) {
		out.LockedUntil = timePtr(until)
	}
	if failures > 0 && firstFailed.Valid && !firstFailed.Time.Before(now.Add(-p.Window)) {
		out.RecentFailures, out.FirstFailureAt = failures, timePtr(firstFailed)
	}
	return out, nil
}
