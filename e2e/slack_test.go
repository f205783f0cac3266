package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// slackMessage is a message as the Slack stand-in holds it.
type slackMessage struct {
	Channel   string          `json:"channel"`
	TS        string          `json:"ts"`
	ThreadTS  string          `json:"thread_ts"`
	Text      string          `json:"text"`
	User      string          `json:"user"`
	Blocks    json.RawMessage `json:"blocks"`
	Ephemeral bool            `json:"ephemeral"`
}

// approvalsChannel is the id the stand-in gives #vigil-approvals.
const approvalsChannel = "C0VIGILAPPROVALS"

func (s *stack) slackMessages(t *testing.T) (msgs, ephemerals []slackMessage) {
	t.Helper()
	resp, err := http.Get(s.slackURL + "/api/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Messages   []slackMessage `json:"messages"`
		Ephemerals []slackMessage `json:"ephemerals"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode Slack stand-in messages: %v", err)
	}
	return out.Messages, out.Ephemerals
}

// approvalMessage waits for the request's approval message in Slack.
func (s *stack) approvalMessage(t *testing.T, requestID string) slackMessage {
	t.Helper()
	var found slackMessage
	eventually(t, 30*time.Second, "approval message for "+requestID, func() (bool, string) {
		msgs, _ := s.slackMessages(t)
		for _, m := range msgs {
			// The request id stays in the summary after the buttons go.
			if m.Channel == approvalsChannel && m.ThreadTS == "" && bytes.Contains(m.Blocks, []byte(requestID)) {
				found = m
				return true, ""
			}
		}
		return false, "not posted yet"
	})
	return found
}

// click presses a button on the request's approval message as user, through
// the stand-in, which signs the interaction exactly as Slack does.
func (s *stack) click(t *testing.T, requestID, action, user string) {
	t.Helper()
	s.clickAs(t, requestID, action, user, false)
}

// clickStale clicks a button the approval message showed when it was
// posted, as a colleague whose Slack has not shown the update yet would.
func (s *stack) clickStale(t *testing.T, requestID, action, user string) {
	t.Helper()
	s.clickAs(t, requestID, action, user, true)
}

func (s *stack) clickAs(t *testing.T, requestID, action, user string, stale bool) {
	t.Helper()
	m := s.approvalMessage(t, requestID)
	body, _ := json.Marshal(map[string]any{"channel": m.Channel, "ts": m.TS, "action_id": action, "user": user, "stale": stale})
	resp, err := http.Post(s.slackURL+"/standin/click", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("click through the stand-in: %d %s", resp.StatusCode, raw)
	}
	if out.Status != 200 {
		t.Fatalf("Vigil answered the click with %d %s", out.Status, out.Body)
	}
}

// reject clicks Reject on the request's approval message as user and
// submits the reason dialog Vigil opens for them with reason, all through
// the stand-in, which signs both as Slack does.
func (s *stack) reject(t *testing.T, requestID, user, reason string) {
	t.Helper()
	if err := rejectViaDialog(s.slackURL, s.approvalMessage(t, requestID), user, reason); err != nil {
		t.Fatal(err)
	}
}

// standinView is a modal open in the Slack stand-in.
type standinView struct {
	ID              string `json:"id"`
	User            string `json:"user"`
	CallbackID      string `json:"callback_id"`
	PrivateMetadata string `json:"private_metadata"`
}

// rejectViaDialog clicks Reject on m as user, waits for the dialog Vigil
// opens for them and submits reason; it fails unless the dialog closed.
func rejectViaDialog(slackURL string, m slackMessage, user, reason string) error {
	// A dialog still open for user from an earlier click is not this one.
	before := map[string]bool{}
	views, err := standinViews(slackURL)
	if err != nil {
		return err
	}
	for _, v := range views {
		before[v.ID] = true
	}
	var out struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	body, _ := json.Marshal(map[string]any{"channel": m.Channel, "ts": m.TS, "action_id": "reject", "user": user})
	if err := postJSON(slackURL+"/standin/click", body, &out); err != nil {
		return err
	}
	if out.Status != 200 {
		return fmt.Errorf("Vigil answered the Reject click with %d %s", out.Status, out.Body)
	}
	var view standinView
	for deadline := time.Now().Add(30 * time.Second); view.ID == ""; {
		views, err := standinViews(slackURL)
		if err != nil {
			return err
		}
		for _, v := range views {
			if v.User == user && !before[v.ID] && strings.Contains(v.PrivateMetadata, m.TS) {
				view = v
			}
		}
		if view.ID == "" {
			if time.Now().After(deadline) {
				return fmt.Errorf("no reject dialog opened for %s within 30s", user)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var res struct {
		Status int               `json:"status"`
		Body   string            `json:"body"`
		Closed bool              `json:"closed"`
		Errors map[string]string `json:"errors"`
	}
	body, _ = json.Marshal(map[string]any{"view_id": view.ID, "values": map[string]string{"reason": reason}})
	if err := postJSON(slackURL+"/standin/submit", body, &res); err != nil {
		return err
	}
	if res.Status != 200 || !res.Closed {
		return fmt.Errorf("reject dialog submitted: Vigil answered %d %s (errors %v)", res.Status, res.Body, res.Errors)
	}
	return nil
}

// standinViews lists the modals open in the Slack stand-in.
func standinViews(slackURL string) ([]standinView, error) {
	resp, err := http.Get(slackURL + "/standin/views")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Views []standinView `json:"views"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode the stand-in's views: %w", err)
	}
	return out.Views, nil
}

