package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-oss/vigil/internal/cliclient"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// clock formats t in UTC: the time alone when it falls today, else the date
// too.
func clock(t, now time.Time) string {
	t, now = t.UTC(), now.UTC()
	if t.Year() == now.Year() && t.YearDay() == now.YearDay() {
		return t.Format("15:04 UTC")
	}
	return t.Format("2006-01-02 15:04 UTC")
}

// stamp formats t in full, for tables and the status block.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// who names a cancelling party in words.
func who(c *cliclient.Cancellation) string {
	switch c.By {
	case domain.CancelByCustomer:
		return "the customer"
	case domain.CancelByRequester:
		return "the requester (" + c.ActorID + ")"
	case domain.CancelBySenior:
		return "senior " + c.ActorID
	case domain.CancelBySecurity:
		return "Vigil security (standing check)"
	}
	if c.ActorID != "" {
		return c.ActorID
	}
	return string(c.By)
}

// withReason appends ": reason" when there is one.
func withReason(s, reason string) string {
	if reason = strings.TrimSpace(reason); reason != "" {
		return fmt.Sprintf("%s (%q)", s, reason)
	}
	return s
}

// describe says in words where r stands and what comes next, with anything
// the text rule refuses (text stored before it, such as an escape sequence
// for the terminal) written out as [U+001B].
func describe(r cliclient.Request, now time.Time) string {
	return textrule.Escape(describeState(current(r), now))
}

// current returns r without what stopped being true when it ended: the
// approval deadline, and, unless it ran, the end of the cooling period
// (the time it would have run at). The --json output keeps them.
func current(r cliclient.Request) cliclient.Request {
	if !r.Final && !r.Status.Final() {
		return r
	}
	r.ApprovalDeadline = time.Time{}
	if r.Status != domain.StatusExecuted {
		r.CoolingEndsAt = time.Time{}
	}
	return r
}

func describeState(r cliclient.Request, now time.Time) string {
	switch r.Status {
	case domain.StatusPINCheck:
		if !r.PINVerifiedAt.IsZero() {
			return "PIN verified; waiting for a senior to approve in Slack"
		}
		return "checking the PIN; follow it with `starter watch " + r.ID + "`"
	case domain.StatusAwaitingApproval:
		s := "PIN verified; waiting for a senior to approve in Slack"
		if !r.ApprovalDeadline.IsZero() {
			s += " (expires " + clock(r.ApprovalDeadline, now) + ")"
		}
		return s
	case domain.StatusNotifying:
		return approvedBy(r) + "; emailing the customer a cancel link"
	case domain.StatusCooling:
		s := approvedBy(r) + "; customer notified"
		if r.Recipients > 0 {
			s += fmt.Sprintf(" (%d address%s)", r.Recipients, plural(int(r.Recipients), "es"))
		}
		if !r.CoolingEndsAt.IsZero() {
			s += "; runs after the cooling period ends " + clock(r.CoolingEndsAt, now)
		}
		return s + " unless the customer, the requester or a senior cancels"
	case domain.StatusExecuting:
		return "cooling period over; executing now"
	case domain.StatusExecuted:
		s := "executed"
		if !r.ExecutedAt.IsZero() {
			s += " at " + clock(r.ExecutedAt, now)
		}
		if r.Reference != "" {
			s += ", reference " + r.Reference
		}
		return s
	case domain.StatusPINRejected:
		s := "Wrong PIN"
		if r.PINFailures > 0 {
			s += fmt.Sprintf(" (%d wrong attempt%s so far)", r.PINFailures, plural(r.PINFailures, "s"))
		}
		if !r.LockedUntil.IsZero() {
			s += fmt.Sprintf("; customer %s is now locked until %s; ask them to contact security", r.CustomerID, clock(r.LockedUntil, now))
		}
		return s + "; nothing was done"
	case domain.StatusLocked:
		s := "Customer " + r.CustomerID + " is locked"
		if !r.LockedUntil.IsZero() {
			s += " until " + clock(r.LockedUntil, now)
		}
		if r.PINFailures > 0 {
			s += fmt.Sprintf(" after %d wrong PINs", r.PINFailures)
		} else {
			s += " after too many wrong PINs"
		}
		return s + "; ask them to contact security; nothing was done"
	case domain.StatusRejected:
		s := "rejected"
		if r.Decision != nil {
			s = withReason("rejected by "+r.Decision.ApproverID, r.Decision.Reason)
		}
		return s + "; nothing was done"
	case domain.StatusExpired:
		return "no senior decided before the deadline; nothing was done"
	case domain.StatusCancelled, domain.StatusWithdrawn:
		s := string(r.Status)
		if r.Cancellation != nil {
			s = withReason(s+" by "+who(r.Cancellation), r.Cancellation.Reason)
		}
		return s + "; nothing was done"
	case domain.StatusFailed:
		s := "failed"
		if r.Failure != "" {
			s += ": " + r.Failure
		}
		return s + "; tell the Vigil operators"
	}
	return string(r.Status)
}

