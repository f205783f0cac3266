package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/ratelimit"
)

// TestAdminNamedAdminsOnly: the admin API takes an admin's own
// credential; the bootstrap token does nothing but create the first admin.
func TestAdminNamedAdminsOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	tests := []struct {
		name, auth string
		want       int
		code       string
	}{
		{"no header", "", 401, "unauthenticated"},
		{"wrong token", "Bearer " + adminToken + "x", 401, "unauthenticated"},
		{"prefix of the token", "Bearer " + adminToken[:10], 401, "unauthenticated"},
		{"disabled agent's token", "Bearer " + e.tokens["ag_off"], 401, "unauthenticated"},
		{"a senior's token", "Bearer " + e.tokens["ag_senior"], 403, "forbidden"},
		{"an agent's token", "Bearer " + e.tokens["ag_req"], 403, "forbidden"},
		{"the bootstrap token for a senior", "Bearer " + adminToken, 403, "bootstrap_only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			audits := e.count("audit_events")
			res := e.call("POST", "/admin/v1/agents", tt.auth, "application/json", `{"id":"ag_new","name":"New","role":"senior"}`)
			if res.status != tt.want {
				t.Fatalf("status %d, want %d: %s", res.status, tt.want, res.body)
			}
			if p := res.problem(t); p.Code != tt.code {
				t.Fatalf("code %q, want %q", p.Code, tt.code)
			}
			if _, err := e.st.Agent(context.Background(), "ag_new"); err == nil {
				t.Fatal("agent created without an admin")
			}
			if n := e.count("audit_events"); n != audits {
				t.Fatalf("audit rows %d -> %d", audits, n)
			}
		})
	}
	// The bootstrap token reaches no other call, whatever it asks.
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/admin/v1/agents", ""},
		{"POST", "/admin/v1/agents/ag_req/token", ""},
		{"POST", "/admin/v1/agents/ag_req/disable", ""},
		{"PATCH", "/admin/v1/agents/ag_req", `{"role":"senior"}`},
		{"PUT", "/admin/v1/customers/C-1042", `{}`},
		{"POST", "/admin/v1/requests/req_x/break-glass", ""},
	} {
		ct := ""
		if c.body != "" {
			ct = "application/json"
		}
		res := e.call(c.method, c.path, "Bearer "+adminToken, ct, c.body)
		if res.status != http.StatusForbidden || res.problem(t).Code != "bootstrap_only" {
			t.Fatalf("bootstrap token on %s %s: %d %s", c.method, c.path, res.status, res.body)
		}
	}
	// With an enabled admin (ag_root), it creates no admin either.
	res := e.call("POST", "/admin/v1/agents", "Bearer "+adminToken, "application/json", `{"id":"ag_new","name":"New","role":"admin"}`)
	if res.status != http.StatusForbidden || res.problem(t).Code != "bootstrap_only" {
		t.Fatalf("bootstrap token with an admin present: %d %s", res.status, res.body)
	}
	if _, err := e.st.Agent(context.Background(), "ag_new"); err == nil {
		t.Fatal("the bootstrap token created a second admin")
	}
	if n := e.count("audit_events"); n != 0 {
		t.Fatalf("%d audit rows from refusals", n)
	}
}

