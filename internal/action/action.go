// Package action describes each sensitive action Vigil guards, once: what it
// needs, how long the customer has to cancel, the words used for it in
// Slack, mail and the CLI, and the control-panel call that performs it.
// Every other package reads these specs instead of switching on the action.
package action

import (
	"fmt"
	"strings"
	"time"
)

// Name is a sensitive operation on a customer's account, as stored and sent
// on the wire ("resend_credentials").
type Name string

// The actions Vigil guards.
const (
	ResendCredentials  Name = "resend_credentials"
	ReinstallVPS       Name = "reinstall_vps"
	AddContactEmail    Name = "add_contact_email"
	ChangeAccountEmail Name = "change_account_email"
	Disable2FA         Name = "disable_2fa"
)

// Target says what an action acts on besides the customer's account.
type Target int

// The targets.
const (
	TargetAccount Target = iota + 1 // the account itself
	TargetServer                    // one of the customer's servers
	TargetEmail                     // a new email address the request carries
)

// Words renders a sentence about the action from its target values.
type Words func(server, email string) string

// Spec is everything Vigil says about, and does for, one action.
type Spec struct {
	Name   Name
	Target Target
	// ServerOptional: the server may be left out when the customer has one.
	ServerOptional bool

	CoolingDefault time.Duration
	// CoolingFloor is the shortest cooling period the workflow runs the
	// action with, whatever the worker's setting says (only the worker's
	// explicit development override goes below it, audited). 24 h for the
	// actions that hand over an account or a server (its credentials, its
	// login address, its second factor), 12 h for the others. The workflow
	// reads it at the start of a run: changing it changes the workflow, so
	// it needs a change id of its own.
	CoolingFloor   time.Duration
	CoolingSetting string // environment variable overriding CoolingDefault
	CoolingHelp    string // one line for the settings listing

	Title    string                               // header in Slack: "Reinstall VPS"
	Describe Words                                // what it does, for the senior, audit and CLI help
	Doing    func(customer, server string) string // confirm dialog: "reinstalling VPS srv-1 for C-1"

	// Customer mail wording.
	WillHappen     Words
	NoticeDetail   Words
	HasHappened    Words
	ExecutedDetail string
	WontHappen     Words
	Infinitive     Words

	// The control-panel call: method and path below the panel's base URL,
	// with {customer} and {server} replaced by escaped values; BodyEmail
	// sends {"email": ...}.
	PanelMethod string
	PanelPath   string
	BodyEmail   bool

	// APIDoc is its line in web/openapi.yaml's Action description.
	APIDoc string

	// The CLI command that opens it.
	Command string
	Summary string
	Example string
}