func approvedBy(r cliclient.Request) string {
	if r.Decision != nil && r.Decision.ApproverID != "" {
		return "approved by " + r.Decision.ApproverID
	}
	return "approved"
}

func plural(n int, suffix string) string {
	if n == 1 {
		return ""
	}
	return suffix
}

// printBlock writes a readable status block for r.
func printBlock(w io.Writer, r cliclient.Request, now time.Time) {
	r = current(r)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// Values come from the server, some typed by people: anything the text
	// rule refuses is written out, so nothing can rewrite the terminal.
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, textrule.Escape(v)) }
	row("Request", r.ID)
	email := ""
	if r.Email != "" {
		email = textrule.DisplayEmail(r.Email)
	}
	row("Action", fmt.Sprintf("%s: %s", r.Action, r.Action.Describe(r.ServerID, email)))
	row("Customer", r.CustomerID)
	row("Requester", r.RequesterID)
	if r.Reason != "" {
		row("Reason", r.Reason)
	}
	state := string(r.Status)
	if r.Final {
		state += " (final)"
	}
	row("Status", state+": "+describe(r, now))
	row("Opened", stamp(r.OpenedAt))
	switch {
	case !r.PINVerifiedAt.IsZero():
		row("PIN", "verified "+stamp(r.PINVerifiedAt))
	case r.PINFailures > 0:
		row("PIN", fmt.Sprintf("%d wrong attempt%s", r.PINFailures, plural(r.PINFailures, "s")))
	}
	if !r.LockedUntil.IsZero() {
		row("Locked until", stamp(r.LockedUntil))
	}
	if d := r.Decision; d != nil {
		row("Decision", withReason(fmt.Sprintf("%s by %s at %s", d.Decision, d.ApproverID, stamp(d.At)), d.Reason))
	} else if !r.ApprovalDeadline.IsZero() {
		row("Approval", "none yet; deadline "+stamp(r.ApprovalDeadline))
	}
	if !r.NotifiedAt.IsZero() {
		row("Notified", fmt.Sprintf("%d address%s at %s", r.Recipients, plural(int(r.Recipients), "es"), stamp(r.NotifiedAt)))
	}
	if !r.CoolingEndsAt.IsZero() {
		row("Cooling ends", stamp(r.CoolingEndsAt))
	}
	if c := r.Cancellation; c != nil {
		row("Cancelled", withReason(fmt.Sprintf("by %s at %s", who(c), stamp(c.At)), c.Reason))
	}
	if !r.ExecutedAt.IsZero() {
		row("Executed", stamp(r.ExecutedAt))
	}
	if r.Reference != "" {
		row("Reference", r.Reference)
	}
	if r.Failure != "" {
		row("Failure", r.Failure)
	}
	if !r.EndedAt.IsZero() {
		row("Ended", stamp(r.EndedAt))
	}
	tw.Flush()
}
