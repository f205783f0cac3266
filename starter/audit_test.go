package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/vigil-oss/vigil/internal/domain"
)

// trailEvents is a request's trail as the API sends it, with text a person
// typed that the terminal must not obey.
var trailEvents = []map[string]any{
	{"id": 11, "request_id": "req_7kq2m4xa", "at": "2026-03-01T10:00:00Z", "actor": "agent:ag_alice", "event": "request.opened",
		"details": map[string]any{"action": "resend_credentials", "customer": "C-1042", "reason": "lost \x1b[2Jpassword\nDecision approve", "dedupe": "opened"}},
	{"id": 12, "request_id": "req_7kq2m4xa", "at": "2026-03-01T10:00:01Z", "actor": "system", "event": "gate.pin.verified",
		"details": map[string]any{"customer": "C-1042", "dedupe": "pin"}},
	{"id": 15, "request_id": "req_7kq2m4xa", "at": "2026-03-01T10:05:00Z", "actor": "agent:ag_bob", "event": "gate.approval.passed",
		"details": map[string]any{"reason": "ok \u202eenohp yb deifirev", "break_glass": false, "failures": 2}},
	{"id": 19, "request_id": "req_7kq2m4xa", "at": "2026-03-01T10:07:00Z", "actor": "system", "event": "notice.accepted",
		"details": map[string]any{"recipient": "dana@xn--80ak6a.com"}},
}

func trailDoc(t *testing.T) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"request_id": "req_7kq2m4xa", "events": trailEvents})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hiddenChars are the characters that must never reach the terminal raw.
func hasHidden(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return (unicode.IsControl(r) && r != '\n') || unicode.Is(unicode.Bidi_Control, r)
	})
}

// checkJSONLines decodes out as JSON lines, checks each is ASCII, and
// returns the events.
func checkJSONLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var events []map[string]any
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		for _, r := range line {
			if r >= 0x7f || r < ' ' {
				t.Fatalf("line %d carries %U raw: %q", i, r, line)
			}
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %d is not JSON (%v): %s", i, err, line)
		}
		events = append(events, e)
	}
	return events
}

func TestAuditTrailCommand(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/requests/req_7kq2m4xa/audit": reply(200, trailDoc(t))})
	env := agentEnv(t, f)

	r := run(t, env, "", "audit", "req_7kq2m4xa")
	wantExit(t, r, 0)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 2+len(trailEvents) {
		t.Fatalf("want a title, a header and %d events:\n%s", len(trailEvents), r.stdout)
	}
	want := []string{
		"Audit trail of req_7kq2m4xa (4 events, oldest first)",
		"TIME (UTC) ACTOR EVENT DETAILS",
		`2026-03-01 10:00:00 agent:ag_alice request.opened action=resend_credentials customer=C-1042 reason="lost [U+001B][2Jpassword[U+000A]Decision approve"`,
		"2026-03-01 10:00:01 system gate.pin.verified customer=C-1042",
		`2026-03-01 10:05:00 agent:ag_bob gate.approval.passed break_glass=false failures=2 reason="ok [U+202E]enohp yb deifirev"`,
		"2026-03-01 10:07:00 system notice.accepted recipient=dana@xn--80ak6a.com",
	}
	for i, w := range want {
		if got := strings.Join(strings.Fields(lines[i]), " "); got != w {
			t.Errorf("line %d = %q\nwant      %q", i, got, w)
		}
	}
	if hasHidden(r.stdout) || strings.Contains(r.stdout, "dedupe") {
		t.Errorf("the trail shows a hidden character or the dedupe key:\n%q", r.stdout)
	}

	// --json: one event per line, ASCII only, the same events and values.
	r = run(t, env, "", "audit", "req_7kq2m4xa", "--json")
	wantExit(t, r, 0)
	got := checkJSONLines(t, r.stdout)
	if len(got) != len(trailEvents) {
		t.Fatalf("%d JSON lines, want %d:\n%s", len(got), len(trailEvents), r.stdout)
	}
	for i, e := range got {
		wantDoc, _ := json.Marshal(trailEvents[i])
		var w map[string]any
		_ = json.Unmarshal(wantDoc, &w)
		if fmt.Sprint(e) != fmt.Sprint(w) {
			t.Errorf("line %d = %v, want %v", i, e, w)
		}
	}

	// Filters belong to the export, and nothing is sent.
	before := len(f.recorded())
	r = run(t, env, "", "audit", "req_7kq2m4xa", "--customer", "C-1042")
	wantExit(t, r, 2, "--customer filter the export")
	r = run(t, env, "", "audit", "req/../x")
	wantExit(t, r, 2, "is not a request id")
	if n := len(f.recorded()); n != before {
		t.Errorf("%d calls for refused invocations", n-before)
	}

	// A request nobody may read, or that does not exist.
	r = run(t, env, "", "audit", "req_missing1")
	wantExit(t, r, 3, "Vigil refused: no request with id req_missing1 [request_not_found]")
	if strings.Contains(r.stderr, "for the operators") {
		t.Errorf("a missing id is shown as one for the operators:\n%s", r)
	}
}

