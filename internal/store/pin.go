package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// PINDay is the span of the daily budget: wrong PINs are counted over the
// last 24 hours, rolling.
const PINDay = 24 * time.Hour

// PINPolicy bounds PIN guessing. Every window rolls: a wrong PIN counts for
// exactly as long as it is inside it, however the failures are spread.
type PINPolicy struct {
	// MaxFailures wrong PINs within Window lock the customer for Lockout.
	MaxFailures int
	Window      time.Duration
	Lockout     time.Duration
	// DayMaxFailures wrong PINs within PINDay lock the customer for
	// DayLockout, however slowly they came. Zero turns the budget off; the
	// configuration never does.
	DayMaxFailures int
	DayLockout     time.Duration
	// AgentMaxFailures wrong PINs typed by one agent within AgentWindow,
	// across all customers, stop that agent's PIN checks until the oldest of
	// them leaves the window. Zero turns the limit off; the configuration
	// never does.
	AgentMaxFailures int
	AgentWindow      time.Duration
	// VerdictTTL is how long a right PIN's verdict waits for its workflow
	// to consume it; zero means DefaultVerdictTTL.
	VerdictTTL time.Duration
}

// DefaultVerdictTTL is how long a verdict waits for its workflow by default.
const DefaultVerdictTTL = time.Hour

// DefaultPINPolicy locks a customer for an hour after 5 wrong PINs within 15
// minutes and for a day after 10 within a day, and stops an agent after 20
// wrong PINs within a day across customers.
func DefaultPINPolicy() PINPolicy {
	return PINPolicy{
		MaxFailures: 5, Window: 15 * time.Minute, Lockout: time.Hour,
		DayMaxFailures: 10, DayLockout: PINDay,
		AgentMaxFailures: 20, AgentWindow: PINDay,
		VerdictTTL: DefaultVerdictTTL,
	}
}

// Validate reports a policy that cannot be applied.
func (p PINPolicy) Validate() error {
	switch {
	case p.MaxFailures < 1 || p.Window <= 0 || p.Lockout <= 0:
		return fmt.Errorf("store: PIN policy %+v: the short window needs positive failures, window and lockout", p)
	case p.DayMaxFailures < 0 || (p.DayMaxFailures > 0 && (p.DayMaxFailures < p.MaxFailures || p.DayLockout <= 0)):
		return fmt.Errorf("store: PIN policy %+v: the daily budget must be at least the short window's and lock for a positive time", p)
	case p.AgentMaxFailures < 0 || (p.AgentMaxFailures > 0 && p.AgentWindow <= 0):
		return fmt.Errorf("store: PIN policy %+v: the agent limit needs a positive window", p)
	case p.VerdictTTL < 0:
		return fmt.Errorf("store: PIN policy %+v: negative verdict lifetime", p)
	}
	return nil
}

// keep is how long a failure must be kept to count in every window.
func (p PINPolicy) keep() time.Duration {
	return max(p.Window, PINDay, p.AgentWindow)
}

func (p PINPolicy) verdictTTL() time.Duration {
	if p.VerdictTTL == 0 {
		return DefaultVerdictTTL
	}
	return p.VerdictTTL
}

// Why a customer was locked.
const (
	LockWindow = "window" // MaxFailures within Window
	LockDay    = "day"    // DayMaxFailures within PINDay
)

// PINOutcome is the result of one PIN check.
type PINOutcome struct {
	Verified    bool
	Locked      bool      // the customer is locked; the PIN was not accepted
	LockedUntil time.Time // set when Locked
	// Failures is the wrong PINs that count now: in the short window, or
	// the day's when the daily budget locked the customer.
	Failures   int
	JustLocked bool // this check's failure caused the lock
	// LockReason is LockWindow or LockDay when JustLocked.
	LockReason string `json:",omitempty"`
	// DayFailures is the customer's wrong PINs within PINDay.
	DayFailures int `json:",omitempty"`
	// SlowGuessing: this failure brought the day's count to MaxFailures
	// without the short window locking: guesses spread out to stay under it.
	SlowGuessing bool `json:",omitempty"`
	// AgentBlocked: the agent who typed the PIN is over the limit across
	// customers; the PIN was not checked and nothing was counted.
	AgentBlocked      bool      `json:",omitempty"`
	AgentBlockedUntil time.Time `json:",omitzero"`
	// AgentJustBlocked: this failure brought the agent to the limit.
	AgentJustBlocked bool `json:",omitempty"`
	// AgentFailures is the agent's wrong PINs within AgentWindow.
	AgentFailures int `json:",omitempty"`
}