// postJSON posts body to url and decodes a 200 answer into out.
func postJSON(url string, body []byte, out any) error {
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("POST %s: %w (%s)", url, err, raw)
	}
	return nil
}

// ephemeralFor waits for an ephemeral reply to user containing want.
func (s *stack) ephemeralFor(t *testing.T, user, want string) {
	t.Helper()
	eventually(t, 30*time.Second, "ephemeral reply to "+user+" saying "+want, func() (bool, string) {
		_, eph := s.slackMessages(t)
		var seen []string
		for _, m := range eph {
			if m.User == user {
				if strings.Contains(m.Text, want) || strings.Contains(string(m.Blocks), want) {
					return true, ""
				}
				seen = append(seen, m.Text)
			}
		}
		return false, strings.Join(seen, " | ")
	})
}

// seedCarol adds a second senior and returns her token.
func seedCarol(t *testing.T, s *stack) string {
	t.Helper()
	var c agentToken
	if code, body := s.call("POST", "/admin/v1/agents", s.adminToken, map[string]any{
		"id": "ag_carol", "name": "Carol Ng", "email": "carol@vigil.example", "team": "Security", "role": "senior", "slack_user_id": "U0CAROL",
	}, &c); code != 201 {
		t.Fatalf("create carol: %d %s", code, body)
	}
	return c.Token
}

func (s *stack) status(t *testing.T, token, id string) request {
	t.Helper()
	var r request
	if code, raw := s.call("GET", "/api/v1/requests/"+id, token, nil, &r); code != 200 {
		t.Fatalf("status of %s: %d %s", id, code, raw)
	}
	return r
}

