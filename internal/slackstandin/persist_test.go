package slackstandin

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slack-go/slack"
)

// persistentStandin serves a stand-in kept in statePath; stop ends the
// process's part of it (the listener and the server), as a restart would.
func persistentStandin(t *testing.T, statePath, interactionURL string) (srv *Server, api *slack.Client, base string, stop func()) {
	t.Helper()
	srv, err := New(Config{
		BotToken: testToken, SigningSecret: testSecret, InteractionURL: interactionURL,
		Users:     []User{{ID: "U0ALICE", Name: "alice", RealName: "Alice Moreau"}, {ID: "U0BOB", Name: "bob", RealName: "Bob Lindqvist"}},
		StatePath: statePath,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	return srv, slack.New(testToken, slack.OptionAPIURL(hs.URL+"/api/")), hs.URL, hs.Close
}

func TestStateSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	vigil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(vigil.Close)
	path := filepath.Join(t.TempDir(), "state", "slack.json")

	srv, api, _, stop := persistentStandin(t, path, vigil.URL)
	ch, ts, err := api.PostMessageContext(ctx, "#vigil-approvals",
		slack.MsgOptionText("approval needed", false), slack.MsgOptionBlocks(approvalBlocks("req-1")...))
	if err != nil {
		t.Fatalf("PostMessage: %v", err)
	}
	_, replyTS, err := api.PostMessageContext(ctx, ch, slack.MsgOptionText("reminder", false), slack.MsgOptionTS(ts))
	if err != nil {
		t.Fatalf("thread reply: %v", err)
	}
	if _, err := api.PostEphemeralContext(ctx, ch, "U0ALICE", slack.MsgOptionText("only alice", false)); err != nil {
		t.Fatalf("PostEphemeral: %v", err)
	}
	dm, dmTS, err := api.PostMessageContext(ctx, "U0ALICE", slack.MsgOptionText("Your request is waiting for a senior", false))
	if err != nil {
		t.Fatalf("DM: %v", err)
	}
	resp, err := srv.Click(ctx, ch, ts, "approve", "U0BOB")
	if err != nil {
		t.Fatalf("Click: %v", err)
	}
	resp.Body.Close()
	var responseID string
	srv.mu.Lock()
	for id := range srv.responses {
		responseID = id
	}
	srv.mu.Unlock()
	before := srv.Messages()
	stop()

	srv, api, base, stop := persistentStandin(t, path, vigil.URL)
	defer stop()
	after := srv.Messages()
	if len(after) != len(before) || len(after) != 3 {
		t.Fatalf("after restart %d messages, want %d", len(after), len(before))
	}
	for i := range before {
		b, a := before[i], after[i]
		if a.Channel != b.Channel || a.TS != b.TS || a.ThreadTS != b.ThreadTS || a.Text != b.Text || string(a.Blocks) != string(b.Blocks) || !a.At.Equal(b.At) {
			t.Errorf("message %d changed across the restart:\n before %+v\n after  %+v", i, b, a)
		}
	}
	if after[2].Channel != dm || after[2].TS != dmTS {
		t.Errorf("the DM after the restart = %+v, want channel %s ts %s", after[2], dm, dmTS)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, dm, dmTS, slack.MsgOptionText("Your request was approved", false)); err != nil {
		t.Errorf("chat.update of a DM after the restart: %v", err)
	}
	if got := buttons(after[0].Blocks); len(got) != 2 {
		t.Errorf("the approval message has %d buttons after the restart, want 2", len(got))
	}
	if eph := srv.Ephemerals("U0ALICE"); len(eph) != 1 || eph[0].Text != "only alice" {
		t.Errorf("ephemerals after restart = %+v", eph)
	}

	// The waiting request's message can still be updated, by channel id and by name.
	if _, _, _, err := api.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText("approved", false)); err != nil {
		t.Fatalf("chat.update after restart: %v", err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, "#vigil-approvals", replyTS, slack.MsgOptionText("reminder (done)", false)); err != nil {
		t.Fatalf("chat.update by channel name after restart: %v", err)
	}
	if m := srv.Messages()[0]; m.Text != "approved" || m.Updated != 1 || len(buttons(m.Blocks)) != 2 {
		t.Errorf("after update: %+v", m)
	}
	onDisk(t, path, `"text":"reminder (done)"`) // each change is saved as it happens
	// Its buttons still click, and new messages get later timestamps in the same channel.
	resp, err = srv.Click(ctx, ch, ts, "reject", "U0BOB")
	if err != nil {
		t.Fatalf("Click after restart: %v", err)
	}
	resp.Body.Close()
	ch2, ts2, err := api.PostMessageContext(ctx, "#vigil-approvals", slack.MsgOptionText("next", false))
	if err != nil || ch2 != ch || ts2 <= replyTS {
		t.Errorf("post after restart: channel %s ts %s (err %v), want channel %s and a ts after %s", ch2, ts2, err, ch, replyTS)
	}
	// The response URL handed out before the restart still answers.
	if _, _, err := api.PostMessageContext(ctx, "", slack.MsgOptionResponseURL(base+"/response/"+responseID, slack.ResponseTypeEphemeral),
		slack.MsgOptionText("You approved req-1", false)); err != nil {
		t.Errorf("response_url from before the restart: %v", err)
	}
	if eph := srv.Ephemerals("U0BOB"); len(eph) != 1 || eph[0].Text != "You approved req-1" {
		t.Errorf("bob's ephemerals = %+v", eph)
	}
	onDisk(t, path, `"text":"You approved req-1"`)

	// A third start sees the changes made after the second.
	stop()
	srv, _, _, stop = persistentStandin(t, path, vigil.URL)
	defer stop()
	if msgs := srv.Messages(); len(msgs) != 4 || msgs[0].Text != "approved" || msgs[1].Text != "reminder (done)" ||
		msgs[2].Text != "Your request was approved" || msgs[3].TS != ts2 {
		t.Errorf("third start: %+v", msgs)
	}
}

// onDisk checks the state file holds want now, before any later change rewrites it.
func onDisk(t *testing.T, path, want string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), want) {
		t.Errorf("state file lacks %s (err %v)", want, err)
	}
}

