package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-oss/vigil/internal/sms"
	"github.com/vigil-oss/vigil/internal/standin/standintest"
)

func TestParseConfig(t *testing.T) {
	env := map[string]string{"VIGIL_SMS_ACCOUNT_SID": "AC1", "VIGIL_SMS_AUTH_TOKEN": "tok", "VIGIL_SMSGATEWAY_STATE": ".vigil/sms.json"}
	cfg, err := parseConfig([]string{"-http-addr", "127.0.0.1:9999"}, func(k string) string { return env[k] })
	if err != nil || cfg.httpAddr != "127.0.0.1:9999" || cfg.account != "AC1" || cfg.token != "tok" || cfg.statePath != ".vigil/sms.json" {
		t.Fatalf("parseConfig = %+v, %v", cfg, err)
	}
	if _, err := parseConfig(nil, func(string) string { return "" }); err == nil || strings.Contains(err.Error(), "tok") {
		t.Fatalf("no account or token: %v", err)
	}
	if _, err := parseConfig([]string{"-token", "x"}, func(k string) string { return env[k] }); err == nil {
		t.Fatal("a -token flag was accepted: the token must come from the environment only")
	}
}

func TestRunServesAndStops(t *testing.T) {
	line, stop := standintest.Start(t, func(ctx context.Context, stdout io.Writer) error {
		return run(ctx, config{httpAddr: "127.0.0.1:0", account: "AC1", token: "tok"}, slog.New(slog.DiscardHandler), stdout)
	})
	m := regexp.MustCompile(`^smsgateway ready http=(\S+)\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("ready line %q", line)
	}
	c, err := sms.New(sms.Config{BaseURL: "http://" + m[1], AccountSID: "AC1", AuthToken: "tok", From: "+15005550006"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(context.Background(), "+447911123456", "hello"); err != nil {
		t.Fatalf("send: %v", err)
	}
	res, err := http.Get("http://" + m[1] + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), "hello") {
		t.Fatalf("page lacks the message:\n%s", b)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}
