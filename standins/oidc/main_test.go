package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pquerna/otp/totp"

	"github.com/vigil-oss/vigil/internal/oidcprovider"
	"github.com/vigil-oss/vigil/internal/standin/standintest"
)

func TestParseConfig(t *testing.T) {
	env := map[string]string{"VIGIL_OIDC_STANDIN_PASSWORD": "pw", "VIGIL_OIDC_STANDIN_TOTP_SEED": "seed"}
	cfg, err := parseConfig([]string{"-addr", "127.0.0.1:9999"}, func(k string) string { return env[k] })
	if err != nil || cfg.addr != "127.0.0.1:9999" || cfg.password != "pw" || !cfg.requireOTP || cfg.clientID != "vigil-starter" {
		t.Fatalf("parseConfig = %+v, %v", cfg, err)
	}
	bad := []struct {
		name string
		env  map[string]string
	}{
		{"no password", map[string]string{"VIGIL_OIDC_STANDIN_TOTP_SEED": "seed"}},
		{"no totp seed", map[string]string{"VIGIL_OIDC_STANDIN_PASSWORD": "pw"}},
		{"bad bool", map[string]string{"VIGIL_OIDC_STANDIN_PASSWORD": "pw", "VIGIL_OIDC_STANDIN_REQUIRE_OTP": "maybe"}},
	}
	for _, tc := range bad {
		if _, err := parseConfig(nil, func(k string) string { return tc.env[k] }); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	off := map[string]string{"VIGIL_OIDC_STANDIN_PASSWORD": "pw", "VIGIL_OIDC_STANDIN_REQUIRE_OTP": "false"}
	if cfg, err := parseConfig(nil, func(k string) string { return off[k] }); err != nil || cfg.requireOTP {
		t.Fatalf("second factor off = %+v, %v", cfg, err)
	}
}

func TestRunServesDiscoveryAndStops(t *testing.T) {
	users := filepath.Join(t.TempDir(), "agents.json")
	if err := os.WriteFile(users, []byte(`[{"id":"ag_alice","name":"Alice","email":"alice@vigil.localhost"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	line, stop := standintest.Start(t, func(ctx context.Context, stdout io.Writer) error {
		return run(ctx, config{addr: "127.0.0.1:0", clientID: "vigil-starter", usersFile: users, password: "pw", totpSeed: "s", requireOTP: true},
			slog.New(slog.DiscardHandler), stdout)
	})
	m := regexp.MustCompile(`^oidc ready issuer=(\S+) client_id=vigil-starter users=1 second_factor=true\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("ready line %q", line)
	}
	resp, err := http.Get(m[1] + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Issuer string `json:"issuer"`
		Device string `json:"device_authorization_endpoint"`
	}
	err = json.NewDecoder(resp.Body).Decode(&disc)
	resp.Body.Close()
	if err != nil || disc.Issuer != m[1] || disc.Device == "" {
		t.Fatalf("discovery = %+v, %v", disc, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("run = %v after cancel, want nil", err)
	}
}

func TestTOTPPrintsTheUsersCurrentCode(t *testing.T) {
	cfg, err := parseConfig([]string{"-totp", "ag_alice"}, func(k string) string {
		return map[string]string{"VIGIL_OIDC_STANDIN_TOTP_SEED": "seed"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := run(context.Background(), cfg, slog.New(slog.DiscardHandler), &out); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`secret=([A-Z2-7]+)&.*\ncode now: (\d{6})\n$`).FindStringSubmatch(out.String())
	if m == nil || m[1] != oidcprovider.TOTPSecret("seed", "ag_alice") || !totp.Validate(m[2], m[1]) {
		t.Fatalf("output %q", out.String())
	}
	if _, err := parseConfig([]string{"-totp", "ag_alice"}, func(string) string { return "" }); err == nil {
		t.Fatal("-totp without a seed accepted")
	}
}
