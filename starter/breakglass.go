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
const breakGlassWarning = "BREAK-GLASS: this decision bypasses Slack; it is recorded and posted to the security channel"

// breakGlassWord is what a person types to confirm on a terminal.
const breakGlassWord = "BREAK-GLASS"

// Reason bounds, as the server applies them.
const (
	minBreakGlassReason = 10
	maxReason           = 500
)

const breakGlassExample = `starter admin break-glass req_7kq2m4xa --decision approve --approver ag_ana --second-approver ag_ben --reason "Slack outage INC-42; customer verified by callback"`

func (a *app) cmdBreakGlass(ctx context.Context, g globals, args []string) error {
	f, tokStdin := a.adminFlags(g, "break-glass",
		`break-glass REQUEST_ID --decision approve|reject --approver AGENT_ID --second-approver AGENT_ID --reason "WHY" [--yes]`,
		"Approves or rejects a request OUTSIDE Slack. Only for when Slack cannot be used:\n"+
			"two different senior agents must agree, the reason (at least 10 characters) says\n"+
			"why Slack could not be used, and Vigil records the decision as break-glass in the\n"+
			"audit trail and announces it in the security channel. Roles are checked by Vigil\n"+
			"from its agents table.\n\n"+
			"You are asked to type "+breakGlassWord+" to continue; --yes confirms without asking\n"+
			"(required when standard input is not a terminal).\n\n"+
			"Exit: 0 recorded; 3 refused by Vigil (not senior, self-approval, already decided,\n"+
			"…); 1 network/server failure; 2 usage error or not confirmed (nothing was sent).",
		breakGlassExample)
	decision := f.String("decision", "", "approve or reject (required)")
	approver := f.String("approver", "", "the first senior agent's id (required)")
	second := f.String("second-approver", "", "a second, different senior agent's id (required)")
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
	d := cliclient.BreakGlassDecision{
		Decision:         domain.Decision(strings.TrimSpace(*decision)),
		ApproverID:       strings.TrimSpace(*approver),
		SecondApproverID: strings.TrimSpace(*second),
		Reason:           *reason,
	}
	if d, err = checkBreakGlass(d); err != nil {
		return err
	}
	// Refuse before reading a token or calling anyone when nobody can confirm.
	if !*yes && !isTerminal(a.stdin) {
		return usagef("no terminal to confirm on; pass --yes to confirm a break-glass decision; nothing was sent")
	}
	c, err := a.adminClient(f, *tokStdin)
	if err != nil {
		return err
	}
	if !*yes {
		fmt.Fprintf(a.stderr, "Request %s will be %s by %s and %s outside Slack.\nReason: %s\n",
			id, pastTense(d.Decision), d.ApproverID, d.SecondApproverID, d.Reason)
		if err := confirmOn(ctx, a.stdin, a.stderr, "Type "+breakGlassWord+" to continue: ", breakGlassWord); err != nil {
			return err
		}
	}
	r, err := c.BreakGlass(ctx, id, d)
	if err != nil {
		return err
	}
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", r.Raw)
		return nil
	}
	fmt.Fprintf(a.stdout, "Request %s: break-glass %s by %s and %s recorded; now %s\n",
		r.ID, d.Decision, d.ApproverID, d.SecondApproverID, describe(r, time.Now()))
	return nil
}

// checkBreakGlass checks the decision locally, so a typo is caught before
// the admin token is read or anything is sent, and returns it with the
// reason trimmed.
func checkBreakGlass(d cliclient.BreakGlassDecision) (cliclient.BreakGlassDecision, error) {
	if d.Decision != domain.DecisionApprove && d.Decision != domain.DecisionReject {
		return d, usagef("--decision must be approve or reject")
	}
	if err := checkID("--approver", d.ApproverID); err != nil {
		return d, err
	}
	if err := checkID("--second-approver", d.SecondApproverID); err != nil {
		return d, err
	}
	if d.ApproverID == d.SecondApproverID {
		return d, usagef("--approver and --second-approver must be two different senior agents")
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