func TestCorruptStateFailsStart(t *testing.T) {
	const msg = `{"channel":"C0X","ts":"1700000000.000001","text":"hi","updated":0,"at":"2026-01-01T00:00:00Z"}`
	tests := []struct{ name, content, want string }{
		{"not JSON", "{\"version\":1,\"channels\":{", "corrupt"},
		{"empty file", "", "corrupt"},
		{"other version", `{"version":2}`, "version 2"},
		{"unknown field", `{"version":1,"chanels":{}}`, "unknown field"},
		{"message in an unknown channel", `{"version":1,"channels":{},"messages":[` + msg + `]}`, "does not list"},
		{"bad ts", `{"version":1,"channels":{"C0X":"x"},"messages":[` + strings.Replace(msg, "1700000000.000001", "yesterday", 1) + `]}`, "ts"},
		{"duplicate message", `{"version":1,"channels":{"C0X":"x"},"messages":[` + msg + `,` + msg + `]}`, "twice"},
		{"bad channel id", `{"version":1,"channels":{"general":"general"}}`, "channel"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "slack.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(Config{BotToken: testToken, SigningSecret: testSecret, StatePath: path}, nil)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error naming %s and saying %q", err, path, tc.want)
			}
			if got, _ := os.ReadFile(path); string(got) != tc.content {
				t.Errorf("the refused file was changed to %q", got)
			}
		})
	}

	// A state file that cannot be written fails at start too.
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{BotToken: testToken, SigningSecret: testSecret, StatePath: filepath.Join(blocker, "slack.json")}, nil); err == nil {
		t.Errorf("New accepted a state file under a regular file")
	}
}
