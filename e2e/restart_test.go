package e2e

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"
)

// TestRestartKeepsTheApprovalMessage stops the whole local stack (as Ctrl-C
// of `make run` does) while a request waits for approval and starts it again
// on the same state: Temporal's database file, the Slack stand-in's and the
// mail catcher's state files, Postgres. The approval message is still there
// with its buttons, and a click on it approves the request, whose card then
// updates in place.
func TestRestartKeepsTheApprovalMessage(t *testing.T) {
	state := t.TempDir()
	s := startStack(t, stackOptions{extraEnv: []string{
		"VIGIL_SLACK_STANDIN_STATE=" + filepath.Join(state, "slack.json"),
		"VIGIL_MAILCATCHER_STATE=" + filepath.Join(state, "mail.json"),
		"VIGIL_COOLING_REINSTALL_VPS=30m",
	}})
	alice, _ := seed(t, s)
	r := s.open(t, alice, map[string]any{
		"action": "reinstall_vps", "customer_id": customerID, "server_id": "srv-2",
		"reason": "customer reports a compromised server", "pin": customerPIN,
	})
	before := s.approvalMessage(t, r.ID)
	if !bytes.Contains(before.Blocks, []byte(`"approve"`)) {
		t.Fatalf("approval message without buttons: %s", before.Blocks)
	}
	// Stop only once the post is recorded: a worker stopped between Slack's
	// answer and the record posts the message again when it retries (the
	// old one's buttons are then refused as another message's), which is
	// the crash suite's subject, not this test's.
	eventually(t, 30*time.Second, "the approval message recorded for "+r.ID, func() (bool, string) {
		n := count(t, s, `SELECT count(*) FROM requests WHERE id = $1 AND slack_ts = $2`, r.ID, before.TS)
		return n == 1, "not yet"
	})

	s.stopAll()
	s.start("devserver", bins["devserver"], []string{"-addr", s.temporal, "-db-file", filepath.Join(s.dir, "temporal.db")}, "devserver ready")
	s.start("mail", bins["mail"], nil, "mailcatcher ready")
	s.start("panel", bins["panel"], nil, "panel-standin ready")
	s.start("slack", bins["slack"], nil, "slack-standin ready")
	s.start("worker", bins["worker"], nil, "worker ready")
	s.start("web", bins["web"], nil, "web ready")

	after := s.approvalMessage(t, r.ID)
	if after.TS != before.TS || !bytes.Equal(after.Blocks, before.Blocks) {
		t.Fatalf("after the restart the approval message is %s %s, was %s %s", after.TS, after.Blocks, before.TS, before.Blocks)
	}
	if got := s.status(t, alice, r.ID); got.Status != "awaiting_approval" {
		t.Fatalf("after the restart the request is %s, want awaiting_approval", got.Status)
	}
	s.click(t, r.ID, "approve", "U0BOB")
	s.waitStatus(t, alice, r.ID, "cooling", time.Minute)
	eventually(t, 30*time.Second, "the card updated in place after the restart", func() (bool, string) {
		m := s.approvalMessage(t, r.ID)
		return m.TS == before.TS && bytes.Contains(m.Blocks, []byte("Approved by")) && !bytes.Contains(m.Blocks, []byte(`"approve"`)), string(m.Blocks)
	})
}
