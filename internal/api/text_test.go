package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/ratelimit"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// jsonEsc returns s as the contents of a JSON string literal, escaping only
// what JSON requires: invalid UTF-8 stays as it is, so that the API, not the
// test's encoder, meets it (encoding/json would turn it into U+FFFD).
func jsonEsc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// textClass is one kind of character the rule refuses, as a fragment to put
// inside a JSON string, and the words the refusal must use.
type textClass struct {
	name    string
	frag    string // JSON string contents
	value   string // the Go string frag decodes to ("" when JSON cannot carry it raw)
	problem string
}

func textClasses() []textClass {
	raw := []struct{ name, value, problem string }{
		{"invalid UTF-8", "\xff", "is not valid UTF-8"},
		{"truncated UTF-8", "\xe2\x80", "is not valid UTF-8"},
		{"encoded surrogate", "\xed\xa0\x80", "is not valid UTF-8"},
		{"NUL", "\x00", "contains a NUL character (U+0000)"},
		{"BEL", "\a", "contains a control character (U+0007)"},
		{"backspace", "\b", "contains a control character (U+0008)"},
		{"ANSI escape", "\x1b[31m", "contains a control character (U+001B)"},
		{"DEL", "\x7f", "contains a control character (U+007F)"},
		{"C1 CSI", "\u009b", "contains a control character (U+009B)"},
		{"tab", "\t", "contains a tab (U+0009)"},
		{"line feed", "\n", "contains a line break (U+000A)"},
		{"carriage return", "\r", "contains a line break (U+000D)"},
		{"line separator", "\u2028", "contains a line break (U+2028)"},
		{"RLO override", "\u202e", "contains a bidi control character (U+202E)"},
		{"LRE embedding", "\u202a", "contains a bidi control character (U+202A)"},
		{"RLI isolate", "\u2067", "contains a bidi control character (U+2067)"},
		{"PDI", "\u2069", "contains a bidi control character (U+2069)"},
		{"RLM", "\u200f", "contains a bidi control character (U+200F)"},
		{"Arabic letter mark", "\u061c", "contains a bidi control character (U+061C)"},
		{"zero-width space", "\u200b", "contains an invisible character (U+200B)"},
		{"zero-width joiner", "\u200d", "contains an invisible character (U+200D)"},
		{"word joiner", "\u2060", "contains an invisible character (U+2060)"},
		{"BOM", "\ufeff", "contains an invisible character (U+FEFF)"},
		{"soft hyphen", "\u00ad", "contains an invisible character (U+00AD)"},
		{"tag character", "\U000E0041", "contains an invisible character (U+E0041)"},
		{"Hangul filler", "\u3164", "contains an invisible character (U+3164)"},
		{"variation selector", "\ufe00", "contains an invisible character (U+FE00)"},
		{"stacked marks", "e\u0301\u0302\u0303\u0304\u0305", "contains a combining mark (U+0305)"},
		{"private use", "\ue000", "contains a private-use character (U+E000)"},
		{"noncharacter", "\ufdd0", "contains a noncharacter (U+FDD0)"},
		{"unassigned", "\U00050000", "contains an unassigned character (U+50000)"},
		{"replacement character", "\ufffd", "contains a replacement character (U+FFFD)"},
		{"braille blank", "\u2800", "contains a character that renders as blank (U+2800)"},
		{"object replacement", "\ufffc", "contains a character that renders as blank (U+FFFC)"},
		{"overlay stroke", "x\u0336", "contains an overlay mark (U+0336)"},
		{"enclosing circle", "x\u20dd", "contains an overlay mark (U+20DD)"},
		{"keycap after a letter", "x\u20e3", "contains an overlay mark (U+20E3)"},
		{"math bold letter", "\U0001D42F", "contains a styled letter (U+1D42F)"},
	}
	out := make([]textClass, 0, len(raw)+2)
	for _, r := range raw {
		out = append(out, textClass{r.name, jsonEsc(r.value), r.value, r.problem})
	}
	// JSON escapes that encoding/json would decode into U+FFFD or a control.
	return append(out,
		textClass{"lone surrogate escape", `\ud800`, "", "contains a replacement character (U+FFFD)"},
		textClass{"escaped NUL", `\u0000`, "", "contains a NUL character (U+0000)"},
	)
}

// textEntry is one field of one endpoint that takes text.
type textEntry struct {
	name         string
	who          string // agent id, or "admin"
	method, path string
	field        string                   // as the refusal must name it
	body         func(frag string) string // the body with frag inside the field
	valid        string                   // a frag the rule accepts, for the control case
}

