package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestAuditAppendAndTrail(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	events := []AuditEvent{
		{RequestID: f.request, Actor: f.requester, Event: "requested", Details: map[string]any{"action": "reinstall_vps"}, At: t0},
		{RequestID: f.request, Actor: "system", Event: "pin_verified"},
		{RequestID: "req_other", Actor: "system", Event: "pin_failed"},
		{Actor: "admin", Event: "agent_disabled", Details: map[string]any{"agent": "carol"}},
	}
	before := time.Now().Add(-time.Minute)
	for _, e := range events {
		if err := s.Audit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	trail, err := s.AuditTrail(ctx, f.request)
	if err != nil {
		t.Fatal(err)
	}
	if len(trail) != 2 || trail[0].Event != "requested" || trail[1].Event != "pin_verified" || trail[0].ID >= trail[1].ID {
		t.Fatalf("trail = %+v", trail)
	}
	if trail[0].Actor != f.requester || trail[0].RequestID != f.request || trail[0].Details["action"] != "reinstall_vps" || !trail[0].At.Equal(t0) {
		t.Fatalf("first event = %+v", trail[0])
	}
	if trail[1].Details == nil || len(trail[1].Details) != 0 || trail[1].At.Before(before) {
		t.Fatalf("second event = %+v, want empty details and At defaulted to now", trail[1])
	}
	if n := countRows(t, s, "SELECT count(*) FROM audit_events WHERE request_id IS NULL AND event = 'agent_disabled'"); n != 1 {
		t.Fatalf("agent event without request stored %d times", n)
	}
	for _, bad := range []AuditEvent{{Event: "x"}, {Actor: "x"}, {Actor: "a", Event: "e", Details: map[string]any{"f": func() {}}}} {
		if err := s.Audit(ctx, bad); err == nil {
			t.Errorf("Audit(%+v) accepted", bad)
		}
	}
}

func TestAuditEventsAreAppendOnly(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	if err := s.Audit(ctx, AuditEvent{RequestID: f.request, Actor: "alice", Event: "requested", Details: map[string]any{"k": "v"}, At: t0}); err != nil {
		t.Fatal(err)
	}
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tests := []struct {
		name, sql string
	}{
		{"update", "UPDATE audit_events SET actor = 'mallory', details = '{}'"},
		{"delete", "DELETE FROM audit_events"},
		{"truncate", "TRUNCATE audit_events"},
		{"truncate cascade", "TRUNCATE audit_events RESTART IDENTITY CASCADE"},
		// A superuser can switch off ordinary triggers this way; ours are ENABLE ALWAYS.
		{"delete as replica", "SET session_replication_role = replica; DELETE FROM audit_events"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := conn.ExecContext(ctx, tt.sql)
			if _, rerr := conn.ExecContext(ctx, "RESET session_replication_role"); rerr != nil {
				t.Fatal(rerr)
			}
			if err == nil {
				t.Fatalf("%s succeeded on audit_events", tt.sql)
			}
			if !strings.Contains(err.Error(), "append-only") {
				t.Fatalf("error %q does not mention append-only", err)
			}
			trail, err := s.AuditTrail(ctx, f.request)
			if err != nil {
				t.Fatal(err)
			}
			if len(trail) != 1 || trail[0].Actor != "alice" || trail[0].Details["k"] != "v" || !trail[0].At.Equal(t0) {
				t.Fatalf("audit row changed: %+v", trail)
			}
		})
	}
}

func TestAuditOnceDedupes(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	e := AuditEvent{RequestID: f.request, Actor: "system", Event: "customer_notified", Details: map[string]any{"to": "owner@acme.test"}}
	for range 3 { // an activity retried three times
		if err := s.AuditOnce(ctx, e, "attempt-key-1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AuditOnce(ctx, e, "attempt-key-2"); err != nil { // another key: a distinct event
		t.Fatal(err)
	}
	other := e
	other.Event = "customer_notice_failed"
	if err := s.AuditOnce(ctx, other, "attempt-key-1"); err != nil { // same key, other event
		t.Fatal(err)
	}
	noReq := AuditEvent{Actor: "admin", Event: "agent_created"}
	for range 2 { // no request id: still deduplicated
		if err := s.AuditOnce(ctx, noReq, "agent-carol"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Audit(ctx, e); err != nil { // plain Audit is never deduplicated
		t.Fatal(err)
	}
	if err := s.Audit(ctx, e); err != nil {
		t.Fatal(err)
	}

	trail, err := s.AuditTrail(ctx, f.request)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, ev := range trail {
		k, _ := ev.Details["dedupe"].(string)
		keys = append(keys, ev.Event+"/"+k)
	}
	want := "[customer_notified/attempt-key-1 customer_notified/attempt-key-2 customer_notice_failed/attempt-key-1 customer_notified/ customer_notified/]"
	if got := "[" + strings.Join(keys, " ") + "]"; got != want {
		t.Fatalf("trail = %s, want %s", got, want)
	}
	if trail[0].Details["to"] != "owner@acme.test" {
		t.Fatalf("AuditOnce lost the caller's details: %+v", trail[0].Details)
	}
	if _, ok := e.Details["dedupe"]; ok {
		t.Fatal("AuditOnce modified the caller's details map")
	}
	if n := countRows(t, s, "SELECT count(*) FROM audit_events WHERE request_id IS NULL"); n != 1 {
		t.Fatalf("request-less AuditOnce stored %d rows, want 1", n)
	}
	if err := s.AuditOnce(ctx, e, ""); err == nil {
		t.Fatal("AuditOnce accepted an empty dedupe key")
	}
}
