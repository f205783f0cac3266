package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// openRow is the request a PIN is checked for before it opens.
func openRow(id, customer, requester string) Request {
	return Request{ID: id, WorkflowID: "vigil-request-" + id, Action: domain.ActionDisable2FA,
		CustomerID: customer, RequesterID: requester, Reason: "customer lost their phone"}
}

// claimOf is the claim the request's own workflow run makes.
func claimOf(r Request, run string) VerdictClaim {
	return VerdictClaim{RequestID: r.ID, WorkflowID: r.WorkflowID, RunID: run, Action: r.Action,
		CustomerID: r.CustomerID, RequesterID: r.RequesterID, ServerID: r.ServerID, Email: r.Email}
}

func trailEvents(t *testing.T, s *Store, id string) []string {
	t.Helper()
	trail, err := s.AuditTrail(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range trail {
		out = append(out, e.Event)
	}
	return out
}

func alertKinds(t *testing.T, s *Store) []string {
	t.Helper()
	as, err := s.QueuedAlerts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		out = append(out, a.Kind)
	}
	return out
}

// TestCheckPINForOpen: a right PIN leaves a verdict bound to the request and
// nothing else (the request's row comes with its workflow's start); a wrong
// PIN or a locked customer ends the request at once, row, trail and alert
// written with the verdict.
func TestCheckPINForOpen(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	f := seed(t, s)
	ctx := context.Background()
	p := DefaultPINPolicy()

	ok := openRow("req_ok", f.customer, f.requester)
	out, err := s.CheckPINForOpen(ctx, ok, "246810", t0, p, pinhash.Verify)
	if err != nil || !out.Verified {
		t.Fatalf("right PIN: %+v %v", out, err)
	}
	v, err := s.PINVerdictOf(ctx, ok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Verified || v.WorkflowID != ok.WorkflowID || v.CustomerID != f.customer || v.RequesterID != f.requester ||
		v.Action != ok.Action || !v.CheckedAt.Equal(t0) || !v.ExpiresAt.Equal(t0.Add(DefaultVerdictTTL)) || v.ConsumedAt != nil {
		t.Fatalf("verdict %+v", v)
	}
	if _, err := s.Request(ctx, ok.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a verified open wrote its row before the start: %v", err)
	}
	if ev := trailEvents(t, s, ok.ID); len(ev) != 0 {
		t.Fatalf("a verified open wrote %v before the start", ev)
	}
	if _, err := s.CheckPINForOpen(ctx, ok, "246810", t0, p, pinhash.Verify); !errors.Is(err, ErrConflict) {
		t.Fatalf("a second verdict for the same request id: %v, want ErrConflict", err)
	}

	for i := 1; i <= 5; i++ {
		r := openRow(fmt.Sprintf("req_wrong_%d", i), f.customer, f.requester)
		r.Action, r.ServerID = domain.ActionReinstallVPS, "srv_1"
		out, err := s.CheckPINForOpen(ctx, r, "000000", t0.Add(time.Duration(i)*time.Minute), p, pinhash.Verify)
		if err != nil {
			t.Fatal(err)
		}
		row, err := s.Request(ctx, r.ID)
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if row.Status != domain.StatusPINRejected || row.EndedAt == nil || row.ServerID != "srv_1" || row.Reason != r.Reason {
			t.Fatalf("attempt %d: row %+v, want pin_rejected and ended", i, row)
		}
		want := []string{"request.opened", "gate.pin.rejected", "request.pin_rejected"}
		if i == 5 {
			want = []string{"request.opened", "gate.pin.rejected", "customer.locked", "request.pin_rejected"}
			if !out.JustLocked || out.LockReason != LockWindow {
				t.Fatalf("fifth wrong PIN: %+v, want it to lock", out)
			}
		}
		if got := trailEvents(t, s, r.ID); !slices.Equal(got, want) {
			t.Fatalf("attempt %d: trail %v, want %v", i, got, want)
		}
		// The wrong PIN's verdict is kept, never consumable.
		if v, err := s.PINVerdictOf(ctx, r.ID); err != nil || v.Verified || v.Failures != out.Failures {
			t.Fatalf("attempt %d: verdict %+v %v", i, v, err)
		}
	}
	if got := alertKinds(t, s); !slices.Equal(got, []string{AlertCustomerLocked}) {
		t.Fatalf("alerts %v, want the lockout's alone", got)
	}

	locked := openRow("req_locked", f.customer, f.requester)
	verify := &countingVerify{}
	out, err = s.CheckPINForOpen(ctx, locked, "246810", t0.Add(10*time.Minute), p, verify.verify)
	if err != nil || !out.Locked || out.JustLocked || verify.calls.Load() != 0 {
		t.Fatalf("right PIN while locked: %+v %v after %d verifies", out, err, verify.calls.Load())
	}
	if row, err := s.Request(ctx, locked.ID); err != nil || row.Status != domain.StatusLocked {
		t.Fatalf("locked open: %+v %v", row, err)
	}
	if got, want := trailEvents(t, s, locked.ID), []string{"request.opened", "gate.pin.locked_out", "request.locked"}; !slices.Equal(got, want) {
		t.Fatalf("trail %v, want %v", got, want)
	}
}

// TestCheckPINRollingWindow: five wrong PINs within any 15 minutes lock,
// even when a window fixed at the first failure would have reset in between.
func TestCheckPINRollingWindow(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		at       []time.Duration // wrong PINs, from t0
		wantLock int             // index of the failure that locks, -1 for none
	}{
		// A fixed window from 0 holds 4 and resets at 15m; 12..17 are five
		// within 15 minutes.
		{"spans the fixed window's reset", []time.Duration{0, 12 * time.Minute, 13 * time.Minute, 14 * time.Minute, 16 * time.Minute, 17 * time.Minute}, 5},
		{"never five within 15 minutes", []time.Duration{0, 4 * time.Minute, 8 * time.Minute, 12 * time.Minute, 16 * time.Minute, 20 * time.Minute, 24 * time.Minute}, -1},
		{"five in a burst", []time.Duration{0, time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			f := seed(t, s)
			p := DefaultPINPolicy()
			p.DayMaxFailures = 0 // the short window alone
			locked := -1
			for i, at := range tt.at {
				out, err := s.CheckPIN(context.Background(), f.customer, "000000", t0.Add(at), p, pinhash.Verify)
				if err != nil {
					t.Fatal(err)
				}
				if out.JustLocked {
					locked = i
					break
				}
			}
			if locked != tt.wantLock {
				t.Fatalf("locked at failure %d, want %d", locked, tt.wantLock)
			}
		})
	}
}

