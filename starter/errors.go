package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/vigil-oss/vigil/internal/cliclient"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// usageError is a bad invocation caught before anything was sent.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitError ends the run with code after the command printed its result.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// errInterrupted is Ctrl-C (or SIGTERM) while the command was running.
var errInterrupted = errors.New("interrupted")

// fail prints err for the agent (or as problem JSON with --json) and
// returns the exit code it maps to.
func (a *app) fail(err error) int {
	if err == nil || errors.Is(err, errHelp) {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if errors.Is(err, errInterrupted) || errors.Is(err, context.Canceled) {
		a.report("interrupted", "Interrupted", "interrupted; nothing more was sent", "")
		return exitInterrupted
	}
	var ue *usageError
	if errors.As(err, &ue) {
		a.report("usage_error", "Usage error", ue.msg, "")
		return exitUsage
	}
	if p, ok := cliclient.AsProblem(err); ok {
		code := exitFailure
		verb := "Vigil failed"
		if p.Refused() {
			code, verb = exitRefused, "Vigil refused"
		}
		if a.json {
			fmt.Fprintf(a.stderr, "%s\n", p.JSON())
			return code
		}
		label := p.Code
		if label == "" {
			label = fmt.Sprintf("HTTP %d", p.Status)
		}
		detail := p.Detail
		if detail == "" {
			detail = p.Title
		}
		notFound := p.Code == "request_not_found"
		if notFound {
			// The id asked about, not one for the operators: there is none.
			detail = "no request with that id"
			if p.RequestID != "" {
				detail = "no request with id " + p.RequestID
			}
		}
		// The server's words may quote what someone typed; nothing in them
		// reaches the terminal as a control character.
		fmt.Fprintf(a.stderr, "starter: %s: %s [%s]\n", verb, textrule.Escape(detail), textrule.Escape(label))
		if adv := advice(p); adv != "" {
			fmt.Fprintf(a.stderr, "What to do: %s\n", textrule.Escape(adv))
		}
		if p.RequestID != "" && !notFound {
			fmt.Fprintf(a.stderr, "Vigil request id (for the operators): %s\n", textrule.Escape(p.RequestID))
		}
		return code
	}
	var te *cliclient.TransportError
	if errors.As(err, &te) {
		what := "cannot reach Vigil"
		if te.Timeout() {
			what = "Vigil did not answer in time"
		}
		a.report("network_error", "Network error", fmt.Sprintf("%s: %v", what, te.Err),
			"check --url / VIGIL_URL and that Vigil is running, then try again; `starter list --mine` shows whether a request was opened")
		return exitFailure
	}
	a.report("failure", "Failure", err.Error(), "")
	return exitFailure
}

// report prints a local error as text, or as a problem document with --json.
func (a *app) report(code, title, detail, adv string) {
	if a.json {
		doc := map[string]string{"type": "https://vigil.dev/problems/cli/" + code, "title": title, "detail": detail, "code": code}
		b, _ := json.Marshal(doc)
		fmt.Fprintf(a.stderr, "%s\n", b)
		return
	}
	fmt.Fprintf(a.stderr, "starter: %s\n", detail)
	if adv != "" {
		fmt.Fprintf(a.stderr, "What to do: %s\n", adv)
	}
}

// advice tells the agent what to do about a problem, by its code.
func advice(p *cliclient.Problem) string {
	switch p.Code {
	case "unauthenticated":
		return "run `starter login` (admin commands: check VIGIL_ADMIN_TOKEN)"
	case "sign_in_required", "second_factor_required":
		return "run `starter login` and sign in with the identity provider, second factor included"
	case "forbidden":
		return "your role does not allow this; ask an admin if you think it should"
	case "invalid_input":
		return "fix the input the message names and try again"
	case "body_too_large":
		return "shorten the reason and try again"
	case "unsupported_media_type":
		return "this starter does not match the server's API; update starter"
	case "unknown_customer":
		return "check the customer id"
	case "unknown_server":
		return "check the server id: it must be one of this customer's servers"
	case "request_not_found":
		return "check the request id (`starter list --mine`); an agent sees only the requests they opened, a senior or the security role sees all"
	case "agent_not_found":
		return "check the agent id (`starter admin list-agents`)"
	case "self_approval":
		return "another senior has to decide on your own request"
	case "not_senior":
		return "only a senior can do this; ask one"
	case "already_decided":
		return "nothing to do; see `starter status ID`"
	case "not_awaiting_approval":
		return "the request is not waiting for approval; see `starter status ID`"
	case "not_requester":
		return "only the agent who opened it can withdraw it; a senior can veto it"
	case "not_customer":
		return "only the customer can do this, through their email link"
	case "request_ended":
		return "the request has already ended; see `starter status ID`"
	case "already_executing":
		return "too late to cancel: the action is running now"
	case "duplicate_request":
		if p.RequestID != "" {
			return fmt.Sprintf("follow the open request with `starter status %s`; withdraw it first if this one should replace it", p.RequestID)
		}
		return "see `starter list --open --customer ID`; withdraw the open request first if this one should replace it"
	case "already_on_account":
		return "nothing to do: the customer already receives mail there"
	case "email_unchanged":
		return "nothing to do: that is already the account's address"
	case "lookalike_address":
		return "ask the customer to spell the address letter by letter; an address that only looks like theirs is refused"
	case "pin_attempts_exceeded":
		return "stop asking callers for PINs and talk to security: Vigil checks no more PINs for you until the time the message gives"
	case "conflict":
		return "it changed meanwhile; check `starter status ID` and try again"
	case "server_has_open_request":
		return "import this customer again once the request the message names has ended (or without that server); nothing of it was imported"
	case "rate_limited":
		if p.RetryAfter > 0 {
			return fmt.Sprintf("wait %d seconds, then try again", int(math.Ceil(p.RetryAfter.Seconds())))
		}
		return "wait a minute, then try again"
	case "temporal_unavailable":
		return "Vigil is degraded; try again shortly (after a withdrawal or veto, check `starter status ID` first: it may have gone through)"
	case "database_unavailable":
		if p.RetryAfter > 0 {
			return fmt.Sprintf("Vigil's database is away; nothing changed. Try again in %d seconds", int(math.Ceil(p.RetryAfter.Seconds())))
		}
		return "Vigil's database is away; nothing changed. Try again shortly"
	case "internal":
		return "try again; if it keeps failing, tell the Vigil operators"
	}
	switch {
	case p.Status == 404:
		return "check the id and --url (admin commands need the admin API's address)"
	case p.Status >= 500:
		return "try again shortly; if it keeps failing, tell the Vigil operators"
	}
	return ""
}
