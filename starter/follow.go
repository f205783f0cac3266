package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-oss/vigil/internal/cliclient"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// minInterval keeps watch under the API's per-agent rate limit.
const minInterval = 250 * time.Millisecond

// maxWatchFailures is how many calls in a row may fail before watch gives up.
const maxWatchFailures = 10

func (a *app) cmdStatus(ctx context.Context, g globals, args []string) error {
	f := a.newFlags(g, "status", "status ID [--wait] [--interval 2s]",
		"Shows where a request stands: the current gate, who approved, deadlines and the outcome.\n"+
			"With --wait, waits until the request ends first; then the exit code is 0 if it was\n"+
			"executed and 4 otherwise.",
		"starter status req_7kq2m4xa", true)
	wait := f.Bool("wait", false, "wait until the request ends; exit 4 unless it was executed")
	interval := f.Duration("interval", 2*time.Second, "with --wait: how often to ask")
	pos, err := a.parse(f, args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkRequestID(pos[0]); err != nil {
		return err
	}
	if *interval < minInterval {
		return usagef("--interval must be at least %v", minInterval)
	}
	c, err := a.agentClient(*f.url)
	if err != nil {
		return err
	}
	var r cliclient.Request
	if *wait {
		r, err = a.follow(ctx, c, pos[0], *interval, func(cliclient.Request) {})
	} else {
		r, err = c.GetRequest(ctx, pos[0])
	}
	if err != nil {
		return err
	}
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", r.Raw)
	} else {
		printBlock(a.stdout, r, time.Now())
	}
	if *wait && r.Status != domain.StatusExecuted {
		return &exitError{exitNotExecuted}
	}
	return nil
}

func (a *app) cmdWatch(ctx context.Context, g globals, args []string) error {
	f := a.newFlags(g, "watch", "watch ID [--interval 2s]",
		"Prints each status change of a request, with a timestamp, until the request ends.\n"+
			"Exit: 0 if it was executed, 4 if it ended otherwise, 130 on Ctrl-C.\n"+
			"With --json, prints only the final request object.",
		"starter watch req_7kq2m4xa --interval 5s", true)
	interval := f.Duration("interval", 2*time.Second, "how often to ask")
	pos, err := a.parse(f, args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkRequestID(pos[0]); err != nil {
		return err
	}
	if *interval < minInterval {
		return usagef("--interval must be at least %v", minInterval)
	}
	c, err := a.agentClient(*f.url)
	if err != nil {
		return err
	}
	r, err := a.follow(ctx, c, pos[0], *interval, func(r cliclient.Request) {
		if !a.json {
			now := time.Now()
			fmt.Fprintf(a.stdout, "%s  %-17s  %s\n", now.UTC().Format(time.RFC3339), r.Status, describe(r, now))
		}
	})
	if err != nil {
		return err
	}
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", r.Raw)
	}
	if r.Status != domain.StatusExecuted {
		return &exitError{exitNotExecuted}
	}
	return nil
}

// follow polls a request until it is final, calling changed on the first
// answer and on every status change. Network and 5xx failures are retried
// with backoff (up to maxWatchFailures in a row); a refusal ends it.
func (a *app) follow(ctx context.Context, c *cliclient.Client, id string, interval time.Duration, changed func(cliclient.Request)) (cliclient.Request, error) {
	var last domain.Status
	failures := 0
	for {
		wait := interval
		r, err := c.GetRequest(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return r, errInterrupted
			}
			p, isProblem := cliclient.AsProblem(err)
			switch {
			case isProblem && p.Code == "rate_limited":
				wait = max(p.RetryAfter, interval)
			case isProblem && p.Refused():
				return r, err
			default:
				failures++
				if failures >= maxWatchFailures {
					return r, err
				}
				wait = backoff(interval, failures)
				fmt.Fprintf(a.stderr, "starter: %v; trying again in %v\n", strings.TrimPrefix(err.Error(), "cliclient: "), wait)
			}
		} else {
			failures = 0
			if r.Status != last {
				last = r.Status
				changed(r)
			}
			if r.Final || r.Status.Final() {
				return r, nil
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return r, errInterrupted
		case <-t.C:
		}
	}
}

// maxListLimit is the largest limit GET /api/v1/requests accepts
// (internal/api); the CLI refuses more itself instead of sending a request the
// server would refuse.
const maxListLimit = 500