// pinCheck is one check: who typed which PIN for which customer, and where
// the verdict goes.
type pinCheck struct {
	customerID string
	// agentID typed the PIN; empty leaves the agent limit out.
	agentID string
	pin     string
	// requestID, for the workflow's own check (the path of requests opened
	// before the web front checked PINs), makes the check once per request
	// through pin_checks.
	requestID string
	// open, for a request about to open, gets a verdict bound to it, and,
	// when the PIN is not accepted, its final row, audit trail and alerts,
	// all in the verdict's transaction.
	open *Request
}

// CheckPIN checks pin against the customer's stored hash with verify, and
// records the verdict under a row lock so concurrent checks cannot lose a
// failure. verify runs outside any transaction. A locked customer gets
// Locked without verify being called at all. A success clears the
// customer's count; a failure counts in the short window and the daily
// budget, and reaching either locks the customer. CheckPIN writes no audit
// events and no verdict; the caller does. A missing customer is ErrNotFound;
// a verify error is returned wrapped and changes nothing.
func (s *Store) CheckPIN(ctx context.Context, customerID, pin string, now time.Time, p PINPolicy, verify func(encodedHash, pin string) (bool, error)) (PINOutcome, error) {
	return s.checkPIN(ctx, pinCheck{customerID: customerID, pin: pin}, now, p, verify)
}

// CheckPINForRequest is CheckPIN for one request, at most once: the verdict
// is stored with the request id, and a repeated call (an activity retried
// after a crash) returns the stored verdict without checking or counting
// again. It serves the VerifyPIN activity of workflows started with the PIN
// in their input, before the web front checked PINs; a failure counts
// against the request's requester.
func (s *Store) CheckPINForRequest(ctx context.Context, requestID, customerID, pin string, now time.Time, p PINPolicy, verify func(encodedHash, pin string) (bool, error)) (PINOutcome, error) {
	if requestID == "" {
		return PINOutcome{}, errors.New("store: check PIN: empty request id")
	}
	return s.checkPIN(ctx, pinCheck{customerID: customerID, pin: pin, requestID: requestID}, now, p, verify)
}

// CheckPINForOpen checks the PIN typed for request r, which is about to open
// (r as OpenRequest will write it), before its workflow starts, so that the
// PIN never reaches Temporal. In the transaction that records the check it
// writes the verdict bound to r (request and workflow id, customer, action,
// target, requester) for the workflow's PIN gate to consume. A PIN that is
// not accepted (wrong, or the customer locked) ends r there: its row is
// written final (pin_rejected or locked) with request.opened and the gate's
// events, and no workflow is to be started. A lockout, slow guessing and an
// agent reaching the limit across customers are queued for the security
// channel in the same transaction (security_alerts). An agent over that
// limit gets AgentBlocked: no verdict, no row, only an audit event.
func (s *Store) CheckPINForOpen(ctx context.Context, r Request, pin string, now time.Time, p PINPolicy, verify func(encodedHash, pin string) (bool, error)) (PINOutcome, error) {
	if err := checkNewRequest(&r); err != nil {
		return PINOutcome{}, err
	}
	if r.RequesterID == "" || r.CustomerID == "" {
		return PINOutcome{}, fmt.Errorf("store: check PIN for %s: empty requester or customer", r.ID)
	}
	return s.checkPIN(ctx, pinCheck{customerID: r.CustomerID, agentID: r.RequesterID, pin: pin, open: &r}, now, p, verify)
}

// pinRow is a customer's PIN hash and lockout as read at one moment.
type pinRow struct {
	hash        string
	lockedUntil sql.NullTime
	// clearedID is the customer's last failure when the PIN was last
	// verified: only later failures count against the customer.
	clearedID int64
}

// maxPINRereads bounds how often a check starts over because the customer's
// PIN hash or lockout changed between the hash check and the verdict.
const maxPINRereads = 3

// checkPIN verifies the hash (argon2id, tens of milliseconds) outside any
// transaction, so a burst of checks neither holds pool connections nor
// queues on the customer's row lock for the hash's duration. The verdict is
// then recorded in a short transaction that locks the row and counts again:
// a wrong guess counts against the failures as they are then, and a lockout
// reached meanwhile refuses even a right PIN, so racing checks gain no
// guesses. If the hash itself changed (a PIN reset), a lockout ended (an
// unlock) or the agent's block ended in between, the check starts over.
func (s *Store) checkPIN(ctx context.Context, c pinCheck, now time.Time, p PINPolicy, verify func(encodedHash, pin string) (bool, error)) (PINOutcome, error) {
	if err := p.Validate(); err != nil {
		return PINOutcome{}, err
	}
	if verify == nil {
		return PINOutcome{}, errors.New("store: check PIN: nil verify func")
	}
	// Postgres keeps microseconds; compare and store at that precision.
	now = now.Truncate(time.Microsecond)
	for range maxPINRereads {
		out, settled, err := s.checkPINOnce(ctx, c, now, p, verify)
		if err != nil {
			return PINOutcome{}, fmt.Errorf("store: check PIN of %s: %w", c.customerID, err)
		}
		if settled {
			return out, nil
		}
	}
	return PINOutcome{}, fmt.Errorf("store: check PIN of %s: PIN or lockout changed %d times during the check", c.customerID, maxPINRereads)
}

