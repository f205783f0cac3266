package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/testpg"
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
	if n := countRows(t, s, "SELECT count(*) FROM pin_failures WHERE customer_id = $1", f.customer); n != 0 {
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
	if got := countRows(t, s, "SELECT count(*) FROM pin_failures WHERE customer_id = $1", f.customer); got != n {
		t.Fatalf("%d failures recorded after %d concurrent failures (lost updates)", got, n)
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
		if got.Verified != tt.want.Verified || got.Locked != tt.want.Locked || got.Failures != tt.want.Failures {
			t.Fatalf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
	if n := cv.calls.Load(); n != 1 {
		t.Fatalf("verify called %d times for one request, want 1", n)
	}
	if failures := countRows(t, s, "SELECT count(*) FROM pin_failures WHERE customer_id = $1 AND agent_id = $2", f.customer, f.requester); failures != 1 {
		t.Fatalf("customer has %d counted failures after retries, want 1", failures)
	}
	if _, err := s.CheckPINForRequest(ctx, "", f.customer, "000000", now, DefaultPINPolicy(), cv.verify); err == nil {
		t.Fatal("empty request id accepted")
	}
}

// TestCheckPINVerifiesOutsideTheDatabase: the hash check holds neither a
// pool connection nor the customer's row lock. 30 checks on a pool of 5 are
// all inside verify at once, held there by a barrier, while other queries
// still get a connection; released, every check records its verdict.
func TestCheckPINVerifiesOutsideTheDatabase(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	f := seed(t, s)
	const checks, pool = 30, 5
	s.DB().SetMaxOpenConns(pool)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	entered := make(chan struct{}, checks)
	release := make(chan struct{})
	held := func(encoded, pin string) (bool, error) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		return pinhash.Verify(encoded, pin)
	}
	var wg sync.WaitGroup
	outs := make(chan PINOutcome, checks)
	errs := make(chan error, checks)
	for range checks {
		wg.Go(func() {
			out, err := s.CheckPIN(ctx, f.customer, "246810", t0, DefaultPINPolicy(), held)
			if err != nil {
				errs <- err
				return
			}
			outs <- out
		})
	}
	for i := range checks {
		select {
		case <-entered:
		case <-ctx.Done():
			close(release)
			wg.Wait()
			t.Fatalf("only %d of %d checks reached verify: checks hold the pool or the row during the hash", i, checks)
		}
	}
	// Every check is inside verify now. The pool and the row are free.
	var n int
	if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM customers WHERE id = $1`, f.customer).Scan(&n); err != nil || n != 1 {
		t.Fatalf("query while checks verify: n=%d err=%v", n, err)
	}
	if _, err := s.DB().ExecContext(ctx, `UPDATE customers SET name = name WHERE id = $1`, f.customer); err != nil {
		t.Fatalf("row update while checks verify: %v", err)
	}
	close(release)
	wg.Wait()
	close(errs)
	close(outs)
	for err := range errs {
		t.Fatal(err)
	}
	got := 0
	for out := range outs {
		if out != (PINOutcome{Verified: true}) {
			t.Fatalf("outcome %+v, want verified", out)
		}
		got++
	}
	if got != checks {
		t.Fatalf("%d outcomes, want %d", got, checks)
	}
}

// TestCheckPINRacingGuessesGainNothing: wrong guesses that all hash at the
// same moment (held at a barrier inside verify, then let go together) still
// each count against the counters as they are when recorded, so racing never
// buys more than MaxFailures guesses, and a right PIN racing with them is
// refused once the lockout is reached.
func TestCheckPINRacingGuessesGainNothing(t *testing.T) {
	t.Parallel()
	const right, wrong = "246810", "000000"
	tests := []struct {
		name        string
		prior       int // wrong guesses recorded before the race
		wrongs      int // racing wrong guesses
		rightAfter  bool
		max         int
		wantCounted int // failures recorded after the race
		wantLocked  bool
	}{
		{"fewer than the budget all count", 0, 4, false, 5, 4, false},
		{"exactly the budget locks once", 0, 5, false, 5, 5, true},
		{"30 at once on a budget of 5", 0, 30, false, 5, 5, true},
		{"the race starts one short of the lock", 4, 10, false, 5, 5, true},
		{"a right PIN after the racing lock is refused", 0, 30, true, 5, 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			f := seed(t, s)
			ctx := context.Background()
			s.DB().SetMaxOpenConns(10)
			p := PINPolicy{MaxFailures: tt.max, Window: time.Hour, Lockout: time.Hour}
			for i := range tt.prior {
				if _, err := s.CheckPIN(ctx, f.customer, wrong, t0, p, pinhash.Verify); err != nil {
					t.Fatalf("prior guess %d: %v", i, err)
				}
			}
			var barrier sync.WaitGroup
			barrier.Add(tt.wrongs)
			together := make(chan struct{})
			go func() { barrier.Wait(); close(together) }()
			atBarrier := func(encoded, pin string) (bool, error) {
				barrier.Done()
				select { // every guess has read the same counters
				case <-together:
				case <-time.After(20 * time.Second):
					return false, errors.New("the guesses never hashed at the same time: verify runs under a lock")
				}
				return pinhash.Verify(encoded, pin)
			}
			var wg sync.WaitGroup
			outs := make(chan PINOutcome, tt.wrongs)
			errs := make(chan error, tt.wrongs)
			for range tt.wrongs {
				wg.Go(func() {
					out, err := s.CheckPIN(ctx, f.customer, wrong, t0, p, atBarrier)
					if err != nil {
						errs <- err
						return
					}
					outs <- out
				})
			}
			wg.Wait()
			close(errs)
			close(outs)
			for err := range errs {
				t.Fatal(err)
			}
			justLocked, failed, lockedRefusals := 0, 0, 0
			for out := range outs {
				switch {
				case out.Verified:
					t.Fatalf("a wrong PIN verified: %+v", out)
				case out.JustLocked:
					justLocked++
				case out.Locked:
					lockedRefusals++
				default:
					failed++
				}
			}
			budget := tt.max - tt.prior
			wantJust, wantFailed := 0, tt.wrongs
			if tt.wrongs >= budget {
				wantJust, wantFailed = 1, budget-1
			}
			if justLocked != wantJust || failed != wantFailed || lockedRefusals != tt.wrongs-wantJust-wantFailed {
				t.Fatalf("outcomes: %d just locked, %d counted failures, %d refused as locked; want %d, %d, %d",
					justLocked, failed, lockedRefusals, wantJust, wantFailed, tt.wrongs-wantJust-wantFailed)
			}
			if got := countRows(t, s, "SELECT count(*) FROM pin_failures WHERE customer_id = $1", f.customer); got != tt.wantCounted {
				t.Fatalf("%d failures recorded, want %d", got, tt.wantCounted)
			}
			if locked := countRows(t, s, "SELECT count(*) FROM customers WHERE id = $1 AND pin_locked_until > $2", f.customer, t0); (locked == 1) != tt.wantLocked {
				t.Fatalf("locked = %v, want %v", locked == 1, tt.wantLocked)
			}
			if tt.rightAfter {
				out, err := s.CheckPIN(ctx, f.customer, right, t0.Add(time.Minute), p, pinhash.Verify)
				if err != nil {
					t.Fatal(err)
				}
				if out.Verified || !out.Locked {
					t.Fatalf("right PIN after the racing lock: %+v, want locked", out)
				}
			}
		})
	}
}

// TestCheckPINStartsOverWhenThePINChanges: a PIN reset between the hash
// check and the verdict must not let the old PIN's verdict stand.
func TestCheckPINStartsOverWhenThePINChanges(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	f := seed(t, s)
	ctx := context.Background()
	newHash, err := pinhash.Hash("135790", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	resetDuringFirst := func(encoded, pin string) (bool, error) {
		calls++
		if calls == 1 {
			if _, err := s.DB().ExecContext(ctx, `UPDATE customers SET pin_hash = $2 WHERE id = $1`, f.customer, newHash); err != nil {
				return false, err
			}
		}
		return pinhash.Verify(encoded, pin)
	}
	out, err := s.CheckPIN(ctx, f.customer, "246810", t0, DefaultPINPolicy(), resetDuringFirst)
	if err != nil {
		t.Fatal(err)
	}
	if out.Verified || out.Failures != 1 || calls != 2 {
		t.Fatalf("old PIN after a reset: %+v after %d verifies, want one counted failure after 2", out, calls)
	}
}

// BenchmarkCheckPIN is one right-PIN check with the production argon2id
// parameters, b.N of them spread over GOMAXPROCS*p goroutines
// (-cpu and the parallelism set the concurrency) on a pool of 20.
func BenchmarkCheckPIN(b *testing.B) {
	for _, par := range []int{1, 10} {
		b.Run(fmt.Sprintf("parallelism=%d", par), func(b *testing.B) {
			s := New(testpg.New(b))
			if err := s.Migrate(context.Background()); err != nil {
				b.Fatal(err)
			}
			s.DB().SetMaxOpenConns(20)
			hash, err := pinhash.Hash("246810", pinhash.DefaultParams())
			if err != nil {
				b.Fatal(err)
			}
			if err := s.UpsertCustomer(context.Background(), CustomerImport{ID: "cus_b", Name: "Bench", PrimaryEmail: "b@bench.test", PINHash: hash, Servers: []string{"srv_b"}}); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					out, err := s.CheckPIN(context.Background(), "cus_b", "246810", t0, DefaultPINPolicy(), pinhash.Verify)
					if err != nil || !out.Verified {
						b.Errorf("check: %+v %v", out, err)
						return
					}
				}
			})
		})
	}
}
