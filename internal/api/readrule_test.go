package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/vigil-oss/vigil/internal/agentauth"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
)

// TestWhoMayRead walks (caller × endpoint) over the read rule: an agent reads
// only what they opened, a senior reads everything, the admin token and a
// disabled agent read nothing. Temporal is unreachable here, so a call the
// rule lets through answers 503 temporal_unavailable, and one it stops
// answers 404 before Temporal is asked: the two cannot be confused.
func TestWhoMayRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	ctx := context.Background()
	tok, err := agentauth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateAgent(ctx, store.Agent{ID: "ag_other", Name: "Otto Other", Role: domain.RoleAgent}, agentauth.Hash(tok)); err != nil {
		t.Fatal(err)
	}
	e.tokens["ag_other"] = tok
	const ownReason, otherReason = "reason-of-rita-7f3a", "reason-of-otto-9c1d"
	for _, r := range []store.Request{
		{ID: "req_own1", Action: domain.ActionDisable2FA, CustomerID: "C-1042", RequesterID: "ag_req", Reason: ownReason, Status: domain.StatusAwaitingApproval},
		{ID: "req_other1", Action: domain.ActionReinstallVPS, CustomerID: "C-1042", ServerID: "srv-1", RequesterID: "ag_other", Reason: otherReason, Status: domain.StatusAwaitingApproval},
	} {
		r.WorkflowID = "wf-" + r.ID
		if err := e.st.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	// notFound is how a request that does not exist answers, with its id
	// taken out so the bodies of two ids compare.
	notFound := func(t *testing.T, method, path, id, auth string) string {
		t.Helper()
		res := e.call(method, strings.Replace(path, "{id}", id, 1), auth, "application/json", `{"reason":"done"}`)
		if res.status != http.StatusNotFound || res.problem(t).Code != "request_not_found" {
			t.Fatalf("%s %s: %d %s, want 404 request_not_found", method, path, res.status, res.body)
		}
		return strings.ReplaceAll(string(res.body), id, "ID")
	}
	bearer := func(who string) string {
		if who == "admin" {
			return "Bearer " + adminToken
		}
		return "Bearer " + e.tokens[who]
	}

	type want struct {
		status int
		code   string
	}
	reached := want{http.StatusServiceUnavailable, "temporal_unavailable"} // the rule let it through
	hidden := want{http.StatusNotFound, "request_not_found"}
	refusedAuth := want{http.StatusUnauthorized, "unauthenticated"}
	single := []struct{ name, method, path string }{
		{"get", "GET", "/api/v1/requests/{id}"},
		{"withdraw", "POST", "/api/v1/requests/{id}/withdraw"},
	}
	tests := []struct {
		name, who, id string
		want          want
		listed        []string // what GET /api/v1/requests shows the caller (nil: refused)
	}{
		{"agent, own request", "ag_req", "req_own1", reached, []string{"req_own1"}},
		{"agent, another agent's request", "ag_req", "req_other1", hidden, []string{"req_own1"}},
		{"other agent, first agent's request", "ag_other", "req_own1", hidden, []string{"req_other1"}},
		{"senior, any request", "ag_senior", "req_other1", reached, []string{"req_other1", "req_own1"}},
		{"admin token", "admin", "req_own1", refusedAuth, nil},
		{"disabled agent", "ag_off", "req_own1", refusedAuth, nil},
	}
	for _, tc := range tests {
		for _, op := range single {
			t.Run(tc.name+"/"+op.name, func(t *testing.T) {
				before := e.temporal.Writes()
				res := e.call(op.method, strings.Replace(op.path, "{id}", tc.id, 1), bearer(tc.who), "application/json", `{"reason":"done"}`)
				if res.status != tc.want.status || res.problem(t).Code != tc.want.code {
					t.Fatalf("%d %s, want %d %s", res.status, res.body, tc.want.status, tc.want.code)
				}
				for _, reason := range []string{ownReason, otherReason} {
					if strings.Contains(string(res.body), reason) {
						t.Errorf("body leaks a reason: %s", res.body)
					}
				}
				if tc.want == hidden {
					if got, same := strings.ReplaceAll(string(res.body), tc.id, "ID"), notFound(t, op.method, op.path, "req_doesnotexist", bearer(tc.who)); got != same {
						t.Errorf("hidden request answers\n %s\nbut a missing one\n %s", got, same)
					}
					if w := e.temporal.Writes(); w != before {
						t.Errorf("%d Temporal writes for a hidden request", w-before)
					}
				}
			})
		}
		t.Run(tc.name+"/list", func(t *testing.T) {
			for _, q := range []string{"", "?open=true", "?customer=C-1042", "?mine=false"} {
				res := e.call("GET", "/api/v1/requests"+q, bearer(tc.who), "", "")
				if tc.listed == nil {
					if res.status != http.StatusUnauthorized || res.problem(t).Code != "unauthenticated" {
						t.Fatalf("list%s: %d %s, want 401", q, res.status, res.body)
					}
					continue
				}
				if res.status != http.StatusOK {
					t.Fatalf("list%s: %d %s", q, res.status, res.body)
				}
				var out struct{ Requests []Request }
				if err := json.Unmarshal(res.body, &out); err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, r := range out.Requests {
					ids = append(ids, r.ID)
				}
				if fmt.Sprint(ids) != fmt.Sprint(tc.listed) {
					t.Errorf("list%s = %v, want %v", q, ids, tc.listed)
				}
				if tc.who == "ag_req" && strings.Contains(string(res.body), otherReason) {
					t.Errorf("list%s leaks the other agent's reason: %s", q, res.body)
				}
			}
		})
	}
}
