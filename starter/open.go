package main

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/vigil-oss/vigil/internal/action"
	"github.com/vigil-oss/vigil/internal/cliclient"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// openSpec describes one of the commands that open a request; it is read
// from the action's spec.
type openSpec struct {
	name         string
	action       domain.Action
	server       bool // takes --server (the customer's server id)
	serverNeeded bool
	email        bool // takes --email
	summary      string
	example      string
}

func openSpecs() []openSpec {
	var out []openSpec
	for _, sp := range action.Specs() {
		out = append(out, openSpec{
			name: sp.Command, action: sp.Name,
			server: sp.Target == action.TargetServer, serverNeeded: sp.Target == action.TargetServer && !sp.ServerOptional,
			email:   sp.Target == action.TargetEmail,
			summary: sp.Summary, example: sp.Example,
		})
	}
	return out
}

// cmdOpen opens a request: validates the flags, asks for the PIN, sends it
// once, and says what happened.
func (a *app) cmdOpen(ctx context.Context, g globals, s openSpec, args []string) error {
	usage := s.name + " --customer ID"
	switch {
	case s.serverNeeded:
		usage += " --server SERVER_ID"
	case s.server:
		usage += " [--server SERVER_ID]"
	}
	if s.email {
		usage += " --email ADDRESS"
	}
	usage += ` --reason "WHY" [--pin-stdin]`
	help := fmt.Sprintf("Opens a request to %s.\n\n", s.action.Describe("SERVER_ID", "ADDRESS")) +
		"You are asked for the customer's support PIN, without echo, on the terminal\n" +
		"(\"Customer's support PIN: \"); --pin-stdin reads it from one line of standard input\n" +
		"instead. The PIN is never a flag, an argument or an environment variable.\n" +
		"Vigil checks the PIN at once, before the request starts, so the PIN never reaches the\n" +
		"workflow engine: wrong PINs lock the customer, and an agent who types too many across\n" +
		"customers is stopped. Then a senior approves in Slack, the customer is emailed a\n" +
		"cancel link and a cooling period runs before anything happens.\n\n" +
		"When the customer's account shows signs of a takeover (a password reset by email, the\n" +
		"PIN viewed on the account page, a login from a new place), Vigil asks for the code from\n" +
		"the customer's authenticator app too (\"Code from the customer's authenticator app: \",\n" +
		"without echo; with --pin-stdin, the line after the PIN). A wrong code counts as a wrong\n" +
		"PIN. Some accounts cannot be verified here at all: the refusal says so and security is told.\n\n" +
		"Exit: 0 opened (waiting for approval); 3 refused (wrong PIN, customer locked, too many\n" +
		"wrong PINs of yours, or any other refusal); 4 ended at once without being executed;\n" +
		"1 network/server failure; 2 usage error."
	if s.server {
		help += "\n\nHere --server is the customer's server id; give Vigil's address with --url."
		if !s.serverNeeded {
			help += "\n--server may be left out when the customer has exactly one server."
		}
	}
	f := a.newFlags(g, s.name, usage, help, s.example, false)
	customer := f.String("customer", "", "the customer's id, e.g. C-1042 (required)")
	reason := f.String("reason", "", "why, in words the senior and the customer will read; cite the ticket (required)")
	pinStdin := f.Bool("pin-stdin", false, "read the PIN from one line of standard input instead of prompting (and the authenticator code, when asked, from the next)")
	var server, email *string
	if s.server {
		server = f.String("server", "", "the customer's server id, e.g. srv-1")
	}
	if s.email {
		email = f.String("email", "", "the email address, e.g. ops@example.com (required)")
	}
	if _, err := a.parse(f, args, 0, 0); err != nil {
		if ue, ok := err.(*usageError); ok && strings.HasPrefix(ue.msg, "too many arguments") {
			return usagef("%s takes no arguments besides flags; the PIN is never given on the command line, you will be asked for it", s.name)
		}
		return err
	}

	nr := cliclient.NewRequest{Action: s.action, CustomerID: strings.TrimSpace(*customer)}
	if err := checkID("--customer", nr.CustomerID); err != nil {
		return err
	}
	if strings.Trim(*reason, " ") == "" {
		return usagef("--reason is required: say why, and cite the ticket")
	}
	why, err := checkText("--reason", *reason, textrule.Options{Required: true, MaxLen: maxReason})
	if err != nil {
		return err
	}
	nr.Reason = why
	if s.server {
		nr.ServerID = strings.TrimSpace(*server)
		if strings.Contains(nr.ServerID, "://") {
			return usagef("--server is the customer's server id here (e.g. srv-1); give Vigil's address with --url")
		}
		if s.serverNeeded && nr.ServerID == "" {
			return usagef("--server is required: the id of the customer's server to %s", strings.ReplaceAll(s.name, "-", " "))
		}
		if nr.ServerID != "" {
			if err := checkID("--server", nr.ServerID); err != nil {
				return err
			}
		}
	}
	if s.email {
		addr, err := checkEmail("--email", *email)
		if err != nil {
			return err
		}
		nr.Email = addr
	}

	// Refuse before any network call when the PIN cannot be asked for.
	if !*pinStdin && !isTerminal(a.stdin) {
		return errNoTerminal
	}
	c, err := a.agentClient(*f.url)
	if err != nil {
		return err
	}
	pin, err := a.readPIN(ctx, *pinStdin, "Customer's support PIN: ")
	if err != nil {
		return err
	}
	nr.PIN = pin
	r, err := c.OpenRequest(ctx, nr)
	if p, ok := cliclient.AsProblem(err); ok && p.Code == cliclient.CodeFactorRequired {
		// Nothing was checked yet: say why, ask the code, send both again.
		fmt.Fprintf(a.stderr, "starter: %s\n", p.Detail)
		var code []byte
		if code, err = a.readSecret(ctx, *pinStdin, "Code from the customer's authenticator app: ", "code"); err == nil {
			nr.FactorCode = code
			r, err = c.OpenRequest(ctx, nr)
			clear(code)
			nr.FactorCode = nil
		}
	}
	clear(pin)
	nr.PIN = nil
	if err != nil {
		return err
	}

	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", r.Raw)
	} else {
		fmt.Fprintf(a.stdout, "Request %s opened: %s\n", r.ID, describe(r, time.Now()))
		if !r.Final {
			fmt.Fprintf(a.stdout, "Follow it with: starter watch %s\n", r.ID)
		}
	}
	switch {
	case r.Status == domain.StatusPINRejected || r.Status == domain.StatusLocked:
		return &exitError{exitRefused}
	case r.Final && r.Status != domain.StatusExecuted:
		return &exitError{exitNotExecuted}
	}
	return nil
}

// checkID accepts an id that passes the text rule and is one word without
// slashes.
func checkID(flagName, id string) error {
	if id == "" {
		return usagef("%s is required", flagName)
	}
	if err := textrule.Check(flagName, id, textrule.Options{Required: true, MaxLen: 64}); err != nil {
		return usagef("%v", err)
	}
	if strings.ContainsFunc(id, func(r rune) bool { return unicode.IsSpace(r) || r == '/' }) {
		return usagef("%s must be a single id without spaces or slashes, e.g. C-1042", flagName)
	}
	return nil
}
