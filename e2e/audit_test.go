package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/testpg"
)

// exportedEvent is one JSON line of `starter audit --json`.
type exportedEvent struct {
	ID        int64          `json:"id"`
	RequestID string         `json:"request_id"`
	At        time.Time      `json:"at"`
	Actor     string         `json:"actor"`
	Event     string         `json:"event"`
	Details   map[string]any `json:"details"`
}

func decodeLines(t *testing.T, what, out string) []exportedEvent {
	t.Helper()
	var events []exportedEvent
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var e exportedEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%s: line %d is not an event (%v): %s", what, i, err, line)
		}
		events = append(events, e)
	}
	return events
}

// sameEvents compares exported events with the rows Postgres holds: the same
// events, in the same order, with the same contents.
func sameEvents(t *testing.T, what string, got []exportedEvent, want []store.AuditEvent) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, Postgres holds %d", what, len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		wantDetails, _ := json.Marshal(w.Details)
		gotDetails, _ := json.Marshal(g.Details)
		if g.ID != w.ID || g.RequestID != w.RequestID || g.Actor != w.Actor || g.Event != w.Event || !g.At.Equal(w.At) || string(gotDetails) != string(wantDetails) {
			t.Errorf("%s: event %d = %+v, Postgres holds %+v", what, i, g, w)
		}
	}
}

