package api

import (
	"context"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/agentauth"
	"github.com/vigil-oss/vigil/internal/alertrelay"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/store"
)

// TestUnlockCustomer: only the security role lifts a PIN lockout; every
// other caller is refused (an agent's or senior's attempt audited) and
// changes nothing; bad input changes nothing; an unlock is audited and
// queued for the security channel, and clears the counted wrong PINs.
func TestUnlockCustomer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	ctx := context.Background()
	tok, err := agentauth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateAgent(ctx, store.Agent{ID: "ag_sec", Name: "Sasha Security", Role: domain.RoleSecurity}, agentauth.Hash(tok)); err != nil {
		t.Fatalf("create a security agent (migration 0013): %v", err)
	}
	e.tokens["ag_sec"] = tok
	policy := store.DefaultPINPolicy()
	var locked store.PINOutcome
	for range policy.MaxFailures {
		if locked, err = e.st.CheckPIN(ctx, "C-1042", "000000", time.Now(), policy, pinhash.Verify); err != nil {
			t.Fatal(err)
		}
	}
	if !locked.JustLocked {
		t.Fatalf("customer not locked after %d wrong PINs: %+v", policy.MaxFailures, locked)
	}
	isLocked := func() bool {
		t.Helper()
		st, err := e.st.CustomerStanding(ctx, "C-1042", time.Now(), policy)
		if err != nil {
			t.Fatal(err)
		}
		return st.LockedUntil != nil
	}
	unlockAlerts := func() int {
		t.Helper()
		var n int
		if err := e.db.QueryRow(`SELECT count(*) FROM security_alerts WHERE kind = $1`, store.AlertCustomerUnlocked).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const reason = `{"reason":"customer called from the number on file and passed the callback check"}`

	for _, tc := range []struct {
		name, path, auth, body string
		status                 int
		code                   string
		refusedBy              string // the audited refusal's actor, if any
	}{
		{"agent", "/api/v1/customers/C-1042/unlock", "Bearer " + e.tokens["ag_req"], reason, 403, "forbidden", "agent:ag_req"},
		{"senior", "/api/v1/customers/C-1042/unlock", "Bearer " + e.tokens["ag_senior"], reason, 403, "forbidden", "agent:ag_senior"},
		{"admin token", "/api/v1/customers/C-1042/unlock", "Bearer " + adminToken, reason, 401, "unauthenticated", ""},
		{"disabled agent", "/api/v1/customers/C-1042/unlock", "Bearer " + e.tokens["ag_off"], reason, 401, "unauthenticated", ""},
		{"no reason", "/api/v1/customers/C-1042/unlock", "Bearer " + tok, `{"reason":"  "}`, 400, "invalid_input", ""},
		{"bidi in the reason", "/api/v1/customers/C-1042/unlock", "Bearer " + tok, `{"reason":"verified \u202eenohp yb"}`, 400, "invalid_input", ""},
		{"unknown field", "/api/v1/customers/C-1042/unlock", "Bearer " + tok, `{"reason":"ok then","until":"now"}`, 400, "invalid_input", ""},
		{"unknown customer", "/api/v1/customers/C-9999/unlock", "Bearer " + tok, reason, 404, "unknown_customer", ""},
		{"not a customer id", "/api/v1/customers/C%201042/unlock", "Bearer " + tok, reason, 404, "unknown_customer", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.auditEvents(store.EventUnlockRefused))
			res := e.call("POST", tc.path, tc.auth, "application/json", tc.body)
			if res.status != tc.status || res.problem(t).Code != tc.code {
				t.Fatalf("%d %s, want %d %s", res.status, res.body, tc.status, tc.code)
			}
			if !isLocked() || unlockAlerts() != 0 || len(e.auditEvents(store.EventCustomerUnlocked)) != 0 {
				t.Fatal("a refused unlock changed something")
			}
			refusals := e.auditEvents(store.EventUnlockRefused)
			switch {
			case tc.refusedBy == "" && len(refusals) != before:
				t.Errorf("refusal audited: %+v", refusals[before:])
			case tc.refusedBy != "" && (len(refusals) != before+1 || refusals[before]["_actor"] != tc.refusedBy || refusals[before]["customer"] != "C-1042"):
				t.Errorf("refusal events %+v, want one by %s about C-1042", refusals[before:], tc.refusedBy)
			}
		})
	}

	res := e.as("ag_sec", "POST", "/api/v1/customers/C-1042/unlock", reason)
	if res.status != 200 {
		t.Fatalf("security unlock: %d %s", res.status, res.body)
	}
	got := mustDecode[UnlockResult](t, res)
	if got.Customer.Lock.Locked || got.Customer.Lock.RecentFailures != 0 || got.ClearedFailures != policy.MaxFailures ||
		!got.WasLockedUntil.Equal(locked.LockedUntil.UTC().Truncate(time.Microsecond)) {
		t.Errorf("unlock answer %+v, want unlocked, %d cleared, was locked until %v", got, policy.MaxFailures, locked.LockedUntil)
	}
	if isLocked() {
		t.Fatal("still locked after the unlock")
	}
	events := e.auditEvents(store.EventCustomerUnlocked)
	if len(events) != 1 || events[0]["_actor"] != "agent:ag_sec" || events[0]["customer"] != "C-1042" || events[0]["role"] != "security" ||
		events[0]["reason"] != "customer called from the number on file and passed the callback check" {
		t.Errorf("customer.unlocked events %+v", events)
	}
	alerts, err := e.st.ClaimAlerts(ctx, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var text string
	for _, a := range alerts {
		if a.Kind == store.AlertCustomerUnlocked {
			text = alertrelay.Text(a)
		}
	}
	if want := "Customer C-1042 was unlocked by ag_sec (security role)"; len(text) < len(want) || text[:len(want)] != want {
		t.Errorf("security alert %q, want it to start %q", text, want)
	}

	// The failures counted before no longer count: one more wrong PIN
	// does not lock again, and the right PIN passes.
	if out, err := e.st.CheckPIN(ctx, "C-1042", "000000", time.Now(), policy, pinhash.Verify); err != nil || out.Locked || out.Failures != 1 {
		t.Errorf("wrong PIN after the unlock: %+v %v, want 1 failure and no lock", out, err)
	}
	if out, err := e.st.CheckPIN(ctx, "C-1042", testPIN, time.Now(), policy, pinhash.Verify); err != nil || !out.Verified {
		t.Errorf("right PIN after the unlock: %+v %v", out, err)
	}

	// Unlocking again: nothing to lift, nothing recorded.
	res = e.as("ag_sec", "POST", "/api/v1/customers/C-1042/unlock", reason)
	if res.status != 409 || res.problem(t).Code != codeNotLocked {
		t.Errorf("second unlock: %d %s, want 409 %s", res.status, res.body, codeNotLocked)
	}
	if n := len(e.auditEvents(store.EventCustomerUnlocked)); n != 1 || unlockAlerts() != 1 {
		t.Errorf("after the second unlock: %d unlock events, %d alerts; want 1 and 1", n, unlockAlerts())
	}
}
