package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/smtp"
	"regexp"
	"testing"

	"github.com/vigil-oss/vigil/internal/standin/standintest"
)

func TestParseConfig(t *testing.T) {
	env := map[string]string{"VIGIL_MAILCATCHER_SMTP_ADDR": "127.0.0.1:2525"}
	cfg, err := parseConfig([]string{"-http-addr", "127.0.0.1:9999"}, func(k string) string { return env[k] })
	if err != nil || cfg.smtpAddr != "127.0.0.1:2525" || cfg.httpAddr != "127.0.0.1:9999" {
		t.Fatalf("parseConfig = %+v, %v", cfg, err)
	}
	cfg, err = parseConfig(nil, func(string) string { return "" })
	if err != nil || cfg.smtpAddr != "127.0.0.1:1025" || cfg.httpAddr != "127.0.0.1:8025" {
		t.Fatalf("defaults = %+v, %v", cfg, err)
	}
	if _, err := parseConfig([]string{"extra"}, func(string) string { return "" }); err == nil {
		t.Fatal("stray argument accepted")
	}
}

func TestRunServesAndStops(t *testing.T) {
	line, stop := standintest.Start(t, func(ctx context.Context, stdout io.Writer) error {
		return run(ctx, config{smtpAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler), stdout)
	})
	m := regexp.MustCompile(`^mailcatcher ready smtp=(\S+) http=(\S+)\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("ready line %q", line)
	}
	if err := smtp.SendMail(m[1], nil, "a@example.com", []string{"b@example.com"}, []byte("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		t.Fatalf("send: %v", err)
	}
	resp, err := http.Get("http://" + m[2] + "/api/messages")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	var msgs []struct {
		Subject string `json:"subject"`
		Text    string `json:"text"`
	}
	err = json.NewDecoder(resp.Body).Decode(&msgs)
	resp.Body.Close()
	if err != nil || len(msgs) != 1 || msgs[0].Subject != "hi" || msgs[0].Text != "hello\r\n" {
		t.Fatalf("messages = %+v, %v", msgs, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("run = %v after cancel, want nil", err)
	}
}
