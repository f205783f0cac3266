package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// bgFixture is seed plus a second senior, a disabled senior and an admin,
// with the request awaiting approval.
func bgFixture(t *testing.T) (*Store, fixture) {
	t.Helper()
	s := newStore(t)
	f := seed(t, s)
	ctx := context.Background()
	for _, a := range []Agent{
		{ID: "carol", Name: "Carol", Role: domain.RoleSenior},
		{ID: "dave", Name: "Dave", Role: domain.RoleSenior, Disabled: true},
		{ID: "root", Name: "Root", Role: domain.RoleAdmin},
	} {
		if err := s.CreateAgent(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
	}
	st := domain.StatusAwaitingApproval
	if err := s.UpdateRequest(ctx, f.request, RequestUpdate{Status: st}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return s, f
}

func consent(s *Store, request, agent string, d domain.Decision, now time.Time) (BreakGlassResult, error) {
	return s.ConsentBreakGlass(context.Background(), BreakGlassConsent{RequestID: request, AgentID: agent, Decision: d, Reason: "Slack is down (INC-42)"},
		15*time.Minute, now, "BREAK-GLASS")
}

func TestConsentBreakGlassRefusals(t *testing.T) {
	t.Parallel()
	s, f := bgFixture(t)
	now := time.Now()
	if _, err := consent(s, f.request, f.senior, domain.DecisionApprove, now); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		request string
		agent   string
		want    error
	}{
		{"the same senior again", f.request, f.senior, ErrAlreadyConsented},
		{"the requester", f.request, f.requester, ErrNotConsentingSenior},
		{"a disabled senior", f.request, "dave", ErrNotConsentingSenior},
		{"an admin", f.request, "root", ErrNotConsentingSenior},
		{"an unknown agent", f.request, "nobody", ErrNotConsentingSenior},
		{"an unknown request", "req_none", "carol", ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := countRows(t, s, `SELECT count(*) FROM break_glass_consents`)
			audits := countRows(t, s, `SELECT count(*) FROM audit_events`)
			if _, err := consent(s, tt.request, tt.agent, domain.DecisionApprove, now); !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if n := countRows(t, s, `SELECT count(*) FROM break_glass_consents`); n != before {
				t.Fatalf("consents %d -> %d", before, n)
			}
			if n := countRows(t, s, `SELECT count(*) FROM audit_events`); n != audits {
				t.Fatalf("audit events %d -> %d", audits, n)
			}
		})
	}
	// A senior who opened the request cannot consent to it.
	ctx := context.Background()
	if err := s.CreateRequest(ctx, Request{ID: "req_own", WorkflowID: "wf-own", Action: domain.ActionDisable2FA,
		CustomerID: f.customer, RequesterID: "carol", Reason: "own", Status: domain.StatusAwaitingApproval}); err != nil {
		t.Fatal(err)
	}
	if _, err := consent(s, "req_own", "carol", domain.DecisionApprove, now); !errors.Is(err, ErrOwnRequest) {
		t.Fatalf("own request: %v", err)
	}
	// Nor to a request that is not awaiting approval.
	if err := s.UpdateRequest(ctx, "req_own", RequestUpdate{Status: domain.StatusCancelled}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := consent(s, "req_own", f.senior, domain.DecisionApprove, now); !errors.Is(err, ErrNotAwaiting) {
		t.Fatalf("ended request: %v", err)
	}
}

// TestBreakGlassPairing: two seniors pair in either order, only for the same
// decision and within the consent's validity; the worker's check finds the
// pair and nothing else.
func TestBreakGlassPairing(t *testing.T) {
	t.Parallel()
	s, f := bgFixture(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if res, err := consent(s, f.request, "carol", domain.DecisionReject, now); err != nil || res.Pair != nil {
		t.Fatalf("carol's reject: %+v %v", res, err)
	}
	res, err := consent(s, f.request, f.senior, domain.DecisionApprove, now.Add(time.Minute))
	if err != nil || res.Pair != nil {
		t.Fatalf("bob's approve must not pair with carol's reject: %+v %v", res, err)
	}
	// Carol's reject expires; her approve pairs with Bob's, Bob first.
	later := now.Add(15*time.Minute + 30*time.Second)
	res, err = consent(s, f.request, "carol", domain.DecisionApprove, later)
	if err != nil || res.Pair == nil {
		t.Fatalf("carol's approve: %+v %v", res, err)
	}
	if res.Pair[0].AgentID != f.senior || res.Pair[1].AgentID != "carol" {
		t.Fatalf("pair %+v, want bob then carol", res.Pair)
	}
	if ev := trailEvents(t, s, f.request); len(ev) != 4 || ev[3] != "decision.break_glass" {
		t.Fatalf("trail %v", ev)
	}
	checks := []struct {
		name             string
		approver, second string
		decision         domain.Decision
		at               time.Time
		want             bool
	}{
		{"the pair", f.senior, "carol", domain.DecisionApprove, later, true},
		{"the pair, decided a moment later", f.senior, "carol", domain.DecisionApprove, later.Add(30 * time.Second), true},
		{"the other decision", f.senior, "carol", domain.DecisionReject, later, false},
		{"the seniors swapped", "carol", f.senior, domain.DecisionApprove, later, true},
		{"one senior twice", f.senior, f.senior, domain.DecisionApprove, later, false},
		{"another second senior", f.senior, "dave", domain.DecisionApprove, later, false},
		{"decided after both expired", f.senior, "carol", domain.DecisionApprove, later.Add(time.Hour), false},
		{"decided before the pairing", f.senior, "carol", domain.DecisionApprove, now, false},
	}
	for _, c := range checks {
		ok, err := s.BreakGlassPaired(ctx, f.request, c.approver, c.second, c.decision, c.at)
		if err != nil || ok != c.want {
			t.Errorf("%s: BreakGlassPaired = %v, %v; want %v", c.name, ok, err, c.want)
		}
	}
	// A senior disabled after the pairing no longer passes the worker's check.
	if err := s.DisableAgent(ctx, "carol", time.Now()); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.BreakGlassPaired(ctx, f.request, f.senior, "carol", domain.DecisionApprove, later); err != nil || ok {
		t.Errorf("after carol was disabled: %v, %v", ok, err)
	}
}

// TestBreakGlassConcurrentConsents: seniors consenting at the same moment
// make exactly one pair.
func TestBreakGlassConcurrentConsents(t *testing.T) {
	t.Parallel()
	s, f := bgFixture(t)
	ctx := context.Background()
	for _, id := range []string{"erin", "frank"} {
		if err := s.CreateAgent(ctx, Agent{ID: id, Name: id, Role: domain.RoleSenior}, nil); err != nil {
			t.Fatal(err)
		}
	}
	warmPool(t, s, 4)
	now := time.Now()
	var wg sync.WaitGroup
	pairs := make(chan int, 4)
	for _, id := range []string{f.senior, "carol", "erin", "frank"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := consent(s, f.request, id, domain.DecisionApprove, now)
			if err != nil {
				t.Error(err)
				return
			}
			if res.Pair != nil {
				pairs <- 1
			}
		}()
	}
	wg.Wait()
	close(pairs)
	n := 0
	for range pairs {
		n++
	}
	if n != 2 {
		t.Fatalf("%d pairs from four consents, want 2", n)
	}
	if used := countRows(t, s, `SELECT count(*) FROM break_glass_consents WHERE used_at IS NOT NULL`); used != 4 {
		t.Fatalf("%d consents used, want 4", used)
	}
}

func TestRefuseBreakGlassOnce(t *testing.T) {
	t.Parallel()
	s, f := bgFixture(t)
	for range 2 {
		if err := s.RefuseBreakGlass(context.Background(), f.request, f.senior, "carol", domain.DecisionApprove); err != nil {
			t.Fatal(err)
		}
	}
	if ev := trailEvents(t, s, f.request); len(ev) != 1 || ev[0] != "break_glass.unconsented" {
		t.Fatalf("trail %v", ev)
	}
	if k := alertKinds(t, s); len(k) != 1 || k[0] != AlertBreakGlassUnconsented {
		t.Fatalf("alerts %v", k)
	}
}
