package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// ErrNotLocked means a customer asked to be unlocked is not locked.
var ErrNotLocked = errors.New("customer is not locked")

// ErrNotSecurity means an unlock was asked by an agent without the security role.
var ErrNotSecurity = errors.New("only the security role may unlock a customer")

// Audit events and the alert of an unlock.
const (
	// EventCustomerUnlocked: the security role lifted a PIN lockout.
	EventCustomerUnlocked = "customer.unlocked"
	// EventUnlockRefused: an agent without the security role tried to.
	EventUnlockRefused = "customer.unlock_refused"
	// AlertCustomerUnlocked: the security role lifted a PIN lockout.
	AlertCustomerUnlocked = "customer_unlocked"
)

// Unlocked is what an unlock lifted.
type Unlocked struct {
	LockedUntil time.Time // when the lockout would have ended
	Failures    int       // the wrong PINs that no longer count
}

// UnlockCustomer lifts the PIN lockout of customerID, for by (who must hold
// the security role) with reason, which the caller has put through the
// text rule. As a right PIN does, it also clears the wrong PINs counted so
// far, in the short window and the daily budget alike, so the next wrong
// PIN does not lock the customer again at once. The unlock, its
// customer.unlocked audit event and the security channel's alert are one
// transaction. A customer that is not locked at now is ErrNotLocked, a
// missing one ErrNotFound; neither changes anything. An agent without the
// role gets ErrNotSecurity and a customer.unlock_refused event, nothing else.
func (s *Store) UnlockCustomer(ctx context.Context, customerID string, by Agent, reason string, now time.Time) (Unlocked, error) {
	actor := "agent:" + by.ID
	if by.ID == "" || reason == "" {
		return Unlocked{}, errors.New("store: unlock: an agent and a reason are required")
	}
	if by.Role != domain.RoleSecurity {
		if err := s.Audit(ctx, AuditEvent{Actor: actor, Event: EventUnlockRefused,
			Details: map[string]any{"customer": customerID, "role": string(by.Role)}}); err != nil {
			return Unlocked{}, fmt.Errorf("store: unlock %s: %w", customerID, err)
		}
		return Unlocked{}, fmt.Errorf("store: unlock %s by %s: %w", customerID, by.ID, ErrNotSecurity)
	}
	now = now.Truncate(time.Microsecond)
	var out Unlocked
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var until sql.NullTime
		var cleared int64
		err := tx.QueryRowContext(ctx, `SELECT pin_locked_until, pin_cleared_id FROM customers WHERE id = $1 FOR UPDATE`, customerID).
			Scan(&until, &cleared)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if !until.Valid || !until.Time.After(now) {
			return ErrNotLocked
		}
		out.LockedUntil = until.Time
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pin_failures WHERE customer_id = $1 AND id > $2 AND failed_at <= $3`,
			customerID, cleared, now).Scan(&out.Failures); err != nil {
			return err
		}
		// The customer row lock orders this customer's failures, so the
		// highest id is the last one the unlock clears.
		if _, err := tx.ExecContext(ctx, `
			UPDATE customers SET pin_locked_until = NULL,
				pin_cleared_id = COALESCE((SELECT max(id) FROM pin_failures WHERE customer_id = $1), 0)
			WHERE id = $1`, customerID); err != nil {
			return err
		}
		lockedUntil := until.Time.UTC().Format(time.RFC3339)
		if err := auditIn(ctx, tx, AuditEvent{Actor: actor, Event: EventCustomerUnlocked, At: now, Details: map[string]any{
			"customer": customerID, "reason": reason, "role": string(by.Role), "locked_until": lockedUntil, "failures": out.Failures,
		}}); err != nil {
			return err
		}
		return queueAlert(ctx, tx, AlertCustomerUnlocked, "", map[string]any{
			"customer": customerID, "agent": by.ID, "reason": reason, "locked_until": lockedUntil, "failures": out.Failures,
		})
	})
	if err != nil {
		return Unlocked{}, fmt.Errorf("store: unlock %s: %w", customerID, err)
	}
	return out, nil
}