// TestSlackApprovalRefusalsAndMessageUpdates clicks as the wrong people
// first: each gets an ephemeral reply that says why, and the request keeps
// waiting. Then a senior decides and the message shows it in place.
func TestSlackApprovalRefusalsAndMessageUpdates(t *testing.T) {
	s := startStack(t, stackOptions{extraEnv: []string{
		"VIGIL_SLACK_STANDIN_USERS=U0ALICE:alice:Alice Moreau,U0BOB:bob:Bob Lindqvist,U0CAROL:carol:Carol Ng,U0DAVE:dave:Dave Stranger",
		"VIGIL_COOLING_REINSTALL_VPS=30m",
		"VIGIL_COOLING_DISABLE_2FA=30m",
	}})
	alice, _ := seed(t, s)
	carol := seedCarol(t, s)

	r := s.open(t, alice, map[string]any{
		"action": "reinstall_vps", "customer_id": customerID, "server_id": "srv-1",
		"reason": "customer reports a compromised server", "pin": customerPIN,
	})
	steps := []struct {
		user, action, want string
	}{
		{"U0ALICE", "approve", "You opened this request yourself"},
		{"U0DAVE", "approve", "not linked"},
	}
	for _, st := range steps {
		s.click(t, r.ID, st.action, st.user)
		s.ephemeralFor(t, st.user, st.want)
		if got := s.status(t, alice, r.ID); got.Status != "awaiting_approval" {
			t.Fatalf("after %s's refused click the request is %s, want awaiting_approval", st.user, got.Status)
		}
	}

	// A senior who opened the request cannot approve it either.
	own := s.open(t, carol, map[string]any{
		"action": "disable_2fa", "customer_id": customerID, "reason": "customer lost their phone", "pin": customerPIN,
	})
	s.click(t, own.ID, "approve", "U0CAROL")
	s.ephemeralFor(t, "U0CAROL", "You opened this request yourself")
	if got := s.status(t, carol, own.ID); got.Status != "awaiting_approval" {
		t.Fatalf("self-approved request is %s", got.Status)
	}

	// Bob approves; Carol's late click is refused and names Bob.
	s.click(t, r.ID, "approve", "U0BOB")
	s.waitStatus(t, alice, r.ID, "cooling", time.Minute)
	s.clickStale(t, r.ID, "reject", "U0CAROL")
	s.ephemeralFor(t, "U0CAROL", "already approved")
	if got := s.status(t, alice, r.ID); got.Status != "cooling" {
		t.Fatalf("a second decision moved the request to %s", got.Status)
	}
	eventually(t, 30*time.Second, "approval message updated in place", func() (bool, string) {
		m := s.approvalMessage(t, r.ID)
		if bytes.Contains(m.Blocks, []byte(`"approve"`)) {
			return false, "buttons still there"
		}
		return bytes.Contains(m.Blocks, []byte("Customer notified")), string(m.Blocks)
	})

	// Bob rejects Carol's own request with the reason dialog; an empty
	// reason is answered in the dialog and changes nothing.
	m := s.approvalMessage(t, own.ID)
	if err := rejectViaDialog(s.slackURL, m, "U0BOB", "   "); err == nil || !strings.Contains(err.Error(), "Say in one line why you reject") {
		t.Fatalf("an empty reason: %v, want the dialog's error", err)
	}
	if got := s.status(t, carol, own.ID); got.Status != "awaiting_approval" {
		t.Fatalf("after an empty reason the request is %s", got.Status)
	}
	s.reject(t, own.ID, "U0BOB", "the customer's phone number does not match")
	s.waitStatus(t, carol, own.ID, "rejected", time.Minute)
	eventually(t, 30*time.Second, "rejection shown on the message with its reason", func() (bool, string) {
		m := s.approvalMessage(t, own.ID)
		return bytes.Contains(m.Blocks, []byte("Rejected by")) && bytes.Contains(m.Blocks, []byte("the customer's phone number does not match")) &&
			!bytes.Contains(m.Blocks, []byte(`"reject"`)), string(m.Blocks)
	})
	var decided struct {
		Decision *struct {
			ApproverID string `json:"approver_id"`
			Reason     string `json:"reason"`
		} `json:"decision"`
	}
	if code, raw := s.call("GET", "/api/v1/requests/"+own.ID, carol, nil, &decided); code != 200 ||
		decided.Decision == nil || decided.Decision.Reason != "the customer's phone number does not match" {
		t.Errorf("status: %d %s, want the dialog's reason as the decision's", code, raw)
	}
	var trail struct {
		Events []struct {
			Event   string         `json:"event"`
			Actor   string         `json:"actor"`
			Details map[string]any `json:"details"`
		} `json:"events"`
	}
	if code, raw := s.call("GET", "/api/v1/requests/"+own.ID+"/audit", carol, nil, &trail); code != 200 {
		t.Fatalf("audit trail: %d %s", code, raw)
	}
	found := false
	for _, e := range trail.Events {
		if e.Event == "request.rejected" {
			found = e.Actor == "agent:ag_bob" && e.Details["reason"] == "the customer's phone number does not match"
		}
	}
	if !found {
		t.Errorf("no request.rejected by ag_bob with the dialog's reason in %+v", trail.Events)
	}
}

