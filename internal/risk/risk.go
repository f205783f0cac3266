// Package risk turns what the control panel knows about a customer's account
// (recent password resets, email and 2FA changes, logins from new places, the
// PIN shown or changed) into what a request for one action must then pass on
// top of the usual gates. It is the answer to the attacker who owns the
// customer's mailbox: they can reset the password by email and read the PIN
// on the account page, and the panel has seen them do it.
package risk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigil-oss/vigil/internal/action"
	"github.com/vigil-oss/vigil/internal/panel"
)

// Requirement is what a request must pass besides the PIN, the senior's
// approval, the notice and the cooling period.
type Requirement struct {
	// Factor: a code from the authenticator the customer enrolled, verified
	// by the panel, besides the PIN.
	Factor bool `json:"factor,omitempty"`
	// Refuse: the request cannot open in Vigil; the customer must be
	// verified another way (in person, ID check) by security.
	Refuse bool `json:"refuse,omitempty"`
}

// merge is the stricter of r and o.
func (r Requirement) merge(o Requirement) Requirement {
	return Requirement{Factor: r.Factor || o.Factor, Refuse: r.Refuse || o.Refuse}
}

// Rule says: if an event of one of Kinds (with Channel, when set) happened
// within Within, the request needs Then. Actions limits the rule to those
// actions (empty: every action).
type Rule struct {
	Name    string                    `json:"name"`
	Kinds   []panel.SecurityEventKind `json:"kinds"`
	Channel string                    `json:"channel,omitempty"`
	Within  Duration                  `json:"within"`
	Actions []action.Name             `json:"actions,omitempty"`
	Then    Requirement               `json:"then"`
}

// Policy is the list of rules; every rule that matches applies.
type Policy struct {
	Rules []Rule `json:"rules"`
}

// Signal is one event that made a rule match.
type Signal struct {
	Rule  string                  `json:"rule"`
	Kind  panel.SecurityEventKind `json:"kind"`
	At    time.Time               `json:"at"`
	Extra string                  `json:"extra,omitempty"` // channel or detail, as the panel gave it
}

// Assessment is what the policy made of an account for one action.
type Assessment struct {
	Requirement
	Signals []Signal `json:"signals"`
	// FactorUnavailable: a factor was asked for but the action cannot use
	// it (disabling 2FA cannot be proved with the 2FA being disabled), so
	// the request is refused instead.
	FactorUnavailable bool `json:"factor_unavailable,omitempty"`
}

// Risky reports whether any rule matched.
func (a Assessment) Risky() bool { return len(a.Signals) > 0 }

// Summary is a short, plain sentence of the signals, for an agent's error,
// the audit trail and the approval card; the panel's free text is cut.
func (a Assessment) Summary() string {
	if !a.Risky() {
		return "no recent account security events"
	}
	parts := make([]string, 0, len(a.Signals))
	for _, s := range a.Signals {
		p := strings.ReplaceAll(string(s.Kind), "_", " ")
		if s.Extra != "" {
			p += " (" + cut(s.Extra, 40) + ")"
		}
		parts = append(parts, p+" on "+s.At.UTC().Format("2006-01-02"))
	}
	return strings.Join(parts, "; ")
}