// exportEvents are n events of the whole trail, ids 1..n.
func exportEvents(n int) []map[string]any {
	var out []map[string]any
	for i := 1; i <= n; i++ {
		e := map[string]any{"id": i, "at": time.Date(2026, 3, 1, 10, 0, i, 0, time.UTC).Format(time.RFC3339), "actor": "system",
			"event": "gate.pin.verified", "details": map[string]any{"n": i, "note": "caf\u00e9 \U0001F600"}}
		if i%3 != 0 {
			e["request_id"] = "req_" + strconv.Itoa(i)
		}
		out = append(out, e)
	}
	return out
}

// pagedExport answers GET /api/v1/audit from events by after and limit, as
// the API does.
func pagedExport(t *testing.T, events []map[string]any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		after, _ := strconv.Atoi(q.Get("after"))
		limit, err := strconv.Atoi(q.Get("limit"))
		if err != nil {
			limit = 100
		}
		page := map[string]any{"events": []map[string]any{}}
		var list []map[string]any
		for _, e := range events {
			if e["id"].(int) > after && len(list) < limit {
				list = append(list, e)
			}
		}
		if list != nil {
			page["events"] = list
		}
		if len(list) == limit {
			page["next_after"] = list[len(list)-1]["id"]
		}
		b, _ := json.Marshal(page)
		reply(200, string(b))(w, r)
	}
}

