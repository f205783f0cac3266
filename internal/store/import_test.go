package store

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
)

// TestReimportCannotRedirectNotices: an admin who re-imports a customer
// with their own addresses, backdated, does not get the notices. The
// addresses already on file keep their dates and keep getting them; new
// ones, and a new primary, age from the import like any new address.
func TestReimportCannotRedirectNotices(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	hash, err := pinhash.Hash("246810", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	day, week := 24*time.Hour, 7*24*time.Hour
	long := time.Now().Add(-30 * day).UTC().Truncate(time.Second)
	first := CustomerImport{ID: "cus_v", Name: "Victim", PrimaryEmail: "owner@victim.test", PINHash: hash,
		Contacts: []Contact{
			{Email: "ops@victim.test", AddedAt: long, VerifiedAt: &long},
			{Email: "pending@victim.test", AddedAt: long}, // never verified
		}}
	res, err := s.ImportCustomer(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.PreviousPrimary != "" || len(res.AddedContacts)+len(res.DatesKept) != 0 {
		t.Fatalf("first import result = %+v, want created and nothing else", res)
	}
	wantEstablished := func(when string, at time.Time, want ...string) {
		t.Helper()
		got, err := s.EstablishedEmails(ctx, "cus_v", at, week)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: notices go to %q, want %q", when, got, want)
		}
	}
	wantEstablished("after the first import", time.Now(), "owner@victim.test", "ops@victim.test")

	// The attack: a new primary and a new contact, both backdated; the
	// victim's contact moved forward (to silence it) and the unverified one
	// declared verified long ago.
	recent := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	before := time.Now()
	res, err = s.ImportCustomer(ctx, CustomerImport{ID: "cus_v", Name: "Victim", PrimaryEmail: "inbox@attacker.test", PINHash: hash,
		Contacts: []Contact{
			{Email: "ops@victim.test", AddedAt: recent, VerifiedAt: &recent},
			{Email: "PENDING@victim.test", AddedAt: long, VerifiedAt: &long},
			{Email: "second@attacker.test", AddedAt: long, VerifiedAt: &long},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || res.PreviousPrimary != "owner@victim.test" ||
		!reflect.DeepEqual(res.AddedContacts, []string{"second@attacker.test"}) ||
		!reflect.DeepEqual(res.DatesKept, []string{"ops@victim.test", "PENDING@victim.test"}) {
		t.Fatalf("re-import result = %+v", res)
	}
	// The old primary is a contact now: the list is sorted.
	wantEstablished("right after the re-import", time.Now(), "ops@victim.test", "owner@victim.test")
	wantEstablished("six days later", time.Now().Add(6*day), "ops@victim.test", "owner@victim.test")
	// Once aged, the new addresses get notices too, beside the old ones:
	// the old primary never stops.
	wantEstablished("eight days later", time.Now().Add(8*day),
		"inbox@attacker.test", "ops@victim.test", "owner@victim.test", "pending@victim.test", "second@attacker.test")

	c, err := s.Customer(ctx, "cus_v")
	if err != nil {
		t.Fatal(err)
	}
	if c.PrimaryEmail != "inbox@attacker.test" || c.PrimaryEmailSince.Before(before.Add(-time.Second)) {
		t.Fatalf("primary %s since %s, want the new one, ageing from the import (%s)", c.PrimaryEmail, c.PrimaryEmailSince, before)
	}
	byEmail := map[string]Contact{}
	for _, ct := range c.Contacts {
		byEmail[strings.ToLower(ct.Email)] = ct
	}
	if ct := byEmail["ops@victim.test"]; !ct.AddedAt.Equal(long) || ct.VerifiedAt == nil || !ct.VerifiedAt.Equal(long) {
		t.Errorf("ops@ = %+v, want its first dates", ct)
	}
	if ct := byEmail["pending@victim.test"]; !ct.AddedAt.Equal(long) || ct.VerifiedAt == nil || ct.VerifiedAt.Before(before.Add(-time.Second)) {
		t.Errorf("pending@ = %+v, want verified at the import, not before", ct)
	}
	if ct := byEmail["second@attacker.test"]; ct.AddedAt.Before(before.Add(-time.Second)) || ct.VerifiedAt == nil || ct.VerifiedAt.Before(before.Add(-time.Second)) {
		t.Errorf("second@ = %+v, want added and verified at the import", ct)
	}
	if ct, ok := byEmail["owner@victim.test"]; !ok || !ct.AddedAt.Equal(time.Unix(0, 0)) {
		t.Errorf("old primary = %+v (on file: %v), want a contact established since it became the primary", ct, ok)
	}

	// Swapping back: the attacker's address stays on file (ageing from
	// when it became the primary), the victim's is established at once,
	// having been on file all along.
	res, err = s.ImportCustomer(ctx, CustomerImport{ID: "cus_v", Name: "Victim", PrimaryEmail: "owner@victim.test", PINHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	if res.PreviousPrimary != "inbox@attacker.test" {
		t.Fatalf("swap back result = %+v", res)
	}
	wantEstablished("after swapping back", time.Now(), "ops@victim.test", "owner@victim.test")
}

// TestImportRefusesMovingABusyServer: a server with an open request stays
// with its customer; the whole import changes nothing. Once the request has
// ended, the server moves and the result says from whom.
func TestImportRefusesMovingABusyServer(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s) // req_1: reinstall_vps on srv_1 of cus_1, open
	hash, err := pinhash.Hash("246810", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	imp := CustomerImport{ID: "cus_new", Name: "Taker", PrimaryEmail: "t@taker.test", PINHash: hash, Servers: []string{"srv_free", "srv_1"}}
	_, err = s.ImportCustomer(ctx, imp)
	var busy *ServerBusyError
	if !errors.As(err, &busy) || !errors.Is(err, ErrServerBusy) || !errors.Is(err, ErrConflict) {
		t.Fatalf("import moving srv_1 = %v, want a *ServerBusyError", err)
	}
	if busy.Server != "srv_1" || busy.RequestID != f.request || busy.Owner != f.customer || busy.Status != domain.StatusPINCheck {
		t.Fatalf("busy = %+v", busy)
	}
	for _, want := range []string{"srv_1", f.request, f.customer, "until that request ends"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if n := countRows(t, s, "SELECT count(*) FROM customers WHERE id = 'cus_new'") +
		countRows(t, s, "SELECT count(*) FROM customer_servers WHERE server_id = 'srv_free'"); n != 0 {
		t.Fatalf("the refused import left %d rows", n)
	}
	if ok, err := s.ServerBelongsTo(ctx, f.customer, "srv_1"); err != nil || !ok {
		t.Fatalf("srv_1 left its customer: %v, %v", ok, err)
	}
	// Listing a server the customer already has is no move.
	if _, err := s.ImportCustomer(ctx, CustomerImport{ID: f.customer, Name: "Acme", PrimaryEmail: "owner@acme.test", PINHash: hash, Servers: []string{"srv_1"}}); err != nil {
		t.Fatalf("re-import of the owner with its busy server: %v", err)
	}

	if err := s.UpdateRequest(ctx, f.request, RequestUpdate{Status: domain.StatusExecuted}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	res, err := s.ImportCustomer(ctx, imp)
	if err != nil {
		t.Fatalf("import after the request ended: %v", err)
	}
	if !reflect.DeepEqual(res.MovedServers, []ServerMove{{Server: "srv_1", From: f.customer}}) {
		t.Fatalf("moved = %+v, want srv_1 from %s", res.MovedServers, f.customer)
	}
	if ok, err := s.ServerBelongsTo(ctx, "cus_new", "srv_1"); err != nil || !ok {
		t.Fatalf("srv_1 did not move: %v, %v", ok, err)
	}
}

// TestImportListsOpenRequests: the result names the requests an import ran
// into, for the audit trail of each.
func TestImportListsOpenRequests(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	hash, err := pinhash.Hash("246810", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRequest(ctx, Request{ID: "req_2", WorkflowID: "wf-req_2", Action: domain.ActionDisable2FA,
		CustomerID: f.customer, RequesterID: f.requester, Reason: "r", CreatedAt: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRequest(ctx, Request{ID: "req_3", WorkflowID: "wf-req_3", Action: domain.ActionResendCredentials, ServerID: "srv_1",
		CustomerID: f.customer, RequesterID: f.requester, Reason: "r", Status: domain.StatusRejected}); err != nil {
		t.Fatal(err)
	}
	res, err := s.ImportCustomer(ctx, CustomerImport{ID: f.customer, PrimaryEmail: "owner@acme.test", PINHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.OpenRequests, []string{f.request, "req_2"}) {
		t.Fatalf("open requests = %v, want req_1, req_2", res.OpenRequests)
	}
}

// TestImportDatesAServersArrival: a server an import moves to another
// customer (here a brand-new one, whose addresses billing dates as it
// likes) is dated on its new customer by Vigil's clock, remembers where it
// came from, and the move is queued for the security channel in the
// import's own transaction. A server Vigil first sees with its customer has
// no arrival, and listing it again moves nothing.
func TestImportDatesAServersArrival(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	hash, err := pinhash.Hash("246810", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-400 * 24 * time.Hour)
	if _, err := s.ImportCustomer(ctx, CustomerImport{ID: "cus_v", Name: "Victim", PrimaryEmail: "owner@victim.test", PINHash: hash,
		Servers: []string{"srv_idle"}}); err != nil {
		t.Fatal(err)
	}
	if _, moved, err := s.ServerArrival(ctx, "cus_v", "srv_idle"); err != nil || moved {
		t.Fatalf("a server first seen with its customer: moved %v, %v; want no arrival", moved, err)
	}
	before := time.Now()
	res, err := s.ImportCustomer(ctx, CustomerImport{ID: "cus_taker", Name: "Taker", PrimaryEmail: "t@taker.test", PINHash: hash,
		Contacts: []Contact{{Email: "old@taker.test", AddedAt: long, VerifiedAt: &long}}, Servers: []string{"srv_idle"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.MovedServers, []ServerMove{{Server: "srv_idle", From: "cus_v"}}) {
		t.Fatalf("moved = %+v", res.MovedServers)
	}
	arr, moved, err := s.ServerArrival(ctx, "cus_taker", "srv_idle")
	if err != nil || !moved {
		t.Fatalf("ServerArrival after the move: moved %v, %v", moved, err)
	}
	if arr.From != "cus_v" || arr.At.Before(before.Add(-time.Second)) || arr.At.After(time.Now().Add(time.Second)) {
		t.Fatalf("arrival = %+v, want from cus_v at the import (after %s)", arr, before)
	}
	if _, moved, err := s.ServerArrival(ctx, "cus_v", "srv_idle"); err != nil || moved {
		t.Fatalf("the previous owner still sees an arrival: %v %v", moved, err)
	}
	alerts, err := s.QueuedAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 1 || alerts[0].Kind != AlertServerMoved || alerts[0].Details["server"] != "srv_idle" ||
		alerts[0].Details["from"] != "cus_v" || alerts[0].Details["to"] != "cus_taker" || alerts[0].Details["new_customer"] != true {
		t.Fatalf("alerts = %+v, want one server_moved srv_idle cus_v -> cus_taker (new customer)", alerts)
	}
	// Listed again: no move, no new date, no second alert.
	if _, err := s.ImportCustomer(ctx, CustomerImport{ID: "cus_taker", Name: "Taker", PrimaryEmail: "t@taker.test", PINHash: hash,
		Servers: []string{"srv_idle"}}); err != nil {
		t.Fatal(err)
	}
	again, _, err := s.ServerArrival(ctx, "cus_taker", "srv_idle")
	if err != nil || !again.At.Equal(arr.At) {
		t.Fatalf("re-listing moved the arrival: %+v -> %+v (%v)", arr, again, err)
	}
	if alerts, _ := s.QueuedAlerts(ctx); len(alerts) != 1 {
		t.Fatalf("%d alerts after re-listing, want 1", len(alerts))
	}
}

// TestImportSaysWhenThePINChanged: a re-import that replaces an existing
// customer's PIN hash says so (an admin who sets a PIN they know could open
// requests for the customer); one that keeps it, or creates the customer,
// does not.
func TestImportSaysWhenThePINChanged(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	h1, err := pinhash.Hash("111111", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	h2, err := pinhash.Hash("222222", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		hash string
		want bool
	}{{h1, false}, {h1, false}, {h2, true}, {h2, false}} {
		res, err := s.ImportCustomer(ctx, CustomerImport{ID: "cus_pin", Name: "Pin Co", PrimaryEmail: "owner@pin.test", PINHash: tc.hash})
		if err != nil {
			t.Fatal(err)
		}
		if res.PINChanged != tc.want {
			t.Fatalf("import %d: PINChanged = %v, want %v", i, res.PINChanged, tc.want)
		}
	}
}
