package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/agentauth"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/workflows"
)

// breakGlassEnv is an env with the extra agents break-glass needs: a second
// senior and an admin who is not senior, plus an open request.
func breakGlassEnv(t *testing.T) *env {
	t.Helper()
	return breakGlassEnvWith(t, Options{})
}

// breakGlassEnvWith is breakGlassEnv with opts.
func breakGlassEnvWith(t *testing.T, opts Options) *env {
	t.Helper()
	e := newEnv(t, adminToken, opts)
	ctx := context.Background()
	for _, ag := range []store.Agent{
		{ID: "ag_senior2", Name: "Sue Senior", Email: "sue@vigil.test", Role: domain.RoleSenior},
		{ID: "ag_boss", Name: "Bea Admin", Email: "bea@vigil.test", Role: domain.RoleAdmin},
	} {
		tok, err := agentauth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if err := e.st.CreateAgent(ctx, ag, agentauth.Hash(tok)); err != nil {
			t.Fatal(err)
		}
		e.tokens[ag.ID] = tok
	}
	if err := e.st.CreateRequest(ctx, store.Request{ID: "req_bg1", WorkflowID: "wf-bg1", Action: domain.ActionDisable2FA,
		CustomerID: "C-1042", RequesterID: "ag_req", Reason: "lost phone", Status: domain.StatusAwaitingApproval}); err != nil {
		t.Fatal(err)
	}
	return e
}

const bgReason = "Slack is down for the whole workspace (incident INC-42)"

// bgBody is a valid consent body with changes: a nil value drops the field.
func bgBody(changes map[string]any) string {
	b := map[string]any{"decision": "approve", "reason": bgReason}
	for k, v := range changes {
		if v == nil {
			delete(b, k)
			continue
		}
		b[k] = v
	}
	return openJSON(b)
}

const bgPath = "/api/v1/requests/req_bg1/break-glass"

// consents counts the break-glass consents recorded.
func (e *env) consents() int { return e.count("break_glass_consents") }

