package panel_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/panel"
)

const secret = "JBSWY3DPEHPK3PXPJBSWY3DP"

func code(t *testing.T, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSecurityEvents: the events the panel holds for a customer come back
// in order, only since the time asked, and other customers' never.
func TestSecurityEvents(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := ctx(t)
	now := time.Now().UTC().Truncate(time.Second)
	for _, e := range []struct {
		customer, kind, channel string
		at                      time.Time
	}{
		{"C-1", "password_reset", "email", now.Add(-2 * time.Hour)},
		{"C-1", "pin_viewed", "", now.Add(-time.Hour)},
		{"C-1", "new_location", "", now.Add(-60 * 24 * time.Hour)},
		{"C-2", "email_changed", "", now.Add(-time.Hour)},
	} {
		if err := f.standin.PlantEvent(c, e.customer, e.kind, e.channel, "", e.at); err != nil {
			t.Fatal(err)
		}
	}
	got, err := f.client.SecurityEvents(c, "C-1", now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Kind != panel.EventPasswordReset || got[0].Channel != "email" || got[1].Kind != panel.EventPINViewed || !got[0].At.Equal(now.Add(-2*time.Hour)) {
		t.Fatalf("events %+v", got)
	}
	if got, err := f.client.SecurityEvents(c, "C-9", time.Time{}); err != nil || len(got) != 0 {
		t.Fatalf("a customer without events: %+v %v", got, err)
	}
	// Performing an action writes the account's own history.
	if _, err := f.client.Execute(c, panel.Job{IdempotencyKey: "k-email", Action: domain.ActionChangeAccountEmail, CustomerID: "C-3", Email: "new@example.test"}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.client.SecurityEvents(c, "C-3", time.Time{}); err != nil || len(got) != 1 || got[0].Kind != panel.EventEmailChanged {
		t.Fatalf("after an email change: %+v %v", got, err)
	}
}

// TestSecurityEventsRefusesBadAnswers: a panel that answers garbage is an
// error, never an empty list that would hide a signal.
func TestSecurityEventsRefusesBadAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"not JSON", "nope", 200},
		{"no events field", `{}`, 200},
		{"event without a kind", `{"events":[{"at":"2026-12-01T00:00:00Z"}]}`, 200},
		{"event without a time", `{"events":[{"kind":"pin_viewed"}]}`, 200},
		{"oversized detail", `{"events":[{"kind":"pin_viewed","at":"2026-12-01T00:00:00Z","detail":"` + strings.Repeat("x", 300) + `"}]}`, 200},
		{"server error", `{"error":{"code":"boom","message":"down"}}`, 500},
		{"a full page, which may be cut", `{"events":[` + strings.TrimSuffix(strings.Repeat(`{"kind":"pin_viewed","at":"2026-12-01T00:00:00Z"},`, 200), ",") + `]}`, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			cl, err := panel.NewClient(srv.URL, token, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := cl.SecurityEvents(ctx(t), "C-1", time.Time{}); err == nil {
				t.Fatalf("answer %q accepted: %+v", tc.body, got)
			}
		})
	}
}

// TestVerifyTOTP: the current code verifies once; a reused, wrong or
// malformed code does not; a customer without an authenticator is
// ErrNotEnrolled; disabling 2FA removes the authenticator; no error quotes
// the code.
func TestVerifyTOTP(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := ctx(t)
	if _, err := f.client.VerifyTOTP(c, "C-1", "123456"); !errors.Is(err, panel.ErrNotEnrolled) {
		t.Fatalf("not enrolled: %v", err)
	}
	if err := f.standin.EnrollTOTP(c, "C-1", secret); err != nil {
		t.Fatal(err)
	}
	now := code(t, time.Now())
	wrong := "000000"
	if wrong == now {
		wrong = "111111"
	}
	for _, tc := range []struct {
		name, code string
		want       bool
	}{
		{"wrong", wrong, false},
		{"letters", "12ab56", false},
		{"empty", "", false},
		{"too long", strings.Repeat("1", 40), false},
		{"current", now, true},
		{"current again (replayed)", now, false},
	} {
		ok, err := f.client.VerifyTOTP(c, "C-1", tc.code)
		if err != nil || ok != tc.want {
			t.Fatalf("%s: %v %v, want %v", tc.name, ok, err, tc.want)
		}
	}
	if _, err := f.client.Execute(c, panel.Job{IdempotencyKey: "k-2fa", Action: domain.ActionDisable2FA, CustomerID: "C-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.VerifyTOTP(c, "C-1", code(t, time.Now().Add(30*time.Second))); !errors.Is(err, panel.ErrNotEnrolled) {
		t.Fatalf("after disable_2fa: %v, want not enrolled", err)
	}
	bad, err := panel.NewClient(f.url, "wrong-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.VerifyTOTP(c, "C-1", "424242")
	if !panel.IsPermanent(err) || strings.Contains(err.Error(), "424242") {
		t.Fatalf("bad token: %v, want a permanent error without the code", err)
	}
}

// TestReadTokenCannotAct: the token the web front holds reads the account's
// events and verifies codes, and performs nothing.
func TestReadTokenCannotAct(t *testing.T) {
	t.Parallel()
	f := setup(t)
	c := ctx(t)
	ro, err := panel.NewClient(f.url, readToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.SecurityEvents(c, "C-1", time.Time{}); err != nil {
		t.Fatalf("read token reading events: %v", err)
	}
	if _, err := ro.VerifyTOTP(c, "C-1", "123456"); !errors.Is(err, panel.ErrNotEnrolled) {
		t.Fatalf("read token verifying a code: %v", err)
	}
	for _, j := range []panel.Job{
		{IdempotencyKey: "ro-1", Action: domain.ActionResendCredentials, CustomerID: "C-1", ServerID: "srv-1"},
		{IdempotencyKey: "ro-2", Action: domain.ActionDisable2FA, CustomerID: "C-1"},
	} {
		var pe *panel.PermanentError
		if _, err := ro.Execute(c, j); !errors.As(err, &pe) || pe.Status != http.StatusUnauthorized {
			t.Fatalf("read token performing %s: %v, want 401", j.Action, err)
		}
	}
	if p := performed(t, f); len(p) != 0 {
		t.Fatalf("performed with the read token: %+v", p)
	}
}