// TestBootstrapFirstAdmin: on a fresh install the bootstrap token creates
// one admin, audited as the bootstrap and announced; that admin then works
// with their own token, and the bootstrap token is spent. Without a
// bootstrap token, nobody but an admin gets in.
func TestBootstrapFirstAdmin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	if err := e.st.DisableAgent(context.Background(), "ag_root", time.Time{}); err != nil {
		t.Fatal(err)
	}
	res := e.call("POST", "/admin/v1/agents", "Bearer "+adminToken, "application/json", `{"id":"ag_first","name":"First Admin","role":"admin"}`)
	if res.status != http.StatusCreated {
		t.Fatalf("bootstrap: %d %s", res.status, res.body)
	}
	var first AgentWithToken
	if err := json.Unmarshal(res.body, &first); err != nil {
		t.Fatal(err)
	}
	if ev := e.auditEvents("agent.created"); len(ev) != 1 || ev[0]["_actor"] != "bootstrap" || ev[0]["role"] != "admin" {
		t.Fatalf("bootstrap audit %v", ev)
	}
	var alerts int
	if err := e.db.QueryRow(`SELECT count(*) FROM security_alerts WHERE kind = 'admin_action' AND details->>'admin' = 'bootstrap'`).Scan(&alerts); err != nil || alerts != 1 {
		t.Fatalf("bootstrap alerts %d (%v), want 1", alerts, err)
	}
	// Spent: a second admin needs an admin.
	again := e.call("POST", "/admin/v1/agents", "Bearer "+adminToken, "application/json", `{"id":"ag_second","name":"Second","role":"admin"}`)
	if again.status != http.StatusForbidden || again.problem(t).Code != "bootstrap_only" {
		t.Fatalf("second bootstrap: %d %s", again.status, again.body)
	}
	list := e.call("GET", "/admin/v1/agents", "Bearer "+first.Token, "", "")
	if list.status != http.StatusOK || !strings.Contains(string(list.body), "ag_first") {
		t.Fatalf("the first admin's own token: %d %s", list.status, list.body)
	}

	off := newEnv(t, "", Options{})
	for _, auth := range []string{"", "Bearer ", "Bearer anything", "Bearer " + off.tokens["ag_senior"]} {
		res := off.call("GET", "/admin/v1/agents", auth, "", "")
		if res.status != http.StatusUnauthorized && res.status != http.StatusForbidden {
			t.Fatalf("GET /admin/v1/agents with %q: status %d", auth, res.status)
		}
	}
	if res := off.admin("GET", "/admin/v1/agents", ""); res.status != http.StatusOK {
		t.Fatalf("a named admin without a bootstrap token: %d %s", res.status, res.body)
	}
}

