package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-oss/vigil/internal/agentauth"
)

// queuedDMToken returns the token carried by the one unsent direct message
// queued for Slack user to: what the alert relay would deliver to them.
func (e *env) queuedDMToken(to string) string {
	e.t.Helper()
	var tok string
	if err := e.db.QueryRow(`SELECT details->>'token' FROM security_alerts
		WHERE kind = 'agent_dm' AND details->>'slack_user_id' = $1 AND sent_at IS NULL AND details ? 'token'`, to).Scan(&tok); err != nil {
		e.t.Fatalf("the DM with the token for %s: %v", to, err)
	}
	return tok
}

// TestAdminCannotObtainAnotherAgentsToken: over HTTP on real Postgres, an
// admin who rotates another agent's token gets no token back (not in the
// answer, the audit trail, the announcement or the logs); the new token
// exists only in the direct message to that agent. An agent without a
// Slack id cannot have their token rotated by someone else; an agent (and
// an admin) may rotate their own and receive it.
func TestAdminCannotObtainAnotherAgentsToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	old := e.tokens["ag_req"]

	rot := e.admin("POST", "/admin/v1/agents/ag_req/token", "")
	if rot.status != http.StatusOK {
		t.Fatalf("rotate: %d %s", rot.status, rot.body)
	}
	var ans map[string]any
	if err := json.Unmarshal(rot.body, &ans); err != nil {
		t.Fatal(err)
	}
	if _, has := ans["token"]; has || ans["sent_to"] != "slack_dm" || strings.Contains(string(rot.body), "vgl_") {
		t.Fatalf("the admin's answer: %s", rot.body)
	}
	tok := e.queuedDMToken("U0RITA")
	if !agentauth.WellFormed(tok) || tok == old {
		t.Fatalf("queued token %q", tok)
	}
	if res := e.call("GET", "/api/v1/me", "Bearer "+old, "", ""); res.status != http.StatusUnauthorized {
		t.Fatalf("old token after rotation: %d", res.status)
	}
	if res := e.call("GET", "/api/v1/me", "Bearer "+tok, "", ""); res.status != http.StatusOK {
		t.Fatalf("the DM's token: %d %s", res.status, res.body)
	}
	ev := e.auditEvents("agent.token_rotated")
	if len(ev) != 1 || ev[0]["_actor"] != "admin:ag_root" || ev[0]["agent_id"] != "ag_req" || ev[0]["sent_to"] != "slack_dm" || ev[0]["agent_told"] != true {
		t.Fatalf("audit = %v", ev)
	}
	var leaks int
	if err := e.db.QueryRow(`SELECT (SELECT count(*) FROM audit_events WHERE details::text LIKE '%' || $1 || '%')
		+ (SELECT count(*) FROM security_alerts WHERE kind <> 'agent_dm' AND details::text LIKE '%' || $1 || '%')`, tok).Scan(&leaks); err != nil || leaks != 0 {
		t.Fatalf("the token is in %d audit events or channel announcements (%v)", leaks, err)
	}
	var announced int
	if err := e.db.QueryRow(`SELECT count(*) FROM security_alerts WHERE kind = 'admin_action'
		AND details->>'event' = 'agent.token_rotated' AND details->>'admin' = 'admin:ag_root'`).Scan(&announced); err != nil || announced != 1 {
		t.Fatalf("announced %d (%v)", announced, err)
	}
	if strings.Contains(e.logs.String(), tok) {
		t.Fatal("the new token is in the logs")
	}

	// ag_senior has no Slack id: refused, nothing changes, nothing audited.
	senior := e.tokens["ag_senior"]
	res := e.admin("POST", "/admin/v1/agents/ag_senior/token", "")
	if res.status != http.StatusConflict || res.problem(t).Code != "no_slack_id" || strings.Contains(string(res.body), "vgl_") {
		t.Fatalf("rotate an agent without a Slack id: %d %s", res.status, res.body)
	}
	if res := e.call("GET", "/api/v1/me", "Bearer "+senior, "", ""); res.status != http.StatusOK {
		t.Fatalf("the refused rotation changed the senior's token: %d", res.status)
	}
	if n := len(e.auditEvents("agent.token_rotated")); n != 1 {
		t.Fatalf("%d rotation events after a refusal, want 1", n)
	}

	// The senior rotates their own and receives it.
	own := e.call("POST", "/api/v1/me/token", "Bearer "+senior, "", "")
	var issued AgentWithToken
	if own.status != http.StatusOK || json.Unmarshal(own.body, &issued) != nil || !agentauth.WellFormed(issued.Token) {
		t.Fatalf("own rotation: %d %s", own.status, own.body)
	}
	if res := e.call("GET", "/api/v1/me", "Bearer "+senior, "", ""); res.status != http.StatusUnauthorized {
		t.Fatalf("the senior's old token after their own rotation: %d", res.status)
	}
	if res := e.call("GET", "/api/v1/me", "Bearer "+issued.Token, "", ""); res.status != http.StatusOK {
		t.Fatalf("the senior's new token: %d", res.status)
	}
	// The admin rotates their own through the admin API and receives it.
	adm := e.admin("POST", "/admin/v1/agents/ag_root/token", "")
	var admIssued AgentWithToken
	if adm.status != http.StatusOK || json.Unmarshal(adm.body, &admIssued) != nil || !agentauth.WellFormed(admIssued.Token) {
		t.Fatalf("admin's own rotation: %d %s", adm.status, adm.body)
	}
	ev = e.auditEvents("agent.token_rotated")
	if len(ev) != 3 || ev[1]["_actor"] != "agent:ag_senior" || ev[1]["own"] != true || ev[2]["_actor"] != "admin:ag_root" || ev[2]["own"] != true {
		t.Fatalf("own rotations audit = %v", ev)
	}
	var dms int
	if err := e.db.QueryRow(`SELECT count(*) FROM security_alerts WHERE kind = 'agent_dm'`).Scan(&dms); err != nil || dms != 1 {
		t.Fatalf("%d DMs (%v), want only the one to ag_req", dms, err)
	}
}