func (a *app) cmdList(ctx context.Context, g globals, args []string) error {
	f := a.newFlags(g, "list", "list [--mine] [--open] [--customer ID] [--limit N]",
		"Lists requests, newest first, as a table (ID, ACTION, CUSTOMER, STATUS, OPENED).",
		"starter list --mine --open", true)
	mine := f.Bool("mine", false, "only requests you opened")
	open := f.Bool("open", false, "only requests that have not ended")
	customer := f.String("customer", "", "only this customer's requests")
	limit := f.Int("limit", 0, fmt.Sprintf("at most N requests, 1 to %d (default: the server's, 50)", maxListLimit))
	if _, err := a.parse(f, args, 0, 0); err != nil {
		return err
	}
	// 0 is "not given" (the server's default) only when the flag is absent:
	// an explicit --limit 0 is as wrong as 501.
	limitSet := false
	f.Visit(func(fl *flag.Flag) { limitSet = limitSet || fl.Name == "limit" })
	if limitSet && (*limit < 1 || *limit > maxListLimit) {
		return usagef("--limit must be a whole number from 1 to %d; leave it out for the server's default of 50", maxListLimit)
	}
	filter := cliclient.ListFilter{Mine: *mine, Open: *open, CustomerID: strings.TrimSpace(*customer), Limit: *limit}
	if filter.CustomerID != "" {
		if err := checkID("--customer", filter.CustomerID); err != nil {
			return err
		}
	}
	c, err := a.agentClient(*f.url)
	if err != nil {
		return err
	}
	list, err := c.ListRequests(ctx, filter)
	if err != nil {
		return err
	}
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", list.Raw)
		return nil
	}
	if len(list.Requests) == 0 {
		fmt.Fprintln(a.stdout, "No requests you may read. (An agent sees only the requests they opened; a senior or the security role sees all.)")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACTION\tCUSTOMER\tSTATUS\tOPENED")
	for _, r := range list.Requests {
		opened := "-"
		if !r.OpenedAt.IsZero() {
			opened = r.OpenedAt.UTC().Format("2006-01-02 15:04 UTC")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Action, r.CustomerID, r.Status, opened)
	}
	return tw.Flush()
}

func (a *app) cmdWithdraw(ctx context.Context, g globals, args []string) error {
	return a.cancel(ctx, g, args, "withdraw",
		"Withdraws a request you opened, before it runs. Nothing will be done.",
		`starter withdraw req_7kq2m4xa --reason "customer called back, no longer needed"`,
		(*cliclient.Client).Withdraw)
}

func (a *app) cmdVeto(ctx context.Context, g globals, args []string) error {
	return a.cancel(ctx, g, args, "veto",
		"Vetoes someone's request before it runs (seniors only). Nothing will be done.",
		`starter veto req_7kq2m4xa --reason "caller failed the callback check"`,
		(*cliclient.Client).Veto)
}

func (a *app) cmdRepost(ctx context.Context, g globals, args []string) error {
	f := a.newFlags(g, "repost", "repost ID",
		"Posts the approval message of a request that waits for approval again, for when the\n"+
			"message was deleted in Slack or cannot be found: the new message, with its buttons, is\n"+
			"the request's from now on, and the old one (if Slack still has it) says it was\n"+
			"replaced. For the agent who opened the request and for seniors; audited.",
		"starter repost req_7kq2m4xa", true)
	pos, err := a.parse(f, args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkRequestID(pos[0]); err != nil {
		return err
	}
	c, err := a.agentClient(*f.url)
	if err != nil {
		return err
	}
	rp, err := c.Repost(ctx, pos[0])
	if err != nil {
		return err
	}
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", rp.Raw)
		return nil
	}
	fmt.Fprintf(a.stdout, "Request %s: its approval message was posted again (Slack channel %s, message %s); decide on the new one.\n",
		textrule.Escape(rp.RequestID), textrule.Escape(rp.Channel), textrule.Escape(rp.TS))
	return nil
}

func (a *app) cancel(ctx context.Context, g globals, args []string, name, help, example string,
	call func(*cliclient.Client, context.Context, string, string) (cliclient.Request, error)) error {
	f := a.newFlags(g, name, name+` ID --reason "WHY"`, help, example, true)
	reason := f.String("reason", "", "why (required)")
	pos, err := a.parse(f, args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkRequestID(pos[0]); err != nil {
		return err
	}
	why, err := checkText("--reason", *reason, textrule.Options{Required: true, MaxLen: maxReason})
	if err != nil {
		return err
	}
	c, err := a.agentClient(*f.url)
	if err != nil {
		return err
	}
	r, err := call(c, ctx, pos[0], why)
	if err != nil {
		return err
	}
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", r.Raw)
	} else {
		fmt.Fprintf(a.stdout, "Request %s: %s\n", r.ID, describe(r, time.Now()))
	}
	return nil
}

// checkRequestID refuses ids that cannot be request ids, before any call.
func checkRequestID(id string) error {
	if id == "" || strings.ContainsFunc(id, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) {
		return usagef("%q is not a request id (they look like req_7kq2m4xa)", id)
	}
	return nil
}

// backoff doubles interval per failure, up to a minute (or interval, if
// that is longer).
func backoff(interval time.Duration, failures int) time.Duration {
	limit := max(time.Minute, interval)
	d := interval
	for i := 0; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
