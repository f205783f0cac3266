package main

import (
	"context"
	"io"
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
