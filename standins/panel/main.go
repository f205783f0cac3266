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
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	_ "github.com/lib/pq" // registers the "postgres" driver

	"github.com/vigil-oss/vigil/internal/panelstandin"
)

type config struct {
	addr        string
	databaseURL string
	token       string
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, cfg, logger, os.Stdout); err != nil {
		logger.Error("panel-standin stopped", "err", err)
		os.Exit(1)
	}
}

// parseConfig reads flags, falling back to environment variables, then defaults.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("panel-standin", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.addr, "addr", envOr(getenv, "VIGIL_PANEL_STANDIN_ADDR", "127.0.0.1:8091"), "listen address (env VIGIL_PANEL_STANDIN_ADDR)")
	fs.StringVar(&cfg.databaseURL, "database-url", envOr(getenv, "VIGIL_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/vigil?sslmode=disable"), "Postgres URL (env VIGIL_DATABASE_URL)")
	fs.StringVar(&cfg.token, "token", envOr(getenv, "VIGIL_PANEL_TOKEN", "dev-panel-token"), "bearer token clients must send (env VIGIL_PANEL_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.token == "" {
		return config{}, errors.New("the token must not be empty")
	}
	return cfg, nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// run serves the stand-in until ctx ends.
func run(ctx context.Context, cfg config, logger *slog.Logger, stdout io.Writer) error {
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
	standin, err := panelstandin.New(ctx, db, cfg.token, logger)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: standin.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	fmt.Fprintf(stdout, "panel-standin ready addr=%s\n", l.Addr())

	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("panel-standin stopping")
	standin.Release() // held calls would otherwise keep Shutdown waiting
	shutdownCtx, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelShutdown()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	return nil
}
