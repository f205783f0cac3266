package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
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
	}
	for i, ev := range events {
		ev.e.At = t0.Add(time.Duration(i) * time.Minute)
		if err := s.Audit(ctx, ev.e); err != nil {
			t.Fatal(err)
		}
	}
	nameOf := map[string]string{} // "event at" -> name
	for i, ev := range events {
		nameOf[fmt.Sprint(ev.e.Event, t0.Add(time.Duration(i)*time.Minute).Unix())] = ev.name
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	all := []string{"opened1", "pin1", "opened2", "approved1", "created", "imported2", "pin2", "gates"}

	tests := []struct {
		name string
		f    AuditFilter
		want []string
	}{
		{"everything", AuditFilter{}, all},
		{"since is inclusive", AuditFilter{Since: at(5)}, []string{"imported2", "pin2", "gates"}},
		{"until is exclusive", AuditFilter{Until: at(2)}, []string{"opened1", "pin1"}},
		{"a window", AuditFilter{Since: at(1), Until: at(4)}, []string{"pin1", "opened2", "approved1"}},
		{"a customer: its requests' events and events about it", AuditFilter{CustomerID: "cus_2"}, []string{"opened2", "imported2", "pin2"}},
		{"the other customer", AuditFilter{CustomerID: f.customer}, []string{"opened1", "pin1", "approved1", "gates"}},
		{"an agent: what they did and what was done about them", AuditFilter{AgentID: f.requester}, []string{"opened1", "created"}},
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
	t.Run("pages by id without gaps or repeats", func(t *testing.T) {
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