// checkPINOnce is one read, verify, record round. settled is false when the
// row changed under the verify so that its result no longer applies.
func (s *Store) checkPINOnce(ctx context.Context, c pinCheck, now time.Time, p PINPolicy, verify func(encodedHash, pin string) (bool, error)) (out PINOutcome, settled bool, err error) {
	if c.requestID != "" {
		// A retried activity gets the stored verdict without hashing again.
		if out, found, err := storedPINCheck(ctx, s.db, c.requestID); err != nil || found {
			return out, true, err
		}
	}
	var seen pinRow
	err = s.db.QueryRowContext(ctx, `
		SELECT pin_hash, pin_locked_until, pin_cleared_id FROM customers WHERE id = $1`, c.customerID).
		Scan(&seen.hash, &seen.lockedUntil, &seen.clearedID)
	if errors.Is(err, sql.ErrNoRows) {
		return PINOutcome{}, false, fmt.Errorf("customer %s: %w", c.customerID, ErrNotFound)
	}
	if err != nil {
		return PINOutcome{}, false, err
	}
	seenBlocked, _, err := agentBlock(ctx, s.db, c.agentID, now, p)
	if err != nil {
		return PINOutcome{}, false, err
	}
	seenLocked := isLocked(seen, now)
	var ok bool
	if !seenLocked && !seenBlocked {
		// A locked customer's PIN is not even hashed, nor a blocked agent's.
		if ok, err = verify(seen.hash, c.pin); err != nil {
			return PINOutcome{}, false, fmt.Errorf("verify: %w", err)
		}
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var cur pinRow
		// The text "pin_cleared_id ... FOR UPDATE" is what the crash suite
		// looks for in pg_stat_activity to see checks waiting here.
		err := tx.QueryRowContext(ctx, `
			SELECT pin_hash, pin_locked_until, pin_cleared_id
			FROM customers WHERE id = $1 FOR UPDATE`, c.customerID).
			Scan(&cur.hash, &cur.lockedUntil, &cur.clearedID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("customer %s: %w", c.customerID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if c.requestID != "" {
			// The customer row lock serialises this with a concurrent first
			// check of the same request.
			var found bool
			if out, found, err = storedPINCheck(ctx, tx, c.requestID); err != nil || found {
				settled = true
				return err
			}
			// The old path's failures count against the requester.
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT requester_id FROM requests WHERE id = $1), '')`,
				c.requestID).Scan(&c.agentID); err != nil {
				return err
			}
		}
		if c.agentID != "" {
			// Serialises one agent's checks across customers, so racing
			// sprays gain nothing either. NO KEY: requests referencing the
			// agent (a foreign key check) are not held up.
			if _, err := tx.ExecContext(ctx, `SELECT 1 FROM agents WHERE id = $1 FOR NO KEY UPDATE`, c.agentID); err != nil {
				return err
			}
		}
		blocked, blockedUntil, err := agentBlock(ctx, tx, c.agentID, now, p)
		if err != nil {
			return err
		}
		locked := isLocked(cur, now)
		if cur.hash != seen.hash || (seenLocked && !locked) || (seenBlocked && !blocked) {
			// The verify result (or its absence) is about another row.
			return nil
		}
		settled = true
		if blocked {
			out = PINOutcome{AgentBlocked: true, AgentBlockedUntil: blockedUntil, AgentFailures: p.AgentMaxFailures}
		} else if err := recordPINVerdict(ctx, tx, c, cur, locked, ok, now, p, &out); err != nil {
			return err
		}
		if c.requestID != "" {
			_, err = tx.ExecContext(ctx, `
				INSERT INTO pin_checks (request_id, customer_id, verified, locked, just_locked, locked_until, failures, checked_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				c.requestID, c.customerID, out.Verified, out.Locked, out.JustLocked,
				nullTime(out.LockedUntil), out.Failures, now)
			return err
		}
		if c.open != nil {
			return recordOpenVerdict(ctx, tx, *c.open, out, now, p)
		}
		return nil
	})
	if err != nil {
		return PINOutcome{}, false, err
	}
	return out, settled, nil
}

