package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestRunServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, outW := io.Pipe()
	env := envOf(map[string]string{"VIGIL_SLACK_BOT_TOKEN": "xoxb-main-test", "VIGIL_SLACK_SIGNING_SECRET": "main-test-secret"})
	var stderr strings.Builder
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, env, outW, &stderr) }()

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
	}()
	var addr string
	select {
	case line := <-lines:
		var ok bool
		if addr, ok = strings.CutPrefix(strings.TrimSpace(line), "slack-standin ready addr="); !ok {
			t.Fatalf("first stdout line %q", line)
		}
	case err := <-done:
		t.Fatalf("run returned early: %v (stderr %s)", err, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("no ready line within 10s")
	}

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

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after stop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop within 10s")
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
