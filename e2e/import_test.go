package e2e

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/pinhash"
)

// auditEvents returns a request's audit events as "event by actor", in order.
func auditEvents(t *testing.T, s *stack, requestID string) []string {
	t.Helper()
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT event, actor, details::text FROM audit_events WHERE request_id = $1 ORDER BY id`, requestID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var ev, actor, details string
		if err := rows.Scan(&ev, &actor, &details); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev+" by "+actor+" "+details)
	}
	return out
}

func hasEvent(events []string, prefix string, with ...string) bool {
	for _, e := range events {
		if !strings.HasPrefix(e, prefix) {
			continue
		}
		ok := true
		for _, w := range with {
			ok = ok && strings.Contains(e, w)
		}
		if ok {
			return true
		}
	}
	return false
}

// TestReimportDuringCooling: an admin re-imports the customer while a
// request for the server's credentials is cooling, making their own
// address the primary (and adding a backdated contact), and tries to take
// the other server for a customer of their own. On real processes:
//   - the credentials are not sent to the new primary: the action does not
//     run at all (the request fails, no panel call), and the customer's
//     addresses, which got the notice, get the outcome;
//   - a request opened after the import is announced to the customer's
//     addresses only, and the old primary's link cancels it;
//   - the server with an open request stays where it is (409);
//   - every step is in the audit trail.
func TestReimportDuringCooling(t *testing.T) {
	s := startStack(t, stackOptions{extraEnv: []string{"VIGIL_COOLING_RESEND_CREDENTIALS=25s"}})
	alice, _ := seed(t, s)
	hash, err := pinhash.Hash(customerPIN, pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-90 * 24 * time.Hour).UTC().Format(time.RFC3339)

	r1 := s.open(t, alice, map[string]any{"action": "resend_credentials", "customer_id": customerID, "server_id": "srv-1",
		"reason": "customer asked in live chat", "pin": customerPIN})
	s.click(t, r1.ID, "approve", "U0BOB")
	s.waitStatus(t, alice, r1.ID, "cooling", time.Minute)
	waitNotices(t, s, r1.ID) // to dana@example.com and ops@whitfield.example

	// The re-import, during r1's cooling period.
	if code, body := s.call("PUT", "/admin/v1/customers/"+customerID, s.adminToken, map[string]any{
		"name": "Dana Whitfield", "primary_email": "inbox@attacker.example", "pin_hash": hash,
		"contacts": []map[string]any{{"email": "backup@attacker.example", "added_at": long, "verified_at": long}},
		"servers":  []string{"srv-1", "srv-2"},
	}, nil); code != 200 {
		t.Fatalf("re-import: %d %s", code, body)
	}
	// Taking srv-1 for another customer while r1 is open is refused.
	if code, body := s.call("PUT", "/admin/v1/customers/C-6666", s.adminToken, map[string]any{
		"name": "Mallory", "primary_email": "m@attacker.example", "pin_hash": hash, "servers": []string{"srv-1"},
	}, nil); code != 409 || !strings.Contains(string(body), "server_has_open_request") || !strings.Contains(string(body), r1.ID) {
		t.Fatalf("import moving srv-1 during r1: %d %s, want 409 server_has_open_request naming %s", code, body, r1.ID)
	}

	// r1 runs out its cooling period and is refused at execution.
	done := s.waitStatus(t, alice, r1.ID, "failed", 2*time.Minute)
	if callsFor(s.panelCalls(t), r1.ID) != 0 {
		t.Fatalf("the panel was called for r1: %+v", s.panelCalls(t))
	}
	events := auditEvents(t, s, r1.ID)
	if !hasEvent(events, "customer.imported_during_request", "inbox@attacker.example", "dana@example.com") ||
		!hasEvent(events, "execution.refused by system", "primary_not_notified") || hasEvent(events, "credentials.mailed") {
		t.Fatalf("r1 (%s) audit trail:\n%s", done.Status, strings.Join(events, "\n"))
	}

	// r2, opened after the import, is announced to the customer's own
	// addresses, the old primary included; its link cancels it.
	r2 := s.open(t, alice, map[string]any{"action": "resend_credentials", "customer_id": customerID, "server_id": "srv-2",
		"reason": "customer asked again", "pin": customerPIN})
	s.click(t, r2.ID, "approve", "U0BOB")
	s.waitStatus(t, alice, r2.ID, "cooling", time.Minute)
	var link string
	for _, n := range waitNotices(t, s, r2.ID) {
		if len(n.envelopeTo) == 1 && n.envelopeTo[0] == "dana@example.com" {
			link = n.textLink
		}
	}
	if link == "" {
		t.Fatal("the old primary got no notice for r2")
	}
	cancelFromBrowser(t, s, link)
	s.waitStatus(t, alice, r2.ID, "cancelled", 30*time.Second)
	if !hasEvent(auditEvents(t, s, r2.ID), "request.cancelled by customer:"+customerID) {
		t.Fatalf("r2 audit trail:\n%s", strings.Join(auditEvents(t, s, r2.ID), "\n"))
	}

	// Nothing ever went to the importer's addresses, and no credentials
	// were mailed at all; the customer heard how r1 ended.
	var outcomes int
	for _, m := range s.mails(t) {
		for _, to := range m.To {
			if strings.Contains(to, "attacker") {
				t.Errorf("mail to the importer's address %s: %q", to, m.Subject)
			}
		}
		raw := string(s.rawMessage(t, m.ID))
		if strings.Contains(raw, "X-Vigil-Request: "+r1.ID) && strings.Contains(raw, "X-Vigil-Kind: outcome") {
			outcomes++
		}
	}
	if outcomes != 2 {
		t.Fatalf("%d outcome mails for r1, want 2 (the two notified addresses)", outcomes)
	}
	// By the header the mail package sets, not by the subject's words
	// (TestAuditExportRoundTrip finds a real one the same way).
	for _, m := range s.kindMails(t, "credentials") {
		t.Errorf("a credentials mail went out: %q to %v", m.Subject, m.To)
	}
}