func textEntries(t *testing.T) []textEntry {
	hash, err := pinhash.Hash(testPIN, pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	open := func(action, extra string) string {
		return `{"action":"` + action + `","customer_id":"C-1042",` + extra + `,"pin":"` + testPIN + `"}`
	}
	customer := func(name, primary, contact, server string) string {
		return `{"name":"` + name + `","primary_email":"` + primary + `","pin_hash":"` + jsonEsc(hash) +
			`","contacts":[{"email":"` + contact + `"}],"servers":["` + server + `"]}`
	}
	agent := func(id, name, email, team, role, slack string) string {
		return `{"id":"` + id + `","name":"` + name + `","email":"` + email + `","team":"` + team +
			`","role":"` + role + `","slack_user_id":"` + slack + `"}`
	}
	bg := func(reason string) string {
		return `{"decision":"approve","reason":"` + reason + `"}`
	}
	const intl = "é 確認 👍 ❤\ufe0f"
	return []textEntry{
		{"open reason", "ag_req", "POST", "/api/v1/requests", "reason",
			func(f string) string { return open("disable_2fa", `"reason":"customer asked `+f+` in chat"`) }, intl},
		{"open email", "ag_req", "POST", "/api/v1/requests", "email",
			func(f string) string {
				return open("add_contact_email", `"email":"dana`+f+`@example.com","reason":"new on-call address"`)
			}, ""},
		{"open customer id", "ag_req", "POST", "/api/v1/requests", "customer_id",
			func(f string) string {
				return `{"action":"disable_2fa","customer_id":"C-10` + f + `42","reason":"lost phone","pin":"` + testPIN + `"}`
			}, ""},
		{"open server id", "ag_req", "POST", "/api/v1/requests", "server_id",
			func(f string) string { return open("reinstall_vps", `"server_id":"srv-`+f+`1","reason":"compromised"`) }, ""},
		{"open action", "ag_req", "POST", "/api/v1/requests", "action",
			func(f string) string { return open("disable_2fa"+f, `"reason":"lost phone"`) }, ""},
		{"withdraw reason", "ag_req", "POST", "/api/v1/requests/req_bg1/withdraw", "reason",
			func(f string) string { return `{"reason":"called back ` + f + `"}` }, intl},
		{"veto reason", "ag_senior", "POST", "/api/v1/requests/req_bg1/veto", "reason",
			func(f string) string { return `{"reason":"caller failed the check ` + f + `"}` }, intl},
		{"agent id", "admin", "POST", "/admin/v1/agents", "id",
			func(f string) string {
				return agent("ag_"+f+"ana", "Ana Lima", "ana@example.com", "Support", "agent", "")
			}, ""},
		{"agent name", "admin", "POST", "/admin/v1/agents", "name",
			func(f string) string {
				return agent("ag_ana", "Ana "+f+"Lima", "ana@example.com", "Support", "agent", "")
			}, intl},
		{"agent email", "admin", "POST", "/admin/v1/agents", "email",
			func(f string) string {
				return agent("ag_ana", "Ana Lima", "ana"+f+"@example.com", "Support", "agent", "")
			}, ""},
		{"agent team", "admin", "POST", "/admin/v1/agents", "team",
			func(f string) string {
				return agent("ag_ana", "Ana Lima", "ana@example.com", "Sup"+f+"port", "agent", "")
			}, intl},
		{"agent role", "admin", "POST", "/admin/v1/agents", "role",
			func(f string) string { return agent("ag_ana", "Ana Lima", "ana@example.com", "Support", "agent"+f, "") }, ""},
		{"agent Slack id", "admin", "POST", "/admin/v1/agents", "slack_user_id",
			func(f string) string {
				return agent("ag_ana", "Ana Lima", "ana@example.com", "Support", "senior", "U0"+f+"ANA")
			}, ""},
		{"customer name", "admin", "PUT", "/admin/v1/customers/C-1042", "name",
			func(f string) string { return customer("Acme "+f+"Ltd", "owner@acme.test", "ops@acme.test", "srv-1") }, intl},
		{"customer primary email", "admin", "PUT", "/admin/v1/customers/C-1042", "primary_email",
			func(f string) string { return customer("Acme", "owner"+f+"@acme.test", "ops@acme.test", "srv-1") }, ""},
		{"customer contact email", "admin", "PUT", "/admin/v1/customers/C-1042", "contacts[0].email",
			func(f string) string { return customer("Acme", "owner@acme.test", "ops"+f+"@acme.test", "srv-1") }, ""},
		{"customer server id", "admin", "PUT", "/admin/v1/customers/C-1042", "servers[0]",
			func(f string) string { return customer("Acme", "owner@acme.test", "ops@acme.test", "srv-"+f+"1") }, ""},
		{"break-glass reason", "ag_senior", "POST", "/api/v1/requests/req_bg1/break-glass", "reason",
			func(f string) string { return bg(bgReason + " " + f) }, intl},
	}
}

// textEnv is breakGlassEnv with limits no table test reaches.
func textEnv(t *testing.T) *env {
	t.Helper()
	lots := ratelimit.Limit{PerMinute: 100000, Burst: 100000}
	return breakGlassEnvWith(t, Options{OpenLimit: lots, GeneralLimit: lots})
}

// snapshot is a digest of every table an entry point could change, plus the
// calls made to Temporal.
type snapshot struct {
	tables         map[string]string
	temporalWrites int64
}

var watchedTables = []string{"requests", "audit_events", "agents", "customers", "customer_contacts", "customer_servers", "pin_checks"}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	s := snapshot{tables: map[string]string{}, temporalWrites: e.temporal.Writes()}
	for _, table := range watchedTables {
		var digest string
		q := `SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM ` + table + ` t`
		if err := e.db.QueryRow(q).Scan(&digest); err != nil {
			e.t.Fatalf("snapshot %s: %v", table, err)
		}
		s.tables[table] = digest
	}
	return s
}

