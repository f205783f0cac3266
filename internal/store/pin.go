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

// CheckPIN checks pin against the customer's stored hash with verify, and
// records the verdict under a row lock so concurrent checks cannot lose a
// failure. verify runs outside any transaction. A locked customer gets
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

// pinRow is a customer's PIN hash and lockout counters as read at one moment.
type pinRow struct {
	hash        string
	failures    int
	firstFailed sql.NullTime
	lockedUntil sql.NullTime
}

// maxPINRereads bounds how often a check starts over because the customer's
// PIN hash or lockout changed between the hash check and the verdict.
const maxPINRereads = 3

// checkPIN verifies the hash (argon2id, tens of milliseconds) outside any
// transaction, so a burst of checks neither holds pool connections nor
// queues on the customer's row lock for the hash's duration. The verdict is
// then recorded in a short transaction that locks the row and re-reads the
// counters: a wrong guess counts against the counters as they are then, and
// a lockout reached meanwhile refuses even a right PIN, so racing checks gain
// no guesses. If the hash itself changed (a PIN reset) or a lockout ended
// (an unlock) in between, the check starts over with the new row.
func (s *Store) checkPIN(ctx context.Context, requestID, customerID, pin string, now time.Time, p PINPolicy, verify func(encodedHash, pin string) (bool, error)) (PINOutcome, error) {
	if p.MaxFailures < 1 || p.Window <= 0 || p.Lockout <= 0 {
		return PINOutcome{}, fmt.Errorf("store: check PIN: invalid policy %+v", p)
	}
	if verify == nil {
		return PINOutcome{}, errors.New("store: check PIN: nil verify func")
	}
	// Postgres keeps microseconds; compare and store at that precision.
	now = now.Truncate(time.Microsecond)
	for range maxPINRereads {
		out, settled, err := s.checkPINOnce(ctx, requestID, customerID, pin, now, p, verify)
		if err != nil {
			return PINOutcome{}, fmt.Errorf("store: check PIN of %s: %w", customerID, err)
		}
		if settled {
			return out, nil
		}
	}
	return PINOutcome{}, fmt.Errorf("store: check PIN of %s: PIN or lockout changed %d times during the check", customerID, maxPINRereads)
}

// checkPINOnce is one read, verify, record round. settled is false when the
// row changed under the verify so that its result no longer applies.
func (s *Store) checkPINOnce(ctx context.Context, requestID, customerID, pin string, now time.Time, p PINPolicy, verify func(encodedHash, pin string) (bool, error)) (out PINOutcome, settled bool, err error) {
	if requestID != "" {
		// A retried activity gets the stored verdict without hashing again.
		if out, found, err := storedPINCheck(ctx, s.db, requestID); err != nil || found {
			return out, true, err
		}
	}
	var seen pinRow
	err = s.db.QueryRowContext(ctx, `
		SELECT pin_hash, pin_failed_attempts, pin_first_failed_at, pin_locked_until
		FROM customers WHERE id = $1`, customerID).
		Scan(&seen.hash, &seen.failures, &seen.firstFailed, &seen.lockedUntil)
	if errors.Is(err, sql.ErrNoRows) {
		return PINOutcome{}, false, fmt.Errorf("customer %s: %w", customerID, ErrNotFound)
	}
	if err != nil {
		return PINOutcome{}, false, err
	}
	seenLocked := isLocked(seen, now)
	var ok bool
	if !seenLocked {
		// A locked customer's PIN is not even hashed.
		if ok, err = verify(seen.hash, pin); err != nil {
			return PINOutcome{}, false, fmt.Errorf("verify: %w", err)
		}
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var cur pinRow
		// The text "pin_failed_attempts ... FOR UPDATE" is what the crash
		// suite looks for in pg_stat_activity to see checks waiting here.
		err := tx.QueryRowContext(ctx, `
			SELECT pin_hash, pin_failed_attempts, pin_first_failed_at, pin_locked_until
			FROM customers WHERE id = $1 FOR UPDATE`, customerID).
			Scan(&cur.hash, &cur.failures, &cur.firstFailed, &cur.lockedUntil)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("customer %s: %w", customerID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if requestID != "" {
			// The customer row lock serialises this with a concurrent first
			// check of the same request.
			var found bool
			if out, found, err = storedPINCheck(ctx, tx, requestID); err != nil || found {
				settled = true
				return err
			}
		}
		locked := isLocked(cur, now)
		if cur.hash != seen.hash || (seenLocked && !locked) {
			// The verify result (or its absence) is about another row.
			return nil
		}
		settled = true
		if err := recordPINVerdict(ctx, tx, customerID, cur, locked, ok, now, p, &out); err != nil {
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
		return PINOutcome{}, false, err
	}
	return out, settled, nil
}

// querier is what storedPINCheck needs of a pool or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// storedPINCheck returns the verdict recorded for requestID, if any.
func storedPINCheck(ctx context.Context, q querier, requestID string) (PINOutcome, bool, error) {
	var (
		out   PINOutcome
		until sql.NullTime
	)
	err := q.QueryRowContext(ctx, `
		SELECT verified, locked, just_locked, locked_until, failures
		FROM pin_checks WHERE request_id = $1`, requestID).
		Scan(&out.Verified, &out.Locked, &out.JustLocked, &until, &out.Failures)
	if errors.Is(err, sql.ErrNoRows) {
		return PINOutcome{}, false, nil
	}
	if err != nil {
		return PINOutcome{}, false, err
	}
	out.LockedUntil = until.Time
	return out, true, nil
}

// isLocked says whether row locks the customer at now.
func isLocked(row pinRow, now time.Time) bool {
	return row.lockedUntil.Valid && row.lockedUntil.Time.After(now)
}

// recordPINVerdict decides one check on the locked customer row cur, given
// the hash check's result ok, and writes the new counters.
func recordPINVerdict(ctx context.Context, tx *sql.Tx, customerID string, cur pinRow, locked, ok bool,
	now time.Time, p PINPolicy, out *PINOutcome) error {
	if locked {
		*out = PINOutcome{Locked: true, LockedUntil: cur.lockedUntil.Time, Failures: cur.failures}
		return nil
	}
	if ok {
		*out = PINOutcome{Verified: true}
		_, err := tx.ExecContext(ctx, `
			UPDATE customers SET pin_failed_attempts = 0, pin_first_failed_at = NULL,
				pin_locked_until = NULL WHERE id = $1`, customerID)
		return err
	}
	failures, firstFailed := cur.failures, cur.firstFailed
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
	_, err := tx.ExecContext(ctx, `
		UPDATE customers SET pin_failed_attempts = $2, pin_first_failed_at = $3,
			pin_locked_until = NULL WHERE id = $1`, customerID, failures, firstFailed)
	return err
}
