package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/testpg"
)

// TestAuditExportFilters runs every filter of AuditExport over one trail of
// two customers' requests, agent and customer events, and checks the events
// each keeps, in id order.
func TestAuditExportFilters(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	hashOf := func() string {
		var h string
		if err := s.DB().QueryRow(`SELECT pin_hash FROM customers WHERE id = $1`, f.customer).Scan(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	if err := s.UpsertCustomer(ctx, CustomerImport{ID: "cus_2", Name: "Beta", PrimaryEmail: "b@beta.test", PINHash: hashOf()}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRequest(ctx, Request{ID: "req_2", WorkflowID: "wf-req_2", Action: domain.ActionDisable2FA,
		CustomerID: "cus_2", RequesterID: f.senior, Reason: "lost phone", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	// name -> event, appended in this order at t0 + i minutes.
	events := []struct {
		name string
		e    AuditEvent
	}{
		{"opened1", AuditEvent{RequestID: f.request, Actor: "agent:" + f.requester, Event: "request.opened", Details: map[string]any{"customer": f.customer}}},
		{"pin1", AuditEvent{RequestID: f.request, Actor: "system", Event: "gate.pin.verified"}},
		{"opened2", AuditEvent{RequestID: "req_2", Actor: "agent:" + f.senior, Event: "request.opened", Details: map[string]any{"customer": "cus_2"}}},
		{"approved1", AuditEvent{RequestID: f.request, Actor: "agent:" + f.senior, Event: "gate.approval.passed"}},
		{"created", AuditEvent{Actor: "admin", Event: "agent.created", Details: map[string]any{"agent_id": f.requester}}},
		{"imported2", AuditEvent{Actor: "admin", Event: "customer.imported", Details: map[string]any{"customer_id": "cus_2"}}},
		{"pin2", AuditEvent{RequestID: "req_2", Actor: "system", Event: "gate.pin.rejected"}},
		{"gates", AuditEvent{RequestID: f.request, Actor: "system", Event: "gates"}},
		// A refused Slack click names the requester in details.agent.
		{"refused", AuditEvent{RequestID: f.request, Actor: "slack:U0FRANK", Event: "slack.click_refused",
			Details: map[string]any{"code": "not_senior", "agent": f.requester, "slack_user": "U0FRANK"}}},
	}
	for i, ev := range events {
		ev.e.At = t0.Add(time.Duration(i) * time.Minute)
		if err := s.Audit(ctx, ev.e); err != nil {
			t.Fatal(err)
		}
	}
	testpg.AwaitAuditExport(t, s.DB())
	nameOf := map[string]string{} // "event at" -> name
	for i, ev := range events {
		nameOf[fmt.Sprint(ev.e.Event, t0.Add(time.Duration(i)*time.Minute).Unix())] = ev.name
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	all := []string{"opened1", "pin1", "opened2", "approved1", "created", "imported2", "pin2", "gates", "refused"}

	tests := []struct {
		name string
		f    AuditFilter
		want []string
	}{
		{"everything", AuditFilter{}, all},
		{"since is inclusive", AuditFilter{Since: at(5)}, []string{"imported2", "pin2", "gates", "refused"}},
		{"until is exclusive", AuditFilter{Until: at(2)}, []string{"opened1", "pin1"}},
		{"a window", AuditFilter{Since: at(1), Until: at(4)}, []string{"pin1", "opened2", "approved1"}},
		{"a customer: its requests' events and events about it", AuditFilter{CustomerID: "cus_2"}, []string{"opened2", "imported2", "pin2"}},
		{"the other customer", AuditFilter{CustomerID: f.customer}, []string{"opened1", "pin1", "approved1", "gates", "refused"}},
		{"an agent: what they did, what was done about them, clicks refused on their request", AuditFilter{AgentID: f.requester}, []string{"opened1", "created", "refused"}},
		{"an agent's refused Slack clicks", AuditFilter{AgentID: f.requester, Event: "slack.*"}, []string{"refused"}},
		{"a senior: what they did", AuditFilter{AgentID: f.senior}, []string{"opened2", "approved1"}},
		{"an event name", AuditFilter{Event: "request.opened"}, []string{"opened1", "opened2"}},
		{"an event prefix", AuditFilter{Event: "gate.*"}, []string{"pin1", "approved1", "pin2"}},
		{"a deeper prefix", AuditFilter{Event: "gate.pin.*"}, []string{"pin1", "pin2"}},
		{"a name is not a prefix", AuditFilter{Event: "gate"}, nil},
		{"filters combine", AuditFilter{CustomerID: "cus_2", Event: "gate.*", Since: at(3)}, []string{"pin2"}},
		{"nobody matches", AuditFilter{AgentID: "nobody"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.AuditExport(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for i, e := range got {
				if i > 0 && e.ID <= got[i-1].ID {
					t.Errorf("events out of id order: %d after %d", e.ID, got[i-1].ID)
				}
				names = append(names, nameOf[fmt.Sprint(e.Event, e.At.Unix())])
			}
			if !slices.Equal(names, tc.want) {
				t.Errorf("got %v, want %v", names, tc.want)
			}
		})
	}
	t.Run("an unknown cursor is refused", func(t *testing.T) {
		if _, err := s.AuditExport(ctx, AuditFilter{AfterID: 1 << 60}); !errors.Is(err, ErrUnknownCursor) {
			t.Errorf("AuditExport(after=2^60) = %v, want ErrUnknownCursor", err)
		}
	})
	t.Run("pages without gaps or repeats", func(t *testing.T) {
		for _, size := range []int{1, 2, 3, 7, 8, 100} {
			var names []string
			after, pages := int64(0), 0
			for {
				page, err := s.AuditExport(ctx, AuditFilter{AfterID: after, Limit: size})
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > size {
					t.Fatalf("page of %d events for limit %d", len(page), size)
				}
				if len(page) == 0 {
					break
				}
				pages++
				for _, e := range page {
					names = append(names, nameOf[fmt.Sprint(e.Event, e.At.Unix())])
				}
				after = page[len(page)-1].ID
			}
			if !slices.Equal(names, all) {
				t.Errorf("limit %d: paged %v, want %v", size, names, all)
			}
			if want := (len(all) + size - 1) / size; pages != want {
				t.Errorf("limit %d: %d pages, want %d", size, pages, want)
			}
		}
	})
	t.Run("the limit is capped", func(t *testing.T) {
		for i := range MaxAuditPage + 5 {
			if err := s.Audit(ctx, AuditEvent{Actor: "system", Event: "bulk", Details: map[string]any{"i": i}}); err != nil {
				t.Fatal(err)
			}
		}
		testpg.AwaitAuditExport(t, s.DB())
		got, err := s.AuditExport(ctx, AuditFilter{Event: "bulk", Limit: MaxAuditPage + 5})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != MaxAuditPage {
			t.Errorf("limit %d answered %d events, want at most %d", MaxAuditPage+5, len(got), MaxAuditPage)
		}
		if got, err = s.AuditExport(ctx, AuditFilter{Event: "bulk"}); err != nil || len(got) != defaultAuditPage {
			t.Errorf("no limit answered %d events (%v), want the default %d", len(got), err, defaultAuditPage)
		}
	})
}

// TestAuditExportLateCommit: a transaction that takes its event id first and
// commits after a later one (the open holds its transaction across the
// Temporal start) is neither skipped nor repeated by a reader paging with the
// last id of each page. Not parallel: the held transaction holds back the
// export of every test's events until it ends.
func TestAuditExportLateCommit(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	page := func(after int64) []AuditEvent {
		t.Helper()
		got, err := s.AuditExport(ctx, AuditFilter{Event: "late.*", AfterID: after})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// Committed before the slow one starts: the reader sees it at once.
	if err := s.Audit(ctx, AuditEvent{Actor: "system", Event: "late.before", At: t0}); err != nil {
		t.Fatal(err)
	}
	testpg.AwaitAuditExport(t, s.DB())
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := auditIn(ctx, tx, AuditEvent{RequestID: f.request, Actor: "system", Event: "late.slow", At: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Audit(ctx, AuditEvent{Actor: "system", Event: "late.fast", At: t0}); err != nil {
		t.Fatal(err)
	}
	var read []AuditEvent
	cursor := func(p []AuditEvent, after int64) int64 {
		if len(p) == 0 {
			return after
		}
		return p[len(p)-1].ID
	}
	first := page(0)
	read = append(read, first...)
	after := cursor(first, 0)
	// While the slow transaction is open, the fast event that committed after
	// it started stays behind it: handing it out would move the cursor past
	// the slow one's place.
	if again := page(after); len(again) != 0 {
		t.Fatalf("a page while late.slow is uncommitted answered %v", again)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	testpg.AwaitAuditExport(t, s.DB())
	next := page(after)
	read = append(read, next...)
	after = cursor(next, after)
	if rest := page(after); len(rest) != 0 {
		t.Errorf("a page after the last answered %v", rest)
	}
	var names []string
	for _, e := range read {
		names = append(names, e.Event)
	}
	if want := []string{"late.before", "late.slow", "late.fast"}; !slices.Equal(names, want) {
		t.Fatalf("paged %v (first page %d events), want %v: each committed event once, in transaction order", names, len(first), want)
	}
}