// TestSlowPINGuessingOverASimulatedDay is the scenario of issue 15: 384
// wrong PINs in 24 hours, one every 3 min 45 s, never 5 within 15 minutes.
// The short window alone never locks (0 lockouts, all 384 hashed); the
// daily budget locks the customer at the 10th, warns at the 5th, and no
// further guess is even hashed that day.
func TestSlowPINGuessingOverASimulatedDay(t *testing.T) {
	t.Parallel()
	const guesses, every = 384, 3*time.Minute + 45*time.Second
	for _, tt := range []struct {
		name        string
		dayBudget   int
		wantLocks   int
		wantHashed  int32
		wantWarning int // index of the slow-guessing warning, -1 for none
	}{
		{"short window only (the old policy's shape)", 0, 0, guesses, 4},
		{"with the daily budget", 10, 1, 10, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			f := seed(t, s)
			p := DefaultPINPolicy()
			p.DayMaxFailures = tt.dayBudget
			p.AgentMaxFailures = 0 // one agent guessing is the next test's
			v := &countingVerify{}
			locks, warning := 0, -1
			var lockedAt time.Time
			for i := range guesses {
				now := t0.Add(time.Duration(i) * every)
				r := openRow(fmt.Sprintf("req_slow_%d", i), f.customer, f.requester)
				out, err := s.CheckPINForOpen(context.Background(), r, "000000", now, p, v.verify)
				if err != nil {
					t.Fatalf("guess %d: %v", i, err)
				}
				if out.Verified {
					t.Fatalf("guess %d verified", i)
				}
				if out.JustLocked {
					locks++
					lockedAt = now
					if out.LockReason != LockDay || !out.LockedUntil.Equal(now.Add(PINDay)) {
						t.Fatalf("guess %d locked %+v, want the daily budget for a day", i, out)
					}
				}
				if out.SlowGuessing {
					if warning >= 0 {
						t.Fatalf("a second slow-guessing warning at %d (first at %d)", i, warning)
					}
					warning = i
				}
			}
			if locks != tt.wantLocks || v.calls.Load() != tt.wantHashed || warning != tt.wantWarning {
				t.Fatalf("%d lockouts, %d guesses hashed, warning at %d; want %d, %d, %d",
					locks, v.calls.Load(), warning, tt.wantLocks, tt.wantHashed, tt.wantWarning)
			}
			kinds := alertKinds(t, s)
			if n := countIn(kinds, AlertCustomerLocked); n != tt.wantLocks {
				t.Fatalf("alerts %v: %d lockout alerts, want %d", kinds, n, tt.wantLocks)
			}
			if n := countIn(kinds, AlertSlowGuessing); n != 1 {
				t.Fatalf("alerts %v: want one slow-guessing warning", kinds)
			}
			if tt.wantLocks > 0 {
				// The day lock ends a day later, and the right PIN works again.
				out, err := s.CheckPIN(context.Background(), f.customer, "246810", lockedAt.Add(PINDay+time.Second), p, pinhash.Verify)
				if err != nil || !out.Verified {
					t.Fatalf("right PIN after the day's lock: %+v %v", out, err)
				}
			}
		})
	}
}