// TestAdminActionsNamedAndAnnounced: every admin action is audited with the
// admin's id and queued for the security channel in the same transaction;
// rotating another agent's token also queues a direct message to that agent.
func TestAdminActionsNamedAndAnnounced(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	calls := []struct{ method, path, body, event string }{
		{"POST", "/admin/v1/agents", `{"id":"ag_jo","name":"Jo","role":"senior","slack_user_id":"U0JO"}`, "agent.created"},
		{"PATCH", "/admin/v1/agents/ag_jo", `{"role":"agent"}`, "agent.role_changed"},
		{"POST", "/admin/v1/agents/ag_req/token", "", "agent.token_rotated"},
		{"POST", "/admin/v1/agents/ag_root/token", "", "agent.token_rotated"},
		{"POST", "/admin/v1/agents/ag_jo/disable", "", "agent.disabled"},
	}
	for _, c := range calls {
		if c.path == "/admin/v1/agents/ag_root/token" {
			// ag_root's own rotation: the call after uses the new token.
			res := e.admin(c.method, c.path, c.body)
			var issued AgentWithToken
			if res.status != http.StatusOK || json.Unmarshal(res.body, &issued) != nil {
				t.Fatalf("%s %s: %d %s", c.method, c.path, res.status, res.body)
			}
			e.tokens["ag_root"] = issued.Token
			continue
		}
		if res := e.admin(c.method, c.path, c.body); res.status >= 300 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, res.status, res.body)
		}
	}
	rows, err := e.db.Query(`SELECT actor, event FROM audit_events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int
	for rows.Next() {
		var actor, event string
		if err := rows.Scan(&actor, &event); err != nil {
			t.Fatal(err)
		}
		if actor != "admin:ag_root" || event != calls[n].event {
			t.Fatalf("audit %d: %s by %s, want %s by admin:ag_root", n, event, actor, calls[n].event)
		}
		n++
	}
	if n != len(calls) {
		t.Fatalf("%d audit events, want %d", n, len(calls))
	}
	var announced, dms int
	if err := e.db.QueryRow(`SELECT count(*) FILTER (WHERE kind = 'admin_action' AND details->>'admin' = 'admin:ag_root'),
		count(*) FILTER (WHERE kind = 'agent_dm') FROM security_alerts`).Scan(&announced, &dms); err != nil {
		t.Fatal(err)
	}
	if announced != len(calls) {
		t.Fatalf("%d admin actions announced, want %d", announced, len(calls))
	}
	// ag_req has a Slack id and was rotated by someone else: one DM. ag_root
	// rotated their own: none.
	var to string
	if err := e.db.QueryRow(`SELECT details->>'slack_user_id' FROM security_alerts WHERE kind = 'agent_dm'`).Scan(&to); err != nil || dms != 1 || to != "U0RITA" {
		t.Fatalf("DMs %d to %q (%v), want one to U0RITA", dms, to, err)
	}
}

// TestAdminListenerSeparate: the public handler never serves the admin API,
// and the admin handler serves nothing else.
func TestAdminListenerSeparate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	a := New(nil, e.st, adminToken, nil, Options{})
	pub := httptest.NewServer(a.Handler())
	t.Cleanup(pub.Close)
	adm := httptest.NewServer(a.AdminHandler())
	t.Cleanup(adm.Close)
	get := func(base, path string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+e.tokens["ag_root"])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var p Problem
		_ = json.NewDecoder(res.Body).Decode(&p)
		return res.StatusCode, p.Code
	}
	if code, pc := get(pub.URL, "/admin/v1/agents"); code != 404 || pc != "not_found" {
		t.Fatalf("the public handler on /admin: %d %s", code, pc)
	}
	if code, _ := get(adm.URL, "/admin/v1/agents"); code != 200 {
		t.Fatalf("the admin handler on /admin: %d", code)
	}
	for _, path := range []string{"/api/v1/me", "/api/v1/sign-in", "/c/x", "/"} {
		if code, pc := get(adm.URL, path); code != 404 || pc != "not_found" {
			t.Fatalf("the admin handler on %s: %d %s", path, code, pc)
		}
	}
}

// TestAdminFailuresThrottled: failed admin attempts from one address spend
// a budget; once it is spent, even the right credential is refused unjudged
// until it refills, and successes spend nothing.
func TestAdminFailuresThrottled(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := now
	e := newEnv(t, adminToken, Options{Now: func() time.Time { return clock }, AdminFailureLimit: ratelimit.Limit{PerMinute: 6, Burst: 3}})
	for range 5 {
		if res := e.admin("GET", "/admin/v1/agents", ""); res.status != 200 {
			t.Fatalf("a named admin: %d %s", res.status, res.body)
		}
	}
	bad := []string{"Bearer " + adminToken + "x", "Bearer vgl_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "Bearer " + e.tokens["ag_senior"]}
	for _, auth := range bad {
		if res := e.call("GET", "/admin/v1/agents", auth, "", ""); res.status != 401 && res.status != 403 {
			t.Fatalf("a wrong credential: %d %s", res.status, res.body)
		}
	}
	res := e.admin("GET", "/admin/v1/agents", "")
	if res.status != http.StatusTooManyRequests || res.problem(t).Code != "rate_limited" || res.header.Get("Retry-After") != "10" {
		t.Fatalf("the right credential after the budget is spent: %d %s (Retry-After %q)", res.status, res.body, res.header.Get("Retry-After"))
	}
	if res := e.call("POST", "/admin/v1/agents", "Bearer "+adminToken, "application/json", `{"id":"ag_z","name":"Z","role":"admin"}`); res.status != http.StatusTooManyRequests {
		t.Fatalf("the bootstrap token while throttled: %d %s", res.status, res.body)
	}
	clock = clock.Add(10 * time.Second)
	if res := e.admin("GET", "/admin/v1/agents", ""); res.status != 200 {
		t.Fatalf("after the refill: %d %s", res.status, res.body)
	}
	// The agent API has its own limits; the admin throttle does not touch it.
	if res := e.as("ag_req", "GET", "/api/v1/me", ""); res.status != 200 {
		t.Fatalf("the agent API: %d", res.status)
	}
}
