package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/panelstandin"
	"github.com/vigil-oss/vigil/internal/standin/standintest"
	"github.com/vigil-oss/vigil/internal/testpg"
)

func TestParseConfig(t *testing.T) {
	env := map[string]string{"VIGIL_PANEL_TOKEN": "from-env", "VIGIL_DATABASE_URL": "postgres://x@127.0.0.1/y"}
	cfg, err := parseConfig([]string{"-addr", "127.0.0.1:1"}, func(k string) string { return env[k] })
	if err != nil || cfg.addr != "127.0.0.1:1" || cfg.token != "from-env" || cfg.databaseURL != "postgres://x@127.0.0.1/y" {
		t.Fatalf("parseConfig = %+v, %v", cfg, err)
	}
	cfg, err = parseConfig(nil, func(string) string { return "" })
	if err != nil || cfg.addr != "127.0.0.1:8091" || cfg.token != "dev-panel-token" ||
		cfg.databaseURL != "postgres://postgres@127.0.0.1:5432/vigil?sslmode=disable" {
		t.Fatalf("defaults = %+v, %v", cfg, err)
	}
	if _, err := parseConfig([]string{"-token", ""}, func(string) string { return "" }); err == nil {
		t.Fatal("empty token accepted")
	}
}

func TestRunServesAndStops(t *testing.T) {
	dsn := testpg.NewDSN(t)
	line, stop := standintest.Start(t, func(ctx context.Context, stdout io.Writer) error {
		return run(ctx, config{addr: "127.0.0.1:0", databaseURL: dsn, token: "tok"}, slog.New(slog.DiscardHandler), stdout)
	})
	m := regexp.MustCompile(`^panel-standin ready addr=(\S+)\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("ready line %q", line)
	}
	req, _ := http.NewRequest(http.MethodDelete, "http://"+m[1]+"/v1/customers/c1/2fa", nil)
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Idempotency-Key", "k1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := stop(); err != nil {
		t.Fatalf("run = %v after cancel, want nil", err)
	}
}

// TestTOTPCodeAndReadToken: -totp-code prints the code the stand-in
// accepts; the read token comes from the environment and must differ from
// the token.
func TestTOTPCodeAndReadToken(t *testing.T) {
	cfg, err := parseConfig([]string{"-totp-code", "JBSWY3DPEHPK3PXP"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(context.Background(), cfg, slog.New(slog.DiscardHandler), &out); err != nil {
		t.Fatal(err)
	}
	want, err := panelstandin.TOTPCode("JBSWY3DPEHPK3PXP", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); len(got) != 6 || (got != want && time.Now().Unix()%30 > 1) {
		t.Fatalf("-totp-code printed %q, want %q", got, want)
	}
	if _, err := parseConfig([]string{"-totp-code", "not base32!"}, func(string) string { return "" }); err != nil {
		t.Fatalf("parse: %v", err)
	}
	env := map[string]string{"VIGIL_PANEL_TOKEN": "tok", "VIGIL_PANEL_READ_TOKEN": "read"}
	if cfg, err := parseConfig(nil, func(k string) string { return env[k] }); err != nil || cfg.readToken != "read" {
		t.Fatalf("read token from env = %+v, %v", cfg, err)
	}
	env["VIGIL_PANEL_READ_TOKEN"] = "tok"
	if _, err := parseConfig(nil, func(k string) string { return env[k] }); err == nil {
		t.Fatal("a read token equal to the token was accepted")
	}
}
