package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigil-oss/vigil/internal/ratelimit"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/temporaltest"
	"github.com/vigil-oss/vigil/internal/testpg"
	"github.com/vigil-oss/vigil/internal/textrule"
)

func TestMain(m *testing.M) {
	code := m.Run()
	temporaltest.RemoveBuilt()
	os.Exit(code)
}

// openBodyFor is the open body of an add_contact_email request carrying
// reason and email as they are (invalid UTF-8 included).
func openBodyFor(reason, email string) []byte {
	return []byte(`{"action":"add_contact_email","customer_id":"C-1042","email":"` + jsonEsc(email) +
		`","reason":"` + jsonEsc(reason) + `","pin":"` + testPIN + `"}`)
}

// passesRule reports whether the text rule accepts reason and email as Open
// must: the property the fuzz target holds the API to.
func passesRule(reason, email string) bool {
	if _, err := textrule.Clean("reason", reason, textrule.Options{Required: true, MaxLen: requests.MaxReasonLen}); err != nil {
		return false
	}
	_, err := textrule.Email("email", email)
	return err == nil
}

// fuzzSeeds covers every class of the rule, in both forms the target takes:
// a raw body, and a reason and an address the target encodes itself.
func fuzzSeeds() (raws [][]byte, fields [][2]string) {
	const reason, email = "customer asked in chat, ticket #8812", "ops@example.com"
	fields = append(fields, [2]string{reason, email}, [2]string{"Kundin bestätigt 確認済み ❤\ufe0f", "dana@münchen.de"})
	raws = append(raws, openBodyFor(reason, email))
	for _, c := range textClasses() {
		raws = append(raws,
			[]byte(`{"action":"add_contact_email","customer_id":"C-1042","email":"`+email+`","reason":"lost `+c.frag+` phone","pin":"`+testPIN+`"}`),
			[]byte(`{"action":"add_contact_email","customer_id":"C-1042","email":"dana`+c.frag+`@example.com","reason":"r","pin":"`+testPIN+`"}`))
		if c.value != "" {
			fields = append(fields, [2]string{"lost " + c.value + " phone", email}, [2]string{reason, "dana" + c.value + "@example.com"})
		}
	}
	for _, addr := range []string{"dana@ex\u0430mple.com", "dana@xn--exmple-4nf.com", "dana@[192.0.2.1]", "dana@192.0.2.1",
		"Dana <dana@example.com>", "dana@localhost", "dañ@example.com", "dana@\uff45xample.com", "dana@аре.com"} {
		fields = append(fields, [2]string{reason, addr})
	}
	open := `"action":"disable_2fa","customer_id":"C-1042","pin":"` + testPIN + `"`
	raws = append(raws,
		[]byte(`{`+open+`,"reason":"a","reason":"b"}`),
		[]byte(`{`+open+`,"reason":"a","Reason":"b"}`),
		[]byte(`{`+open+`,"reason":"a","\u212a":"b"}`),
		[]byte(`{`+open+`,"reason":"a"}{"x":1}`),
		[]byte(`{`+open+`,"reason":["a"]}`),
		[]byte(`{`+open+`,"reason":"a","requester_id":"ag_senior"}`),
		[]byte(`{"pin":"`+testPIN+`",`),
		[]byte(`[]`),
		[]byte(``),
	)
	return raws, fields
}

