package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-oss/vigil/internal/standin/standintest"
)

func TestParseConfig(t *testing.T) {
	env := map[string]string{"VIGIL_MAILCATCHER_SMTP_ADDR": "127.0.0.1:2525", "VIGIL_MAILCATCHER_STATE": ".vigil/mail.json"}
	cfg, err := parseConfig([]string{"-http-addr", "127.0.0.1:9999"}, func(k string) string { return env[k] })
	if err != nil || cfg.smtpAddr != "127.0.0.1:2525" || cfg.httpAddr != "127.0.0.1:9999" || cfg.statePath != ".vigil/mail.json" {
		t.Fatalf("parseConfig = %+v, %v", cfg, err)
	}
	cfg, err = parseConfig(nil, func(string) string { return "" })
	if err != nil || cfg.smtpAddr != "127.0.0.1:1025" || cfg.httpAddr != "127.0.0.1:8025" || cfg.statePath != "" {
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

// subjects lists the subjects GET /api/messages shows.
func subjects(t *testing.T, httpAddr string) []string {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/api/messages")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	var msgs []struct {
		Subject string `json:"subject"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&msgs); err != nil {
		t.Fatalf("decode: %v", err)
	}
	var out []string
	for _, m := range msgs {
		out = append(out, m.Subject)
	}
	return out
}

func TestRunKeepsMailAcrossRestart(t *testing.T) {
	cfg := config{smtpAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", statePath: filepath.Join(t.TempDir(), "mail.json")}
	ready := regexp.MustCompile(`^mailcatcher ready smtp=(\S+) http=(\S+)\n$`)
	start := func() (smtpAddr, httpAddr string, stop func() error) {
		line, stop := standintest.Start(t, func(ctx context.Context, stdout io.Writer) error {
			return run(ctx, cfg, slog.New(slog.DiscardHandler), stdout)
		})
		m := ready.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("ready line %q", line)
		}
		return m[1], m[2], stop
	}
	smtpAddr, _, stop := start()
	if err := smtp.SendMail(smtpAddr, nil, "a@example.com", []string{"b@example.com"}, []byte("Subject: before\r\n\r\nhello\r\n")); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	_, httpAddr, stop := start()
	defer stop()
	if got := subjects(t, httpAddr); strings.Join(got, ",") != "before" {
		t.Errorf("after restart the catcher shows %q, want the mail caught before it", got)
	}

	bad := filepath.Join(t.TempDir(), "mail.json")
	if err := os.WriteFile(bad, []byte("[]"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(context.Background(), config{smtpAddr: "127.0.0.1:0", httpAddr: "127.0.0.1:0", statePath: bad}, slog.New(slog.DiscardHandler), io.Discard)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("run with a corrupt state file = %v, want an error naming %s", err, bad)
	}
}