func TestBreakGlassConsentRefused(t *testing.T) {
	t.Parallel()
	e := breakGlassEnv(t)
	ctx := context.Background()
	if err := e.st.CreateRequest(ctx, store.Request{ID: "req_bgown", WorkflowID: "wf-bgown", Action: domain.ActionReinstallVPS, ServerID: "srv-1",
		CustomerID: "C-1042", RequesterID: "ag_senior", Reason: "senior's own", Status: domain.StatusAwaitingApproval}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateRequest(ctx, store.Request{ID: "req_bgpin", WorkflowID: "wf-bgpin", Action: domain.ActionResendCredentials,
		CustomerID: "C-1042", ServerID: "srv-1", RequesterID: "ag_req", Reason: "still at the PIN", Status: domain.StatusPINCheck}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		as           string // agent whose token is sent; "" none
		method, path string
		contentType  string // "" is application/json
		body         string
		want         int
		code         string
	}{
		{"an agent", "ag_req", "POST", bgPath, "", bgBody(nil), 403, "not_senior"},
		{"an admin's personal token", "ag_boss", "POST", bgPath, "", bgBody(nil), 403, "not_senior"},
		{"an agent, for an unknown request", "ag_req", "POST", "/api/v1/requests/req_nope/break-glass", "", bgBody(nil), 403, "not_senior"},
		{"a disabled senior", "ag_off", "POST", bgPath, "", bgBody(nil), 401, "unauthenticated"},
		{"no token", "", "POST", bgPath, "", bgBody(nil), 401, "unauthenticated"},
		{"the requester, a senior", "ag_senior", "POST", "/api/v1/requests/req_bgown/break-glass", "", bgBody(nil), 409, "self_approval"},
		{"a request not awaiting approval", "ag_senior", "POST", "/api/v1/requests/req_bgpin/break-glass", "", bgBody(nil), 409, "not_awaiting_approval"},
		{"an unknown request", "ag_senior", "POST", "/api/v1/requests/req_nope/break-glass", "", bgBody(nil), 404, "request_not_found"},
		{"a malformed request id", "ag_senior", "POST", "/api/v1/requests/x/break-glass", "", bgBody(nil), 404, "request_not_found"},
		{"neither approve nor reject", "ag_senior", "POST", bgPath, "", bgBody(map[string]any{"decision": "maybe"}), 400, "invalid_input"},
		{"no reason", "ag_senior", "POST", bgPath, "", bgBody(map[string]any{"reason": nil}), 400, "invalid_input"},
		{"rejection without reason", "ag_senior", "POST", bgPath, "", bgBody(map[string]any{"decision": "reject", "reason": nil}), 400, "invalid_input"},
		{"blank reason", "ag_senior", "POST", bgPath, "", bgBody(map[string]any{"reason": "          \t  "}), 400, "invalid_input"},
		{"reason of 9 characters", "ag_senior", "POST", bgPath, "", bgBody(map[string]any{"reason": "  Slack dn  "}), 400, "invalid_input"},
		{"reason over 500 characters", "ag_senior", "POST", bgPath, "", bgBody(map[string]any{"reason": strings.Repeat("x", 501)}), 400, "invalid_input"},
		{"an approver in the body", "ag_senior", "POST", bgPath, "", bgBody(map[string]any{"approver_id": "ag_senior2"}), 400, "invalid_input"},
		{"a second approver in the body", "ag_senior", "POST", bgPath, "", bgBody(map[string]any{"second_approver_id": "ag_senior2"}), 400, "invalid_input"},
		{"a role in the body", "ag_senior", "POST", bgPath, "", bgBody(map[string]any{"approver_role": "senior"}), 400, "invalid_input"},
		{"not JSON", "ag_senior", "POST", bgPath, "text/plain", bgBody(nil), 415, "unsupported_media_type"},
		{"wrong method", "ag_senior", "GET", bgPath, "", "", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			audits, consents := e.count("audit_events"), e.consents()
			auth := ""
			if tt.as != "" {
				auth = "Bearer " + e.tokens[tt.as]
			}
			ct := tt.contentType
			if ct == "" && tt.body != "" {
				ct = "application/json"
			}
			res := e.call(tt.method, tt.path, auth, ct, tt.body)
			if res.status != tt.want {
				t.Fatalf("status %d, want %d: %s", res.status, tt.want, res.body)
			}
			if p := res.problem(t); p.Code != tt.code {
				t.Fatalf("code %q, want %q (%s)", p.Code, tt.code, p.Detail)
			}
			// A refusal the request exists for is on its trail, naming the
			// caller; bad input and unknown requests write nothing.
			want := audits
			if res.status == 403 || res.status == 409 {
				if !strings.Contains(tt.path, "req_nope") {
					want++
				}
			}
			if n := e.count("audit_events"); n != want {
				t.Fatalf("audit rows %d -> %d, want %d", audits, n, want)
			}
			if want > audits {
				var actor, details string
				if err := e.db.QueryRow(`SELECT actor, details->>'code' FROM audit_events WHERE event = 'break_glass.consent_refused' ORDER BY id DESC LIMIT 1`).Scan(&actor, &details); err != nil ||
					actor != "agent:"+tt.as || details != tt.code {
					t.Fatalf("refusal audited as %q %q (%v), want agent:%s %s", actor, details, err, tt.as, tt.code)
				}
			}
			if n := e.consents(); n != consents {
				t.Fatalf("consents %d -> %d", consents, n)
			}
		})
	}
	for _, id := range []string{"req_bg1", "req_bgown", "req_bgpin"} {
		r, err := e.st.Request(ctx, id)
		if err != nil || r.Decision != "" {
			t.Fatalf("request %s changed: %+v %v", id, r, err)
		}
	}
}

