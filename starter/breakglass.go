package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-oss/vigil/internal/cliclient"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// breakGlassWarning is printed before anything else a break-glass run does.
const breakGlassWarning = "BREAK-GLASS: this consent bypasses Slack; it is recorded and posted to the security channel"

// breakGlassWord is what a person types to confirm on a terminal.
const breakGlassWord = "BREAK-GLASS"

// Reason bounds, as the server applies them.
const (
	minBreakGlassReason = 10
	maxReason           = 500
)

const breakGlassExample = `starter break-glass req_7kq2m4xa --decision approve --reason "Slack outage INC-42; customer verified by callback"`

func (a *app) cmdBreakGlass(ctx context.Context, g globals, args []string) error {
	f := a.newFlags(g, "break-glass",
		`break-glass REQUEST_ID --decision approve|reject --reason "WHY" [--yes]`,
		"Consents, as you (a senior agent, signed in), to approve or reject a request OUTSIDE\n"+
			"Slack. Only for when Slack cannot be used. Two different senior agents must each\n"+
			"run this with their own sign-in, in either order, for the same decision: the first\n"+
			"consent waits (VIGIL_BREAK_GLASS_CONSENT_TTL on the server, 15 minutes by default)\n"+
			"for the second, and the second one's decides. An admin cannot decide, and a senior\n"+
			"cannot consent twice or to a request they opened. The reason (at least 10\n"+
			"characters) says why Slack could not be used; every consent and the decision are\n"+
			"recorded as break-glass in the audit trail and announced in the security channel.\n\n"+
			"You are asked to type "+breakGlassWord+" to continue; --yes confirms without asking\n"+
			"(required when standard input is not a terminal).\n\n"+
			"Exit: 0 consent recorded (waiting for a second senior) or decision recorded; 3 refused\n"+
			"by Vigil (not senior, your own request, already consented, already decided, …);\n"+
			"1 network/server failure; 2 usage error or not confirmed (nothing was sent).",
		breakGlassExample, true)
	decision := f.String("decision", "", "approve or reject (required)")
	reason := f.String("reason", "", "why Slack could not be used, at least 10 characters (required)")
	yes := f.Bool("yes", false, "confirm without the interactive prompt")
	pos, err := a.parse(f, args, 1, 1)
	if err != nil {
		return err
	}
	fmt.Fprintln(a.stderr, breakGlassWarning)

	id := pos[0]
	if err := checkRequestID(id); err != nil {
		return err
	}
	d := cliclient.BreakGlassDecision{Decision: domain.Decision(strings.TrimSpace(*decision)), Reason: *reason}
	if d, err = checkBreakGlass(d); err != nil {
		return err
	}
	// Refuse before reading a session or calling anyone when nobody can confirm.
	if !*yes && !isTerminal(a.stdin) {
		return usagef("no terminal to confirm on; pass --yes to confirm a break-glass consent; nothing was sent")
	}
	c, err := a.agentClient(*f.url)
	if err != nil {
		return err
	}
	if !*yes {
		fmt.Fprintf(a.stderr, "You consent to request %s being %s outside Slack; a second senior must consent too.\nReason: %s\n",
			id, pastTense(d.Decision), d.Reason)
		if err := confirmOn(ctx, a.stdin, a.stderr, "Type "+breakGlassWord+" to continue: ", breakGlassWord); err != nil {
			return err
		}
	}
	ans, err := c.BreakGlass(ctx, id, d)
	if err != nil {
		return err
	}
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", ans.Raw)
		return nil
	}
	if cons := ans.Consent; cons != nil {
		fmt.Fprintf(a.stdout, "Request %s: your break-glass consent to %s is recorded; it waits until %s for a second senior's consent to the same decision\n",
			cons.RequestID, cons.Decision, cons.ExpiresAt.Local().Format("15:04 MST"))
		return nil
	}
	r := *ans.Request
	second := ""
	if r.Decision != nil {
		second = " by " + r.Decision.ApproverID + " and " + r.Decision.SecondApproverID
	}
	fmt.Fprintf(a.stdout, "Request %s: break-glass %s%s recorded; now %s\n", r.ID, d.Decision, second, describe(r, time.Now()))
	return nil
}

// checkBreakGlass checks the consent locally, so a typo is caught before a
// session is read or anything is sent, and returns it with the reason
// trimmed.
func checkBreakGlass(d cliclient.BreakGlassDecision) (cliclient.BreakGlassDecision, error) {
	if d.Decision != domain.DecisionApprove && d.Decision != domain.DecisionReject {
		return d, usagef("--decision must be approve or reject")
	}
	if strings.Trim(d.Reason, " ") == "" {
		return d, usagef("--reason is required: say why Slack could not be used")
	}
	reason, err := checkText("--reason", d.Reason, textrule.Options{Required: true, MaxLen: maxReason})
	if err != nil {
		return d, err
	}
	if utf8.RuneCountInString(reason) < minBreakGlassReason {
		return d, usagef("--reason must have at least %d characters: say why Slack could not be used", minBreakGlassReason)
	}
	d.Reason = reason
	return d, nil
}

func pastTense(d domain.Decision) string {
	if d == domain.DecisionReject {
		return "REJECTED"
	}
	return "APPROVED"
}

// confirmOn prompts on out and reads one line from the terminal in; anything
// but want (surrounding spaces aside) refuses. Ctrl-C returns errInterrupted.
func confirmOn(ctx context.Context, in *os.File, out io.Writer, prompt, want string) error {
	fmt.Fprint(out, prompt)
	type result struct {
		b   []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := readLine(in)
		ch <- result{b, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		if strings.TrimSpace(string(r.b)) != want {
			return usagef("not confirmed (you did not type %s); nothing was sent", want)
		}
		return nil
	case <-ctx.Done():
		// The reader goroutine stays blocked; the process is about to exit.
		fmt.Fprintln(out)
		return errInterrupted
	}
}