// FuzzOpenRequest drives POST /api/v1/requests, through a real Postgres and
// a real Temporal (the devserver, no worker), with arbitrary bodies and with
// arbitrary reasons and addresses in an otherwise valid body. It holds:
//   - no answer is a 5xx and nothing panics;
//   - a body that is not answered 201 changes nothing: no request or audit
//     row, no PIN check, no call that changes Temporal;
//   - a 201 only for a body that is valid UTF-8 and whose reason and email
//     pass the text rule; for the encoded fields, invalid_input exactly when
//     the rule refuses them;
//   - no answer carries a character the rule refuses, so nothing hidden in
//     the input comes back.
func FuzzOpenRequest(f *testing.F) {
	raws, fields := fuzzSeeds()
	// Each raw body goes with a valid pair of fields and each pair with a
	// valid body, so every seed exercises both halves.
	for i, raw := range raws {
		p := fields[i%len(fields)]
		f.Add(raw, p[0], p[1])
	}
	for _, p := range fields {
		f.Add(raws[0], p[0], p[1])
	}

	db := testpg.New(f)
	lots := ratelimit.Limit{PerMinute: 1 << 30, Burst: 1 << 30}
	e := newEnvAt(f, adminToken, Options{OpenLimit: lots, GeneralLimit: lots}, db, db, db, temporaltest.StartDevServer(f))

	f.Fuzz(func(t *testing.T, raw []byte, reason, email string) {
		e.t = t
		defer func() { e.t = f }()
		res, changed := e.fuzzOpen(t, raw)
		if res.status == http.StatusCreated {
			var b openBody
			if !utf8.Valid(raw) || json.Unmarshal(raw, &b) != nil {
				t.Fatalf("201 for a body that is not valid UTF-8 JSON: %q", raw)
			}
			if b.Action == "add_contact_email" || b.Action == "change_account_email" {
				if !passesRule(b.Reason, b.Email) {
					t.Fatalf("201 for a reason or email the rule refuses: %q %q", b.Reason, b.Email)
				}
			} else if _, err := textrule.Clean("reason", b.Reason, textrule.Options{Required: true, MaxLen: requests.MaxReasonLen}); err != nil {
				t.Fatalf("201 for a reason the rule refuses (%v): %q", err, b.Reason)
			}
		} else if changed != "" {
			t.Fatalf("answer %d changed %s; body %q", res.status, changed, raw)
		}

		res, changed = e.fuzzOpen(t, openBodyFor(reason, email))
		ok := passesRule(reason, email)
		refused := res.status == http.StatusBadRequest && res.problem(t).Code == "invalid_input"
		switch {
		case ok && refused:
			t.Fatalf("reason %q and email %q pass the rule but were refused: %s", reason, email, res.body)
		case !ok && !refused:
			t.Fatalf("reason %q or email %q breaks the rule but got %d, not invalid_input: %s", reason, email, res.status, res.body)
		case res.status != http.StatusCreated && changed != "":
			t.Fatalf("answer %d changed %s", res.status, changed)
		}
	})
}

// fuzzOpen sends one open body and checks what holds for every answer; it
// returns the answer and what changed ("" for nothing).
func (e *env) fuzzOpen(t *testing.T, body []byte) (response, string) {
	t.Helper()
	before := e.counts()
	res := e.call("POST", "/api/v1/requests", "Bearer "+e.tokens["ag_req"], "application/json", string(body))
	if res.status >= 500 {
		t.Fatalf("status %d for %q: %s", res.status, body, res.body)
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(res.body))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, res.body)
	}
	if bad := refusedString(doc); bad != nil {
		t.Fatalf("answer carries what the rule refuses (%v): %s", bad, res.body)
	}
	if strings.Contains(string(res.body), testPIN) {
		t.Fatalf("answer quotes the PIN: %s", res.body)
	}
	after := e.counts()
	changed := ""
	if after != before {
		changed = "rows or Temporal: " + before.String() + " -> " + after.String()
	}
	return res, changed
}

// refusedString returns the rule's refusal of the first string in doc that
// breaks it, or nil.
func refusedString(doc any) error {
	switch v := doc.(type) {
	case string:
		return textrule.Check("answer", v, textrule.Options{MaxLen: MaxBodyBytes})
	case []any:
		for _, x := range v {
			if err := refusedString(x); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, x := range v {
			if err := refusedString(k); err != nil {
				return err
			}
			if err := refusedString(x); err != nil {
				return err
			}
		}
	}
	return nil
}

// rowCounts is the cheap part of a snapshot, for the fuzz target: an open
// that changes anything adds a row or calls Temporal.
type rowCounts struct {
	requests, audit, pinChecks int
	temporalWrites             int64
}

func (c rowCounts) String() string {
	b, _ := json.Marshal(map[string]any{"requests": c.requests, "audit_events": c.audit, "pin_checks": c.pinChecks, "temporal_writes": c.temporalWrites})
	return string(b)
}

func (e *env) counts() rowCounts {
	e.t.Helper()
	var c rowCounts
	if err := e.db.QueryRow(`SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM audit_events), (SELECT count(*) FROM pin_checks)`).
		Scan(&c.requests, &c.audit, &c.pinChecks); err != nil {
		e.t.Fatal(err)
	}
	c.temporalWrites = e.temporal.Writes()
	return c
}
