package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/workflows"
)

// TestCodecHolderForgedDecisionRefused: whoever holds the payload key and
// write access to the namespace (every worker's and web front's
// configuration) sends a sealed decide Update naming Bob, an enabled
// senior who never clicked. The approval does not pass the approval gate
// and a forged rejection does not end the request "rejected by Bob": each
// request ends failed, decision.unverified is audited and the security
// channel hears of it, and the panel is never called. Bob's real click on a
// third request still runs it to its execution.
func TestCodecHolderForgedDecisionRefused(t *testing.T) {
	s := startStack(t, stackOptions{extraEnv: []string{"VIGIL_COOLING_RESEND_CREDENTIALS=2s"}})
	alice, _ := seed(t, s)
	openOn := func(server string) request {
		r := s.open(t, alice, map[string]any{"action": "resend_credentials", "customer_id": customerID, "server_id": server,
			"reason": "customer asked in live chat", "pin": customerPIN})
		s.waitStatus(t, alice, r.ID, "awaiting_approval", time.Minute)
		return r
	}

	for _, d := range []domain.Decision{domain.DecisionApprove, domain.DecisionReject} {
		r := openOn("srv-1")
		forged := workflows.DecideInput{Decision: d, ApproverID: "ag_bob", ApproverRole: domain.RoleSenior}
		if d == domain.DecisionReject {
			forged.Reason = "customer withdrew the request"
		}
		s.forgeDecide(t, r.ID, forged)
		s.waitStatus(t, alice, r.ID, "failed", time.Minute)
		ev := auditEvents(t, s, r.ID)
		if !hasEvent(ev, "decision.unverified by system", `"approver_id": "ag_bob"`, `"decision": "`+string(d)+`"`) ||
			hasEvent(ev, "gate.approval.passed") || hasEvent(ev, "request.rejected") || hasEvent(ev, "decision.slack") {
			t.Fatalf("forged %s: want it refused at the approval gate and audited: %v", d, ev)
		}
		if n := count(t, s, `SELECT count(*) FROM security_alerts WHERE kind = 'decision_unverified' AND details->>'request' = $1`, r.ID); n != 1 {
			t.Fatalf("forged %s: %d decision_unverified alerts, want 1", d, n)
		}
		eventually(t, 30*time.Second, "the security channel hears of the forged "+string(d), func() (bool, string) {
			msgs, _ := s.slackMessages(t)
			for _, m := range msgs {
				if m.Channel == "C0VIGILSECURITY" && strings.Contains(m.Text, "DECISION REFUSED: request "+r.ID) {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d messages", len(msgs))
		})
		for _, c := range s.panelCalls(t) {
			if strings.Contains(c.IdempotencyKey, r.ID) {
				t.Fatalf("the panel was called for the forged request: %+v", c)
			}
		}
	}

	// Bob's own click is recorded by the web front and passes.
	r := openOn("srv-2")
	s.click(t, r.ID, "approve", "U0BOB")
	s.waitStatus(t, alice, r.ID, "executed", 2*time.Minute)
	ev := auditEvents(t, s, r.ID)
	if !hasEvent(ev, "decision.slack by agent:ag_bob", `"slack_user": "U0BOB"`) || !hasEvent(ev, "gate.approval.passed by agent:ag_bob") ||
		hasEvent(ev, "decision.unverified") {
		t.Fatalf("a real click: %v", ev)
	}
}
