package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/pinhash"
)

// countingVerify wraps pinhash.Verify and counts calls.
type countingVerify struct{ calls atomic.Int32 }

func (c *countingVerify) verify(encoded, pin string) (bool, error) {
	c.calls.Add(1)
	return pinhash.Verify(encoded, pin)
}

func TestCheckPIN(t *testing.T) {
	t.Parallel()
	const right, wrong = "246810", "000000"
	type step struct {
		after      time.Duration // since the previous step
		pin        string
		want       PINOutcome // LockedUntil given as an offset from the step's time via lockedFor
		lockedFor  time.Duration
		wantVerify bool
	}
	ok := PINOutcome{Verified: true}
	fail := func(n int) PINOutcome { return PINOutcome{Failures: n} }
	justLocked := PINOutcome{Locked: true, JustLocked: true, Failures: 5}
	locked := PINOutcome{Locked: true}

	tests := []struct {
		name  string
		steps []step
	}{
		{"right PIN verified", []step{{pin: right, want: ok, wantVerify: true}}},
		{"wrong PIN counts", []step{
			{pin: wrong, want: fail(1), wantVerify: true},
			{after: time.Minute, pin: wrong, want: fail(2), wantVerify: true},
		}},
		{"five failures in the window lock for an hour, then it works again", []step{
			{pin: wrong, want: fail(1), wantVerify: true},
			{after: time.Minute, pin: wrong, want: fail(2), wantVerify: true},
			{after: time.Minute, pin: wrong, want: fail(3), wantVerify: true},
			{after: time.Minute, pin: wrong, want: fail(4), wantVerify: true},
			{after: time.Minute, pin: wrong, want: justLocked, lockedFor: time.Hour, wantVerify: true},
			{after: time.Second, pin: right, want: locked, lockedFor: time.Hour - time.Second, wantVerify: false},
			{after: 30 * time.Minute, pin: wrong, want: locked, lockedFor: 30*time.Minute - time.Second, wantVerify: false},
			{after: 30 * time.Minute, pin: right, want: ok, wantVerify: true},
			{after: time.Minute, pin: wrong, want: fail(1), wantVerify: true},
		}},
		{"failures older than the window start a new one", []step{
			{pin: wrong, want: fail(1), wantVerify: true},
			{after: time.Minute, pin: wrong, want: fail(2), wantVerify: true},
			{after: time.Minute, pin: wrong, want: fail(3), wantVerify: true},
			{after: time.Minute, pin: wrong, want: fail(4), wantVerify: true},
			{after: 16 * time.Minute, pin: wrong, want: fail(1), wantVerify: true},
			{after: time.Minute, pin: wrong, want: fail(2), wantVerify: true},
		}},
		{"success resets the count", []step{
			{pin: wrong, want: fail(1), wantVerify: true},
			{pin: wrong, want: fail(2), wantVerify: true},
			{pin: wrong, want: fail(3), wantVerify: true},
			{pin: wrong, want: fail(4), wantVerify: true},
			{pin: right, want: ok, wantVerify: true},
			{pin: wrong, want: fail(1), wantVerify: true},
			{pin: wrong, want: fail(2), wantVerify: true},
			{pin: wrong, want: fail(3), wantVerify: true},
			{pin: wrong, want: fail(4), wantVerify: true},
			{pin: wrong, want: justLocked, lockedFor: time.Hour, wantVerify: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			f := seed(t, s)
			ctx := context.Background()
			now := t0
			for i, st := range tt.steps {
				now = now.Add(st.after)
				var v countingVerify
				got, err := s.CheckPIN(ctx, f.customer, st.pin, now, DefaultPINPolicy(), v.verify)
				if err != nil {
					t.Fatalf("step %d: CheckPIN: %v", i, err)
				}
				want := st.want
				if want.Locked {
					want.LockedUntil = now.Add(st.lockedFor)
				}
				if got.Verified != want.Verified || got.Locked != want.Locked || got.JustLocked != want.JustLocked ||
					got.Failures != want.Failures || !got.LockedUntil.Equal(want.LockedUntil) {
					t.Fatalf("step %d (%s after %v): got %+v, want %+v", i, st.pin, st.after, got, want)
				}
				if calls := v.calls.Load(); (calls == 1) != st.wantVerify || calls > 1 {
					t.Fatalf("step %d: verify called %d times, want called=%v", i, calls, st.wantVerify)
				}
			}
		})
	}
}

func TestCheckPINErrors(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	f := seed(t, s)
	ctx := context.Background()
	verify := pinhash.Verify

	if _, err := s.CheckPIN(ctx, "nobody", "1", t0, DefaultPINPolicy(), verify); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing customer: %v, want ErrNotFound", err)
	}
	if _, err := s.CheckPIN(ctx, f.customer, "1", t0, PINPolicy{}, verify); err == nil {
		t.Fatal("zero policy accepted")
	}

	// A verify error is returned wrapped and counts nothing.
	boom := errors.New("hash unreadable")
	_, err := s.CheckPIN(ctx, f.customer, "13579", t0, DefaultPINPolicy(), func(string, string) (bool, error) { return false, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("verify error = %v, want wrapping %v", err, boom)
	}
	if strings.Contains(err.Error(), "13579") {
		t.Fatalf("error leaks the PIN: %v", err)
	}
	if n := countRows(t, s, "SELECT pin_failed_attempts FROM customers WHERE id = $1", f.customer); n != 0 {
		t.Fatalf("verify error counted as a failure: %d", n)
	}

	// A malformed stored hash surfaces pinhash's error.
	if _, err := s.DB().Exec("UPDATE customers SET pin_hash = '$argon2id$broken' WHERE id = $1", f.customer); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CheckPIN(ctx, f.customer, "246810", t0, DefaultPINPolicy(), verify); !errors.Is(err, pinhash.ErrMalformed) {
		t.Fatalf("malformed hash: %v, want ErrMalformed", err)
	}
}

func TestCheckPINConcurrentFailuresAllCount(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	f := seed(t, s)
	ctx := context.Background()
	const n = 8
	p := PINPolicy{MaxFailures: 100, Window: time.Hour, Lockout: time.Hour}
	warmPool(t, s, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if _, err := s.CheckPIN(ctx, f.customer, "999999", t0, p, pinhash.Verify); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := countRows(t, s, "SELECT pin_failed_attempts FROM customers WHERE id = $1", f.customer); got != n {
		t.Fatalf("pin_failed_attempts = %d after %d concurrent failures (lost updates)", got, n)
	}
}

// TestCheckPINForRequestIsOncePerRequest: an activity retried after a crash
// must get the first verdict back, not count the same wrong PIN again.
func TestCheckPINForRequestIsOncePerRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	f := seed(t, s)
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	cv := &countingVerify{}
	tests := []struct {
		name string
		pin  string
		want PINOutcome
	}{
		{"first check of a wrong PIN counts it", "000000", PINOutcome{Failures: 1}},
		{"a retry returns the stored verdict", "000000", PINOutcome{Failures: 1}},
		{"a retry with another PIN cannot change it", "246810", PINOutcome{Failures: 1}},
	}
	for _, tt := range tests {
		got, err := s.CheckPINForRequest(ctx, f.request, f.customer, tt.pin, now, DefaultPINPolicy(), cv.verify)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got != tt.want {
			t.Fatalf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
	if n := cv.calls.Load(); n != 1 {
		t.Fatalf("verify called %d times for one request, want 1", n)
	}
	var failures int
	if err := s.DB().QueryRowContext(ctx, `SELECT pin_failed_attempts FROM customers WHERE id = $1`, f.customer).Scan(&failures); err != nil {
		t.Fatal(err)
	}
	if failures != 1 {
		t.Fatalf("customer has %d counted failures after retries, want 1", failures)
	}
	if _, err := s.CheckPINForRequest(ctx, "", f.customer, "000000", now, DefaultPINPolicy(), cv.verify); err == nil {
		t.Fatal("empty request id accepted")
	}
}
