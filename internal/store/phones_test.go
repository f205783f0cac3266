package store

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/pinhash"
)

// TestReimportCannotRedirectSMSNotices: phones age like addresses. A new
// customer's numbers take billing's dates; an admin who re-imports the
// customer with their own number, backdated, does not get the SMS notice
// until it has aged from the import, and cannot silence the victim's number
// by moving its dates forward.
func TestReimportCannotRedirectSMSNotices(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	hash, err := pinhash.Hash("246810", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	day, week := 24*time.Hour, 7*24*time.Hour
	long := time.Now().Add(-30 * day).UTC().Truncate(time.Second)
	res, err := s.ImportCustomer(ctx, CustomerImport{ID: "cus_p", Name: "Victim", PrimaryEmail: "owner@victim.test", PINHash: hash,
		Phones: []Phone{
			{Number: "+447911123456", AddedAt: long, VerifiedAt: &long},
			{Number: "+447911000111", AddedAt: long}, // never verified
			{Number: "+14155550123", AddedAt: time.Now().Add(-time.Hour), VerifiedAt: &long},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || len(res.AddedPhones)+len(res.PhoneDatesKept) != 0 {
		t.Fatalf("first import result = %+v", res)
	}
	want := func(when string, at time.Time, want ...string) {
		t.Helper()
		got, err := s.EstablishedPhones(ctx, "cus_p", at, week)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: SMS notices go to %q, want %q", when, got, want)
		}
	}
	want("after the first import", time.Now(), "+447911123456")

	recent := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	before := time.Now()
	res, err = s.ImportCustomer(ctx, CustomerImport{ID: "cus_p", Name: "Victim", PrimaryEmail: "owner@victim.test", PINHash: hash,
		Phones: []Phone{
			{Number: "+447911123456", AddedAt: recent, VerifiedAt: &recent}, // silence the victim's
			{Number: "+447911000111", AddedAt: long, VerifiedAt: &long},     // declare it verified long ago
			{Number: "+447922999888", AddedAt: long, VerifiedAt: &long},     // the attacker's, backdated
		}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.AddedPhones, []string{"+447922999888"}) ||
		!reflect.DeepEqual(res.PhoneDatesKept, []string{"+447911123456", "+447911000111"}) {
		t.Fatalf("re-import result = %+v", res)
	}
	want("right after the re-import", time.Now(), "+447911123456")
	want("six days later", time.Now().Add(6*day), "+447911123456")
	want("eight days later", time.Now().Add(8*day), "+14155550123", "+447911000111", "+447911123456", "+447922999888")

	c, err := s.Customer(ctx, "cus_p")
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]Phone{}
	for _, p := range c.Phones {
		by[p.Number] = p
	}
	if p := by["+447911123456"]; !p.AddedAt.Equal(long) || p.VerifiedAt == nil || !p.VerifiedAt.Equal(long) {
		t.Errorf("victim's phone = %+v, want its first dates", p)
	}
	if p := by["+447922999888"]; p.AddedAt.Before(before.Add(-time.Second)) || p.VerifiedAt == nil || p.VerifiedAt.Before(before.Add(-time.Second)) {
		t.Errorf("attacker's phone = %+v, want added and verified at the import", p)
	}
	if len(c.Phones) != 4 {
		t.Errorf("phones on file = %+v, want 4 (an import removes none)", c.Phones)
	}

	if _, err := s.EstablishedPhones(ctx, "cus_nobody", time.Now(), week); !errors.Is(err, ErrNotFound) {
		t.Errorf("EstablishedPhones of a missing customer: %v, want ErrNotFound", err)
	}
}

// TestImportRefusesANonE164Phone: the store keeps out another spelling of a
// number even if a caller skipped validation; nothing is imported, and the
// error does not quote the number.
func TestImportRefusesANonE164Phone(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	hash, err := pinhash.Hash("246810", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"07911 123456", "+44 7911 123456", ""} {
		_, err := s.ImportCustomer(ctx, CustomerImport{ID: "cus_bad", Name: "X", PrimaryEmail: "x@x.test", PINHash: hash,
			Phones: []Phone{{Number: bad}}})
		if err == nil {
			t.Fatalf("import with phone %q succeeded", bad)
		}
		if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error %q quotes the number", err)
		}
		if _, err := s.Customer(ctx, "cus_bad"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after a refused import the customer exists: %v", err)
		}
	}
}