// unchanged fails the test if anything differs from before.
func (e *env) unchanged(t *testing.T, before snapshot) {
	t.Helper()
	after := e.snapshot()
	for _, table := range watchedTables {
		if before.tables[table] != after.tables[table] {
			t.Errorf("table %s changed: %s -> %s", table, before.tables[table], after.tables[table])
		}
	}
	if after.temporalWrites != before.temporalWrites {
		t.Errorf("%d calls reached Temporal", after.temporalWrites-before.temporalWrites)
	}
}

func (e *env) send(who, method, path, body string) response {
	e.t.Helper()
	auth := "Bearer " + e.tokens[who]
	if who == "admin" {
		auth = "Bearer " + e.tokens["ag_root"]
	}
	return e.call(method, path, auth, "application/json", body)
}

// wantInvalid checks a 400 invalid_input whose detail contains want and
// repeats nothing the rule refuses.
func wantInvalid(t *testing.T, res response, want string) Problem {
	t.Helper()
	if res.status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400: %s", res.status, res.body)
	}
	p := res.problem(t)
	if p.Code != "invalid_input" || !strings.Contains(p.Detail, want) {
		t.Fatalf("problem %s %q, want invalid_input containing %q", p.Code, p.Detail, want)
	}
	if err := textrule.Check("detail", p.Detail, textrule.Options{MaxLen: 10000}); err != nil {
		t.Fatalf("the detail carries what the rule refuses: %v", err)
	}
	return p
}

// TestTextRuleAtEveryEntryPoint sends every class of refused character to
// every field of every endpoint that takes text: each is refused with
// invalid_input naming the field and the character, and changes nothing in
// Postgres or Temporal.
func TestTextRuleAtEveryEntryPoint(t *testing.T) {
	t.Parallel()
	e := textEnv(t)
	classes := textClasses()
	for _, ep := range textEntries(t) {
		t.Run(ep.name, func(t *testing.T) {
			for _, c := range classes {
				before := e.snapshot()
				res := e.send(ep.who, ep.method, ep.path, ep.body(c.frag))
				func() {
					defer func() {
						if t.Failed() {
							t.Logf("class %s", c.name)
						}
					}()
					wantInvalid(t, res, ep.field+": ")
					p := res.problem(t)
					if !strings.Contains(p.Detail, c.problem) {
						t.Fatalf("%s: detail %q lacks %q", c.name, p.Detail, c.problem)
					}
				}()
				e.unchanged(t, before)
			}
		})
	}
}

