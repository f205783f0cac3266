package api

import (
	"context"
	"encoding/json"
	"fmt"
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

// bgBody is a valid break-glass body with changes: a nil value drops the
// field.
func bgBody(changes map[string]any) string {
	b := map[string]any{"decision": "approve", "approver_id": "ag_senior", "second_approver_id": "ag_senior2", "reason": bgReason}
	for k, v := range changes {
		if v == nil {
			delete(b, k)
			continue
		}
		b[k] = v
	}
	return openJSON(b)
}

func TestBreakGlassRefusedBeforeTemporal(t *testing.T) {
	t.Parallel()
	e := breakGlassEnv(t)
	const path = "/admin/v1/requests/req_bg1/break-glass"
	tests := []struct {
		name         string
		method, path string
		auth         string // "" is the admin token
		contentType  string // "" is application/json
		body         string
		want         int
		code         string
	}{
		{"unknown first approver", "POST", path, "", "", bgBody(map[string]any{"approver_id": "ag_ghost"}), 404, "agent_not_found"},
		{"unknown second approver", "POST", path, "", "", bgBody(map[string]any{"second_approver_id": "ag_ghost"}), 404, "agent_not_found"},
		{"disabled first approver", "POST", path, "", "", bgBody(map[string]any{"approver_id": "ag_off"}), 403, "forbidden"},
		{"disabled second approver", "POST", path, "", "", bgBody(map[string]any{"second_approver_id": "ag_off"}), 403, "forbidden"},
		{"same senior twice", "POST", path, "", "", bgBody(map[string]any{"second_approver_id": "ag_senior"}), 400, "invalid_input"},
		{"first approver not senior", "POST", path, "", "", bgBody(map[string]any{"approver_id": "ag_req"}), 403, "not_senior"},
		{"second approver not senior", "POST", path, "", "", bgBody(map[string]any{"second_approver_id": "ag_req"}), 403, "not_senior"},
		{"admin role is not senior", "POST", path, "", "", bgBody(map[string]any{"second_approver_id": "ag_boss"}), 403, "not_senior"},
		{"no second approver", "POST", path, "", "", bgBody(map[string]any{"second_approver_id": nil}), 400, "invalid_input"},
		{"empty second approver", "POST", path, "", "", bgBody(map[string]any{"second_approver_id": ""}), 400, "invalid_input"},
		{"no approver", "POST", path, "", "", bgBody(map[string]any{"approver_id": nil}), 400, "invalid_input"},
		{"malformed approver id", "POST", path, "", "", bgBody(map[string]any{"approver_id": "ag senior"}), 400, "invalid_input"},
		{"neither approve nor reject", "POST", path, "", "", bgBody(map[string]any{"decision": "maybe"}), 400, "invalid_input"},
		{"approval without reason", "POST", path, "", "", bgBody(map[string]any{"reason": nil}), 400, "invalid_input"},
		{"rejection without reason", "POST", path, "", "", bgBody(map[string]any{"decision": "reject", "reason": nil}), 400, "invalid_input"},
		{"blank reason", "POST", path, "", "", bgBody(map[string]any{"reason": "          \t  "}), 400, "invalid_input"},
		{"reason of 9 characters", "POST", path, "", "", bgBody(map[string]any{"reason": "  Slack dn  "}), 400, "invalid_input"},
		{"reason over 500 characters", "POST", path, "", "", bgBody(map[string]any{"reason": strings.Repeat("x", 501)}), 400, "invalid_input"},
		{"role in the body", "POST", path, "", "", bgBody(map[string]any{"approver_role": "senior"}), 400, "invalid_input"},
		{"second role in the body", "POST", path, "", "", bgBody(map[string]any{"second_approver_role": "senior"}), 400, "invalid_input"},
		{"break_glass in the body", "POST", path, "", "", bgBody(map[string]any{"break_glass": true}), 400, "invalid_input"},
		{"malformed request id", "POST", "/admin/v1/requests/x/break-glass", "", "", bgBody(nil), 404, "request_not_found"},
		{"not JSON", "POST", path, "", "text/plain", bgBody(nil), 415, "unsupported_media_type"},
		{"wrong method", "GET", path, "", "", "", 405, "method_not_allowed"},
		{"an agent's token", "POST", path, "Bearer " + e.tokens["ag_senior"], "", bgBody(nil), 403, "forbidden"},
		{"no token", "POST", path, "none", "", bgBody(nil), 401, "unauthenticated"},
		{"the removed decision path", "POST", "/admin/v1/requests/req_bg1/decision",
			"", "", `{"decision":"approve","approver_id":"ag_senior","reason":"checked"}`, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			audits := e.count("audit_events")
			auth := "Bearer " + adminToken
			switch tt.auth {
			case "":
			case "none":
				auth = ""
			default:
				auth = tt.auth
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
			if n := e.count("audit_events"); n != audits {
				t.Fatalf("audit rows %d -> %d", audits, n)
			}
		})
	}
	if ev := e.auditEvents("decision.break_glass"); len(ev) != 0 {
		t.Fatalf("break-glass audit rows after refusals only: %v", ev)
	}
	r, err := e.st.Request(context.Background(), "req_bg1")
	if err != nil || r.Status != domain.StatusAwaitingApproval || r.Decision != "" {
		t.Fatalf("request changed: %+v %v", r, err)
	}
}

// TestBreakGlassAuditedBeforeTemporal runs the accepted path as far as it
// goes without Temporal: the answer is 503, and the audit row and the WARN
// log line were written before the Update was tried.
func TestBreakGlassAuditedBeforeTemporal(t *testing.T) {
	t.Parallel()
	e := breakGlassEnv(t)
	tests := []struct {
		name     string
		decision string
		first    string
		second   string
		reason   string
	}{
		{"approve", "approve", "ag_senior", "ag_senior2", bgReason},
		{"reject, approvers the other way round", "reject", "ag_senior2", "ag_senior", "  Slack app token revoked; caller not verified  "},
		{"reason of exactly 10 characters", "approve", "ag_senior", "ag_senior2", "Slack down"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.admin("POST", "/admin/v1/requests/req_bg1/break-glass", bgBody(map[string]any{
				"decision": tt.decision, "approver_id": tt.first, "second_approver_id": tt.second, "reason": tt.reason}))
			if res.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503: %s", res.status, res.body)
			}
			if p := res.problem(t); p.Code != "temporal_unavailable" {
				t.Fatalf("problem %+v", p)
			}
			ev := e.auditEvents("decision.break_glass")
			if len(ev) != i+1 {
				t.Fatalf("%d break-glass audit rows, want %d: %v", len(ev), i+1, ev)
			}
			want := map[string]any{
				"_actor": "admin", "decision": tt.decision,
				"approver_id": tt.first, "approver_role": "senior",
				"second_approver_id": tt.second, "second_approver_role": "senior",
				"reason": strings.TrimSpace(tt.reason), "warning": "BREAK-GLASS: decided outside Slack by the admin API",
			}
			if got := ev[i]; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("audit details\n got %v\nwant %v", got, want)
			}
			var reqID string
			if err := e.db.QueryRow(`SELECT request_id FROM audit_events WHERE event = 'decision.break_glass' ORDER BY id DESC LIMIT 1`).Scan(&reqID); err != nil || reqID != "req_bg1" {
				t.Fatalf("audit request_id %q, %v", reqID, err)
			}
		})
	}
	e.srv.Close()
	var warns int
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "BREAK-GLASS: decided outside Slack by the admin API") &&
			strings.Contains(line, "request=req_bg1") && strings.Contains(line, "second_approver=") {
			warns++
		}
	}
	if warns != len(tests) {
		t.Fatalf("%d WARN break-glass log lines, want %d:\n%s", warns, len(tests), e.logs.String())
	}
}

// TestBreakGlassRefusalsLogged checks that a refused attempt with a
// non-senior or disabled approver still leaves a WARN line for security.
func TestBreakGlassRefusalsLogged(t *testing.T) {
	t.Parallel()
	e := breakGlassEnv(t)
	for _, c := range []struct{ second, code string }{{"ag_req", "not_senior"}, {"ag_off", "forbidden"}} {
		res := e.admin("POST", "/admin/v1/requests/req_bg1/break-glass", bgBody(map[string]any{"second_approver_id": c.second}))
		if p := res.problem(t); p.Code != c.code {
			t.Fatalf("%s: %+v", c.second, p)
		}
	}
	e.srv.Close()
	logs := e.logs.String()
	for _, want := range []string{"code=not_senior agent=ag_req", "code=forbidden agent=ag_off"} {
		if !strings.Contains(logs, `level=WARN msg="break-glass decision refused"`) || !strings.Contains(logs, want) {
			t.Errorf("log lacks a WARN refusal with %q:\n%s", want, logs)
		}
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
		got, err := json.Marshal(requestFromStatus(workflows.Status{RequestID: "req_x", Decision: tt.in}).Decision)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}