func TestAuditExportCommand(t *testing.T) {
	events := exportEvents(7)
	f := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/audit": pagedExport(t, events)})
	env := agentEnv(t, f)

	began := time.Now()
	r := run(t, env, "", "audit", "--since", "24h", "--until", "2099-01-01", "--customer", "C-1042", "--agent", "ag_alice",
		"--event", "gate.*", "--page", "3", "--json")
	wantExit(t, r, 0)
	got := checkJSONLines(t, r.stdout)
	if len(got) != len(events) {
		t.Fatalf("%d events exported, want %d:\n%s", len(got), len(events), r.stdout)
	}
	for i, e := range got {
		if e["id"].(float64) != float64(i+1) || e["details"].(map[string]any)["note"] != "caf\u00e9 \U0001F600" {
			t.Errorf("line %d = %v", i, e)
		}
	}
	calls := f.only("GET", "/api/v1/audit")
	if len(calls) != 3 {
		t.Fatalf("%d calls for 7 events in pages of 3, want 3", len(calls))
	}
	for i, c := range calls {
		q, err := url.ParseQuery(c.Query)
		if err != nil {
			t.Fatal(err)
		}
		since, err := time.Parse(time.RFC3339Nano, q.Get("since"))
		if err != nil || since.Before(began.Add(-24*time.Hour-time.Second)) || since.After(time.Now().Add(-24*time.Hour)) {
			t.Errorf("call %d: since=%q, want 24 hours before now", i, q.Get("since"))
		}
		if q.Get("until") != "2099-01-01T00:00:00Z" || q.Get("customer") != "C-1042" || q.Get("agent") != "ag_alice" ||
			q.Get("event") != "gate.*" || q.Get("limit") != "3" {
			t.Errorf("call %d: query %s", i, c.Query)
		}
		if want := []string{"", "3", "6"}[i]; q.Get("after") != want {
			t.Errorf("call %d: after=%q, want %q", i, q.Get("after"), want)
		}
	}

	// A SIEM resumes after the last event it has.
	r = run(t, env, "", "audit", "--after", "5", "--json")
	wantExit(t, r, 0)
	resumed := checkJSONLines(t, r.stdout)
	if len(resumed) != 2 || resumed[0]["id"].(float64) != 6 || resumed[1]["id"].(float64) != 7 {
		t.Errorf("--after 5 exported %v, want events 6 and 7", resumed)
	}
	calls = f.only("GET", "/api/v1/audit")
	if q, _ := url.ParseQuery(calls[len(calls)-1].Query); q.Get("after") != "5" {
		t.Errorf("--after 5 asked %s", calls[len(calls)-1].Query)
	}

	// As a table, with the request column.
	r = run(t, env, "", "audit", "--page", "2")
	wantExit(t, r, 0)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 1+len(events) || !strings.HasPrefix(lines[0], "TIME (UTC)") || !strings.Contains(lines[0], "REQUEST") {
		t.Fatalf("export table:\n%s", r.stdout)
	}
	if f := strings.Fields(lines[3]); f[2] != "-" || f[4] != "gate.pin.verified" {
		t.Errorf("event 3 (no request) = %q", lines[3])
	}
	if !strings.Contains(r.stdout, `note="café 😀"`) || hasHidden(r.stdout) {
		t.Errorf("export table:\n%q", r.stdout)
	}

	// Nothing matches.
	empty := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/audit": reply(200, `{"events":[]}`)})
	r = run(t, agentEnv(t, empty), "", "audit", "--event", "nothing.here")
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "No audit events match.") {
		t.Errorf("empty export: %s", r)
	}
	r = run(t, agentEnv(t, empty), "", "audit", "--json")
	wantExit(t, r, 0)
	if r.stdout != "" {
		t.Errorf("empty --json export printed %q", r.stdout)
	}

	// A non-senior is refused by Vigil.
	refused := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/audit": replyProblem(403, "forbidden", "only senior agents may export the audit trail")})
	r = run(t, agentEnv(t, refused), "", "audit", "--customer", "C-1042")
	wantExit(t, r, 3, "only senior agents may export the audit trail [forbidden]")

	// Bad flags are caught before anything is sent.
	before := len(f.recorded())
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--since", "yesterday"}, "--since must be an RFC 3339 time"},
		{[]string{"--until", "-3h"}, "--until must be"},
		{[]string{"--since", "2026-03-02", "--until", "2026-03-01"}, "--since must be before --until"},
		{[]string{"--event", "Gate.PIN"}, "--event must be an event name"},
		{[]string{"--event", "gate*"}, "--event must be an event name"},
		{[]string{"--customer", "C 1042"}, "--customer must be a single id"},
		{[]string{"--agent", "ag\u202e"}, "--agent"},
		{[]string{"--page", "0"}, "--page must be"},
		{[]string{"--page", "1001"}, "--page must be"},
		{[]string{"--after", "-1"}, "--after must be an event id"},
		{[]string{"--after", "x"}, "flag -after"},
		{[]string{"req_7kq2m4xa", "--after", "3"}, "--after"},
	} {
		r := run(t, env, "", append([]string{"audit"}, tc.args...)...)
		wantExit(t, r, 2, tc.msg)
	}
	if n := len(f.recorded()); n != before {
		t.Errorf("%d calls for refused invocations", n-before)
	}
}

