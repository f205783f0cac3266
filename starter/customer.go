package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-oss/vigil/internal/cliclient"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// customerCommands are the `starter customer` subcommands in help order.
func customerCommands() []command {
	return []command{
		{"show", "a customer's addresses (and which get notices), servers and PIN lockout", "starter customer show C-1042", (*app).cmdCustomerShow},
		{"unlock", "lift a PIN lockout (security role; audited, security is alerted)", `starter customer unlock C-1042 --reason "passed the callback check"`, (*app).cmdCustomerUnlock},
	}
}

func (a *app) cmdCustomer(ctx context.Context, g globals, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := a.stdout
		if len(args) == 0 {
			w = a.stderr
		}
		fmt.Fprintln(w, "Usage: starter customer COMMAND [flags]")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Any agent may look up any customer (with the saved token or VIGIL_TOKEN); only the")
		fmt.Fprintln(w, "security role may unlock one.")
		fmt.Fprintln(w)
		printCommands(w, customerCommands())
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Example:\n  starter customer show C-1042")
		if len(args) == 0 {
			return usagef("missing customer command")
		}
		return nil
	}
	for _, c := range customerCommands() {
		if c.name == args[0] {
			return c.run(a, ctx, g, args[1:])
		}
	}
	return usagef("unknown customer command %q; run `starter customer help`", args[0])
}

func (a *app) cmdCustomerShow(ctx context.Context, g globals, args []string) error {
	f := a.newFlags(g, "customer show", "customer show CUSTOMER_ID",
		"Shows a customer as Vigil sees it: the name, the primary address and since when, each\n"+
			"contact with when it was added and verified and whether it is established now (a\n"+
			"notice goes only to established addresses: a primary on file since the import or for\n"+
			"the ageing period, and contacts verified and on file for it), the servers (give one with\n"+
			"--server when opening a request), and the PIN lockout: locked until when, or how many\n"+
			"recent wrong PINs count toward one. Never the PIN or its hash.",
		"starter customer show C-1042", true)
	pos, err := a.parse(f, args, 1, 1)
	if err != nil {
		return err
	}
	id := strings.TrimSpace(pos[0])
	if err := checkID("customer id", id); err != nil {
		return err
	}
	c, err := a.agentClient(*f.url)
	if err != nil {
		return err
	}
	cust, err := c.ShowCustomer(ctx, id)
	if err != nil {
		return err
	}
	if a.json {
		return writeJSONLine(a.stdout, cust.Raw)
	}
	printCustomer(a.stdout, cust, time.Now())
	return nil
}