// storedPINCheck returns the verdict recorded in pin_checks for requestID,
// if any.
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

// querier is what the read-only helpers need of a pool or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// isLocked says whether row locks the customer at now.
func isLocked(row pinRow, now time.Time) bool {
	return row.lockedUntil.Valid && row.lockedUntil.Time.After(now)
}

// agentBlock says whether agentID is over the limit across customers at now,
// and until when: the moment the AgentMaxFailures-th newest failure leaves
// the window.
func agentBlock(ctx context.Context, q querier, agentID string, now time.Time, p PINPolicy) (bool, time.Time, error) {
	if agentID == "" || p.AgentMaxFailures == 0 {
		return false, time.Time{}, nil
	}
	var edge sql.NullTime
	err := q.QueryRowContext(ctx, `
		SELECT failed_at FROM pin_failures
		WHERE agent_id = $1 AND failed_at > $2 AND failed_at <= $3
		ORDER BY failed_at DESC OFFSET $4 LIMIT 1`,
		agentID, now.Add(-p.AgentWindow), now, p.AgentMaxFailures-1).Scan(&edge)
	if errors.Is(err, sql.ErrNoRows) {
		return false, time.Time{}, nil
	}
	if err != nil {
		return false, time.Time{}, fmt.Errorf("agent %s failures: %w", agentID, err)
	}
	return true, edge.Time.Add(p.AgentWindow), nil
}

// failuresSince counts the customer's wrong PINs after since (and not after
// now) that came after the failure clearedID.
func failuresSince(ctx context.Context, tx *sql.Tx, customerID string, clearedID int64, since, now time.Time) (int, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pin_failures
		WHERE customer_id = $1 AND id > $2 AND failed_at > $3 AND failed_at <= $4`,
		customerID, clearedID, since, now).Scan(&n)
	return n, err
}

// recordPINVerdict decides one check on the locked customer row cur, given
// the hash check's result ok, and writes the counters.
func recordPINVerdict(ctx context.Context, tx *sql.Tx, c pinCheck, cur pinRow, locked, ok bool,
	now time.Time, p PINPolicy, out *PINOutcome) error {
	if locked {
		*out = PINOutcome{Locked: true, LockedUntil: cur.lockedUntil.Time}
		return nil
	}
	if ok {
		*out = PINOutcome{Verified: true}
		// The customer row lock orders this customer's failures, so the
		// highest id is the last one before this success.
		_, err := tx.ExecContext(ctx, `
			UPDATE customers SET pin_locked_until = NULL,
				pin_cleared_id = COALESCE((SELECT max(id) FROM pin_failures WHERE customer_id = $1), 0)
			WHERE id = $1`, c.customerID)
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO pin_failures (customer_id, agent_id, failed_at) VALUES ($1, $2, $3)`,
		c.customerID, c.agentID, now); err != nil {
		return err
	}
	// The log stays as long as its longest window needs it.
	if _, err := tx.ExecContext(ctx, `DELETE FROM pin_failures WHERE customer_id = $1 AND failed_at <= $2`,
		c.customerID, now.Add(-p.keep())); err != nil {
		return err
	}
	window, err := failuresSince(ctx, tx, c.customerID, cur.clearedID, now.Add(-p.Window), now)
	if err != nil {
		return err
	}
	day, err := failuresSince(ctx, tx, c.customerID, cur.clearedID, now.Add(-PINDay), now)
	if err != nil {
		return err
	}
	*out = PINOutcome{Failures: window, DayFailures: day}
	var until time.Time
	if window >= p.MaxFailures {
		until, out.LockReason = now.Add(p.Lockout), LockWindow
	}
	if p.DayMaxFailures > 0 && day >= p.DayMaxFailures {
		if u := now.Add(p.DayLockout); u.After(until) {
			until, out.LockReason, out.Failures = u, LockDay, day
		}
	}
	if !until.IsZero() {
		out.Locked, out.JustLocked, out.LockedUntil = true, true, until
		if _, err := tx.ExecContext(ctx, `UPDATE customers SET pin_locked_until = $2 WHERE id = $1`, c.customerID, until); err != nil {
			return err
		}
	} else if day == p.MaxFailures {
		out.SlowGuessing = true
	}
	if blocked, blockedUntil, err := agentBlock(ctx, tx, c.agentID, now, p); err != nil {
		return err
	} else if blocked {
		out.AgentJustBlocked, out.AgentBlockedUntil, out.AgentFailures = true, blockedUntil, p.AgentMaxFailures
	}
	return nil
}
