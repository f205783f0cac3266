package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/store"
)

// TestCustomerView checks GET /api/v1/customers/{id}: which addresses are
// established under the configured age, the lockout as the configured
// policy counts it, who may ask, and that the PIN hash never shows.
func TestCustomerView(t *testing.T) {
	t.Parallel()
	policy := store.PINPolicy{MaxFailures: 3, Window: 10 * time.Minute, Lockout: time.Hour}
	e := newEnv(t, adminToken, Options{EstablishedAfter: 72 * time.Hour, PINPolicy: policy})
	ctx := context.Background()
	hash, err := pinhash.Hash(testPIN, pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	old, fourDays, twoDays := now.Add(-30*24*time.Hour), now.Add(-96*time.Hour), now.Add(-48*time.Hour)
	if err := e.st.UpsertCustomer(ctx, store.CustomerImport{ID: "C-1042", Name: "Acme", PrimaryEmail: "owner@acme.test", PINHash: hash,
		Contacts: []store.Contact{
			{Email: "ops@acme.test", AddedAt: old, VerifiedAt: &old},           // established
			{Email: "cto@acme.test", AddedAt: fourDays, VerifiedAt: &fourDays}, // established under 72h
			{Email: "new@acme.test", AddedAt: twoDays, VerifiedAt: &twoDays},   // too young
			{Email: "unverified@acme.test", AddedAt: old},                      // never verified
		},
		Servers: []string{"srv-1", "srv-2"}}); err != nil {
		t.Fatal(err)
	}
	// C-1042 existed already (newEnv), so the import took none of those
	// dates: addresses new to a customer age from the import. Backdate them
	// in Vigil's own record instead.
	for _, ct := range []struct {
		email    string
		added    time.Time
		verified *time.Time
	}{{"ops@acme.test", old, &old}, {"cto@acme.test", fourDays, &fourDays}, {"new@acme.test", twoDays, &twoDays}, {"unverified@acme.test", old, nil}} {
		if _, err := e.db.ExecContext(ctx, `UPDATE customer_contacts SET added_at = $2, verified_at = $3 WHERE customer_id = 'C-1042' AND email = $1`,
			ct.email, ct.added, ct.verified); err != nil {
			t.Fatal(err)
		}
	}
	show := func(who string) CustomerView {
		t.Helper()
		res := e.as(who, "GET", "/api/v1/customers/C-1042", "")
		for _, secret := range []string{hash, "argon2", "pin_hash", testPIN} {
			if strings.Contains(string(res.body), secret) {
				t.Fatalf("the customer view shows %q: %s", secret, res.body)
			}
		}
		return mustDecode[CustomerView](t, res)
	}

	v := show("ag_req")
	if v.ID != "C-1042" || v.Name != "Acme" || v.PrimaryEmail != "owner@acme.test" || !v.PrimaryEstablished || v.PrimaryEmailSince != nil || v.ImportedAt == nil {
		t.Errorf("customer = %+v", v)
	}
	if strings.Join(v.Servers, ",") != "srv-1,srv-2" || v.EstablishedAfterSeconds != 72*3600 {
		t.Errorf("servers %v, established after %ds", v.Servers, v.EstablishedAfterSeconds)
	}
	wantContacts := map[string]bool{"ops@acme.test": true, "cto@acme.test": true, "new@acme.test": false, "unverified@acme.test": false}
	if len(v.Contacts) != len(wantContacts) {
		t.Fatalf("contacts %+v", v.Contacts)
	}
	for _, c := range v.Contacts {
		if want, ok := wantContacts[c.Email]; !ok || c.Established != want {
			t.Errorf("contact %s established %v, want %v", c.Email, c.Established, want)
		}
		if c.AddedAt == nil || (c.Email == "unverified@acme.test") != (c.VerifiedAt == nil) {
			t.Errorf("contact %+v: added or verified missing", c)
		}
	}
	if l := v.Lock; l.Locked || l.RecentFailures != 0 || l.MaxFailures != 3 || l.WindowSeconds != 600 || l.LockedUntil != nil {
		t.Errorf("lock = %+v, want unlocked, no failures, policy 3 in 600s", l)
	}

	// Two wrong PINs count; the third locks.
	for i := range 2 {
		if _, err := e.st.CheckPIN(ctx, "C-1042", "000000", time.Now(), policy, pinhash.Verify); err != nil {
			t.Fatal(err)
		}
		if l := show("ag_senior").Lock; l.Locked || l.RecentFailures != i+1 || l.FirstFailureAt == nil {
			t.Errorf("after %d wrong PINs: lock %+v", i+1, l)
		}
	}
	out, err := e.st.CheckPIN(ctx, "C-1042", "000000", time.Now(), policy, pinhash.Verify)
	if err != nil || !out.JustLocked {
		t.Fatalf("third wrong PIN: %+v %v", out, err)
	}
	if l := show("ag_req").Lock; !l.Locked || l.LockedUntil == nil || !l.LockedUntil.Equal(out.LockedUntil.UTC().Truncate(time.Microsecond)) || l.RecentFailures != 0 {
		t.Errorf("locked customer: lock %+v, want locked until %v", l, out.LockedUntil)
	}

	// An email change makes a young primary: dated, not established.
	if err := e.st.SetPrimaryEmail(ctx, "C-1042", "fresh@acme.test"); err != nil {
		t.Fatal(err)
	}
	v = show("ag_req")
	if v.PrimaryEmail != "fresh@acme.test" || v.PrimaryEstablished || v.PrimaryEmailSince == nil {
		t.Errorf("after an email change: %s established %v since %v", v.PrimaryEmail, v.PrimaryEstablished, v.PrimaryEmailSince)
	}

	for _, tc := range []struct {
		name, path, auth string
		status           int
		code             string
	}{
		{"unknown customer", "/api/v1/customers/C-9999", "Bearer " + e.tokens["ag_req"], 404, "unknown_customer"},
		{"not a customer id", "/api/v1/customers/C%201042", "Bearer " + e.tokens["ag_req"], 404, "unknown_customer"},
		{"disabled agent", "/api/v1/customers/C-1042", "Bearer " + e.tokens["ag_off"], 401, "unauthenticated"},
		{"admin token", "/api/v1/customers/C-1042", "Bearer " + adminToken, 401, "unauthenticated"},
		{"no token", "/api/v1/customers/C-1042", "", 401, "unauthenticated"},
		{"wrong method", "/api/v1/customers/C-1042", "Bearer " + e.tokens["ag_req"], 405, "method_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "GET"
			if tc.code == "method_not_allowed" {
				method = "DELETE"
			}
			res := e.call(method, tc.path, tc.auth, "", "")
			if res.status != tc.status || res.problem(t).Code != tc.code {
				t.Fatalf("%d %s, want %d %s", res.status, res.body, tc.status, tc.code)
			}
			if tc.status == http.StatusNotFound && strings.Contains(string(res.body), "Acme") {
				t.Errorf("refusal names the customer: %s", res.body)
			}
		})
	}
}
