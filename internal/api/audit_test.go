package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/agentauth"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/testpg"
)

// auditEnv is an env with a second agent, a request of each agent and a
// trail for both, plus events about an agent and a customer.
func auditEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, adminToken, Options{})
	ctx := context.Background()
	tok, err := agentauth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateAgent(ctx, store.Agent{ID: "ag_other", Name: "Otto Other", Role: domain.RoleAgent}, agentauth.Hash(tok)); err != nil {
		t.Fatal(err)
	}
	secTok, err := agentauth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateAgent(ctx, store.Agent{ID: "ag_sec", Name: "Sasha Security", Role: domain.RoleSecurity}, agentauth.Hash(secTok)); err != nil {
		t.Fatal(err)
	}
	e.tokens["ag_sec"] = secTok
	e.tokens["ag_other"] = tok
	for _, r := range []store.Request{
		{ID: "req_own1", Action: domain.ActionDisable2FA, CustomerID: "C-1042", RequesterID: "ag_req", Reason: "lost phone"},
		{ID: "req_other1", Action: domain.ActionReinstallVPS, CustomerID: "C-1042", ServerID: "srv-1", RequesterID: "ag_other", Reason: "compromised"},
	} {
		r.WorkflowID = "wf-" + r.ID
		if err := e.st.OpenRequest(ctx, r, func(context.Context) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, ev := range []store.AuditEvent{
		{RequestID: "req_own1", Actor: "system", Event: "gate.pin.verified", Details: map[string]any{"customer": "C-1042"}},
		{RequestID: "req_other1", Actor: "system", Event: "gate.pin.rejected", Details: map[string]any{"customer": "C-1042", "failures": 1}},
		{RequestID: "req_own1", Actor: "agent:ag_senior", Event: "gate.approval.passed", Details: map[string]any{"reason": "ok \x1b[2J"}},
		{Actor: "admin", Event: "agent.disabled", Details: map[string]any{"agent_id": "ag_other"}},
	} {
		if err := e.st.Audit(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func mustDecode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

func eventNames(es []AuditEvent) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Event)
	}
	return out
}

// TestRequestAuditTrail checks GET /api/v1/requests/{id}/audit: the
// request's events in order, under the read rule of GET
// /api/v1/requests/{id}, a hidden request answering exactly like a missing
// one.
func TestRequestAuditTrail(t *testing.T) {
	t.Parallel()
	e := auditEnv(t)
	tests := []struct {
		who, id string
		status  int
		code    string
		events  []string
	}{
		{"ag_req", "req_own1", 200, "", []string{"request.opened", "gate.pin.verified", "gate.approval.passed"}},
		{"ag_other", "req_other1", 200, "", []string{"request.opened", "gate.pin.rejected"}},
		{"ag_senior", "req_other1", 200, "", []string{"request.opened", "gate.pin.rejected"}},
		// The security role exports every request's events, so it reads one's.
		{"ag_sec", "req_own1", 200, "", []string{"request.opened", "gate.pin.verified", "gate.approval.passed"}},
		{"ag_sec", "req_doesnotexist", 404, "request_not_found", nil},
		{"ag_req", "req_other1", 404, "request_not_found", nil},
		{"ag_other", "req_own1", 404, "request_not_found", nil},
		{"ag_req", "req_doesnotexist", 404, "request_not_found", nil},
		{"ag_senior", "req_doesnotexist", 404, "request_not_found", nil},
		{"ag_req", "not-a-request-id", 404, "request_not_found", nil},
		{"ag_off", "req_own1", 401, "unauthenticated", nil},
	}
	missing := map[string]string{} // who -> body for a missing request, id blanked
	for _, who := range []string{"ag_req", "ag_other"} {
		res := e.as(who, "GET", "/api/v1/requests/req_doesnotexist/audit", "")
		missing[who] = strings.ReplaceAll(string(res.body), "req_doesnotexist", "ID")
	}
	for _, tc := range tests {
		t.Run(tc.who+"/"+tc.id, func(t *testing.T) {
			res := e.as(tc.who, "GET", "/api/v1/requests/"+tc.id+"/audit", "")
			if tc.status != 200 {
				if res.status != tc.status || res.problem(t).Code != tc.code {
					t.Fatalf("%d %s, want %d %s", res.status, res.body, tc.status, tc.code)
				}
				if strings.Contains(string(res.body), "compromised") || strings.Contains(string(res.body), "lost phone") {
					t.Errorf("refusal leaks a reason: %s", res.body)
				}
				if m, ok := missing[tc.who]; ok && tc.code == "request_not_found" && strings.HasPrefix(tc.id, "req_") {
					if got := strings.ReplaceAll(string(res.body), tc.id, "ID"); got != m {
						t.Errorf("answers\n %s\nbut a missing request\n %s", got, m)
					}
				}
				return
			}
			got := mustDecode[AuditTrail](t, res)
			if got.RequestID != tc.id || !slices.Equal(eventNames(got.Events), tc.events) {
				t.Fatalf("trail of %s: %s %v, want %v", tc.id, got.RequestID, eventNames(got.Events), tc.events)
			}
			want, err := e.st.AuditTrail(context.Background(), tc.id)
			if err != nil {
				t.Fatal(err)
			}
			for i, ev := range got.Events {
				w := want[i]
				if ev.ID != w.ID || ev.RequestID != tc.id || ev.Actor != w.Actor || !ev.At.Equal(w.At) || ev.At.Location() != time.UTC ||
					fmt.Sprint(ev.Details) != fmt.Sprint(w.Details) {
					t.Errorf("event %d = %+v, want %+v", i, ev, w)
				}
			}
		})
	}
	// The control character in a detail travels escaped inside the JSON,
	// never as a raw byte.
	res := e.as("ag_req", "GET", "/api/v1/requests/req_own1/audit", "")
	if strings.ContainsRune(string(res.body), 0x1b) || !strings.Contains(string(res.body), `\u001b`) {
		t.Errorf("the escape character is not escaped in the JSON: %q", res.body)
	}
	if res := e.call("GET", "/api/v1/requests/req_own1/audit", "Bearer "+adminToken, "", ""); res.status != http.StatusUnauthorized {
		t.Errorf("bootstrap token: %d %s, want 401", res.status, res.body)
	}
	// A named admin reads no request through the agent API.
	if res := e.admin("GET", "/api/v1/requests/req_own1/audit", ""); res.status != http.StatusNotFound {
		t.Errorf("admin's own token: %d %s, want 404", res.status, res.body)
	}
}

// TestAuditExportAPI checks GET /api/v1/audit: seniors only, strict query
// validation, filters, and keyset pages that together hold every event once.
func TestAuditExportAPI(t *testing.T) {
	t.Parallel()
	e := auditEnv(t)
	testpg.AwaitAuditExport(t, e.st.DB())
	all, err := e.st.AuditExport(context.Background(), store.AuditFilter{Limit: store.MaxAuditPage})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 6 {
		t.Fatalf("only %d events seeded", len(all))
	}

	t.Run("seniors only", func(t *testing.T) {
		for _, who := range []string{"ag_req", "ag_other"} {
			for _, q := range []string{"", "?customer=C-1042", "?bogus=1"} {
				res := e.as(who, "GET", "/api/v1/audit"+q, "")
				if res.status != http.StatusForbidden || res.problem(t).Code != "forbidden" {
					t.Fatalf("%s%s: %d %s, want 403 forbidden", who, q, res.status, res.body)
				}
				if strings.Contains(string(res.body), "request.opened") {
					t.Errorf("refusal carries events: %s", res.body)
				}
			}
		}
		for _, auth := range []string{"Bearer " + e.tokens["ag_off"], "Bearer " + adminToken, ""} {
			if res := e.call("GET", "/api/v1/audit", auth, "", ""); res.status != http.StatusUnauthorized {
				t.Errorf("%.12s…: %d, want 401", auth, res.status)
			}
		}
	})

	t.Run("strict query", func(t *testing.T) {
		tests := []struct{ query, names string }{
			{"color=red", `"color"`},
			{"customer=C-1042&customer=C-2001", `"customer"`},
			{"since=yesterday", "since"},
			{"until=2026-03-01", "until"},
			{"since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z", "before until"},
			{"since=2026-03-01T00:00:00Z&until=2026-03-01T00:00:00Z", "before until"},
			{"customer=" + url.QueryEscape("C 1042"), "customer"},
			{"agent=" + url.QueryEscape("ag/x"), "agent"},
			{"event=GATE", "event"},
			{"event=gate*", "event"},
			{"event=" + strings.Repeat("a", 101), "event"},
			{"after=-1", "after"},
			{"after=x", "after"},
			{"after=999999999", "after"}, // no such event
			{"limit=0", "limit"},
			{"limit=1001", "limit"},
			{"limit=ten", "limit"},
		}
		for _, tc := range tests {
			before := e.count("audit_events")
			res := e.as("ag_senior", "GET", "/api/v1/audit?"+tc.query, "")
			if res.status != http.StatusBadRequest {
				t.Errorf("%s: %d %s, want 400", tc.query, res.status, res.body)
				continue
			}
			if p := res.problem(t); p.Code != "invalid_input" || !strings.Contains(p.Detail, tc.names) {
				t.Errorf("%s: %s %q, want invalid_input naming %s", tc.query, p.Code, p.Detail, tc.names)
			}
			if n := e.count("audit_events"); n != before {
				t.Errorf("%s: the refusal wrote %d audit events", tc.query, n-before)
			}
		}
	})

	t.Run("filters", func(t *testing.T) {
		tests := []struct {
			query string
			want  []string
		}{
			{"agent=ag_other", []string{"request.opened", "agent.disabled"}},
			{"event=gate.*", []string{"gate.pin.verified", "gate.pin.rejected", "gate.approval.passed"}},
			{"event=gate.pin.rejected&customer=C-1042", []string{"gate.pin.rejected"}},
			{"customer=C-2001", nil},
			{"since=" + url.QueryEscape(all[len(all)-1].At.UTC().Format(time.RFC3339Nano)), []string{"agent.disabled"}},
			{"until=" + all[0].At.UTC().Format(time.RFC3339Nano), nil},
		}
		for _, tc := range tests {
			got := mustDecode[AuditPage](t, e.as("ag_senior", "GET", "/api/v1/audit?"+tc.query, ""))
			if !slices.Equal(eventNames(got.Events), tc.want) {
				t.Errorf("%s: %v, want %v", tc.query, eventNames(got.Events), tc.want)
			}
			if got.NextAfter != nil {
				t.Errorf("%s: next_after on a page that is not full", tc.query)
			}
		}
	})

	t.Run("pages", func(t *testing.T) {
		for _, limit := range []int{1, 2, len(all) - 1, len(all), 1000} {
			var got []AuditEvent
			path, calls := fmt.Sprintf("/api/v1/audit?limit=%d", limit), 0
			for {
				calls++
				page := mustDecode[AuditPage](t, e.as("ag_senior", "GET", path, ""))
				got = append(got, page.Events...)
				if page.NextAfter == nil {
					break
				}
				if len(page.Events) != limit || *page.NextAfter != page.Events[len(page.Events)-1].ID {
					t.Fatalf("limit %d: next_after %d on a page of %d", limit, *page.NextAfter, len(page.Events))
				}
				path = fmt.Sprintf("/api/v1/audit?limit=%d&after=%d", limit, *page.NextAfter)
			}
			if len(got) != len(all) {
				t.Fatalf("limit %d: %d events over %d calls, want %d", limit, len(got), calls, len(all))
			}
			for i := range got {
				if got[i].ID != all[i].ID || got[i].Event != all[i].Event {
					t.Fatalf("limit %d: event %d is %d %s, want %d %s", limit, i, got[i].ID, got[i].Event, all[i].ID, all[i].Event)
				}
			}
			if want := len(all)/limit + 1; calls != want {
				t.Errorf("limit %d: %d calls, want %d", limit, calls, want)
			}
		}
	})
}
