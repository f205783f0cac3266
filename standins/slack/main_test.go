package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/domain"

	"github.com/vigil-oss/vigil/internal/standin/standintest"
	"github.com/vigil-oss/vigil/internal/syncbuf"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestRunServesAndStops(t *testing.T) {
	env := envOf(map[string]string{"VIGIL_SLACK_BOT_TOKEN": "xoxb-main-test", "VIGIL_SLACK_SIGNING_SECRET": "main-test-secret"})
	var stderr syncbuf.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stderr: %s", stderr.String())
		}
	})
	line, stop := standintest.Start(t, func(ctx context.Context, stdout io.Writer) error {
		return run(ctx, []string{"-addr", "127.0.0.1:0", "-agents", "../../deploy/seed/agents.json"}, env, stdout, &stderr)
	})
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "slack-standin ready addr=")
	if !ok {
		t.Fatalf("first stdout line %q", line)
	}
	ctx := t.Context()

	api := slack.New("xoxb-main-test", slack.OptionAPIURL("http://"+addr+"/api/"))
	members, err := api.GetUserGroupMembersContext(ctx, "S0SENIORS")
	if err != nil || strings.Join(members, ",") != "U0BOB,U0CAROL" {
		t.Errorf("default group members = %v, %v", members, err)
	}
	u, err := api.GetUserInfoContext(ctx, "U0CAROL")
	if err != nil || u.RealName != "Carol Ng" {
		t.Errorf("default user carol = %+v, %v", u, err)
	}
	if _, err := slack.New("xoxb-other", slack.OptionAPIURL("http://"+addr+"/api/")).AuthTestContext(ctx); err == nil {
		t.Errorf("wrong token accepted")
	}

	// With the seed agents, Bob's own request starts the menu at Carol, and the confirm step names ag_carol.
	r := approvals.Request{ID: "req-1", Action: domain.ActionResendCredentials, CustomerID: "C-1042", RequesterSlackID: "U0BOB", ExpiresAt: time.Now().Add(time.Hour)}
	ch, ts, err := api.PostMessageContext(ctx, "#vigil-approvals", slack.MsgOptionText("approval needed", false), slack.MsgOptionBlocks(approvals.ApprovalBlocks(r)...))
	if err != nil {
		t.Fatalf("PostMessage: %v", err)
	}
	if page := body(t)(http.Get("http://" + addr + "/")); !strings.Contains(page, `<option value="U0CAROL" selected>carol (Carol Ng) · senior</option>`) {
		t.Errorf("the menu does not start at Carol:\n%s", page)
	}
	form := url.Values{"channel": {ch}, "ts": {ts}, "action_id": {"approve"}, "user": {"U0CAROL"}}
	if page := body(t)(http.PostForm("http://"+addr+"/ui/click", form)); !strings.Contains(page, "Approve as <b>Carol Ng (ag_carol)</b>?") {
		t.Errorf("the confirm step does not name ag_carol:\n%s", page)
	}

	if err := stop(); err != nil {
		t.Errorf("run after stop: %v", err)
	}
	if strings.Contains(stderr.String(), "xoxb-main-test") || strings.Contains(stderr.String(), "main-test-secret") {
		t.Errorf("a secret reached the log: %s", stderr.String())
	}
}

// body reads a response's body: body(t)(http.Get(…)).
func body(t *testing.T) func(*http.Response, error) string {
	return func(resp *http.Response, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	full := map[string]string{"VIGIL_SLACK_BOT_TOKEN": "xoxb-t", "VIGIL_SLACK_SIGNING_SECRET": "s"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no token", []string{"-addr", "127.0.0.1:0"}, map[string]string{"VIGIL_SLACK_SIGNING_SECRET": "s"}, "VIGIL_SLACK_BOT_TOKEN"},
		{"no secret", []string{"-addr", "127.0.0.1:0"}, map[string]string{"VIGIL_SLACK_BOT_TOKEN": "xoxb-t"}, "VIGIL_SLACK_SIGNING_SECRET"},
		{"public address", []string{"-addr", "0.0.0.0:0"}, full, "loopback"},
		{"bad users", []string{"-addr", "127.0.0.1:0", "-users", "alice"}, full, "-users"},
		{"bad groups", []string{"-addr", "127.0.0.1:0", "-groups", "seniors:U0BOB"}, full, "-groups"},
		{"bad interaction url", []string{"-addr", "127.0.0.1:0", "-interaction-url", "ftp://x"}, full, "interaction URL"},
		{"missing agents file", []string{"-addr", "127.0.0.1:0", "-agents", "/nonexistent/agents.json"}, full, "-agents"},
		{"agent who is not a member", []string{"-addr", "127.0.0.1:0", "-users", "U0ALICE:alice:Alice", "-agents", "../../deploy/seed/agents.json"}, full, "not a member"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, envOf(tc.env), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// startStandin runs the command with the state file path and returns a client of its API.
func startStandin(t *testing.T, statePath string) (*slack.Client, func() error) {
	t.Helper()
	env := envOf(map[string]string{"VIGIL_SLACK_BOT_TOKEN": "xoxb-main-test", "VIGIL_SLACK_SIGNING_SECRET": "main-test-secret"})
	line, stop := standintest.Start(t, func(ctx context.Context, stdout io.Writer) error {
		return run(ctx, []string{"-addr", "127.0.0.1:0", "-state", statePath}, env, stdout, io.Discard)
	})
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "slack-standin ready addr=")
	if !ok {
		t.Fatalf("first stdout line %q", line)
	}
	return slack.New("xoxb-main-test", slack.OptionAPIURL("http://"+addr+"/api/")), stop
}

func TestRunKeepsStateAcrossRestart(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), ".vigil", "slack.json")
	api, stop := startStandin(t, path)
	ch, ts, err := api.PostMessageContext(ctx, "#vigil-approvals", slack.MsgOptionText("approval needed", false))
	if err != nil {
		t.Fatalf("PostMessage: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	api, stop = startStandin(t, path)
	defer stop()
	if _, _, _, err := api.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText("approved", false)); err != nil {
		t.Errorf("chat.update of the message posted before the restart: %v", err)
	}

	// A corrupt state file stops the command at start, naming the file.
	bad := filepath.Join(t.TempDir(), "slack.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{"VIGIL_SLACK_BOT_TOKEN": "xoxb-t", "VIGIL_SLACK_SIGNING_SECRET": "s"})
	err = run(context.Background(), []string{"-addr", "127.0.0.1:0", "-state", bad}, env, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("run with a corrupt state file = %v, want an error naming %s", err, bad)
	}
}