// TestBreakGlassByAdminRefused: the admin token cannot decide, however the
// body names two seniors; the attempt is audited and changes nothing.
func TestBreakGlassByAdminRefused(t *testing.T) {
	t.Parallel()
	e := breakGlassEnv(t)
	for _, body := range []string{
		openJSON(map[string]any{"decision": "approve", "approver_id": "ag_senior", "second_approver_id": "ag_senior2", "reason": bgReason}),
		bgBody(nil),
		"",
	} {
		res := e.admin("POST", "/admin/v1/requests/req_bg1/break-glass", body)
		if res.status != http.StatusForbidden {
			t.Fatalf("status %d, want 403: %s", res.status, res.body)
		}
		if p := res.problem(t); p.Code != "break_glass_needs_seniors" {
			t.Fatalf("problem %+v", p)
		}
	}
	if ev := e.auditEvents("break_glass.refused"); len(ev) != 3 || ev[0]["_actor"] != "admin:ag_root" {
		t.Fatalf("break_glass.refused events %v, want 3 by admin", ev)
	}
	if ev := e.auditEvents("decision.break_glass"); len(ev) != 0 {
		t.Fatalf("a decision was recorded: %v", ev)
	}
	if n := e.consents(); n != 0 {
		t.Fatalf("%d consents recorded by the admin", n)
	}
	r, err := e.st.Request(context.Background(), "req_bg1")
	if err != nil || r.Status != domain.StatusAwaitingApproval || r.Decision != "" {
		t.Fatalf("request changed: %+v %v", r, err)
	}
	// An agent's token is still no admin token.
	res := e.call("POST", "/admin/v1/requests/req_bg1/break-glass", "Bearer "+e.tokens["ag_senior"], "application/json", bgBody(nil))
	if p := res.problem(t); res.status != 403 || p.Code != "forbidden" {
		t.Fatalf("an agent token on the admin API: %d %+v", res.status, p)
	}
}

// TestBreakGlassOneSeniorDecidesNothing: a consent is recorded and audited,
// answered 202 with its expiry, and decides nothing; the same senior cannot
// consent again while it is pending, and an expired one can be renewed.
func TestBreakGlassOneSeniorDecidesNothing(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := &now
	e := breakGlassEnvWith(t, Options{Now: func() time.Time { return *clock }, BreakGlassTTL: 10 * time.Minute})
	res := e.as("ag_senior", "POST", bgPath, bgBody(nil))
	if res.status != http.StatusAccepted {
		t.Fatalf("status %d, want 202: %s", res.status, res.body)
	}
	var c BreakGlassConsent
	if err := json.Unmarshal(res.body, &c); err != nil {
		t.Fatal(err)
	}
	if c.AgentID != "ag_senior" || c.Decision != domain.DecisionApprove || !c.ExpiresAt.Equal(now.Add(10*time.Minute)) || c.Waiting == "" {
		t.Fatalf("consent answer %+v", c)
	}
	ev := e.auditEvents("break_glass.consented")
	if len(ev) != 1 || ev[0]["_actor"] != "agent:ag_senior" || ev[0]["decision"] != "approve" || ev[0]["reason"] != bgReason {
		t.Fatalf("consent audit %v", ev)
	}
	if res := e.as("ag_senior", "POST", bgPath, bgBody(nil)); res.status != 409 || res.problem(t).Code != "already_consented" {
		t.Fatalf("second consent: %d %s", res.status, res.body)
	}
	if res := e.as("ag_senior", "POST", bgPath, bgBody(map[string]any{"decision": "reject"})); res.status != 409 || res.problem(t).Code != "already_consented" {
		t.Fatalf("consent to the other decision while one is pending: %d %s", res.status, res.body)
	}
	// The other senior consents to the other decision: no pair.
	if res := e.as("ag_senior2", "POST", bgPath, bgBody(map[string]any{"decision": "reject"})); res.status != http.StatusAccepted {
		t.Fatalf("the other decision: %d %s", res.status, res.body)
	}
	if ev := e.auditEvents("decision.break_glass"); len(ev) != 0 {
		t.Fatalf("a decision from one consent per decision: %v", ev)
	}
	r, err := e.st.Request(context.Background(), "req_bg1")
	if err != nil || r.Status != domain.StatusAwaitingApproval || r.Decision != "" {
		t.Fatalf("request changed: %+v %v", r, err)
	}
	// Past its expiry, the consent can be given again.
	now = now.Add(11 * time.Minute)
	if res := e.as("ag_senior", "POST", bgPath, bgBody(nil)); res.status != http.StatusAccepted {
		t.Fatalf("a consent after the first expired: %d %s", res.status, res.body)
	}
	if n := e.consents(); n != 3 {
		t.Fatalf("%d consents, want 3", n)
	}
}

