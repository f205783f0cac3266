package risk

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/action"
	"github.com/vigil-oss/vigil/internal/panel"
)

var now = time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)

func ev(kind panel.SecurityEventKind, channel string, ago time.Duration) panel.SecurityEvent {
	return panel.SecurityEvent{Kind: kind, Channel: channel, At: now.Add(-ago)}
}

// TestDefaultPolicy: the founding incident (password reset by email, PIN
// read on the account page) needs the customer's authenticator; what the
// authenticator cannot prove is refused; old or harmless events change
// nothing.
func TestDefaultPolicy(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name    string
		action  action.Name
		events  []panel.SecurityEvent
		want    Requirement
		signals int
		noFact  bool
	}{
		{"quiet account", action.ResendCredentials, nil, Requirement{}, 0, false},
		{"the incident: reset by email, PIN viewed", action.ResendCredentials,
			[]panel.SecurityEvent{ev(panel.EventPasswordReset, "email", 2*time.Hour), ev(panel.EventPINViewed, "", time.Hour)},
			Requirement{Factor: true}, 2, false},
		{"reset by SMS is not the mailbox", action.ResendCredentials,
			[]panel.SecurityEvent{ev(panel.EventPasswordReset, "sms", time.Hour)}, Requirement{}, 0, false},
		{"reset by email a month ago", action.ReinstallVPS,
			[]panel.SecurityEvent{ev(panel.EventPasswordReset, "email", 30*day)}, Requirement{}, 0, false},
		{"email changed last week", action.AddContactEmail,
			[]panel.SecurityEvent{ev(panel.EventEmailChanged, "", 7*day)}, Requirement{Factor: true}, 1, false},
		{"login from a new country", action.ChangeAccountEmail,
			[]panel.SecurityEvent{{Kind: panel.EventNewLocation, Detail: "BR", At: now.Add(-day)}}, Requirement{Factor: true}, 1, false},
		{"2FA changed: the authenticator may be the attacker's", action.ResendCredentials,
			[]panel.SecurityEvent{ev(panel.Event2FAChanged, "", day)}, Requirement{Refuse: true}, 1, false},
		{"disable 2FA after a takeover cannot use the 2FA", action.Disable2FA,
			[]panel.SecurityEvent{ev(panel.EventPasswordReset, "email", time.Hour)}, Requirement{Factor: true, Refuse: true}, 1, true},
		{"an event from the future is ignored", action.ResendCredentials,
			[]panel.SecurityEvent{ev(panel.EventPINViewed, "", -time.Hour)}, Requirement{}, 0, false},
		{"an unknown kind is ignored", action.ResendCredentials,
			[]panel.SecurityEvent{ev("sim_swapped", "", time.Hour)}, Requirement{}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := DefaultPolicy().Assess(tc.action, tc.events, now)
			if got.Requirement != tc.want || len(got.Signals) != tc.signals || got.FactorUnavailable != tc.noFact {
				t.Fatalf("assessment %+v, want %+v with %d signals (factor unavailable %v)", got, tc.want, tc.signals, tc.noFact)
			}
			if got.Risky() != (tc.signals > 0) {
				t.Fatalf("Risky() = %v", got.Risky())
			}
		})
	}
}

// TestSummary: plain words, dates, and the panel's free text cut short.
func TestSummary(t *testing.T) {
	a := DefaultPolicy().Assess(action.ResendCredentials, []panel.SecurityEvent{
		ev(panel.EventPINViewed, "", time.Hour),
		{Kind: panel.EventNewLocation, Detail: strings.Repeat("x", 100), At: now.Add(-2 * time.Hour)},
	}, now)
	s := a.Summary()
	if !strings.HasPrefix(s, "new location (") || !strings.Contains(s, "pin viewed on 2026-12-08") || strings.Contains(s, strings.Repeat("x", 41)) {
		t.Fatalf("summary %q", s)
	}
	if got := (Assessment{}).Summary(); got != "no recent account security events" {
		t.Fatalf("empty summary %q", got)
	}
}

