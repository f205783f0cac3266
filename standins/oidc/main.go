// Command oidc runs the local identity provider: an OpenID provider that signs
// the seed agents in with the device authorization grant, a password and a TOTP
// second factor, with a signing key generated at start.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/vigil-oss/vigil/internal/oidcprovider"
	"github.com/vigil-oss/vigil/internal/standin"
)

type config struct {
	addr       string
	issuer     string
	clientID   string
	usersFile  string
	password   string
	totpSeed   string
	requireOTP bool
	tokenTTL   time.Duration
	// totpFor, when set, prints that user's TOTP secret and current code and
	// exits: the local run's stand-in for an authenticator app.
	totpFor string
}

func main() {
	standin.Main("oidc", parseConfig, run)
}

// parseConfig reads flags, falling back to environment variables, then defaults.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("oidc", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.addr, "addr", standin.EnvOr(getenv, "VIGIL_OIDC_STANDIN_ADDR", "127.0.0.1:8090"), "listen address (env VIGIL_OIDC_STANDIN_ADDR)")
	fs.StringVar(&cfg.issuer, "issuer", getenv("VIGIL_OIDC_STANDIN_ISSUER"), "issuer URL; default http://<addr> (env VIGIL_OIDC_STANDIN_ISSUER)")
	fs.StringVar(&cfg.clientID, "client-id", standin.EnvOr(getenv, "VIGIL_OIDC_STANDIN_CLIENT_ID", "vigil-starter"), "the public client's id (env VIGIL_OIDC_STANDIN_CLIENT_ID)")
	fs.StringVar(&cfg.usersFile, "users", standin.EnvOr(getenv, "VIGIL_OIDC_STANDIN_USERS", "deploy/seed/agents.json"), "JSON list of users: id, name, email (env VIGIL_OIDC_STANDIN_USERS)")
	fs.StringVar(&cfg.password, "password", getenv("VIGIL_OIDC_STANDIN_PASSWORD"), "the local password of every user (env VIGIL_OIDC_STANDIN_PASSWORD)")
	fs.StringVar(&cfg.totpSeed, "totp-seed", getenv("VIGIL_OIDC_STANDIN_TOTP_SEED"), "seed the users' TOTP secrets derive from (env VIGIL_OIDC_STANDIN_TOTP_SEED)")
	requireOTP, err := strconv.ParseBool(standin.EnvOr(getenv, "VIGIL_OIDC_STANDIN_REQUIRE_OTP", "true"))
	if err != nil {
		return config{}, fmt.Errorf("VIGIL_OIDC_STANDIN_REQUIRE_OTP: %w", err)
	}
	fs.BoolVar(&cfg.requireOTP, "require-otp", requireOTP, "ask a TOTP code; false signs in with a password alone (amr [pwd]) to test the refusal (env VIGIL_OIDC_STANDIN_REQUIRE_OTP)")
	fs.DurationVar(&cfg.tokenTTL, "token-ttl", 10*time.Minute, "ID and access token lifetime")
	fs.StringVar(&cfg.totpFor, "totp", "", "print the TOTP secret (otpauth URI) and the current code of this user id, then exit")
	if err := standin.ParseFlags(fs, args); err != nil {
		return config{}, err
	}
	if cfg.totpFor != "" {
		if cfg.totpSeed == "" {
			return config{}, errors.New("-totp needs the TOTP seed (-totp-seed or VIGIL_OIDC_STANDIN_TOTP_SEED)")
		}
		return cfg, nil
	}
	if cfg.password == "" {
		return config{}, errors.New("a password is required (-password or VIGIL_OIDC_STANDIN_PASSWORD)")
	}
	if cfg.requireOTP && cfg.totpSeed == "" {
		return config{}, errors.New("a TOTP seed is required (-totp-seed or VIGIL_OIDC_STANDIN_TOTP_SEED), or -require-otp=false")
	}
	return cfg, nil
}

// run serves the provider until ctx ends.
func run(ctx context.Context, cfg config, logger *slog.Logger, stdout io.Writer) error {
	if cfg.totpFor != "" {
		secret := oidcprovider.TOTPSecret(cfg.totpSeed, cfg.totpFor)
		code, err := totp.GenerateCode(secret, time.Now())
		if err != nil {
			return fmt.Errorf("totp: %w", err)
		}
		fmt.Fprintf(stdout, "otpauth://totp/Vigil%%20local:%s?secret=%s&issuer=Vigil%%20local\ncode now: %s\n", url.PathEscape(cfg.totpFor), secret, code)
		return nil
	}
	raw, err := os.ReadFile(cfg.usersFile)
	if err != nil {
		return fmt.Errorf("read users: %w", err)
	}
	var users []oidcprovider.User
	if err := json.Unmarshal(raw, &users); err != nil {
		return fmt.Errorf("read users %s: %w", cfg.usersFile, err)
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	issuer := cfg.issuer
	if issuer == "" {
		issuer = "http://" + ln.Addr().String()
	}
	p, err := oidcprovider.New(oidcprovider.Config{
		Issuer: issuer, ClientID: cfg.clientID, Users: users, Password: cfg.password, TOTPSeed: cfg.totpSeed,
		RequireOTP: cfg.requireOTP, TokenTTL: cfg.tokenTTL, RefreshTTL: 12 * time.Hour, Now: time.Now, Logger: logger,
	})
	if err != nil {
		ln.Close()
		return err
	}
	srv := standin.Serve(ln, p.Handler())
	fmt.Fprintf(stdout, "oidc ready issuer=%s client_id=%s users=%d second_factor=%t\n", issuer, cfg.clientID, len(users), cfg.requireOTP)
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-srv.Done():
		runErr = fmt.Errorf("serve: %w", err)
	}
	logger.Info("oidc stopping")
	if err := srv.Stop(); err != nil {
		_ = srv.Close()
	}
	return runErr
}
