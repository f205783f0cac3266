package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/pinhash"
)

// TestImportPhones: PUT /admin/v1/customers/{id} takes phone numbers in
// E.164 only and refuses anything else whole, naming the field and not the
// value; a backdated number new to an existing customer ages from the
// import; agents see every number masked, with whether it gets SMS notices;
// the audit trail keeps them masked too.
func TestImportPhones(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{EstablishedAfter: 72 * time.Hour})
	ctx := context.Background()
	hash, err := pinhash.Hash(testPIN, pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-60 * 24 * time.Hour).UTC().Format(time.RFC3339)
	body := func(id string, numbers ...string) string {
		phones := []map[string]any{}
		for _, n := range numbers {
			phones = append(phones, map[string]any{"number": n, "added_at": long, "verified_at": long})
		}
		b, _ := json.Marshal(map[string]any{"name": "Acme " + id, "primary_email": "owner@acme.test", "pin_hash": hash,
			"phones": phones, "servers": []string{}})
		return string(b)
	}

	for _, bad := range []string{"07911 123456", "+44 7911 123456", "+999123456789", "+447911123456789012", ""} {
		res := e.admin("PUT", "/admin/v1/customers/C-77", body("C-77", "+14155550123", bad))
		if res.status != http.StatusBadRequest {
			t.Fatalf("phone %q: %d %s, want 400", bad, res.status, res.body)
		}
		p := res.problem(t)
		if !strings.Contains(p.Detail, "phones[1].number") || !strings.Contains(p.Detail, "E.164") {
			t.Errorf("phone %q: detail %q does not name the field and the form", bad, p.Detail)
		}
		if bad != "" && strings.Contains(string(res.body), bad) {
			t.Errorf("phone %q: the refusal quotes it: %s", bad, res.body)
		}
		if _, err := e.st.Customer(ctx, "C-77"); err == nil {
			t.Fatalf("phone %q: the refused import created the customer", bad)
		}
	}

	// A new customer: billing's dates stand, the number is established.
	if res := e.admin("PUT", "/admin/v1/customers/C-77", body("C-77", " +447911123456 ")); res.status != http.StatusOK {
		t.Fatalf("import: %d %s", res.status, res.body)
	}
	// The attacker's re-import adds their own number, backdated.
	res := e.admin("PUT", "/admin/v1/customers/C-77", body("C-77", "+447911123456", "+447922999888"))
	if res.status != http.StatusOK {
		t.Fatalf("re-import: %d %s", res.status, res.body)
	}
	var c Customer
	if err := json.Unmarshal(res.body, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Phones) != 2 {
		t.Fatalf("admin answer phones = %+v", c.Phones)
	}

	view := e.as("ag_req", "GET", "/api/v1/customers/C-77", "")
	for _, full := range []string{"447911123456", "447922999888"} {
		if strings.Contains(string(view.body), full) {
			t.Fatalf("the agents' view shows a whole number: %s", view.body)
		}
	}
	v := mustDecode[CustomerView](t, view)
	want := map[string]bool{"+44 7*** ***456": true, "+44 7*** ***888": false}
	if len(v.Phones) != len(want) {
		t.Fatalf("phones = %+v", v.Phones)
	}
	for _, p := range v.Phones {
		if est, ok := want[p.Masked]; !ok || est != p.Established {
			t.Errorf("phone %+v, want established %v", p, est)
		}
	}

	ev := e.auditEvents("customer.imported")
	if len(ev) != 2 {
		t.Fatalf("audit events = %v", ev)
	}
	trail, _ := json.Marshal(ev)
	if strings.Contains(string(trail), "447922999888") || !strings.Contains(string(trail), `+44 7*** ***888`) {
		t.Errorf("audit trail should name the added phone masked: %s", trail)
	}
}
