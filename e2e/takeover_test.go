package e2e

import (
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/panelstandin"
)

// TestMailboxOwnerWithThePIN replays the founding incident on real
// processes, as the attacker would: they own the customer's mailbox, reset
// the account's password through it and read the support PIN on the
// account page (the panel records both), then ask an agent, with the
// right PIN, for the credentials "to the email on file". The PIN alone no
// longer opens the request; the customer's authenticator does; and
// disabling the 2FA on such an account is refused and told to security.
func TestMailboxOwnerWithThePIN(t *testing.T) {
	s := startStack(t, stackOptions{})
	aliceToken, _ := seed(t, s)
	log := &transcript{}
	alice := newCLIUser(t, log)
	alice.expect(t, 0, aliceToken+"\n", nil, "login", "--url", s.webURL, "--token-stdin")
	resend := []string{"resend-credentials", "--customer", customerID, "--server", "srv-1",
		"--reason", "customer asks for the credentials to the email on file", "--pin-stdin"}

	// Before the takeover the PIN is enough.
	res := alice.expect(t, 0, customerPIN+"\n", nil, append(resend, "--json")...)
	quiet := decodeRequest(t, "open on a quiet account", res.stdout)
	if hasEvent(auditEvents(t, s, quiet.ID), "gate.risk.assessed") {
		t.Fatalf("a quiet account was assessed as risky:\n%s", strings.Join(auditEvents(t, s, quiet.ID), "\n"))
	}
	alice.expect(t, 0, "", nil, "withdraw", quiet.ID, "--reason", "opened to compare")

	s.plantAccountEvent(t, `{"customer":"`+customerID+`","kind":"password_reset","channel":"email"}`)
	s.plantAccountEvent(t, `{"customer":"`+customerID+`","kind":"pin_viewed"}`)

	// The right PIN alone: Vigil says why, asks for the code; the
	// attacker has none, so nothing is sent a second time and nothing opens.
	res = alice.expect(t, 2, customerPIN+"\n", nil, resend...)
	mustContain(t, "PIN alone after a takeover", res.stderr, "password reset (email)", "pin viewed",
		"code from their authenticator app", "no code entered; nothing was sent")
	if n := count(t, s, `SELECT count(*) FROM requests WHERE customer_id = $1 AND id <> $2`, customerID, quiet.ID); n != 0 {
		t.Fatalf("%d requests opened without the code", n)
	}

	// A guessed code counts as a wrong PIN.
	s.enrollTOTP(t, customerID, totpSecret)
	res = alice.expect(t, 3, customerPIN+"\n000000\n", nil, resend...)
	mustContain(t, "a wrong code", res.stdout, "Wrong PIN")
	if m := openedLine.FindStringSubmatch(res.stdout); m == nil || !hasEvent(auditEvents(t, s, m[1]), "gate.factor.rejected") {
		t.Fatalf("a wrong code left no gate.factor.rejected:\n%s", res)
	}

	// The customer reads out the code from their phone: it opens, and the
	// trail says why the code was needed.
	code, err := panelstandin.TOTPCode(totpSecret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res = alice.expect(t, 0, customerPIN+"\n"+code+"\n", nil, append(resend, "--json")...)
	r := decodeRequest(t, "open with the code", res.stdout)
	events := auditEvents(t, s, r.ID)
	for _, want := range []string{"gate.pin.verified", "gate.risk.assessed", "gate.factor.verified"} {
		if !hasEvent(events, want) {
			t.Fatalf("no %s in the trail:\n%s", want, strings.Join(events, "\n"))
		}
	}
	if strings.Contains(log.all(), code) || strings.Contains(strings.Join(events, "\n"), code) {
		t.Fatal("the authenticator code was printed or audited")
	}
	// The senior sees it: the card's first line says the account is at
	// risk, names the events, and what was verified.
	eventually(t, 30*time.Second, "the approval card of "+r.ID+" showing the risk", func() (bool, string) {
		msgs, _ := s.slackMessages(t)
		for _, m := range msgs {
			b := string(m.Blocks)
			if strings.Contains(b, r.ID) && strings.Contains(b, "⚠️ Account at risk · ") && strings.Contains(b, "password reset (email)") &&
				strings.Contains(b, "the code from the customer's authenticator app") {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d messages", len(msgs))
	})

	// Disabling the 2FA cannot be proved with the 2FA: refused, audited,
	// told to security.
	res = alice.expect(t, 3, customerPIN+"\n", nil, "disable-2fa", "--customer", customerID,
		"--reason", "customer says they lost their phone", "--pin-stdin")
	mustContain(t, "disable-2fa after a takeover", res.stderr, "cannot be verified with it", "Security has been told")
	if n := count(t, s, `SELECT count(*) FROM audit_events WHERE event = 'risk.refused' AND details->>'action' = 'disable_2fa'`); n != 1 {
		t.Fatalf("%d risk.refused events for disable_2fa, want 1", n)
	}
	eventually(t, 30*time.Second, "the security channel hears of the refusal", func() (bool, string) {
		msgs, _ := s.slackMessages(t)
		for _, m := range msgs {
			if m.Channel == "C0VIGILSECURITY" && strings.Contains(m.Text, "Vigil refused to open disable_2fa for customer "+customerID) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d messages", len(msgs))
	})
}

const totpSecret = "JBSWY3DPEHPK3PXPJBSWY3DP"

// count runs a count(*) query against the stack's database.
func count(t *testing.T, s *stack, query string, args ...any) int {
	t.Helper()
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// plantAccountEvent records a security event on a customer's account in the
// stand-in panel, as the real panel would after a reset or a login.
func (s *stack) plantAccountEvent(t *testing.T, body string) {
	t.Helper()
	s.standinPost(t, "/_standin/security-events", body)
}

// enrollTOTP gives a customer an authenticator in the stand-in panel.
func (s *stack) enrollTOTP(t *testing.T, customer, secret string) {
	t.Helper()
	s.standinPost(t, "/_standin/totp", `{"customer":"`+customer+`","secret":"`+secret+`"}`)
}

func (s *stack) standinPost(t *testing.T, path, body string) {
	t.Helper()
	resp, err := http.Post(s.panelURL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("panel stand-in %s %s: %d", path, body, resp.StatusCode)
	}
}
