package e2e

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/workflows"
)

const bgReason = "Slack outage INC-42; customer verified by callback"

// TestBreakGlassNeedsBothSeniors: on real processes, a break-glass decision
// happens only when two seniors each consent with their own credentials.
//   - the admin API alone is refused and audited, and the request waits on;
//   - one senior's consent is audited and decides nothing; the same senior
//     cannot consent again, and the requester cannot consent at all;
//   - a second senior's consent to the same decision approves: the request
//     runs through the notice and cooling to its execution;
//   - a break-glass decision sent to Temporal with the codec key but without
//     the consents (an admin or operator going around the API) does not pass
//     the approval gate: the request fails, audited and alerted, and the
//     panel is never called for it.
func TestBreakGlassNeedsBothSeniors(t *testing.T) {
	s := startStack(t, stackOptions{extraEnv: []string{"VIGIL_COOLING_RESEND_CREDENTIALS=2s"}})
	alice, bob := seed(t, s)
	var carol agentToken
	if code, body := s.call("POST", "/admin/v1/agents", s.adminToken, map[string]any{
		"id": "ag_carol", "name": "Carol Ng", "email": "carol@vigil.example", "team": "Security", "role": "senior", "slack_user_id": "U0CAROL",
	}, &carol); code != 201 {
		t.Fatalf("create carol: %d %s", code, body)
	}

	r := s.open(t, alice, map[string]any{
		"action": "resend_credentials", "customer_id": customerID, "server_id": "srv-1",
		"reason": "customer asked in live chat", "pin": customerPIN,
	})
	s.waitStatus(t, alice, r.ID, "awaiting_approval", time.Minute)
	consent := map[string]any{"decision": "approve", "reason": bgReason}
	path := "/api/v1/requests/" + r.ID + "/break-glass"

	// The admin alone: refused, audited, nothing decided.
	code, body := s.call("POST", "/admin/v1/requests/"+r.ID+"/break-glass", s.adminToken, map[string]any{
		"decision": "approve", "approver_id": "ag_bob", "second_approver_id": "ag_carol", "reason": bgReason}, nil)
	if code != 403 || !strings.Contains(string(body), `"break_glass_needs_seniors"`) {
		t.Fatalf("admin break-glass: %d %s, want 403 break_glass_needs_seniors", code, body)
	}
	if ev := auditEvents(t, s, r.ID); !hasEvent(ev, "break_glass.refused by admin:"+stackAdmin) {
		t.Fatalf("the admin's attempt is not audited: %v", ev)
	}

	// One senior: a consent, audited, that decides nothing.
	var first struct {
		AgentID   string    `json:"agent_id"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if code, body := s.call("POST", path, bob, consent, &first); code != 202 || first.AgentID != "ag_bob" {
		t.Fatalf("bob's consent: %d %s, want 202 naming ag_bob", code, body)
	}
	if code, body := s.call("POST", path, bob, consent, nil); code != 409 || !strings.Contains(string(body), `"already_consented"`) {
		t.Fatalf("bob's second consent: %d %s, want 409 already_consented", code, body)
	}
	if code, body := s.call("POST", path, alice, consent, nil); code != 403 || !strings.Contains(string(body), `"not_senior"`) {
		t.Fatalf("the requester's consent: %d %s, want 403 not_senior", code, body)
	}
	// A senior's consent to the other decision does not pair with bob's.
	if code, body := s.call("POST", path, carol.Token, map[string]any{"decision": "reject", "reason": bgReason}, nil); code != 202 {
		t.Fatalf("carol's reject consent: %d %s, want 202", code, body)
	}
	var mid request
	if code, body := s.call("GET", "/api/v1/requests/"+r.ID, bob, nil, &mid); code != 200 || mid.Status != "awaiting_approval" {
		t.Fatalf("after one consent per decision the request is %s (%d %s), want awaiting_approval", mid.Status, code, body)
	}
	ev := auditEvents(t, s, r.ID)
	if !hasEvent(ev, "break_glass.consented by agent:ag_bob", `"decision": "approve"`) || hasEvent(ev, "decision.break_glass") {
		t.Fatalf("after one consent the trail must hold it and no decision: %v", ev)
	}

	// A second senior, with their own token, for the same decision: approved.
	carolAgain := map[string]any{"decision": "approve", "reason": "Slack down for everyone; I confirm the callback"}
	if code, body := s.call("POST", path, carol.Token, carolAgain, nil); code != 409 || !strings.Contains(string(body), `"already_consented"`) {
		// Carol's reject consent is still pending: she cannot consent twice.
		t.Fatalf("carol's second consent while her first is pending: %d %s, want 409 already_consented", code, body)
	}
	s.expireConsents(t, r.ID, "ag_carol")
	var decided struct {
		Status   string `json:"status"`
		Decision struct {
			ApproverID       string `json:"approver_id"`
			SecondApproverID string `json:"second_approver_id"`
			BreakGlass       bool   `json:"break_glass"`
		} `json:"decision"`
	}
	if code, body := s.call("POST", path, carol.Token, carolAgain, &decided); code != 200 {
		t.Fatalf("carol's approve consent: %d %s, want 200", code, body)
	}
	if d := decided.Decision; !d.BreakGlass || d.ApproverID != "ag_bob" || d.SecondApproverID != "ag_carol" {
		t.Fatalf("decision %+v, want break-glass by ag_bob and ag_carol", d)
	}
	s.waitStatus(t, alice, r.ID, "executed", 2*time.Minute)
	ev = auditEvents(t, s, r.ID)
	for _, want := range []string{"decision.break_glass by agent:ag_carol", "gate.approval.passed by agent:ag_bob"} {
		if !hasEvent(ev, want) {
			t.Errorf("trail lacks %q: %v", want, ev)
		}
	}
	if hasEvent(ev, "break_glass.unconsented") {
		t.Errorf("a consented decision was refused: %v", ev)
	}

	// Around the API: a break-glass Update with the codec key, no consents.
	r2 := s.open(t, alice, map[string]any{
		"action": "reinstall_vps", "customer_id": customerID, "server_id": "srv-2",
		"reason": "customer says the server is compromised", "pin": customerPIN,
	})
	s.waitStatus(t, alice, r2.ID, "awaiting_approval", time.Minute)
	s.forgeDecide(t, r2.ID, workflows.DecideInput{Decision: domain.DecisionApprove,
		ApproverID: "ag_bob", ApproverRole: domain.RoleSenior, Reason: bgReason,
		BreakGlass: true, SecondApproverID: "ag_carol", SecondApproverRole: domain.RoleSenior})
	s.waitStatus(t, alice, r2.ID, "failed", time.Minute)
	ev = auditEvents(t, s, r2.ID)
	if !hasEvent(ev, "break_glass.unconsented by system", `"approver_id": "ag_bob"`) || hasEvent(ev, "gate.approval.passed") {
		t.Fatalf("the forged break-glass must be refused at the approval gate and audited: %v", ev)
	}
	for _, c := range s.panelCalls(t) {
		if strings.Contains(c.IdempotencyKey, r2.ID) {
			t.Fatalf("the panel was called for the forged request: %+v", c)
		}
	}
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var alerts int
	if err := db.QueryRow(`SELECT count(*) FROM security_alerts WHERE kind = 'break_glass_unconsented' AND details->>'request' = $1`, r2.ID).Scan(&alerts); err != nil || alerts != 1 {
		t.Fatalf("security alerts for the forged break-glass: %d (%v), want 1", alerts, err)
	}
}

// expireConsents moves agent's consents to request into the past, as if
// the consent TTL had run out.
func (s *stack) expireConsents(t *testing.T, requestID, agentID string) {
	t.Helper()
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE break_glass_consents SET created_at = created_at - interval '1 day', expires_at = expires_at - interval '1 day'
		WHERE request_id = $1 AND agent_id = $2`, requestID, agentID)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("no consent of %s to %s to expire", agentID, requestID)
	}
}

// forgeDecide sends the decide Update straight to Temporal, with the
// stack's codec key, as an insider with write access to the namespace would.
func (s *stack) forgeDecide(t *testing.T, requestID string, d workflows.DecideInput) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cdc := stackCodec(t, s)
	tc, err := client.DialContext(ctx, client.Options{HostPort: s.temporal, Namespace: "default",
		DataConverter: cdc.DataConverter(), FailureConverter: cdc.FailureConverter(),
		Logger: tlog.NewStructuredLogger(histDiscardLogger())})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.WorkflowID(requestID), UpdateName: workflows.UpdateDecide,
		Args: []any{d}, WaitForStage: client.WorkflowUpdateStageAccepted,
	})
	if err != nil {
		t.Fatalf("forged decide Update: %v", err)
	}
	_ = h
}