// TestSlackClickAfterExpiry: a click after the approval deadline changes
// nothing and says when the request expired.
func TestSlackClickAfterExpiry(t *testing.T) {
	s := startStack(t, stackOptions{extraEnv: []string{"VIGIL_APPROVAL_TIMEOUT=4s"}})
	alice, _ := seed(t, s)
	r := s.open(t, alice, map[string]any{
		"action": "resend_credentials", "customer_id": customerID, "server_id": "srv-1",
		"reason": "customer asked in live chat", "pin": customerPIN,
	})
	s.waitStatus(t, alice, r.ID, "expired", time.Minute)
	s.clickStale(t, r.ID, "approve", "U0BOB")
	s.ephemeralFor(t, "U0BOB", "expired at")
	if got := s.status(t, alice, r.ID); got.Status != "expired" {
		t.Fatalf("late click moved the request to %s", got.Status)
	}
	msgs, _ := s.slackMessages(t)
	reminded := false
	for _, m := range msgs {
		if m.ThreadTS != "" && strings.Contains(m.Text+string(m.Blocks), "Still waiting") {
			reminded = true
		}
	}
	if !reminded {
		t.Error("no reminder was posted in the approval message's thread at half the timeout")
	}
	if calls := s.panelCalls(t); len(calls) != 0 {
		t.Fatalf("expired request reached the panel: %+v", calls)
	}
}

// TestSlackRepostLostMessage: the approval message was deleted in Slack;
// the requester has it posted again, and a senior approves on the new one.
func TestSlackRepostLostMessage(t *testing.T) {
	s := startStack(t, stackOptions{extraEnv: []string{"VIGIL_COOLING_RESEND_CREDENTIALS=30m"}})
	alice, bob := seed(t, s)
	r := s.open(t, alice, map[string]any{
		"action": "resend_credentials", "customer_id": customerID, "server_id": "srv-1",
		"reason": "customer asked in live chat", "pin": customerPIN,
	})
	old := s.approvalMessage(t, r.ID)
	// Slack shows the message a moment before the worker records it; a
	// repost before that is refused ("still being posted"), rightly.
	eventually(t, 30*time.Second, "the approval message recorded for "+r.ID, func() (bool, string) {
		return count(t, s, `SELECT count(*) FROM requests WHERE id = $1 AND slack_ts = $2`, r.ID, old.TS) == 1, "not yet"
	})
	body, _ := json.Marshal(map[string]string{"channel": old.Channel, "ts": old.TS})
	var deleted map[string]any
	if err := postJSON(s.slackURL+"/standin/delete", body, &deleted); err != nil {
		t.Fatal(err)
	}

	var moved struct {
		RequestID string `json:"request_id"`
		Channel   string `json:"channel"`
		TS        string `json:"ts"`
	}
	if code, raw := s.call("POST", "/api/v1/requests/"+r.ID+"/repost", alice, nil, &moved); code != 200 || moved.TS == "" || moved.TS == old.TS {
		t.Fatalf("repost: %d %s", code, raw)
	}
	fresh := s.approvalMessage(t, r.ID)
	if fresh.TS != moved.TS || !bytes.Contains(fresh.Blocks, []byte(`"approve"`)) {
		t.Fatalf("the new approval message %+v is not the one the repost named (%s), or has no buttons", fresh, moved.TS)
	}
	s.click(t, r.ID, "approve", "U0BOB")
	s.waitStatus(t, alice, r.ID, "cooling", time.Minute)
	eventually(t, 30*time.Second, "the new message shows the approval", func() (bool, string) {
		m := s.approvalMessage(t, r.ID)
		return m.TS == moved.TS && bytes.Contains(m.Blocks, []byte("Approved by")), string(m.Blocks)
	})
	if code, raw := s.call("POST", "/api/v1/requests/"+r.ID+"/repost", bob, nil, nil); code != 409 || !bytes.Contains(raw, []byte("not_awaiting_approval")) {
		t.Errorf("repost after the approval: %d %s, want 409 not_awaiting_approval", code, raw)
	}
	var trail struct {
		Events []struct {
			Event   string         `json:"event"`
			Actor   string         `json:"actor"`
			Details map[string]any `json:"details"`
		} `json:"events"`
	}
	if code, raw := s.call("GET", "/api/v1/requests/"+r.ID+"/audit", alice, nil, &trail); code != 200 {
		t.Fatalf("audit trail: %d %s", code, raw)
	}
	found := false
	for _, e := range trail.Events {
		if e.Event == "slack.approval_reposted" {
			found = e.Actor == "agent:ag_alice" && e.Details["old_ts"] == old.TS && e.Details["ts"] == moved.TS
		}
	}
	if !found {
		t.Errorf("no slack.approval_reposted by ag_alice from %s to %s in %+v", old.TS, moved.TS, trail.Events)
	}
}
