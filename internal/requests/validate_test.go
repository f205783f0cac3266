package requests

import (
	"strings"
	"testing"

	"github.com/vigil-oss/vigil/internal/domain"
)

// TestNormalized: the params Open uses are the ones the text rule passed,
// trimmed and canonical; what it refuses is refused as invalid_input naming
// the field.
func TestNormalized(t *testing.T) {
	base := OpenParams{Action: domain.ActionAddContactEmail, CustomerID: "C-1042", Email: "Dana@münchen.DE",
		Reason: "  new on-call address  ", PIN: "482913"}
	got, err := base.Normalized()
	if err != nil {
		t.Fatal(err)
	}
	if got.Email != "Dana@xn--mnchen-3ya.de" || got.Reason != "new on-call address" {
		t.Fatalf("Normalized = email %q reason %q", got.Email, got.Reason)
	}
	tests := []struct {
		name   string
		change func(*OpenParams)
		want   string
	}{
		{"bidi in the reason", func(p *OpenParams) { p.Reason = "verified \u202eenohp yb" }, "reason: contains a bidi control character (U+202E) at character 10"},
		{"NUL in the reason", func(p *OpenParams) { p.Reason = "a\x00" }, "reason: contains a NUL character"},
		{"trailing line break", func(p *OpenParams) { p.Reason = "lost phone\n" }, "reason: contains a line break"},
		{"blank reason", func(p *OpenParams) { p.Reason = "   " }, "reason is required"},
		{"reason too long", func(p *OpenParams) { p.Reason = strings.Repeat("é", MaxReasonLen+1) }, "reason: is 501 characters long; the limit is 500"},
		{"mixed-script email", func(p *OpenParams) { p.Email = "dana@ex\u0430mple.com" }, "email: has a domain whose label 1 mixes scripts"},
		{"email on a non-email action", func(p *OpenParams) { p.Action = domain.ActionDisable2FA }, "email: disable_2fa does not take an email address"},
		{"zero-width in the customer id", func(p *OpenParams) { p.CustomerID = "C-10\u200b42" }, "customer_id: contains an invisible character (U+200B)"},
		{"bad action", func(p *OpenParams) { p.Action = "wipe\x1b" }, "action: contains a control character (U+001B)"},
		{"bad PIN", func(p *OpenParams) { p.PIN = "12" }, "pin: the PIN must be"},
		{"five-digit PIN", func(p *OpenParams) { p.PIN = "48291" }, "pin: the PIN must be 6 to 32 letters or digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			tt.change(&p)
			_, err := p.Normalized()
			r, ok := AsRefusal(err)
			if !ok || r.Code != CodeInvalid || !strings.Contains(r.Message, tt.want) {
				t.Fatalf("Normalized = %v, want invalid_input containing %q", err, tt.want)
			}
			if strings.Contains(r.Message, p.PIN) {
				t.Fatalf("message quotes the PIN: %q", r.Message)
			}
			if p.Validate() == nil {
				t.Fatal("Validate accepts what Normalized refuses")
			}
		})
	}
}
