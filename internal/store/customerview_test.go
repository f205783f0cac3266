package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/pinhash"
)

// TestCustomerStanding follows a customer through wrong PINs, a lockout and
// its end, and an email change, reading the standing after each step the
// way CheckPIN itself counts.
func TestCustomerStanding(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	p := PINPolicy{MaxFailures: 3, Window: 15 * time.Minute, Lockout: time.Hour}
	check := func(pin string, at time.Time) {
		t.Helper()
		if _, err := s.CheckPIN(ctx, f.customer, pin, at, p, pinhash.Verify); err != nil {
			t.Fatal(err)
		}
	}
	type want struct {
		failures    int
		firstFailed time.Time // zero: none count
		lockedUntil time.Time // zero: not locked
	}
	standing := func(at time.Time, w want) {
		t.Helper()
		got, err := s.CustomerStanding(ctx, f.customer, at, p)
		if err != nil {
			t.Fatal(err)
		}
		if got.RecentFailures != w.failures {
			t.Errorf("at %v: %d recent failures, want %d", at, got.RecentFailures, w.failures)
		}
		if (got.FirstFailureAt == nil) != w.firstFailed.IsZero() || (got.FirstFailureAt != nil && !got.FirstFailureAt.Equal(w.firstFailed)) {
			t.Errorf("at %v: first failure %v, want %v", at, got.FirstFailureAt, w.firstFailed)
		}
		if (got.LockedUntil == nil) != w.lockedUntil.IsZero() || (got.LockedUntil != nil && !got.LockedUntil.Equal(w.lockedUntil)) {
			t.Errorf("at %v: locked until %v, want %v", at, got.LockedUntil, w.lockedUntil)
		}
	}

	standing(t0, want{})
	check("000000", t0)
	check("000000", t0.Add(time.Minute))
	standing(t0.Add(2*time.Minute), want{failures: 2, firstFailed: t0})
	// Past the window the two failures no longer count (CheckPIN would
	// start at 1 again), though the row still holds them.
	standing(t0.Add(16*time.Minute), want{})
	check("000000", t0.Add(3*time.Minute))
	standing(t0.Add(4*time.Minute), want{lockedUntil: t0.Add(3*time.Minute + time.Hour)})
	standing(t0.Add(3*time.Minute+time.Hour), want{})
	check("246810", t0.Add(2*time.Hour))
	standing(t0.Add(2*time.Hour), want{})

	got, err := s.CustomerStanding(ctx, f.customer, t0, p)
	if err != nil {
		t.Fatal(err)
	}
	if !got.PrimaryEmailSince.IsZero() {
		t.Errorf("an imported primary address has a since: %v", got.PrimaryEmailSince)
	}
	before := time.Now().Add(-time.Minute)
	if err := s.SetPrimaryEmail(ctx, f.customer, "new@acme.test"); err != nil {
		t.Fatal(err)
	}
	if got, err = s.CustomerStanding(ctx, f.customer, t0, p); err != nil {
		t.Fatal(err)
	}
	if got.PrimaryEmailSince.Before(before) {
		t.Errorf("after an email change the primary is since %v, want about now", got.PrimaryEmailSince)
	}

	if _, err := s.CustomerStanding(ctx, "cus_missing", t0, p); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing customer: %v, want ErrNotFound", err)
	}
}
