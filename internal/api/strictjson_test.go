package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-oss/vigil/internal/pinhash"
)

// TestStrictJSON: a body whose keys repeat, in any letter case and at any
// depth, whose keys are not plain ASCII, or whose bytes are not UTF-8, is
// refused with invalid_input naming the key or field, and changes nothing.
func TestStrictJSON(t *testing.T) {
	t.Parallel()
	e := textEnv(t)
	hash, err := pinhash.Hash(testPIN, pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	h := jsonEsc(hash)
	const openPath = "/api/v1/requests"
	open := `"action":"disable_2fa","customer_id":"C-1042","pin":"` + testPIN + `"`
	tests := []struct {
		name, who, method, path, body, want string
	}{
		{"same key twice", "ag_req", "POST", openPath,
			`{` + open + `,"reason":"lost phone","reason":"approved by ag_bob"}`,
			`key "reason" appears twice; send each field once`},
		{"same key in another case", "ag_req", "POST", openPath,
			`{` + open + `,"reason":"lost phone","Reason":"approved by ag_bob"}`,
			`keys "reason" and "Reason" name the same field`},
		{"upper case first", "ag_req", "POST", openPath,
			`{` + open + `,"REASON":"lost phone","reason":"x"}`,
			`keys "REASON" and "reason" name the same field`},
		{"PIN twice", "ag_req", "POST", openPath,
			`{"action":"disable_2fa","customer_id":"C-1042","reason":"r","pin":"000000","pin":"` + testPIN + `"}`,
			`key "pin" appears twice`},
		{"key spelled with an escape", "ag_req", "POST", openPath,
			`{` + open + `,"reason":"lost phone","re\u0061son":"x"}`,
			`key "reason" appears twice`},
		{"Kelvin sign folds to k", "ag_req", "POST", openPath,
			`{` + open + `,"reason":"lost phone","\u212a":"x"}`,
			`a key holds a character other than printable ASCII (U+212A)`},
		{"key with a NUL", "ag_req", "POST", openPath,
			`{` + open + `,"reason":"lost phone","a\u0000":"x"}`,
			`a key holds a character other than printable ASCII (U+0000)`},
		{"key with a bidi override", "ag_req", "POST", openPath,
			`{` + open + `,"reason":"lost phone","` + "\u202e" + `x":"x"}`,
			`(U+202E)`},
		{"long key", "ag_req", "POST", openPath,
			`{` + open + `,"reason":"lost phone","` + strings.Repeat("k", 65) + `":"x"}`,
			`a key is 65 characters long`},
		{"invalid UTF-8 in a value", "ag_req", "POST", openPath,
			`{` + open + `,"reason":"lost ` + "\xff" + `phone"}`,
			`reason: is not valid UTF-8 (byte 0xFF at byte 77 of the body)`},
		{"invalid UTF-8 in a key", "ag_req", "POST", openPath,
			`{` + open + `,"rea` + "\xc3" + `son":"x"}`,
			`is not valid UTF-8 (byte 0xC3 at byte`},
		{"invalid UTF-8 outside strings", "ag_req", "POST", openPath,
			`{` + open + `,"reason":"x"}` + "\xff",
			`is not valid UTF-8`},
		{"withdraw reason twice", "ag_req", "POST", "/api/v1/requests/req_bg1/withdraw",
			`{"reason":"a","reason":"b"}`, `key "reason" appears twice`},
		{"veto reason in two cases", "ag_senior", "POST", "/api/v1/requests/req_bg1/veto",
			`{"reason":"a","rEason":"b"}`, `keys "reason" and "rEason" name the same field`},
		{"agent role twice", "admin", "POST", "/admin/v1/agents",
			`{"id":"ag_x","name":"X","role":"agent","role":"admin"}`, `key "role" appears twice`},
		{"patch role twice", "admin", "PATCH", "/admin/v1/agents/ag_req",
			`{"role":"agent","Role":"senior"}`, `keys "role" and "Role" name the same field`},
		{"break-glass decision twice", "ag_senior", "POST", "/api/v1/requests/req_bg1/break-glass",
			`{"decision":"reject","reason":"` + bgReason + `","decision":"approve"}`,
			`key "decision" appears twice`},
		{"nested key twice", "admin", "PUT", "/admin/v1/customers/C-1042",
			`{"name":"Acme","primary_email":"owner@acme.test","pin_hash":"` + h + `","contacts":[{"email":"ops@acme.test"},{"email":"a@acme.test","EMAIL":"eve@evil.test"}]}`,
			`keys "email" and "EMAIL" in contacts[1] name the same field`},
		{"nested invalid UTF-8", "admin", "PUT", "/admin/v1/customers/C-1042",
			`{"name":"Acme","primary_email":"owner@acme.test","pin_hash":"` + h + `","contacts":[{"email":"ops` + "\xfe" + `@acme.test"}]}`,
			`contacts[0].email: is not valid UTF-8`},
		{"invalid UTF-8 in an array", "admin", "PUT", "/admin/v1/customers/C-1042",
			`{"name":"Acme","primary_email":"owner@acme.test","pin_hash":"` + h + `","servers":["srv-1","srv-` + "\xfe" + `"]}`,
			`servers[1]: is not valid UTF-8`},
		{"top-level key twice after a nested object", "admin", "PUT", "/admin/v1/customers/C-1042",
			`{"name":"Acme","contacts":[{"email":"ops@acme.test"}],"primary_email":"owner@acme.test","pin_hash":"` + h + `","name":"Evil"}`,
			`key "name" appears twice; send`},
		{"empty action body with a key twice", "admin", "POST", "/admin/v1/agents/ag_req/disable",
			`{"a":1,"a":2}`, `key "a" appears twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.snapshot()
			res := e.send(tt.who, tt.method, tt.path, tt.body)
			wantInvalid(t, res, tt.want)
			if strings.Contains(string(res.body), testPIN) {
				t.Fatalf("the answer quotes the PIN: %s", res.body)
			}
			e.unchanged(t, before)
		})
	}
}

// TestStrictJSONControls: the same key in two different objects, and keys
// that only look alike, are not duplicates.
func TestStrictJSONControls(t *testing.T) {
	t.Parallel()
	e := textEnv(t)
	hash, err := pinhash.Hash(testPIN, pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"name":"Acme","primary_email":"owner@acme.test","pin_hash":"` + jsonEsc(hash) +
		`","contacts":[{"email":"ops@acme.test"},{"email":"billing@acme.test"}],"servers":["srv-1","srv-2"]}`
	if res := e.admin("PUT", "/admin/v1/customers/C-1042", body); res.status != http.StatusOK {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	// One "Reason" alone still matches the field, as encoding/json matches
	// it: the body is refused for its empty PIN, not for its keys.
	res := e.as("ag_req", "POST", "/api/v1/requests", `{"action":"disable_2fa","customer_id":"C-1042","Reason":"lost phone","pin":""}`)
	if p := wantInvalid(t, res, "pin:"); strings.Contains(p.Detail, "key") {
		t.Fatalf("detail %q", p.Detail)
	}
}
