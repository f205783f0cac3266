package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/vigil-oss/vigil/internal/cliclient"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// maxAuditPage is the largest page GET /api/v1/audit answers.
const maxAuditPage = 1000

// auditFilterFlags are the flags of the export; none applies to one
// request's trail.
var auditFilterFlags = []string{"since", "until", "customer", "agent", "event", "after", "page"}

// eventFlag is what --event accepts, as the server does.
var eventFlag = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?$`)

func (a *app) cmdAudit(ctx context.Context, g globals, args []string) error {
	f := a.newFlags(g, "audit", "audit REQUEST_ID | audit [--since T] [--until T] [--customer ID] [--agent ID] [--event NAME] [--after ID]",
		"With a request id: that request's audit trail, in order: time (UTC), actor, event and\n"+
			"details. You may read the trail of a request you may read (an agent: the requests they\n"+
			"opened; a senior or the security role: any).\n\n"+
			"Without one: the whole trail (requests, agents, customers), filtered, paged through to\n"+
			"the end; for seniors and the security role. This is the export for a SIEM: add --json.\n\n"+
			"It is in transaction order, and an event shows only once every older transaction has\n"+
			"ended, so no event ever lands behind one already exported. To follow the trail, resume\n"+
			"with --after the id of the last event you have: --since filters by the event's time,\n"+
			"which is taken when it is written, not when it commits, and may miss a late one.\n\n"+
			"T is an RFC 3339 time (2026-03-01T09:00:00Z), a date (2026-03-01, midnight UTC) or a\n"+
			"duration back from now (24h, 90m). --since is inclusive, --until exclusive.\n"+
			"--event takes an event name (gate.pin.rejected) or a prefix (gate.*).\n\n"+
			"--json prints JSON lines, one event per line as Vigil sent it (id, request_id, at,\n"+
			"actor, event, details), with every non-ASCII character as a \\u escape.\n\n"+
			"More examples:\n"+
			"  starter audit --after \"$(tail -n1 siem.jsonl | jq .id)\" --json >> siem.jsonl\n"+
			"  starter audit --since 24h --event 'gate.pin.*' --json\n"+
			"  starter audit --customer C-1042 --since 2026-03-01 --until 2026-04-01\n"+
			"  starter audit --agent ag_alice --json",
		"starter audit req_7kq2m4xa", true)
	since := f.String("since", "", "only events at or after T")
	until := f.String("until", "", "only events before T")
	customer := f.String("customer", "", "only events of this customer's requests, or about the customer")
	agent := f.String("agent", "", "only events this agent did, or about them")
	event := f.String("event", "", "only this event (gate.pin.rejected), or these (gate.*)")
	after := f.Int64("after", 0, "only events after this one (the id of the last event you have)")
	page := f.Int("page", 500, fmt.Sprintf("events per call to Vigil, 1 to %d", maxAuditPage))
	pos, err := a.parse(f, args, 0, 1)
	if err != nil {
		return err
	}
	var filters []string
	f.Visit(func(fl *flag.Flag) {
		for _, n := range auditFilterFlags {
			if fl.Name == n {
				filters = append(filters, "--"+n)
			}
		}
	})
	if len(pos) == 1 {
		if len(filters) > 0 {
			return usagef("%s filter the export; leave out the request id, or the filters", strings.Join(filters, ", "))
		}
		if err := checkRequestID(pos[0]); err != nil {
			return err
		}
		c, err := a.agentClient(*f.url)
		if err != nil {
			return err
		}
		trail, err := c.RequestAudit(ctx, pos[0])
		if err != nil {
			return err
		}
		if a.json {
			for _, e := range trail.Events {
				if err := writeJSONLine(a.stdout, e.Raw); err != nil {
					return err
				}
			}
			return nil
		}
		fmt.Fprintf(a.stdout, "Audit trail of %s (%d event%s, oldest first)\n", textrule.Escape(trail.RequestID), len(trail.Events), plural(len(trail.Events), "s"))
		printAuditTable(a.stdout, trail.Events, false, true)
		return nil
	}

	now := time.Now()
	filter := cliclient.AuditFilter{Limit: *page, CustomerID: strings.TrimSpace(*customer), AgentID: strings.TrimSpace(*agent), Event: strings.TrimSpace(*event)}
	if *after < 0 {
		return usagef("--after must be an event id (a whole number, 0 or more)")
	}
	filter.After = *after
	if *page < 1 || *page > maxAuditPage {
		return usagef("--page must be a whole number from 1 to %d", maxAuditPage)
	}
	if filter.Since, err = parseWhen("--since", *since, now); err != nil {
		return err
	}
	if filter.Until, err = parseWhen("--until", *until, now); err != nil {
		return err
	}
	if !filter.Since.IsZero() && !filter.Until.IsZero() && !filter.Since.Before(filter.Until) {
		return usagef("--since must be before --until")
	}
	if filter.CustomerID != "" {
		if err := checkID("--customer", filter.CustomerID); err != nil {
			return err
		}
	}
	if filter.AgentID != "" {
		if err := checkID("--agent", filter.AgentID); err != nil {
			return err
		}
	}
	if filter.Event != "" && (len(filter.Event) > 100 || !eventFlag.MatchString(filter.Event)) {
		return usagef("--event must be an event name such as gate.pin.rejected, or a prefix such as gate.*")
	}
	c, err := a.agentClient(*f.url)
	if err != nil {
		return err
	}
	if a.json {
		return c.EachAuditEvent(ctx, filter, func(e cliclient.AuditEvent) error { return writeJSONLine(a.stdout, e.Raw) })
	}
	// The table is written page by page, so a long export streams.
	var batch []cliclient.AuditEvent
	n, header := 0, true
	flush := func() {
		if len(batch) > 0 {
			printAuditTable(a.stdout, batch, true, header)
			header, batch = false, batch[:0]
		}
	}
	err = c.EachAuditEvent(ctx, filter, func(e cliclient.AuditEvent) error {
		n++
		if batch = append(batch, e); len(batch) >= *page {
			flush()
		}
		return nil
	})
	flush()
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(a.stdout, "No audit events match.")
	}
	return nil
}

// parseWhen reads T for --since/--until: RFC 3339, a date (midnight UTC) or
// a duration back from now.
func parseWhen(flagName, s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("%s must be an RFC 3339 time (2026-03-01T09:00:00Z), a date (2026-03-01) or a duration back from now (24h)", flagName)
}

// printAuditTable writes events as a table: time, actor, event, details,
// with the request id too when withRequest, under a header line if header.
func printAuditTable(w io.Writer, events []cliclient.AuditEvent, withRequest, header bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	// Every value comes from the trail, some typed by people long ago:
	// anything the text rule refuses is written out, so nothing can rewrite
	// the terminal or forge a line.
	if header {
		if withRequest {
			fmt.Fprint(tw, "TIME (UTC)\tREQUEST\tACTOR\tEVENT\tDETAILS\n")
		} else {
			fmt.Fprint(tw, "TIME (UTC)\tACTOR\tEVENT\tDETAILS\n")
		}
	}
	for _, e := range events {
		at := e.At.UTC().Format("2006-01-02 15:04:05")
		if withRequest {
			req := e.RequestID
			if req == "" {
				req = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", at, textrule.Escape(req), textrule.Escape(e.Actor), textrule.Escape(e.Event), renderDetails(e.Details))
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", at, textrule.Escape(e.Actor), textrule.Escape(e.Event), renderDetails(e.Details))
		}
	}
	tw.Flush()
}

// renderDetails writes details as key=value pairs sorted by key, each key
// and value through the text rule's escape; a value with spaces, quotes or
// "=" is quoted. The writer's once-only key ("dedupe") is left out.
func renderDetails(d map[string]any) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		if k != "dedupe" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		var v string
		switch x := d[k].(type) {
		case string:
			v = x
		default:
			b, err := json.Marshal(x)
			if err != nil {
				b = []byte("?")
			}
			v = string(b)
		}
		parts = append(parts, quoteValue(textrule.Escape(k))+"="+quoteValue(textrule.Escape(v)))
	}
	return strings.Join(parts, " ")
}

// quoteValue quotes s when it would not read as one value.
func quoteValue(s string) string {
	if s != "" && !strings.ContainsAny(s, " \"=\\\t") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// writeJSONLine writes raw as one line of JSON with only ASCII in it: the
// text is kept (as \u escapes), but nothing in it can reach a terminal as a
// control, bidi or invisible character.
func writeJSONLine(w io.Writer, raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return fmt.Errorf("an audit event from Vigil is not valid JSON: %w", err)
	}
	b := buf.Bytes()
	out := make([]byte, 0, len(b)+1)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r == utf8.RuneError && size == 1:
			out = append(out, `\ufffd`...)
		case r == 0x7f:
			out = append(out, `\u007f`...)
		case r < utf8.RuneSelf:
			out = append(out, byte(r))
		case r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		b = b[size:]
	}
	out = append(out, '\n')
	_, err := w.Write(out)
	return err
}