var specs = []Spec{
	{
		Name: ResendCredentials, Target: TargetServer, ServerOptional: true,
		CoolingDefault: 24 * time.Hour, CoolingFloor: 24 * time.Hour, CoolingSetting: "VIGIL_COOLING_RESEND_CREDENTIALS", CoolingHelp: "cooling period: resend credentials",
		Title: "Resend server credentials",
		Describe: func(s, _ string) string {
			return fmt.Sprintf("email the login credentials of server %s to the customer's primary address", s)
		},
		Doing:      func(c, _ string) string { return "resending credentials for " + c },
		WillHappen: func(_, _ string) string { return "Your server credentials will be emailed to you" },
		NoticeDetail: func(s, _ string) string {
			return "The login details (username and password) of server " + s + " will be sent to the email address on your account."
		},
		HasHappened:    func(s, _ string) string { return "Your server credentials for " + s + " have been emailed to you" },
		ExecutedDetail: "The login details arrive in a separate email.",
		WontHappen:     func(s, _ string) string { return "your server credentials for " + s + " will not be emailed" },
		Infinitive:     func(s, _ string) string { return "email your server credentials for " + s },
		PanelMethod:    "POST", PanelPath: "/v1/customers/{customer}/servers/{server}/credentials",
		APIDoc:  "email a server's login credentials to the primary address (server_id; may be left out when the customer has exactly one server)",
		Command: "resend-credentials", Summary: "email a server's login credentials to the customer",
		Example: `starter resend-credentials --customer C-1042 --server srv-1 --reason "lost the root password, ticket #8812"`,
	},
	{
		Name: ReinstallVPS, Target: TargetServer,
		CoolingDefault: 48 * time.Hour, CoolingFloor: 12 * time.Hour, CoolingSetting: "VIGIL_COOLING_REINSTALL_VPS", CoolingHelp: "cooling period: reinstall a VPS",
		Title: "Reinstall VPS",
		Describe: func(s, _ string) string {
			return fmt.Sprintf("erase and reinstall VPS %s (all data on it is wiped)", s)
		},
		Doing: func(c, s string) string {
			return fmt.Sprintf("reinstalling VPS %s for %s (all its data is wiped)", s, c)
		},
		WillHappen: func(s, _ string) string { return "Your VPS " + s + " will be erased and reinstalled" },
		NoticeDetail: func(s, _ string) string {
			return "Everything stored on " + s + " will be permanently deleted and the server will start again from a fresh install."
		},
		HasHappened:    func(s, _ string) string { return "Your VPS " + s + " has been erased and reinstalled" },
		ExecutedDetail: "The server has a fresh install; the data that was on it is gone.",
		WontHappen:     func(s, _ string) string { return "your VPS " + s + " will not be erased" },
		Infinitive:     func(s, _ string) string { return "reinstall your VPS " + s },
		PanelMethod:    "POST", PanelPath: "/v1/customers/{customer}/servers/{server}/reinstall",
		APIDoc:  "erase and reinstall a VPS (server_id required)",
		Command: "reinstall-vps", Summary: "erase and reinstall a VPS",
		Example: `starter reinstall-vps --customer C-1042 --server srv-1 --reason "compromised, ticket #8813"`,
	},
	{
		Name: AddContactEmail, Target: TargetEmail,
		CoolingDefault: 72 * time.Hour, CoolingFloor: 12 * time.Hour, CoolingSetting: "VIGIL_COOLING_ADD_CONTACT_EMAIL", CoolingHelp: "cooling period: add a contact email",
		Title:      "Add contact email",
		Describe:   func(_, e string) string { return fmt.Sprintf("add %s as a contact email", e) },
		Doing:      func(c, _ string) string { return "adding a contact email for " + c },
		WillHappen: func(_, e string) string { return e + " will be added as a contact email on your account" },
		NoticeDetail: func(_, e string) string {
			return "The owner of " + e + " will be able to contact us about your account."
		},
		HasHappened:    func(_, e string) string { return e + " has been added as a contact email on your account" },
		ExecutedDetail: "You can remove contact emails at any time in your account settings.",
		WontHappen:     func(_, e string) string { return e + " will not be added as a contact email" },
		Infinitive:     func(_, e string) string { return "add " + e + " as a contact email" },
		PanelMethod:    "POST", PanelPath: "/v1/customers/{customer}/contacts", BodyEmail: true,
		APIDoc:  "add a contact address (email required)",
		Command: "add-contact-email", Summary: "add a contact email to the account",
		Example: `starter add-contact-email --customer C-1042 --email ops@example.com --reason "new on-call address, ticket #8814"`,
	},
	{
		Name: ChangeAccountEmail, Target: TargetEmail,
		CoolingDefault: 72 * time.Hour, CoolingFloor: 24 * time.Hour, CoolingSetting: "VIGIL_COOLING_CHANGE_ACCOUNT_EMAIL", CoolingHelp: "cooling period: change the account email",
		Title:      "Change account email",
		Describe:   func(_, e string) string { return fmt.Sprintf("change the account email to %s", e) },
		Doing:      func(c, _ string) string { return "changing the account email of " + c },
		WillHappen: func(_, e string) string { return "Your account email will be changed to " + e },
		NoticeDetail: func(_, e string) string {
			return "After that, notices and password resets will go to " + e + " instead of this address."
		},
		HasHappened:    func(_, e string) string { return "Your account email has been changed to " + e },
		ExecutedDetail: "From now on we will write to the new address.",
		WontHappen:     func(_, _ string) string { return "your account email will not be changed" },
		Infinitive:     func(_, _ string) string { return "change your account email" },
		PanelMethod:    "PUT", PanelPath: "/v1/customers/{customer}/email", BodyEmail: true,
		APIDoc:  "change the account email (email required)",
		Command: "change-account-email", Summary: "change the account's primary email",
		Example: `starter change-account-email --customer C-1042 --email owner@example.com --reason "domain moved, ticket #8815"`,
	},
	{
		Name: Disable2FA, Target: TargetAccount,
		CoolingDefault: 48 * time.Hour, CoolingFloor: 24 * time.Hour, CoolingSetting: "VIGIL_COOLING_DISABLE_2FA", CoolingHelp: "cooling period: disable 2FA",
		Title:      "Disable two-factor authentication",
		Describe:   func(_, _ string) string { return "turn off two-factor authentication" },
		Doing:      func(c, _ string) string { return "turning off 2FA for " + c },
		WillHappen: func(_, _ string) string { return "Two-factor authentication will be turned off on your account" },
		NoticeDetail: func(_, _ string) string {
			return "After that, only your password will be needed to log in to your account."
		},
		HasHappened:    func(_, _ string) string { return "Two-factor authentication has been turned off on your account" },
		ExecutedDetail: "We recommend turning it back on in your account settings as soon as you can.",
		WontHappen:     func(_, _ string) string { return "two-factor authentication will not be turned off" },
		Infinitive:     func(_, _ string) string { return "turn off two-factor authentication" },
		PanelMethod:    "DELETE", PanelPath: "/v1/customers/{customer}/2fa",
		APIDoc:  "turn off two-factor authentication",
		Command: "disable-2fa", Summary: "turn off two-factor authentication",
		Example: `starter disable-2fa --customer C-1042 --reason "lost phone, identity checked on call, ticket #8816"`,
	},
}