func countIn(xs []string, x string) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// TestAgentSprayingAcrossCustomersIsStopped: one agent trying one wrong PIN
// at each of many customers never locks any of them, but reaches the limit
// across customers: that failure alerts, and from then on the agent's PIN
// checks are refused unhashed (even a right PIN) and audited, without a
// verdict or a request, until the window has passed. Another agent is not
// held up.
func TestAgentSprayingAcrossCustomersIsStopped(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	f := seed(t, s)
	ctx := context.Background()
	p := DefaultPINPolicy()
	hash, err := pinhash.Hash("135790", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	const customers = 30
	for i := range customers {
		if err := s.UpsertCustomer(ctx, CustomerImport{ID: fmt.Sprintf("cus_spray_%d", i), Name: "Spray", PrimaryEmail: "x@spray.test", PINHash: hash}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateAgent(ctx, Agent{ID: "carol", Name: "Carol", Role: domain.RoleAgent}, nil); err != nil {
		t.Fatal(err)
	}
	v := &countingVerify{}
	blockedAt := -1
	var until time.Time
	for i := range customers {
		now := t0.Add(time.Duration(i) * 10 * time.Minute)
		r := openRow(fmt.Sprintf("req_spray_%d", i), fmt.Sprintf("cus_spray_%d", i), f.requester)
		pin := "000000"
		if i == customers-1 {
			pin = "135790" // the right PIN no longer helps
		}
		out, err := s.CheckPINForOpen(ctx, r, pin, now, p, v.verify)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case i < p.AgentMaxFailures-1:
			if out.AgentBlocked || out.AgentJustBlocked || out.Locked {
				t.Fatalf("guess %d: %+v, want a plain wrong PIN", i, out)
			}
		case i == p.AgentMaxFailures-1:
			if !out.AgentJustBlocked || out.AgentBlocked {
				t.Fatalf("guess %d: %+v, want the agent just blocked", i, out)
			}
			blockedAt, until = i, out.AgentBlockedUntil
			if want := t0.Add(p.AgentWindow); !until.Equal(want) {
				t.Fatalf("blocked until %v, want %v (when the first failure leaves the window)", until, want)
			}
		default:
			if !out.AgentBlocked || out.Verified || !out.AgentBlockedUntil.Equal(until) {
				t.Fatalf("guess %d after the block: %+v", i, out)
			}
			if _, err := s.PINVerdictOf(ctx, r.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("guess %d: a blocked agent's check left a verdict: %v", i, err)
			}
			if _, err := s.Request(ctx, r.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("guess %d: a blocked agent's check left a request: %v", i, err)
			}
		}
	}
	if blockedAt < 0 {
		t.Fatal("the agent was never stopped")
	}
	if n := v.calls.Load(); n != int32(p.AgentMaxFailures) {
		t.Fatalf("%d PINs hashed, want %d (none after the block)", n, p.AgentMaxFailures)
	}
	if got := alertKinds(t, s); !slices.Equal(got, []string{AlertAgentBlocked}) {
		t.Fatalf("alerts %v, want one agent_blocked", got)
	}
	if n := countRows(t, s, `SELECT count(*) FROM audit_events WHERE event = 'pin.agent_blocked' AND actor = $1`, "agent:"+f.requester); n != customers-p.AgentMaxFailures {
		t.Fatalf("%d refusals audited, want %d", n, customers-p.AgentMaxFailures)
	}
	if n := countRows(t, s, `SELECT count(*) FROM customers WHERE pin_locked_until IS NOT NULL`); n != 0 {
		t.Fatalf("%d customers locked by a spray of one guess each", n)
	}
	// Another agent checks a PIN meanwhile, unhindered.
	if out, err := s.CheckPINForOpen(ctx, openRow("req_carol", "cus_spray_0", "carol"), "135790", t0.Add(5*time.Hour), p, pinhash.Verify); err != nil || !out.Verified {
		t.Fatalf("another agent: %+v %v", out, err)
	}
	// Once the window has passed, the agent may check again.
	if out, err := s.CheckPINForOpen(ctx, openRow("req_after", "cus_spray_1", f.requester), "135790", until.Add(time.Minute), p, pinhash.Verify); err != nil || !out.Verified {
		t.Fatalf("after the window: %+v %v", out, err)
	}
}

// TestConsumePINVerdict: the workflow's gate passes only on its own
// verified verdict, once. Every refusal is audited on the request id's
// trail and queued for security; the request's own row ends failed only
// when the claim is the request's own.
func TestConsumePINVerdict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := DefaultPINPolicy()
	other := func(c VerdictClaim, edit func(*VerdictClaim)) VerdictClaim { edit(&c); return c }
	tests := []struct {
		name string
		// verified: the PIN checked right; row: the request's row exists
		// (its open committed); prepare runs before the claim.
		verified, row bool
		prepare       func(t *testing.T, s *Store, r Request)
		claim         func(r Request) VerdictClaim
		at            time.Duration
		wantReason    string
		wantFields    []string
		wantRowFailed bool
	}{
		{name: "the request's own run", verified: true, row: true, claim: func(r Request) VerdictClaim { return claimOf(r, "run-1") }},
		{name: "another customer", verified: true, row: true, wantReason: VerdictMismatch, wantFields: []string{"customer"},
			claim: func(r Request) VerdictClaim {
				return other(claimOf(r, "run-x"), func(c *VerdictClaim) { c.CustomerID = "cus_2" })
			}},
		{name: "another workflow id, action and requester", verified: true, row: true, wantReason: VerdictMismatch,
			wantFields: []string{"workflow id", "action", "requester"},
			claim: func(r Request) VerdictClaim {
				return other(claimOf(r, "run-x"), func(c *VerdictClaim) {
					c.WorkflowID, c.Action, c.RequesterID = "forged", domain.ActionChangeAccountEmail, "bob"
				})
			}},
		{name: "another target", verified: true, wantReason: VerdictMismatch, wantFields: []string{"email"},
			claim: func(r Request) VerdictClaim {
				return other(claimOf(r, "run-x"), func(c *VerdictClaim) { c.Email = "attacker@evil.test" })
			}},
		{name: "a NUL byte in the claimed customer", verified: true, row: true, wantReason: VerdictInvalidClaim,
			claim: func(r Request) VerdictClaim {
				return other(claimOf(r, "run-x"), func(c *VerdictClaim) { c.CustomerID = "cus_1\x00" })
			}},
		{name: "no verdict", wantReason: VerdictMissing, claim: func(r Request) VerdictClaim {
			return other(claimOf(r, "run-1"), func(c *VerdictClaim) { c.RequestID = "req_never" })
		}},
		{name: "wrong PIN", wantReason: VerdictNotVerified, claim: func(r Request) VerdictClaim { return claimOf(r, "run-1") }},
		{name: "expired", verified: true, row: true, at: DefaultVerdictTTL, wantReason: VerdictExpired, wantRowFailed: true,
			claim: func(r Request) VerdictClaim { return claimOf(r, "run-1") }},
		{name: "voided", verified: true, wantReason: VerdictVoided, claim: func(r Request) VerdictClaim { return claimOf(r, "run-1") },
			prepare: func(t *testing.T, s *Store, r Request) {
				if err := s.VoidPINVerdict(ctx, r.ID, t0); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "a PIN in the input", verified: true, row: true, wantReason: VerdictPINInInput, wantRowFailed: true,
			claim: func(r Request) VerdictClaim {
				return other(claimOf(r, "run-1"), func(c *VerdictClaim) { c.PINInInput = true })
			}},
		{name: "consumed by another run", verified: true, row: true, wantReason: VerdictConsumed, wantRowFailed: true,
			claim: func(r Request) VerdictClaim { return claimOf(r, "run-2") },
			prepare: func(t *testing.T, s *Store, r Request) {
				if _, err := s.ConsumePINVerdict(ctx, claimOf(r, "run-1"), t0); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			f := seed(t, s)
			r := openRow("req_v", f.customer, f.requester)
			r.Action, r.Email = domain.ActionAddContactEmail, "new@acme.test"
			pin := "000000"
			if tt.verified {
				pin = "246810"
			}
			if _, err := s.CheckPINForOpen(ctx, r, pin, t0, p, pinhash.Verify); err != nil {
				t.Fatal(err)
			}
			if tt.row {
				if err := s.OpenRequest(ctx, r, func(context.Context) error { return nil }); err != nil {
					t.Fatal(err)
				}
			}
			if tt.prepare != nil {
				tt.prepare(t, s, r)
			}
			c := tt.claim(r)
			v, err := s.ConsumePINVerdict(ctx, c, t0.Add(tt.at))
			if tt.wantReason == "" {
				if err != nil || !v.Verified || v.ConsumedByRun != c.RunID {
					t.Fatalf("own claim: %+v %v", v, err)
				}
				// The same run again (a retried activity) gets it again; any
				// other run does not.
				if v2, err := s.ConsumePINVerdict(ctx, c, t0.Add(time.Second)); err != nil || !v2.ConsumedAt.Equal(*v.ConsumedAt) {
					t.Fatalf("retry of the same run: %+v %v", v2, err)
				}
				var refused *VerdictRefusedError
				if _, err := s.ConsumePINVerdict(ctx, claimOf(r, "run-2"), t0.Add(2*time.Second)); !errors.As(err, &refused) || refused.Reason != VerdictConsumed {
					t.Fatalf("second consumption: %v, want refused as consumed", err)
				}
				if got := trailEvents(t, s, r.ID); countIn(got, "gate.pin.verdict_consumed") != 1 || countIn(got, "gate.pin.verdict_refused") != 1 {
					t.Fatalf("trail %v", got)
				}
				return
			}
			var refused *VerdictRefusedError
			if !errors.As(err, &refused) || refused.Reason != tt.wantReason || !slices.Equal(refused.Fields, tt.wantFields) {
				t.Fatalf("claim %+v: %v, want refused: %s %v", c, err, tt.wantReason, tt.wantFields)
			}
			trail, err := s.AuditTrail(ctx, c.RequestID)
			if err != nil {
				t.Fatal(err)
			}
			var ev *AuditEvent
			for i := range trail {
				if trail[i].Event == "gate.pin.verdict_refused" {
					ev = &trail[i]
				}
			}
			if ev == nil || ev.Details["reason"] != tt.wantReason || ev.Details["run_id"] != c.RunID || ev.Details["customer"] != textrule.Escape(c.CustomerID) {
				t.Fatalf("refusal audit %+v in %v", ev, trail)
			}
			if got := alertKinds(t, s); countIn(got, AlertVerdictRefused) != 1 {
				t.Fatalf("alerts %v, want one pin_verdict_refused", got)
			}
			// A retried refusal is audited and alerted once.
			if _, err := s.ConsumePINVerdict(ctx, c, t0.Add(tt.at+time.Second)); !errors.As(err, &refused) {
				t.Fatalf("retried refusal: %v", err)
			}
			if n := countRows(t, s, `SELECT count(*) FROM audit_events WHERE event = 'gate.pin.verdict_refused' AND request_id = $1`, c.RequestID); n != 1 {
				t.Fatalf("%d refusal events after a retry, want 1", n)
			}
			if got := alertKinds(t, s); countIn(got, AlertVerdictRefused) != 1 {
				t.Fatalf("alerts %v after a retry, want one pin_verdict_refused", got)
			}
			if !tt.row {
				return
			}
			row, err := s.Request(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if failed := row.Status == domain.StatusFailed; failed != tt.wantRowFailed || (failed && row.EndedAt == nil) {
				t.Fatalf("row %s (ended %v); want failed: %v", row.Status, row.EndedAt, tt.wantRowFailed)
			}
			if !tt.wantRowFailed && row.Status != domain.StatusPINCheck {
				t.Fatalf("a claim that only borrows the id moved the request to %s", row.Status)
			}
		})
	}
}

// TestClaimAlerts: a leased alert is not handed to a second relay until its
// lease runs out; a sent one never again.
func TestClaimAlerts(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	for i := range 3 {
		if err := queueAlert(ctx, s.db, AlertAgentBlocked, "", map[string]any{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := s.ClaimAlerts(ctx, 2, time.Hour)
	if err != nil || len(first) != 2 || first[0].Details["n"] != float64(0) || first[1].Details["n"] != float64(1) {
		t.Fatalf("first claim: %+v %v", first, err)
	}
	second, err := s.ClaimAlerts(ctx, 10, time.Hour)
	if err != nil || len(second) != 1 || second[0].Details["n"] != float64(2) {
		t.Fatalf("second claim: %+v %v, want only the unleased one", second, err)
	}
	if err := s.MarkAlertSent(ctx, first[0].ID); err != nil {
		t.Fatal(err)
	}
	// Leases that ran out come back, sent alerts do not.
	if _, err := s.DB().ExecContext(ctx, `UPDATE security_alerts SET claimed_until = now() - interval '1 second'`); err != nil {
		t.Fatal(err)
	}
	again, err := s.ClaimAlerts(ctx, 10, time.Hour)
	if err != nil || len(again) != 2 || again[0].ID != first[1].ID || again[0].Attempts != 2 {
		t.Fatalf("after the leases ran out: %+v %v", again, err)
	}
}