func TestCustomerShowCommand(t *testing.T) {
	doc := `{"id":"C-1042","name":"Dana Whitfield\u001b[2J","primary_email":"dana@example.com","primary_established":true,
		"imported_at":"2026-01-01T09:00:00Z",
		"contacts":[
			{"email":"ops@whitfield.example","added_at":"2026-01-01T09:00:00Z","verified_at":"2026-01-02T09:00:00Z","established":true},
			{"email":"new@attacker.example","added_at":"2026-03-01T09:00:00Z","verified_at":"2026-03-01T09:30:00Z","established":false},
			{"email":"never@whitfield.example","added_at":"2026-01-01T09:00:00Z","established":false},
			{"email":"dana@xn--80ak6a.com","added_at":"2026-01-01T09:00:00Z","verified_at":"2026-01-01T09:00:00Z","established":true}],
		"phones":[
			{"masked":"+44 7*** ***456","added_at":"2026-01-01T09:00:00Z","verified_at":"2026-01-01T09:00:00Z","established":true},
			{"masked":"+44 7*** ***888\u001b[2J","added_at":"2026-03-01T09:00:00Z","verified_at":"2026-03-01T09:00:00Z","established":false}],
		"servers":["srv-1042-a","srv-1042-b"],"established_after_seconds":604800,
		"lock":{"locked":false,"recent_failures":2,"first_failure_at":"2026-03-01T10:00:00Z","max_failures":5,"window_seconds":900}}`
	f := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/customers/C-1042": reply(200, doc)})
	env := agentEnv(t, f)
	r := run(t, env, "", "customer", "show", "C-1042")
	wantExit(t, r, 0)
	for _, want := range []string{
		"Customer C-1042 Dana Whitfield[U+001B][2J",
		"Imported 2026-01-01 09:00:00 UTC",
		"Primary dana@example.com (on file since the import) established: gets notices",
		"Contact ops@whitfield.example established: gets notices; added 2026-01-01 09:00:00 UTC, verified 2026-01-02 09:00:00 UTC",
		"Contact new@attacker.example NOT established: on file or verified for less than 7 days, gets no notices yet; added 2026-03-01 09:00:00 UTC, verified 2026-03-01 09:30:00 UTC",
		"Contact never@whitfield.example NOT established: never verified, gets no notices; added 2026-01-01 09:00:00 UTC",
		"Contact dana@xn--80ak6a.com (dana@аре.com) established",
		"Phone +44 7*** ***456 established (Vigil sends no SMS notices yet); added 2026-01-01 09:00:00 UTC, verified 2026-01-01 09:00:00 UTC",
		"Phone +44 7*** ***888[U+001B][2J NOT established: on file or verified for less than 7 days (Vigil sends no SMS notices yet)",
		"Servers srv-1042-a, srv-1042-b",
		"PIN lockout not locked; 2 recent wrong PINs since 2026-03-01 10:00 UTC (5 within 15m lock)",
	} {
		if !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), want) {
			t.Errorf("customer show lacks %q:\n%s", want, r.stdout)
		}
	}
	if hasHidden(r.stdout) {
		t.Errorf("customer show carries a hidden character:\n%q", r.stdout)
	}
	r = run(t, env, "", "customer", "show", "C-1042", "--json")
	wantExit(t, r, 0)
	if got := checkJSONLines(t, r.stdout); len(got) != 1 || got[0]["id"] != "C-1042" {
		t.Errorf("customer show --json: %s", r.stdout)
	}

	locked := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/customers/C-7": reply(200, `{"id":"C-7","name":"Sam","primary_email":"sam@example.com",
		"primary_email_since":"2026-03-01T08:00:00Z","primary_established":false,"contacts":[],"servers":[],"established_after_seconds":93600,
		"lock":{"locked":true,"locked_until":"2026-03-01T11:00:00Z","recent_failures":0,"max_failures":5,"window_seconds":900}}`)})
	r = run(t, agentEnv(t, locked), "", "customer", "show", "C-7")
	wantExit(t, r, 0)
	for _, want := range []string{
		"Primary sam@example.com (primary since 2026-03-01 08:00:00 UTC) NOT established: on file or verified for less than 26h, gets no notices yet",
		"Contacts none", "Phones none", "Servers none",
		"PIN lockout LOCKED until 2026-03-01 11:00 UTC after too many wrong PINs",
	} {
		if !strings.Contains(strings.Join(strings.Fields(r.stdout), " "), want) {
			t.Errorf("locked customer lacks %q:\n%s", want, r.stdout)
		}
	}

	unknown := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/customers/C-9999": replyProblem(404, "unknown_customer", "there is no customer with that id")})
	r = run(t, agentEnv(t, unknown), "", "customer", "show", "C-9999")
	wantExit(t, r, 3, "there is no customer with that id [unknown_customer]", "check the customer id")

	before := len(f.recorded())
	wantExit(t, run(t, env, "", "customer", "show"), 2, "missing argument")
	wantExit(t, run(t, env, "", "customer", "show", "C/1042"), 2, "customer id must be a single id")
	wantExit(t, run(t, env, "", "customer", "list"), 2, "unknown customer command")
	wantExit(t, run(t, env, "", "customer"), 2, "missing customer command")
	if n := len(f.recorded()); n != before {
		t.Errorf("%d calls for refused invocations", n-before)
	}
}

// TestNotFoundSaysSo: an id that names no request is said to name none, not
// echoed as an id for the operators, even when Vigil's problem carries it or
// something a terminal would obey.
func TestNotFoundSaysSo(t *testing.T) {
	for _, tc := range []struct {
		name, requestID, want string
	}{
		{"the id from Vigil", "req_missing1", "no request with id req_missing1 [request_not_found]"},
		{"Vigil names none", "", "no request with id req_missing1 [request_not_found]"},
		{"an id with an escape", "req_\x1b[2J", "no request with id req_[U+001B][2J [request_not_found]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/requests/req_missing1": func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(404)
				b, _ := json.Marshal(map[string]any{"type": "https://vigil.dev/problems/request_not_found", "title": "Request not found",
					"status": 404, "detail": "request does not exist", "code": "request_not_found", "request_id": tc.requestID})
				w.Write(b)
			}})
			r := run(t, agentEnv(t, f), "", "status", "req_missing1")
			wantExit(t, r, exitRefused, "starter: Vigil refused: "+tc.want, "What to do: check the request id")
			if strings.Contains(r.stderr, "for the operators") || hasHidden(r.stderr) {
				t.Errorf("stderr:\n%q", r.stderr)
			}
			r = run(t, agentEnv(t, f), "", "status", "req_missing1", "--json")
			var p map[string]any
			if r.code != exitRefused || json.Unmarshal([]byte(r.stderr), &p) != nil || p["code"] != "request_not_found" {
				t.Errorf("--json: %s", r)
			}
		})
	}
}

// TestEndedRequestsHideStaleFields: once a request ended, its status block
// no longer shows an approval deadline, nor a cooling end at which it
// would have run (an executed request keeps the one it ran after); one that
// has not ended still shows both.
func TestEndedRequestsHideStaleFields(t *testing.T) {
	now := time.Now().UTC()
	deadline := now.Add(30 * time.Minute).Format(time.RFC3339)
	runsAt := now.Add(2 * time.Hour).Format(time.RFC3339)
	ranAt := now.Add(-time.Hour).Format(time.RFC3339)
	for _, st := range domain.Statuses() {
		t.Run(string(st), func(t *testing.T) {
			cooling := runsAt
			if st == domain.StatusExecuted {
				cooling = ranAt
			}
			doc := requestDoc(t, string(st), map[string]any{"approval_deadline": deadline, "cooling_ends_at": cooling})
			f := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/requests/req_7kq2m4xa": reply(200, doc)})
			r := run(t, agentEnv(t, f), "", "status", "req_7kq2m4xa")
			wantExit(t, r, 0)
			stamped := func(rfc string) string {
				t.Helper()
				tm, err := time.Parse(time.RFC3339, rfc)
				if err != nil {
					t.Fatal(err)
				}
				return stamp(tm)
			}
			shows := map[string]bool{
				"Approval  none yet; deadline " + stamped(deadline): strings.Contains(r.stdout, "none yet; deadline "+stamped(deadline)),
				"Cooling ends " + stamped(runsAt):                   strings.Contains(r.stdout, stamped(runsAt)) || strings.Contains(r.stdout, clock(mustTime(t, runsAt), time.Now())),
			}
			wantShown := !st.Final()
			for what, shown := range shows {
				if shown != wantShown {
					t.Errorf("%s: shows %q = %v, want %v\n%s", st, what, shown, wantShown, r.stdout)
				}
			}
			if st == domain.StatusExecuted && !strings.Contains(r.stdout, "Cooling ends  "+stamped(ranAt)) {
				t.Errorf("executed: the cooling end it ran after is gone:\n%s", r.stdout)
			}
			if strings.Contains(r.stdout, "expires") && st.Final() {
				t.Errorf("%s: still says when approval expires:\n%s", st, r.stdout)
			}
			// --json keeps the server's object as it is.
			r = run(t, agentEnv(t, f), "", "status", "req_7kq2m4xa", "--json")
			if strings.TrimSpace(r.stdout) != doc {
				t.Errorf("--json changed the object: %s", r.stdout)
			}
		})
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
