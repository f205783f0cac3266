package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/store"
)

// TestReimportCannotRedirect: through the admin API, a re-import that
// swaps in the importer's own addresses while a request is open changes
// nobody's notices at once, says so in the audit trail (the customer's and
// the request's), and cannot take the request's server away.
func TestReimportCannotRedirect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	ctx := context.Background()
	hash, err := pinhash.Hash(testPIN, pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	const reqID = "req_k3v9q2x7m4p8w1z5"
	if err := e.st.CreateRequest(ctx, store.Request{ID: reqID, WorkflowID: "wf-" + reqID, Action: domain.ActionResendCredentials,
		CustomerID: "C-1042", RequesterID: "ag_req", ServerID: "srv-1", Reason: "customer asked", Status: domain.StatusCooling}); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-60 * 24 * time.Hour).UTC().Format(time.RFC3339)
	customer := func(primary string, servers ...string) string {
		b, _ := json.Marshal(map[string]any{"name": "Acme", "primary_email": primary, "pin_hash": hash,
			"contacts": []map[string]any{{"email": "backup@attacker.test", "added_at": long, "verified_at": long}},
			"servers":  servers})
		return string(b)
	}

	// Another customer cannot take srv-1 while the request on it is open.
	res := e.admin("PUT", "/admin/v1/customers/C-9", customer("x@attacker.test", "srv-9", "srv-1"))
	if res.status != http.StatusConflict {
		t.Fatalf("import moving a busy server: %d %s", res.status, res.body)
	}
	p := res.problem(t)
	if p.Code != "server_has_open_request" {
		t.Fatalf("code %q (%s)", p.Code, p.Detail)
	}
	for _, want := range []string{"srv-1", reqID, "C-1042", "nothing was imported"} {
		if !strings.Contains(p.Detail, want) {
			t.Errorf("detail %q does not say %q", p.Detail, want)
		}
	}
	if _, err := e.st.Customer(ctx, "C-9"); err == nil {
		t.Fatal("the refused import created the customer")
	}
	if ok, err := e.st.ServerBelongsTo(ctx, "C-1042", "srv-1"); err != nil || !ok {
		t.Fatalf("srv-1 moved: %v %v", ok, err)
	}
	if ev := e.auditEvents("customer.imported"); len(ev) != 0 {
		t.Fatalf("a refused import was audited as done: %v", ev)
	}

	// The customer's own re-import, with a new primary and a backdated
	// contact, during the request's cooling period.
	before := time.Now()
	res = e.admin("PUT", "/admin/v1/customers/C-1042", customer("inbox@attacker.test", "srv-1"))
	if res.status != http.StatusOK {
		t.Fatalf("re-import: %d %s", res.status, res.body)
	}
	var c Customer
	if err := json.Unmarshal(res.body, &c); err != nil {
		t.Fatal(err)
	}
	if c.PrimaryEmail != "inbox@attacker.test" || c.PrimaryEmailSince == nil || c.PrimaryEmailSince.Before(before.Add(-time.Second)) {
		t.Fatalf("answer %s: want the new primary, ageing from now", res.body)
	}
	got := map[string]Contact{}
	for _, ct := range c.Contacts {
		got[ct.Email] = ct
	}
	if ct := got["backup@attacker.test"]; ct.AddedAt == nil || ct.AddedAt.Before(before.Add(-time.Second)) {
		t.Fatalf("backdated contact answered as %+v, want added now", ct)
	}
	if _, ok := got["owner@acme.test"]; !ok {
		t.Fatalf("the replaced primary is not on file: %s", res.body)
	}
	to, err := e.st.EstablishedEmails(ctx, "C-1042", time.Now(), 7*24*time.Hour)
	if err != nil || fmt.Sprint(to) != "[owner@acme.test]" {
		t.Fatalf("notices now go to %v (%v), want only the victim's address", to, err)
	}

	ev := e.auditEvents("customer.imported")
	if len(ev) != 1 {
		t.Fatalf("customer.imported events: %v", ev)
	}
	d := ev[0]
	if d["previous_primary_email"] != "owner@acme.test" || d["primary_email"] != "inbox@attacker.test" ||
		fmt.Sprint(d["added_contacts"]) != "[backup@attacker.test]" || fmt.Sprint(d["open_requests"]) != "["+reqID+"]" {
		t.Fatalf("customer.imported details = %v", d)
	}
	trail, err := e.st.AuditTrail(ctx, reqID)
	if err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, a := range trail {
		if a.Event == "customer.imported_during_request" && a.Details["previous_primary_email"] == "owner@acme.test" {
			seen = true
		}
	}
	if !seen {
		t.Fatalf("the request's trail does not show the import: %+v", trail)
	}
}