func (a *app) cmdCustomerUnlock(ctx context.Context, g globals, args []string) error {
	f := a.newFlags(g, "customer unlock", `customer unlock CUSTOMER_ID --reason "WHY"`,
		"Lifts the PIN lockout that wrong PINs put on a customer, for the security role only,\n"+
			"and clears the wrong PINs counted so far (as a right PIN does). The reason goes to the\n"+
			"audit trail (customer.unlocked) and the security channel hears of it. Anyone else is\n"+
			"refused, and the attempt is recorded.",
		`starter customer unlock C-1042 --reason "customer passed the callback check"`, true)
	reason := f.String("reason", "", "why (required; the audit trail and the security channel show it)")
	pos, err := a.parse(f, args, 1, 1)
	if err != nil {
		return err
	}
	id := strings.TrimSpace(pos[0])
	if err := checkID("customer id", id); err != nil {
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
	u, err := c.UnlockCustomer(ctx, id, why)
	if err != nil {
		return err
	}
	if a.json {
		return writeJSONLine(a.stdout, u.Raw)
	}
	fmt.Fprintf(a.stdout, "Unlocked %s: its lockout would have ended %s; %d wrong PINs no longer count. The security channel was told.\n",
		textrule.Escape(id), stamp(u.WasLockedUntil), u.ClearedFailures)
	printCustomer(a.stdout, u.Customer, time.Now())
	return nil
}

// printCustomer writes the customer view as a block, every value through
// the text rule's escape.
func printCustomer(w io.Writer, c cliclient.CustomerView, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, textrule.Escape(v)) }
	age := ageText(time.Duration(c.EstablishedAfterSeconds) * time.Second)
	row("Customer", strings.TrimSpace(c.ID+"  "+c.Name))
	if !c.ImportedAt.IsZero() {
		row("Imported", stamp(c.ImportedAt))
	}
	primary := textrule.DisplayEmail(c.PrimaryEmail)
	if c.PrimaryEmailSince.IsZero() {
		primary += "  (on file since the import)"
	} else {
		primary += "  (primary since " + stamp(c.PrimaryEmailSince) + ")"
	}
	row("Primary", primary+"  "+establishedText(c.PrimaryEstablished, true, age))
	if len(c.Contacts) == 0 {
		row("Contacts", "none")
	}
	for _, ct := range c.Contacts {
		when := "added " + stamp(ct.AddedAt)
		if !ct.VerifiedAt.IsZero() {
			when += ", verified " + stamp(ct.VerifiedAt)
		}
		row("Contact", textrule.DisplayEmail(ct.Email)+"  "+establishedText(ct.Established, !ct.VerifiedAt.IsZero(), age)+"; "+when)
	}
	if len(c.Phones) == 0 {
		row("Phones", "none")
	}
	for _, p := range c.Phones {
		when := "added " + stamp(p.AddedAt)
		if !p.VerifiedAt.IsZero() {
			when += ", verified " + stamp(p.VerifiedAt)
		}
		row("Phone", p.Masked+"  "+phoneEstablishedText(p.Established, !p.VerifiedAt.IsZero(), age)+"; "+when)
	}
	servers := "none"
	if len(c.Servers) > 0 {
		servers = strings.Join(c.Servers, ", ")
	}
	row("Servers", servers)
	row("PIN lockout", lockText(c.Lock, now))
	tw.Flush()
}

// establishedText says whether an address gets notices now, and if not,
// why: never verified, or not yet old enough.
func establishedText(established, verified bool, age string) string {
	switch {
	case established:
		return "established: gets notices"
	case !verified:
		return "NOT established: never verified, gets no notices"
	}
	return "NOT established: on file or verified for less than " + age + ", gets no notices yet"
}

// phoneEstablishedText is establishedText for a phone number: whether it
// is established. Vigil does not send SMS notices yet, and says so, so that
// no agent counts on the customer having been told by SMS.
func phoneEstablishedText(established, verified bool, age string) string {
	const notYet = " (Vigil sends no SMS notices yet)"
	switch {
	case established:
		return "established" + notYet
	case !verified:
		return "NOT established: never verified" + notYet
	}
	return "NOT established: on file or verified for less than " + age + notYet
}

// lockText describes the PIN lockout.
func lockText(l cliclient.LockView, now time.Time) string {
	window := ageText(time.Duration(l.WindowSeconds) * time.Second)
	if l.Locked {
		s := "LOCKED"
		if !l.LockedUntil.IsZero() {
			s += " until " + clock(l.LockedUntil, now)
		}
		return s + " after too many wrong PINs; requests are refused until then (ask the customer to contact security)"
	}
	if l.RecentFailures == 0 {
		return fmt.Sprintf("not locked; no recent wrong PINs (%d within %s lock)", l.MaxFailures, window)
	}
	s := fmt.Sprintf("not locked; %d recent wrong PIN%s", l.RecentFailures, plural(l.RecentFailures, "s"))
	if !l.FirstFailureAt.IsZero() {
		s += " since " + clock(l.FirstFailureAt, now)
	}
	return s + fmt.Sprintf(" (%d within %s lock)", l.MaxFailures, window)
}

// ageText writes a duration as people say it: "7 days", "15m", "36h".
func ageText(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d%(24*time.Hour) == 0:
		n := int(d / (24 * time.Hour))
		return fmt.Sprintf("%d day%s", n, plural(n, "s"))
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
