// Command panel runs the stand-in hosting control panel over HTTP, recording
// every call in Postgres.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	_ "github.com/lib/pq" // registers the "postgres" driver

	"github.com/vigil-oss/vigil/internal/panelstandin"
	"github.com/vigil-oss/vigil/internal/standin"
)

type config struct {
	addr        string
	databaseURL string
	token       string
	readToken   string
	// totpCode, when set, is a customer's authenticator secret: print its
	// current code and exit (the local run's stand-in for the app).
	totpCode string
}

func main() {
	standin.Main("panel-standin", parseConfig, run)
}

// parseConfig reads flags, falling back to environment variables, then defaults.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("panel-standin", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.addr, "addr", standin.EnvOr(getenv, "VIGIL_PANEL_STANDIN_ADDR", "127.0.0.1:8091"), "listen address (env VIGIL_PANEL_STANDIN_ADDR)")
	fs.StringVar(&cfg.databaseURL, "database-url", standin.EnvOr(getenv, "VIGIL_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/vigil?sslmode=disable"), "Postgres URL (env VIGIL_DATABASE_URL)")
	fs.StringVar(&cfg.token, "token", standin.EnvOr(getenv, "VIGIL_PANEL_TOKEN", "dev-panel-token"), "bearer token clients must send (env VIGIL_PANEL_TOKEN)")
	fs.StringVar(&cfg.readToken, "read-token", getenv("VIGIL_PANEL_READ_TOKEN"), "bearer token that may only read account security events and verify codes, as the web front uses (env VIGIL_PANEL_READ_TOKEN; empty: none)")
	fs.StringVar(&cfg.totpCode, "totp-code", "", "print the current code of this base32 authenticator secret, then exit")
	if err := standin.ParseFlags(fs, args); err != nil {
		return config{}, err
	}
	if cfg.totpCode != "" {
		return cfg, nil
	}
	if cfg.token == "" {
		return config{}, errors.New("the token must not be empty")
	}
	if cfg.readToken == cfg.token {
		return config{}, errors.New("the read token must differ from the token")
	}
	return cfg, nil
}

// run serves the stand-in until ctx ends.
func run(ctx context.Context, cfg config, logger *slog.Logger, stdout io.Writer) error {
	if cfg.totpCode != "" {
		code, err := panelstandin.TOTPCode(cfg.totpCode, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, code)
		return nil
	}
	db, err := sql.Open("postgres", cfg.databaseURL)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	panel, err := panelstandin.New(ctx, db, cfg.token, cfg.readToken, logger)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := standin.Serve(l, panel.Handler())
	fmt.Fprintf(stdout, "panel-standin ready addr=%s\n", l.Addr())

	if err := srv.Wait(ctx); err != nil {
		return err
	}
	logger.Info("panel-standin stopping")
	panel.Release() // held calls would otherwise keep Stop waiting
	if err := srv.Stop(); err != nil {
		_ = srv.Close()
	}
	return nil
}