// TestBreakGlassSecondSeniorPairs runs the pairing as far as it goes without
// Temporal, in either order: the decision is audited with both seniors
// before the Update is tried (503 here), and an expired first consent does
// not pair.
func TestBreakGlassSecondSeniorPairs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		first, second string
		decision      string
		gap           time.Duration
		paired        bool
	}{
		{"approve", "ag_senior", "ag_senior2", "approve", time.Minute, true},
		{"reject, seniors the other way round", "ag_senior2", "ag_senior", "reject", 14 * time.Minute, true},
		{"the first consent expired", "ag_senior", "ag_senior2", "approve", 16 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := time.Now().UTC()
			var clock time.Time = now
			e := breakGlassEnvWith(t, Options{Now: func() time.Time { return clock }})
			if res := e.as(tt.first, "POST", bgPath, bgBody(map[string]any{"decision": tt.decision})); res.status != http.StatusAccepted {
				t.Fatalf("first consent: %d %s", res.status, res.body)
			}
			clock = now.Add(tt.gap)
			res := e.as(tt.second, "POST", bgPath, bgBody(map[string]any{"decision": tt.decision, "reason": "  Slack app token revoked; caller verified  "}))
			ev := e.auditEvents("decision.break_glass")
			if !tt.paired {
				if res.status != http.StatusAccepted || len(ev) != 0 {
					t.Fatalf("after an expired first consent: %d %s, decisions %v", res.status, res.body, ev)
				}
				return
			}
			if res.status != http.StatusServiceUnavailable || res.problem(t).Code != "temporal_unavailable" {
				t.Fatalf("second consent: %d %s, want 503 temporal_unavailable (no Temporal here)", res.status, res.body)
			}
			if len(ev) != 1 {
				t.Fatalf("decision.break_glass events %v, want 1", ev)
			}
			d := ev[0]
			if d["_actor"] != "agent:"+tt.second || d["decision"] != tt.decision || d["approver_id"] != tt.first || d["second_approver_id"] != tt.second ||
				d["approver_reason"] != bgReason || d["second_approver_reason"] != "Slack app token revoked; caller verified" ||
				d["warning"] != "BREAK-GLASS: decided outside Slack by two seniors' consents" {
				t.Fatalf("decision audit %v", d)
			}
			ok, err := e.st.BreakGlassPaired(context.Background(), "req_bg1", tt.first, tt.second, domain.Decision(tt.decision), clock)
			if err != nil || !ok {
				t.Fatalf("BreakGlassPaired = %v, %v; want the pair", ok, err)
			}
		})
	}
}

func TestBreakGlassDecisionRendered(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 5, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		in   *workflows.Decision
		want string
	}{
		{"slack decision", &workflows.Decision{Decision: domain.DecisionApprove, ApproverID: "ag_a", At: at},
			`{"decision":"approve","approver_id":"ag_a","at":"2026-03-01T09:05:00Z"}`},
		{"break-glass decision", &workflows.Decision{Decision: domain.DecisionReject, ApproverID: "ag_a", SecondApproverID: "ag_b",
			BreakGlass: true, Reason: "Slack down, INC-42", At: at},
			`{"decision":"reject","approver_id":"ag_a","second_approver_id":"ag_b","break_glass":true,"reason":"Slack down, INC-42","at":"2026-03-01T09:05:00Z"}`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(RequestFromStatus(workflows.Status{RequestID: "req_x", Decision: tt.in}).Decision)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}
