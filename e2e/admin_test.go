package e2e

import (
	"database/sql"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAdminCannotTakeOverAToken: on real processes, an admin who rotates
// an agent's token does not receive it: the answer carries none, and the
// new token reaches only the agent's Slack direct message, which says who
// issued it. The rotation is audited with the admin's own id and posted to
// the security channel naming them, without the token; the agent's old
// token stops working and the one from their DM works.
func TestAdminCannotTakeOverAToken(t *testing.T) {
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
	var rotated map[string]any
	code, body := s.call("POST", "/admin/v1/agents/ag_alice/token", s.adminToken, nil, &rotated)
	if code != 200 {
		t.Fatalf("rotate alice's token: %d %s", code, body)
	}
	if _, has := rotated["token"]; has || rotated["sent_to"] != "slack_dm" || tokenPattern.MatchString(string(body)) {
		t.Fatalf("the admin's answer to the rotation: %s", body)
	}
	if code, body := s.call("GET", "/api/v1/me", alice, nil, nil); code != 401 {
		t.Fatalf("alice's old token after the rotation: %d %s, want 401", code, body)
	}

	var announced bool
	var newToken string
	eventually(t, 30*time.Second, "the rotation in the security channel and alice's DM", func() (bool, string) {
		msgs, _ := s.slackMessages(t)
		for _, m := range msgs {
			// Ids with two underscores are set as inline code, so that
			// Slack does not draw them in italics: read them without.
			text := strings.ReplaceAll(m.Text, "`", "")
			switch {
			case m.Channel == "C0VIGILSECURITY" && strings.Contains(text, "Admin action by admin:"+stackAdmin+": agent.token_rotated (agent_id=ag_alice"):
				if tokenPattern.MatchString(m.Text) {
					t.Fatalf("the new token reached the security channel: %+v", m)
				}
				announced = true
			case m.Channel == "D0ALICE" && strings.Contains(text, "admin:"+stackAdmin+" issued a new personal token for your Vigil account ag_alice"):
				newToken = tokenPattern.FindString(m.Text)
			case tokenPattern.MatchString(m.Text):
				t.Fatalf("a token reached someone other than alice: %+v", m)
			}
		}
		return announced && newToken != "", "security channel posted: " + boolWord(announced) + ", alice's token: " + boolWord(newToken != "")
	})
	// Alice, holding her DM, works with the new token.
	r := s.open(t, newToken, map[string]any{
		"action": "resend_credentials", "customer_id": customerID, "server_id": "srv-1",
		"reason": "customer asked in live chat", "pin": customerPIN,
	})
	if ev := auditEvents(t, s, r.ID); !hasEvent(ev, "request.opened by agent:ag_alice") {
		t.Fatalf("the request opened with alice's new token: %v", ev)
	}

	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var actor, details string
	if err := db.QueryRow(`SELECT actor, details::text FROM audit_events WHERE event = 'agent.token_rotated'`).Scan(&actor, &details); err != nil {
		t.Fatalf("the rotation's audit event: %v", err)
	}
	if actor != "admin:"+stackAdmin || !strings.Contains(details, `"agent_id": "ag_alice"`) || !strings.Contains(details, `"sent_to": "slack_dm"`) {
		t.Fatalf("rotation audited as %s %s, want the admin's id and the DM", actor, details)
	}
	// The relay erases the token from its queue once it is sent (just after
	// the DM is posted, so this may take a moment).
	eventually(t, 30*time.Second, "the token gone from the audit trail and the alert queue", func() (bool, string) {
		var kept int
		if err := db.QueryRow(`SELECT (SELECT count(*) FROM audit_events WHERE details::text LIKE '%' || $1 || '%')
			+ (SELECT count(*) FROM security_alerts WHERE details::text LIKE '%' || $1 || '%')`, newToken).Scan(&kept); err != nil {
			t.Fatal(err)
		}
		return kept == 0, "rows holding the token: " + strconv.Itoa(kept)
	})
}

// tokenPattern matches a personal token anywhere in a text.
var tokenPattern = regexp.MustCompile(`vgl_[a-z2-7]{32}`)

func boolWord(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