// TestAuditExportRoundTrip runs one request to executed and another to a
// cancel by the customer on real processes, then reads the trail back
// through the CLI as each reader would: the requester's own trail, a
// senior's filtered export paged two events at a time, and the refusal of
// the export to an agent. Every event Postgres holds comes out once and in
// order, and no secret does: not the PIN or its hash, not a token, key or
// cancel link, not the mailed password.
func TestAuditExportRoundTrip(t *testing.T) {
	s := startStack(t, stackOptions{extraEnv: []string{
		"VIGIL_COOLING_RESEND_CREDENTIALS=3s",
		"VIGIL_COOLING_REINSTALL_VPS=30m",
	}})
	aliceToken, bobToken := seed(t, s)
	log := &transcript{}
	alice, bob := newCLIUser(t, log), newCLIUser(t, log)
	alice.expect(t, 0, aliceToken+"\n", nil, "login", "--url", s.webURL, "--token-stdin")
	bob.expect(t, 0, bobToken+"\n", nil, "login", "--url", s.webURL, "--token-stdin")

	r1 := s.open(t, aliceToken, map[string]any{"action": "resend_credentials", "customer_id": customerID, "server_id": "srv-1",
		"reason": "customer asked in live chat", "pin": customerPIN})
	s.click(t, r1.ID, "approve", "U0BOB")
	s.waitStatus(t, aliceToken, r1.ID, "executed", 2*time.Minute)
	r2 := s.open(t, aliceToken, map[string]any{"action": "reinstall_vps", "customer_id": customerID, "server_id": "srv-2",
		"reason": "customer says the server is compromised", "pin": customerPIN})
	s.click(t, r2.ID, "approve", "U0BOB")
	s.waitStatus(t, aliceToken, r2.ID, "cooling", time.Minute)
	var links []string
	eventually(t, 30*time.Second, "the reinstall's notice", func() (bool, string) {
		links = nil
		for _, m := range s.mails(t) {
			if strings.Contains(m.Subject, "srv-2") {
				links = append(links, cancelLink.FindAllString(m.Text, -1)...)
			}
		}
		return len(links) > 0, "no notice yet"
	})
	cancelFromBrowser(t, s, links[0])
	s.waitStatus(t, aliceToken, r2.ID, "cancelled", 30*time.Second)
	r3 := s.open(t, aliceToken, map[string]any{"action": "disable_2fa", "customer_id": customerID,
		"reason": "customer lost their phone", "pin": "000000"})
	s.waitStatus(t, aliceToken, r3.ID, "pin_rejected", 30*time.Second)

	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := store.New(db)
	ctx := context.Background()
	trails := map[string][]store.AuditEvent{}
	for _, id := range []string{r1.ID, r2.ID, r3.ID} {
		// The last events (the outcome mail, the message update) may land
		// after the status moved; wait for the trail to settle.
		var last int
		eventually(t, 30*time.Second, "the trail of "+id+" to settle", func() (bool, string) {
			tr, err := st.AuditTrail(ctx, id)
			if err != nil {
				return false, err.Error()
			}
			settled := len(tr) == last && last > 0
			last, trails[id] = len(tr), tr
			time.Sleep(time.Second)
			return settled, fmt.Sprint(len(tr), " events")
		})
	}
	var names []string
	for _, e := range trails[r1.ID] {
		names = append(names, e.Event)
	}
	for _, want := range []string{"request.opened", "gate.pin.verified", "gate.approval.passed", "notice.accepted", "execution.done", "credentials.mailed"} {
		if !slices.Contains(names, want) {
			t.Errorf("the executed request's trail %v lacks %s", names, want)
		}
	}
	if names[0] != "request.opened" {
		t.Errorf("the trail starts with %s", names[0])
	}

	// The requester reads their own request's trail, in order, as text and
	// as JSON lines; the text has one line per event.
	res := alice.expect(t, 0, "", nil, "audit", r1.ID, "--json")
	sameEvents(t, "alice's audit "+r1.ID, decodeLines(t, "audit --json", res.stdout), trails[r1.ID])
	res = alice.expect(t, 0, "", nil, "audit", r1.ID)
	mustContain(t, "audit (text)", res.stdout, "Audit trail of "+r1.ID, "TIME (UTC)", "agent:ag_alice", "request.opened", "gate.approval.passed")
	if n := strings.Count(res.stdout, "\n"); n != len(trails[r1.ID])+2 {
		t.Errorf("audit text has %d lines for %d events:\n%s", n, len(trails[r1.ID]), res.stdout)
	}

	// A senior exports the customer's trail, two events a call: every event
	// of each request, in order, and the customer's import.
	testpg.AwaitAuditExport(t, db)
	res = bob.expect(t, 0, "", nil, "audit", "--customer", customerID, "--page", "2", "--json")
	exported := decodeLines(t, "audit --customer --json", res.stdout)
	want, err := st.AuditExport(ctx, store.AuditFilter{CustomerID: customerID, Limit: store.MaxAuditPage})
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, "bob's export of "+customerID, exported, want)
	for _, id := range []string{r1.ID, r2.ID, r3.ID} {
		var of []exportedEvent
		for _, e := range exported {
			if e.RequestID == id {
				of = append(of, e)
			}
		}
		sameEvents(t, "the export's events of "+id, of, trails[id])
	}
	if !slices.ContainsFunc(exported, func(e exportedEvent) bool { return e.Event == "customer.imported" }) {
		t.Error("the customer's export lacks its import")
	}
	calls := strings.Count(s.logs("web"), "path=/api/v1/audit ")
	if calls < len(exported)/2 {
		t.Errorf("the export took %d calls for %d events in pages of 2", calls, len(exported))
	}

	// Filters: the customer's cancel alone, and the agent's own actions.
	res = bob.expect(t, 0, "", nil, "audit", "--customer", customerID, "--event", "request.*", "--json")
	for _, e := range decodeLines(t, "audit --event request.*", res.stdout) {
		if !strings.HasPrefix(e.Event, "request.") {
			t.Errorf("--event request.* exported %s", e.Event)
		}
	}
	res = bob.expect(t, 0, "", nil, "audit", "--agent", "ag_alice", "--since", "1h", "--json")
	byAlice := decodeLines(t, "audit --agent", res.stdout)
	if len(byAlice) < 3 {
		t.Errorf("alice's events: %d, want her three opens at least", len(byAlice))
	}
	for _, e := range byAlice {
		if e.Actor != "agent:ag_alice" && e.Details["agent_id"] != "ag_alice" && e.Details["agent"] != "ag_alice" {
			t.Errorf("--agent ag_alice exported %+v", e)
		}
	}

	// An agent may not export; a request they may not read does not exist.
	res = alice.expect(t, 3, "", nil, "audit", "--customer", customerID)
	mustContain(t, "alice exports", res.stderr, "[forbidden]", "only senior agents and the security role may export")
	res = alice.expect(t, 3, "", nil, "audit", "req_doesnotexist")
	mustContain(t, "unknown request", res.stderr, "no request with id req_doesnotexist [request_not_found]")

	// The customer as an agent sees it.
	res = alice.expect(t, 0, "", nil, "customer", "show", customerID)
	for _, want := range []string{"Dana Whitfield", "dana@example.com", "srv-1, srv-2", "not locked"} {
		mustContain(t, "customer show", res.stdout, want)
	}
	for _, line := range strings.Split(res.stdout, "\n") {
		if strings.Contains(line, "new@attacker.example") && !strings.Contains(line, "NOT established") {
			t.Errorf("the contact added an hour ago is shown as established: %s", line)
		}
		if strings.Contains(line, "ops@whitfield.example") && !strings.Contains(line, "established: gets notices") {
			t.Errorf("the old contact is not shown as established: %s", line)
		}
	}
	alice.expect(t, 0, "", nil, "customer", "show", customerID, "--json")

	// Nothing secret in anything the CLI printed.
	var hash, password string
	if err := db.QueryRow(`SELECT pin_hash FROM customers WHERE id = $1`, customerID).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	// Found by its X-Vigil-Kind header, as TestReimportDuringCooling looks
	// for credentials mails that must not exist: this one must.
	creds := s.kindMails(t, "credentials")
	if len(creds) != 1 {
		t.Fatalf("%d mails with X-Vigil-Kind: credentials, want the one of r1", len(creds))
	}
	if pw := regexp.MustCompile(`(?i)password:\s*(\S+)`).FindStringSubmatch(creds[0].Text); pw != nil {
		password = pw[1]
	}
	if password == "" {
		t.Fatal("no password in the credentials email: the password check would prove nothing")
	}
	secrets := map[string]string{"PIN hash": hash, "alice's token": aliceToken, "bob's token": bobToken, "server password": password}
	for _, kv := range s.env {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "VIGIL_CODEC_KEYS":
			_, v, _ = strings.Cut(v, ":")
			fallthrough
		case "VIGIL_TOKEN_KEY", "VIGIL_ADMIN_TOKEN", "VIGIL_PANEL_TOKEN", "VIGIL_PANEL_READ_TOKEN", "VIGIL_SLACK_BOT_TOKEN", "VIGIL_SLACK_SIGNING_SECRET":
			secrets[k] = v
		}
	}
	for _, l := range links {
		secrets["cancel token "+l] = l[strings.LastIndex(l, "/c/")+3:]
	}
	out := log.all()
	if !strings.Contains(out, r1.ID) {
		t.Fatal("the transcript is empty: the secrecy check would prove nothing")
	}
	for what, v := range secrets {
		if v == "" {
			t.Errorf("%s is empty: the check would prove nothing", what)
			continue
		}
		if strings.Contains(out, v) {
			t.Errorf("the CLI printed the %s", what)
		}
	}
	if pinAlone.MatchString(out) {
		t.Error("the CLI printed the PIN")
	}
}