// TestParse: a configured policy replaces the default; every mistake is
// named and none is taken as "no checks".
func TestParse(t *testing.T) {
	good := `{"rules":[{"name":"reset","kinds":["password_reset"],"channel":"email","within":"72h","actions":["reinstall_vps"],"then":{"refuse":true}}]}`
	p, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Assess(action.ReinstallVPS, []panel.SecurityEvent{ev(panel.EventPasswordReset, "email", time.Hour)}, now); !got.Refuse {
		t.Fatalf("configured rule did not apply: %+v", got)
	}
	if got := p.Assess(action.ResendCredentials, []panel.SecurityEvent{ev(panel.EventPasswordReset, "email", time.Hour)}, now); got.Risky() {
		t.Fatalf("rule limited to reinstall_vps applied to resend_credentials: %+v", got)
	}
	if p, err := Parse([]byte(`{"rules":[]}`)); err != nil || len(p.Rules) != 0 {
		t.Fatalf("explicitly empty policy: %+v %v", p, err)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"not JSON", `nope`, "risk policy"},
		{"no rules", `{}`, `no "rules"`},
		{"unknown field", `{"rules":[],"extra":1}`, "unknown field"},
		{"two values", `{"rules":[]} {}`, "more than one"},
		{"no name", `{"rules":[{"kinds":["pin_viewed"],"within":"1h","then":{"factor":true}}]}`, "no name"},
		{"no kinds", `{"rules":[{"name":"x","within":"1h","then":{"factor":true}}]}`, "no event kinds"},
		{"unknown kind", `{"rules":[{"name":"x","kinds":["pin_guessed"],"within":"1h","then":{"factor":true}}]}`, "unknown event kind"},
		{"unknown action", `{"rules":[{"name":"x","kinds":["pin_viewed"],"within":"1h","actions":["format_disk"],"then":{"factor":true}}]}`, "unknown action"},
		{"no window", `{"rules":[{"name":"x","kinds":["pin_viewed"],"then":{"factor":true}}]}`, "positive duration"},
		{"bad window", `{"rules":[{"name":"x","kinds":["pin_viewed"],"within":"a week","then":{"factor":true}}]}`, "duration"},
		{"numeric window", `{"rules":[{"name":"x","kinds":["pin_viewed"],"within":3600,"then":{"factor":true}}]}`, "must be a string"},
		{"requires nothing", `{"rules":[{"name":"x","kinds":["pin_viewed"],"within":"1h","then":{}}]}`, "requires nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse([]byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%s) = %v, want an error saying %q", tc.body, err, tc.want)
			}
		})
	}
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatalf("the default policy is invalid: %v", err)
	}
}

// TestDefaultPolicyEveryActionAndSignal crosses every action with every
// kind of event, a day old, against the table in the README ("Account
// risk"): the factor for a takeover's signs, a refusal for a 2FA change,
// and a refusal where the factor cannot serve (disabling 2FA).
func TestDefaultPolicyEveryActionAndSignal(t *testing.T) {
	day := 24 * time.Hour
	for _, sp := range action.Specs() {
		for _, kind := range panel.KnownEventKinds() {
			channel := ""
			if kind == panel.EventPasswordReset {
				channel = "email"
			}
			got := DefaultPolicy().Assess(sp.Name, []panel.SecurityEvent{ev(kind, channel, day)}, now)
			var want Requirement
			switch {
			case kind == panel.Event2FAChanged:
				want = Requirement{Refuse: true}
			case sp.Name == action.Disable2FA:
				want = Requirement{Factor: true, Refuse: true}
			default:
				want = Requirement{Factor: true}
			}
			if got.Requirement != want || len(got.Signals) != 1 {
				t.Errorf("%s after %s: %+v, want %+v with one signal", sp.Name, kind, got, want)
			}
		}
	}
}
