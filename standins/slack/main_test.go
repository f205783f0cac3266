package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slack-go/slack"

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
		return run(ctx, []string{"-addr", "127.0.0.1:0"}, env, stdout, &stderr)
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

	if err := stop(); err != nil {
		t.Errorf("run after stop: %v", err)
	}
	if strings.Contains(stderr.String(), "xoxb-main-test") || strings.Contains(stderr.String(), "main-test-secret") {
		t.Errorf("a secret reached the log: %s", stderr.String())
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
