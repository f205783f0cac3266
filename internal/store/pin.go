package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PINPolicy is how many wrong PINs within Window lock a customer, and for how
// long.
type PINPolicy struct {
	MaxFailures int
	Window      time.Duration
	Lockout     time.Duration
}

// DefaultPINPolicy locks a customer for an hour after 5 wrong PINs within 15
// minutes.
func DefaultPINPolicy() PINPolicy {
	return PINPolicy{MaxFailures: 5, Window: 15 * time.Minute, Lockout: time.Hour}
}

// PINOutcome is the result of one PIN check.
type PINOutcome struct {
	Verified    bool
	Locked      bool      // the customer is locked; the PIN was not accepted
	LockedUntil time.Time // set when Locked
	Failures    int       // wrong PINs in the current window (MaxFailures when JustLocked)
	JustLocked  bool      // this check's failure caused the lock
}

// CheckPIN checks pin against the customer's stored hash with verify, under a
// row lock so concurrent checks cannot lose a failure. A locked customer gets
// Locked without verify being called at all. A success clears the failure
// count; a failure counts within the policy's window, and reaching
// MaxFailures locks the customer for Lockout. CheckPIN writes no audit
// events; the caller does. A missing customer is ErrNotFound; a verify error
// is returned wrapped and changes nothing.
func (s *Store) CheckPIN(ctx context.Context, customerID, pin string, now time.Time, p PINPolicy, verify func(encodedHash, pin string) (bool, error)) (PINOutcome, error) {
	return s.checkPIN(ctx, "", customerID, pin, now, p, verify)
}

// CheckPINForRequest is CheckPIN for one request, at most once: the verdict
// is stored with the request id, and a repeated call (an activity retried
// after a crash) returns the stored verdict without checking or counting
// again.
func (s *Store) CheckPINForRequest(ctx context.Context, requestID, customerID, pin string, now time.Time, p PINPolicy, verify func(encodedHash, pin string) (bool, error)) (PINOutcome, error) {
	if requestID == "" {
		return PINOutcome{}, errors.New("store: check PIN: empty request id")
	}
	return s.checkPIN(ctx, requestID, customerID, pin, now, p, verify)
}

func (s *Store) checkPIN(ctx context.Context, requestID, customerID, pin string, now time.Time, p PINPolicy, verify func(encodedHash, pin string) (bool, error)) (PINOutcome, error) {
	if p.MaxFailures < 1 || p.Window <= 0 || p.Lockout <= 0 {
		return PINOutcome{}, fmt.Errorf("store: check PIN: invalid policy %+v", p)
	}
	if verify == nil {
		return PINOutcome{}, errors.New("store: check PIN: nil verify func")
	}
	// Postgres keeps microseconds; compare and store at that precision.
	now = now.Truncate(time.Microsecond)
	var out PINOutcome
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var (
			hash        string
			failures    int
			firstFailed sql.NullTime
			lockedUntil sql.NullTime
		)
		err := tx.QueryRowContext(ctx, `
			SELECT pin_hash, pin_failed_attempts, pin_first_failed_at, pin_locked_until
			FROM customers WHERE id = $1 FOR UPDATE`, customerID).
			Scan(&hash, &failures, &firstFailed, &lockedUntil)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("customer %s: %w", customerID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if requestID != "" {
			// The customer row lock serialises this with the first check.
			var until sql.NullTime
			err := tx.QueryRowContext(ctx, `
				SELECT verified, locked, just_locked, locked_until, failures
				FROM pin_checks WHERE request_id = $1`, requestID).
				Scan(&out.Verified, &out.Locked, &out.JustLocked, &until, &out.Failures)
			if err == nil {
				out.LockedUntil = until.Time
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if err := judgePIN(ctx, tx, customerID, pin, hash, failures, firstFailed, lockedUntil, now, p, verify, &out); err != nil {
			return err
		}
		if requestID == "" {
			return nil
		}
		_, err = tx.ExecContext(ctx, `
			INSERT INTO pin_checks (request_id, customer_id, verified, locked, just_locked, locked_until, failures, checked_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			requestID, customerID, out.Verified, out.Locked, out.JustLocked,
			sql.NullTime{Time: out.LockedUntil, Valid: !out.LockedUntil.IsZero()}, out.Failures, now)
		return err
	})
	if err != nil {
		return PINOutcome{}, fmt.Errorf("store: check PIN of %s: %w", customerID, err)
	}
	return out, nil
}

// judgePIN decides one check on the locked customer row and writes the new
// counters.
func judgePIN(ctx context.Context, tx *sql.Tx, customerID, pin, hash string, failures int, firstFailed, lockedUntil sql.NullTime,
	now time.Time, p PINPolicy, verify func(encodedHash, pin string) (bool, error), out *PINOutcome) error {
	if lockedUntil.Valid && lockedUntil.Time.After(now) {
		*out = PINOutcome{Locked: true, LockedUntil: lockedUntil.Time, Failures: failures}
		return nil
	}
	ok, err := verify(hash, pin)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if ok {
		*out = PINOutcome{Verified: true}
		_, err := tx.ExecContext(ctx, `
			UPDATE customers SET pin_failed_attempts = 0, pin_first_failed_at = NULL,
				pin_locked_until = NULL WHERE id = $1`, customerID)
		return err
	}
	if !firstFailed.Valid || firstFailed.Time.Before(now.Add(-p.Window)) {
		failures, firstFailed = 1, sql.NullTime{Time: now, Valid: true}
	} else {
		failures++
	}
	if failures >= p.MaxFailures {
		until := now.Add(p.Lockout)
		*out = PINOutcome{Locked: true, LockedUntil: until, Failures: p.MaxFailures, JustLocked: true}
		_, err := tx.ExecContext(ctx, `
			UPDATE customers SET pin_failed_attempts = 0, pin_first_failed_at = NULL,
				pin_locked_until = $2 WHERE id = $1`, customerID, until)
		return err
	}
	*out = PINOutcome{Failures: failures}
	_, err = tx.ExecContext(ctx, `
		UPDATE customers SET pin_failed_attempts = $2, pin_first_failed_at = $3,
			pin_locked_until = NULL WHERE id = $1`, customerID, failures, firstFailed)
	return err
}
