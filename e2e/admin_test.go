package e2e

import (
	"database/sql"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAdminTakeoverIsSeen: on real processes, an admin who rotates an
// agent's token and acts as that agent is seen. The rotation is audited
// with the admin's own id and posted to the security channel naming them,
// and the agent gets a direct message in Slack saying who issued a new
// token for their account; their old token stops working. What the admin
// then does as the agent is the agent's trail, right after that notice.
func TestAdminTakeoverIsSeen(t *testing.T) {
	s := startStack(t, stackOptions{})
	alice, _ := seed(t, s)
	// The public listener, beside the cancel pages, has no admin API.
	req, err := http.NewRequest("GET", s.webURL+"/admin/v1/agents", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Fatalf("the admin API on the public listener: %d, want 404", res.StatusCode)
	}
	var rotated agentToken
	if code, body := s.call("POST", "/admin/v1/agents/ag_alice/token", s.adminToken, nil, &rotated); code != 200 {
		t.Fatalf("rotate alice's token: %d %s", code, body)
	}
	if code, body := s.call("GET", "/api/v1/me", alice, nil, nil); code != 401 {
		t.Fatalf("alice's old token after the rotation: %d %s, want 401", code, body)
	}
	r := s.open(t, rotated.Token, map[string]any{
		"action": "resend_credentials", "customer_id": customerID, "server_id": "srv-1",
		"reason": "customer asked in live chat", "pin": customerPIN,
	})

	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var actor, details string
	var at time.Time
	if err := db.QueryRow(`SELECT actor, details::text, at FROM audit_events WHERE event = 'agent.token_rotated'`).Scan(&actor, &details, &at); err != nil {
		t.Fatalf("the rotation's audit event: %v", err)
	}
	if actor != "admin:"+stackAdmin || !strings.Contains(details, `"agent_id": "ag_alice"`) || !strings.Contains(details, `"agent_told": true`) {
		t.Fatalf("rotation audited as %s %s, want the admin's id and the agent told", actor, details)
	}
	if ev := auditEvents(t, s, r.ID); !hasEvent(ev, "request.opened by agent:ag_alice") {
		t.Fatalf("the request opened with the rotated token: %v", ev)
	}
	if strings.Contains(details, rotated.Token) {
		t.Fatal("the new token is in the audit trail")
	}

	var announced, told bool
	eventually(t, 30*time.Second, "the rotation in the security channel and alice's DM", func() (bool, string) {
		msgs, _ := s.slackMessages(t)
		for _, m := range msgs {
			if strings.Contains(m.Text, rotated.Token) {
				t.Fatalf("the new token reached Slack: %+v", m)
			}
			switch {
			case m.Channel == "C0VIGILSECURITY" && strings.Contains(m.Text, "Admin action by admin:"+stackAdmin+": agent.token_rotated (agent_id=ag_alice"):
				announced = true
			case m.Channel == "D0ALICE" && strings.Contains(m.Text, "admin:"+stackAdmin+" issued a new personal token for your Vigil account ag_alice"):
				told = true
			}
		}
		return announced && told, "security channel posted: " + boolWord(announced) + ", alice told: " + boolWord(told)
	})
}

func boolWord(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
