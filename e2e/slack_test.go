package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// slackMessage is a message as the Slack stand-in holds it.
type slackMessage struct {
	Channel, TS, ThreadTS, Text, User string
	Blocks                            json.RawMessage
	Ephemeral                         bool
}

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
			if m.ThreadTS == "" && bytes.Contains(m.Blocks, []byte(`"`+requestID+`"`)) {
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
	m := s.approvalMessage(t, requestID)
	body, _ := json.Marshal(map[string]string{"channel": m.Channel, "ts": m.TS, "action_id": action, "user": user})
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
