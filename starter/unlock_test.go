package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestCustomerUnlockCommand(t *testing.T) {
	doc := `{"customer":{"id":"C-7","name":"Sam","primary_email":"sam@example.com","primary_established":true,"contacts":[],"servers":["srv-7"],
		"established_after_seconds":604800,"lock":{"locked":false,"recent_failures":0,"max_failures":5,"window_seconds":900}},
		"was_locked_until":"2026-03-01T11:00:00Z","cleared_failures":5}`
	f := newFake(t, map[string]http.HandlerFunc{
		"POST /api/v1/customers/C-7/unlock": reply(200, doc),
		"POST /api/v1/customers/C-8/unlock": replyProblem(403, "forbidden", "only the security role may unlock a customer; the attempt was recorded"),
		"POST /api/v1/customers/C-9/unlock": replyProblem(409, "customer_not_locked", "customer C-9 is not locked; nothing was changed"),
	})
	env := agentEnv(t, f)
	r := run(t, env, "", "customer", "unlock", "C-7", "--reason", "  passed the callback check ")
	wantExit(t, r, 0)
	flat := strings.Join(strings.Fields(r.stdout), " ")
	for _, want := range []string{
		"Unlocked C-7: its lockout would have ended 2026-03-01 11:00:00 UTC; 5 wrong PINs no longer count. The security channel was told.",
		"PIN lockout not locked",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("unlock output lacks %q:\n%s", want, r.stdout)
		}
	}
	calls := f.only("POST", "/api/v1/customers/C-7/unlock")
	var body map[string]string
	if len(calls) != 1 || json.Unmarshal(calls[0].Body, &body) != nil || len(body) != 1 || body["reason"] != "passed the callback check" {
		t.Fatalf("unlock calls %+v, want one with the trimmed reason", calls)
	}
	wantExit(t, run(t, env, "", "customer", "unlock", "C-8", "--reason", "please"), 3, "only the security role may unlock a customer", "[forbidden]")
	wantExit(t, run(t, env, "", "customer", "unlock", "C-9", "--reason", "please"), 3, "is not locked", "[customer_not_locked]")

	before := len(f.recorded())
	wantExit(t, run(t, env, "", "customer", "unlock", "C-7"), 2, "--reason")
	wantExit(t, run(t, env, "", "customer", "unlock", "C-7", "--reason", "verified \u202eenohp yb"), 2, "--reason")
	wantExit(t, run(t, env, "", "customer", "unlock", "C/7", "--reason", "x"), 2, "customer id must be a single id")
	if n := len(f.recorded()); n != before {
		t.Errorf("%d calls for refused invocations", n-before)
	}
}