// TestTextRuleControls sends a valid value to the same fields: nothing is
// refused as invalid_input, so the refusals above are the rule's doing.
func TestTextRuleControls(t *testing.T) {
	t.Parallel()
	e := textEnv(t)
	for _, ep := range textEntries(t) {
		t.Run(ep.name, func(t *testing.T) {
			res := e.send(ep.who, ep.method, ep.path, ep.body(jsonEsc(ep.valid)))
			if res.status == http.StatusBadRequest {
				t.Fatalf("valid %s refused: %s", ep.field, res.body)
			}
			if res.status >= 500 && res.problem(t).Code != "temporal_unavailable" {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
		})
	}
}

// TestEmailRuleAtEveryEntryPoint sends addresses that could pass for another
// to every field that takes one.
func TestEmailRuleAtEveryEntryPoint(t *testing.T) {
	t.Parallel()
	e := textEnv(t)
	hash, err := pinhash.Hash(testPIN, pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	fields := []struct {
		name, who, method, path, field string
		body                           func(addr string) string
	}{
		{"add contact", "ag_req", "POST", "/api/v1/requests", "email", func(a string) string {
			return `{"action":"add_contact_email","customer_id":"C-1042","email":"` + a + `","reason":"new address","pin":"` + testPIN + `"}`
		}},
		{"change account email", "ag_req", "POST", "/api/v1/requests", "email", func(a string) string {
			return `{"action":"change_account_email","customer_id":"C-1042","email":"` + a + `","reason":"moved","pin":"` + testPIN + `"}`
		}},
		{"agent email", "admin", "POST", "/admin/v1/agents", "email", func(a string) string {
			return `{"id":"ag_ana","name":"Ana","email":"` + a + `","role":"agent"}`
		}},
		{"primary email", "admin", "PUT", "/admin/v1/customers/C-1042", "primary_email", func(a string) string {
			return `{"name":"Acme","primary_email":"` + a + `","pin_hash":"` + jsonEsc(hash) + `"}`
		}},
		{"contact email", "admin", "PUT", "/admin/v1/customers/C-1042", "contacts[1].email", func(a string) string {
			return `{"name":"Acme","primary_email":"owner@acme.test","pin_hash":"` + jsonEsc(hash) +
				`","contacts":[{"email":"ops@acme.test"},{"email":"` + a + `"}]}`
		}},
	}
	addrs := []struct{ name, addr, problem string }{
		{"Cyrillic a in a Latin domain", "dana@ex\u0430mple.com", "mixes scripts (Latin and Cyrillic)"},
		{"mixed scripts as an A-label", "dana@xn--exmple-4nf.com", "mixes scripts (Latin and Cyrillic)"},
		{"Greek o in a Latin domain", "dana@g\u03bfogle.com", "mixes scripts (Latin and Greek)"},
		{"bidi override in the local part", "dana\u202e@example.com", "contains a bidi control character (U+202E)"},
		{"zero-width space in the domain", "dana@exa\u200bmple.com", "contains an invisible character (U+200B)"},
		{"IPv4 literal", "dana@[192.0.2.1]", "an IP address literal"},
		{"IPv6 literal", "dana@[IPv6:2001:db8::1]", "an IP address literal"},
		{"bare IPv4 domain", "dana@192.0.2.1", "looks like an IP address"},
		{"numeric top-level label", "dana@example.123", "looks like an IP address"},
		{"display name", "Dana <dana@example.com>", "must be a bare address"},
		{"no dot", "dana@localhost", "a domain with a dot"},
		{"non-ASCII local part", "dañа@example.com", "a non-ASCII character (U+00F1) before the @"},
		{"fullwidth letters", "dana@\uff45xample.com", "contains a styled letter (U+FF45)"},
		{"two @", "dana@evil.test@example.com", "exactly one @"},
	}
	for _, f := range fields {
		t.Run(f.name, func(t *testing.T) {
			for _, a := range addrs {
				before := e.snapshot()
				res := e.send(f.who, f.method, f.path, f.body(jsonEsc(a.addr)))
				p := wantInvalid(t, res, f.field+": ")
				if !strings.Contains(p.Detail, a.problem) {
					t.Fatalf("%s: detail %q lacks %q", a.name, p.Detail, a.problem)
				}
				if strings.Contains(p.Detail, a.addr) {
					t.Fatalf("%s: detail quotes the address: %q", a.name, p.Detail)
				}
				e.unchanged(t, before)
			}
			// The control: an internationalised address of one script passes.
			res := e.send(f.who, f.method, f.path, f.body("dana@münchen.de"))
			if res.status == http.StatusBadRequest {
				t.Fatalf("valid address refused: %s", res.body)
			}
		})
	}
}

// TestAddressesStoredCanonical: an import stores the canonical form, so one
// address has one spelling in the database whichever form was sent.
func TestAddressesStoredCanonical(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	hash, err := pinhash.Hash(testPIN, pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"name":"  Acme  ","primary_email":"Owner@ACME.test","pin_hash":"` + jsonEsc(hash) +
		`","contacts":[{"email":"dana@MÜNCHEN.de"}]}`
	if res := e.admin("PUT", "/admin/v1/customers/C-7", body); res.status != http.StatusBadRequest {
		t.Fatalf("upper-case non-ASCII domain: status %d, want 400: %s", res.status, res.body)
	}
	body = strings.Replace(body, "MÜNCHEN", "münchen", 1)
	res := e.admin("PUT", "/admin/v1/customers/C-7", body)
	if res.status != http.StatusOK {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	var c Customer
	if err := json.Unmarshal(res.body, &c); err != nil {
		t.Fatal(err)
	}
	if c.Name != "Acme" || c.PrimaryEmail != "Owner@acme.test" || len(c.Contacts) != 1 || c.Contacts[0].Email != "dana@xn--mnchen-3ya.de" {
		t.Fatalf("stored %+v", c)
	}
}
