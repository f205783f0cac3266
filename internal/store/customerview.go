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
// lockout as CheckPIN counts them, judged at now under p: a lockout that has
// ended is not shown, and only the wrong PINs within p.Window since the PIN
// was last verified count (the rolling window CheckPIN locks by). While the
// customer is locked the lock is shown instead of a count. It changes
// nothing. A missing customer is ErrNotFound.
func (s *Store) CustomerStanding(ctx context.Context, customerID string, now time.Time, p PINPolicy) (CustomerStanding, error) {
	var (
		since     time.Time
		clearedID int64
		until     sql.NullTime
	)
	err := s.db.QueryRowContext(ctx, `
		SELECT primary_email_since, pin_cleared_id, pin_locked_until
		FROM customers WHERE id = $1`, customerID).Scan(&since, &clearedID, &until)
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
		return out, nil
	}
	var first sql.NullTime
	err = s.db.QueryRowContext(ctx, `SELECT count(*), min(failed_at) FROM pin_failures
		WHERE customer_id = $1 AND id > $2 AND failed_at > $3 AND failed_at <= $4`,
		customerID, clearedID, now.Add(-p.Window), now).Scan(&out.RecentFailures, &first)
	if err != nil {
		return CustomerStanding{}, fmt.Errorf("store: standing of customer %s: %w", customerID, err)
	}
	out.FirstFailureAt = timePtr(first)
	return out, nil
}