// Specs returns every action's spec in a stable order.
func Specs() []Spec { return append([]Spec(nil), specs...) }

// Names lists every action in the order of Specs.
func Names() []Name {
	out := make([]Name, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	return out
}

// Lookup returns the spec of n.
func Lookup(n Name) (Spec, bool) {
	for _, s := range specs {
		if s.Name == n {
			return s, true
		}
	}
	return Spec{}, false
}

// Parse returns the action named s or an error naming the valid ones.
func Parse(s string) (Name, error) {
	if _, ok := Lookup(Name(s)); ok {
		return Name(s), nil
	}
	names := make([]string, len(specs))
	for i, sp := range specs {
		names[i] = string(sp.Name)
	}
	return "", fmt.Errorf("unknown action %q (valid: %s)", s, strings.Join(names, ", "))
}

// spec returns n's spec, or one whose words name the unknown action, so a
// caller that skipped validation shows the raw name rather than another
// action's wording.
func (n Name) spec() Spec {
	if s, ok := Lookup(n); ok {
		return s
	}
	raw := func(_, _ string) string { return string(n) }
	return Spec{Name: n, Title: string(n), Describe: raw, Doing: func(c, _ string) string { return string(n) + " for " + c },
		WillHappen: raw, NoticeDetail: raw, HasHappened: raw, WontHappen: raw, Infinitive: raw}
}

// Spec returns n's spec; an unknown action gets words that only repeat its name.
func (n Name) Spec() Spec { return n.spec() }

// NeedsServer reports whether the action targets one of the customer's servers.
func (n Name) NeedsServer() bool { return n.spec().Target == TargetServer }

// NeedsEmail reports whether the action carries a new email address.
func (n Name) NeedsEmail() bool { return n.spec().Target == TargetEmail }

// Describe says in plain words what the action does, for messages and audit.
func (n Name) Describe(serverID, email string) string { return n.spec().Describe(serverID, email) }