func cut(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// DefaultPolicy is the policy Vigil runs with unless configured otherwise.
// It asks for the enrolled factor whenever the PIN or the mailbox may be in
// someone else's hands, and refuses outright what the factor cannot cover:
// a 2FA change just made (the authenticator may be the attacker's) and
// disabling 2FA on an account that shows a takeover.
func DefaultPolicy() Policy {
	return Policy{Rules: []Rule{
		{Name: "password reset by email", Kinds: []panel.SecurityEventKind{panel.EventPasswordReset}, Channel: "email",
			Within: Duration(14 * 24 * time.Hour), Then: Requirement{Factor: true}},
		{Name: "account email changed", Kinds: []panel.SecurityEventKind{panel.EventEmailChanged},
			Within: Duration(14 * 24 * time.Hour), Then: Requirement{Factor: true}},
		{Name: "support PIN seen or changed", Kinds: []panel.SecurityEventKind{panel.EventPINViewed, panel.EventPINChanged},
			Within: Duration(7 * 24 * time.Hour), Then: Requirement{Factor: true}},
		{Name: "login from a new place", Kinds: []panel.SecurityEventKind{panel.EventNewLocation},
			Within: Duration(7 * 24 * time.Hour), Then: Requirement{Factor: true}},
		{Name: "2FA changed recently", Kinds: []panel.SecurityEventKind{panel.Event2FAChanged},
			Within: Duration(14 * 24 * time.Hour), Then: Requirement{Refuse: true}},
	}}
}

// FactorUsable reports whether a request for a can be verified with the
// customer's authenticator: not when the request is to disable it.
func FactorUsable(a action.Name) bool { return a != action.Disable2FA }

// Assess applies p to the account's events for a request for a at now.
func (p Policy) Assess(a action.Name, events []panel.SecurityEvent, now time.Time) Assessment {
	var out Assessment
	for _, r := range p.Rules {
		if len(r.Actions) > 0 && !slices.Contains(r.Actions, a) {
			continue
		}
		for _, e := range events {
			if !slices.Contains(r.Kinds, e.Kind) || (r.Channel != "" && e.Channel != r.Channel) {
				continue
			}
			if e.At.After(now) || now.Sub(e.At) > time.Duration(r.Within) {
				continue
			}
			extra := e.Channel
			if e.Detail != "" {
				extra = strings.TrimSpace(extra + " " + e.Detail)
			}
			out.Signals = append(out.Signals, Signal{Rule: r.Name, Kind: e.Kind, At: e.At.UTC(), Extra: extra})
			out.Requirement = out.merge(r.Then)
		}
	}
	if out.Factor && !FactorUsable(a) {
		out.FactorUnavailable, out.Refuse = true, true
	}
	sort.SliceStable(out.Signals, func(i, j int) bool { return out.Signals[i].At.Before(out.Signals[j].At) })
	return out
}

// Parse reads a policy from JSON ({"rules":[...]}), refusing unknown
// fields, unknown event kinds and actions, and rules that require nothing.
func Parse(b []byte) (Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return Policy{}, fmt.Errorf("risk policy: %w", err)
	}
	if dec.More() {
		return Policy{}, errors.New("risk policy: more than one JSON value")
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// Validate checks every rule names known kinds and actions, a window, and a
// requirement.
func (p Policy) Validate() error {
	if p.Rules == nil {
		return errors.New(`risk policy: no "rules" (an empty list turns the checks off; say so with "rules": [])`)
	}
	kinds := panel.KnownEventKinds()
	for i, r := range p.Rules {
		where := fmt.Sprintf("risk policy: rule %d (%q)", i+1, r.Name)
		switch {
		case strings.TrimSpace(r.Name) == "":
			return fmt.Errorf("risk policy: rule %d has no name", i+1)
		case len(r.Kinds) == 0:
			return fmt.Errorf("%s: no event kinds", where)
		case r.Within <= 0:
			return fmt.Errorf("%s: within must be a positive duration such as \"168h\"", where)
		case r.Then == Requirement{}:
			return fmt.Errorf("%s: then requires nothing (factor or refuse)", where)
		}
		for _, k := range r.Kinds {
			if !slices.Contains(kinds, k) {
				return fmt.Errorf("%s: unknown event kind %q (known: %v)", where, k, kinds)
			}
		}
		for _, a := range r.Actions {
			if _, ok := action.Lookup(a); !ok {
				return fmt.Errorf("%s: unknown action %q", where, a)
			}
		}
	}
	return nil
}

// Duration is a time.Duration written as "168h" in JSON.
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`a duration must be a string such as "168h"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}
