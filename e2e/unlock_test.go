package e2e

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/testpg"
)

// TestSecurityUnlocksALockedCustomer: wrong PINs lock the customer; an
// agent cannot unlock them (403, audited), an agent with the security role
// can, and the security channel hears of it through the worker's relay; a
// right PIN then opens a request again.
func TestSecurityUnlocksALockedCustomer(t *testing.T) {
	s := startStack(t, stackOptions{})
	alice, _ := seed(t, s)
	var sec agentToken
	if code, raw := s.call("POST", "/admin/v1/agents", s.adminToken, map[string]any{
		"id": "ag_sasha", "name": "Sasha Security", "email": "sasha@vigil.example", "team": "Security", "role": "security",
	}, &sec); code != 201 {
		t.Fatalf("create a security agent: %d %s", code, raw)
	}
	for i := range 5 {
		var r request
		if code, raw := s.call("POST", "/api/v1/requests", alice, map[string]any{
			"action": "disable_2fa", "customer_id": customerID, "reason": "caller insists they are the customer", "pin": "000000",
		}, &r); code >= 500 || (r.Status != "pin_rejected" && r.Status != "locked") {
			t.Fatalf("wrong PIN %d: %d %s", i+1, code, raw)
		}
	}
	var locked struct {
		Lock struct {
			Locked bool `json:"locked"`
		} `json:"lock"`
	}
	if code, raw := s.call("GET", "/api/v1/customers/"+customerID, alice, nil, &locked); code != 200 || !locked.Lock.Locked {
		t.Fatalf("customer after five wrong PINs: %d %s, want locked", code, raw)
	}

	reason := map[string]any{"reason": "customer passed the callback check"}
	if code, raw := s.call("POST", "/api/v1/customers/"+customerID+"/unlock", alice, reason, nil); code != 403 || !strings.Contains(string(raw), "forbidden") {
		t.Fatalf("unlock by an agent: %d %s, want 403 forbidden", code, raw)
	}
	var out struct {
		Customer struct {
			Lock struct {
				Locked bool `json:"locked"`
			} `json:"lock"`
		} `json:"customer"`
		ClearedFailures int `json:"cleared_failures"`
	}
	if code, raw := s.call("POST", "/api/v1/customers/"+customerID+"/unlock", sec.Token, reason, &out); code != 200 || out.Customer.Lock.Locked || out.ClearedFailures != 5 {
		t.Fatalf("unlock by security: %d %s", code, raw)
	}
	eventually(t, 30*time.Second, "the unlock in the security channel", func() (bool, string) {
		msgs, _ := s.slackMessages(t)
		var seen []string
		for _, m := range msgs {
			if m.Channel == "C0VIGILSECURITY" {
				if strings.Contains(m.Text, "Customer "+customerID+" was unlocked by ag_sasha") && strings.Contains(m.Text, "customer passed the callback check") {
					return true, ""
				}
				seen = append(seen, m.Text)
			}
		}
		return false, strings.Join(seen, " | ")
	})
	r := s.open(t, alice, map[string]any{
		"action": "disable_2fa", "customer_id": customerID, "reason": "customer lost their phone", "pin": customerPIN,
	})
	if r.Status == "locked" || r.Status == "pin_rejected" {
		t.Fatalf("right PIN after the unlock: %s", r.Status)
	}
	var trail struct {
		Events []struct {
			Event string `json:"event"`
			Actor string `json:"actor"`
		} `json:"events"`
	}
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testpg.AwaitAuditExport(t, db) // the export shows events once older transactions ended
	if code, raw := s.call("GET", "/api/v1/audit?event=customer.*&customer="+customerID, sec.Token, nil, &trail); code != 200 {
		t.Fatalf("security exports the trail: %d %s", code, raw)
	}
	var got []string
	for _, e := range trail.Events {
		if e.Event == "customer.unlocked" || e.Event == "customer.unlock_refused" {
			got = append(got, e.Event+" "+e.Actor)
		}
	}
	if strings.Join(got, ",") != "customer.unlock_refused agent:ag_alice,customer.unlocked agent:ag_sasha" {
		t.Errorf("unlock events in the trail: %v", got)
	}
}
