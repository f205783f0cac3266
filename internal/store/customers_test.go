package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/pinhash"
)

func TestUpsertCustomerAndRead(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	hash, err := pinhash.Hash("1111", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	verified := t0.Add(-9 * 24 * time.Hour)
	imp := CustomerImport{
		ID: "cus_9", Name: "Globex", PrimaryEmail: "hank@globex.test", PINHash: hash,
		Contacts: []Contact{{Email: "ops@globex.test", AddedAt: t0.Add(-10 * 24 * time.Hour), VerifiedAt: &verified}},
		Servers:  []string{"srv_b", "srv_a"},
	}
	if err := s.UpsertCustomer(ctx, imp); err != nil {
		t.Fatal(err)
	}
	c, err := s.Customer(ctx, "cus_9")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "Globex" || c.PrimaryEmail != "hank@globex.test" || !reflect.DeepEqual(c.Servers, []string{"srv_a", "srv_b"}) {
		t.Fatalf("customer = %+v", c)
	}
	if len(c.Contacts) != 1 || c.Contacts[0].Email != "ops@globex.test" || !c.Contacts[0].AddedAt.Equal(t0.Add(-10*24*time.Hour)) ||
		c.Contacts[0].VerifiedAt == nil || !c.Contacts[0].VerifiedAt.Equal(verified) {
		t.Fatalf("contacts = %+v", c.Contacts)
	}

	// A second import updates the row, keeps earlier contacts and servers,
	// and does not duplicate a contact differing only in case.
	hash2, err := pinhash.Hash("2222", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	imp2 := CustomerImport{ID: "cus_9", Name: "Globex Corp", PrimaryEmail: "scorpio@globex.test", PINHash: hash2,
		Contacts: []Contact{{Email: "OPS@globex.test"}}, Servers: []string{"srv_c"}}
	if err := s.UpsertCustomer(ctx, imp2); err != nil {
		t.Fatal(err)
	}
	c, err = s.Customer(ctx, "cus_9")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "Globex Corp" || c.PrimaryEmail != "scorpio@globex.test" || !reflect.DeepEqual(c.Servers, []string{"srv_a", "srv_b", "srv_c"}) {
		t.Fatalf("after re-import customer = %+v", c)
	}
	// The replaced primary stays on file, established as it was (imported
	// addresses count from the epoch).
	if len(c.Contacts) != 2 || c.Contacts[0].Email != "hank@globex.test" || !c.Contacts[0].AddedAt.Equal(time.Unix(0, 0)) ||
		c.Contacts[1].VerifiedAt == nil || !c.Contacts[1].AddedAt.Equal(t0.Add(-10*24*time.Hour)) {
		t.Fatalf("after re-import contacts = %+v (want the old primary, then the original contact, still verified)", c.Contacts)
	}
	var stored string
	if err := s.DB().QueryRow("SELECT pin_hash FROM customers WHERE id = 'cus_9'").Scan(&stored); err != nil || stored != hash2 {
		t.Fatalf("pin_hash not updated: %v", err)
	}

	if _, err := s.Customer(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Customer(missing) error = %v, want ErrNotFound", err)
	}
}

func TestUpsertCustomerRejects(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	hash, err := pinhash.Hash("1111", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		imp  CustomerImport
	}{
		{"empty id", CustomerImport{PrimaryEmail: "a@b.test", PINHash: hash}},
		{"empty email", CustomerImport{ID: "c", PINHash: hash}},
		{"plain PIN", CustomerImport{ID: "c", PrimaryEmail: "a@b.test", PINHash: "918273"}},
		{"empty contact", CustomerImport{ID: "c", PrimaryEmail: "a@b.test", PINHash: hash, Contacts: []Contact{{}}}},
		{"empty server", CustomerImport{ID: "c", PrimaryEmail: "a@b.test", PINHash: hash, Servers: []string{""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.UpsertCustomer(ctx, tt.imp)
			if err == nil {
				t.Fatal("UpsertCustomer accepted bad input")
			}
			if strings.Contains(err.Error(), "918273") {
				t.Fatalf("error leaks the PIN: %v", err)
			}
			if n := countRows(t, s, "SELECT count(*) FROM customers"); n != 0 {
				t.Fatalf("bad import left %d customers", n)
			}
		})
	}
}

func TestCustomerImportRedactsPINHash(t *testing.T) {
	t.Parallel()
	imp := CustomerImport{ID: "cus_1", PrimaryEmail: "a@b.test", PINHash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("import", "customer", imp)
	for _, out := range []string{imp.String(), fmt.Sprint(imp), fmt.Sprintf("%+v", imp), fmt.Sprintf("%#v", imp), logged.String()} {
		if strings.Contains(out, "aGFzaGhhc2hoYXNo") || strings.Contains(out, "argon2id") {
			t.Errorf("output leaks the PIN hash: %s", out)
		}
		if !strings.Contains(out, "cus_1") {
			t.Errorf("output lost the id: %s", out)
		}
	}
}

func TestEstablishedEmails(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	day := 24 * time.Hour
	at := func(d time.Duration) *time.Time { v := t0.Add(-d); return &v }
	contacts := []Contact{
		{Email: "zed@acme.test", AddedAt: t0.Add(-30 * day), VerifiedAt: at(29 * day)},         // established
		{Email: "old@acme.test", AddedAt: t0.Add(-10 * day), VerifiedAt: at(8 * day)},          // verified 8 days ago
		{Email: "fresh@acme.test", AddedAt: t0.Add(-2 * day), VerifiedAt: at(2 * day)},         // added 2 days ago
		{Email: "unverified@acme.test", AddedAt: t0.Add(-30 * day)},                            // never verified
		{Email: "recentverify@acme.test", AddedAt: t0.Add(-30 * day), VerifiedAt: at(1 * day)}, // verified yesterday
		{Email: "Owner@Acme.test", AddedAt: t0.Add(-30 * day), VerifiedAt: at(30 * day)},       // primary, other case
		{Email: "Mixed@acme.test", AddedAt: t0.Add(-30 * day), VerifiedAt: at(30 * day)},       // sorts case-insensitively
	}
	hash, err := pinhash.Hash("246810", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	// A customer new to Vigil is taken with the dates billing gives.
	f.customer = "cus_est"
	if err := s.UpsertCustomer(ctx, CustomerImport{ID: f.customer, PrimaryEmail: "owner@acme.test", PINHash: hash, Contacts: contacts}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddContact(ctx, f.customer, "attacker@evil.test", t0.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		minAge time.Duration
		want   []string
	}{
		{"seven days", 7 * day, []string{"owner@acme.test", "Mixed@acme.test", "old@acme.test", "zed@acme.test"}},
		{"zero age still needs verification", 0, []string{"owner@acme.test", "fresh@acme.test", "Mixed@acme.test", "old@acme.test", "recentverify@acme.test", "zed@acme.test"}},
		{"older than everything", 365 * day, []string{"owner@acme.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.EstablishedEmails(ctx, f.customer, t0, tt.minAge)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("EstablishedEmails = %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := s.EstablishedEmails(ctx, "nobody", t0, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing customer error = %v, want ErrNotFound", err)
	}
}

func TestAddContactAndPrimaryEmail(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	for range 2 { // idempotent
		if err := s.AddContact(ctx, f.customer, "new@acme.test", t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddContact(ctx, f.customer, "NEW@acme.test", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	c, err := s.Customer(ctx, f.customer)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Contacts) != 1 || c.Contacts[0].Email != "new@acme.test" || c.Contacts[0].VerifiedAt != nil || !c.Contacts[0].AddedAt.Equal(t0) {
		t.Fatalf("contacts = %+v, want one unverified new@acme.test added at t0", c.Contacts)
	}
	if err := s.AddContact(ctx, "nobody", "x@y.test", t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AddContact(missing customer) = %v, want ErrNotFound", err)
	}
	if err := s.AddContact(ctx, f.customer, " ", t0); err == nil {
		t.Fatal("AddContact accepted an empty email")
	}

	if err := s.SetPrimaryEmail(ctx, f.customer, "boss@acme.test"); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Customer(ctx, f.customer); err != nil || c.PrimaryEmail != "boss@acme.test" {
		t.Fatalf("primary email = %q, %v", c.PrimaryEmail, err)
	}
	if err := s.SetPrimaryEmail(ctx, "nobody", "x@y.test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetPrimaryEmail(missing) = %v, want ErrNotFound", err)
	}
	if err := s.SetPrimaryEmail(ctx, f.customer, ""); err == nil {
		t.Fatal("SetPrimaryEmail accepted an empty email")
	}
}

func TestServerBelongsTo(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	hash, err := pinhash.Hash("1", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpsertCustomer(ctx, CustomerImport{ID: "cus_other", PrimaryEmail: "o@o.test", PINHash: hash, Servers: []string{"srv_other"}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		customer, server string
		want             bool
	}{
		{f.customer, "srv_1", true},
		{f.customer, "srv_other", false},
		{"cus_other", "srv_1", false},
		{f.customer, "srv_missing", false},
		{"nobody", "srv_1", false},
	}
	for _, tt := range tests {
		got, err := s.ServerBelongsTo(ctx, tt.customer, tt.server)
		if err != nil || got != tt.want {
			t.Errorf("ServerBelongsTo(%s, %s) = %v, %v; want %v", tt.customer, tt.server, got, err, tt.want)
		}
	}
}

// TestChangedPrimaryEmailMustAge: after an email change the old address
// keeps getting notices and the new one only once it has aged, so one
// successful change cannot cut the customer out of the next notice.
func TestChangedPrimaryEmailMustAge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	f := seed(t, s)
	if err := s.SetPrimaryEmail(ctx, f.customer, "new-owner@acme.test"); err != nil {
		t.Fatal(err)
	}
	week := 7 * 24 * time.Hour
	tests := []struct {
		name string
		at   time.Time
		want []string
	}{
		{"right after the change", time.Now(), []string{"owner@acme.test"}},
		{"after the new address aged", time.Now().Add(week + time.Hour), []string{"new-owner@acme.test", "owner@acme.test"}},
	}
	for _, tt := range tests {
		got, err := s.EstablishedEmails(ctx, f.customer, tt.at, week)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: established = %v, want %v", tt.name, got, tt.want)
		}
	}
	c, err := s.Customer(ctx, f.customer)
	if err != nil {
		t.Fatal(err)
	}
	if c.PrimaryEmail != "new-owner@acme.test" {
		t.Fatalf("primary = %q", c.PrimaryEmail)
	}
}
