// Command mail runs the local mail catcher: an SMTP server that keeps every
// message and a web page (and JSON API) to read them.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/vigil-oss/vigil/internal/mailcatcher"
	"github.com/vigil-oss/vigil/internal/standin"
)

type config struct {
	smtpAddr  string
	httpAddr  string
	statePath string // empty: messages live in memory only
}

func main() {
	standin.Main("mailcatcher", parseConfig, run)
}

// parseConfig reads flags, falling back to environment variables, then defaults.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("mailcatcher", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.smtpAddr, "smtp-addr", standin.EnvOr(getenv, "VIGIL_MAILCATCHER_SMTP_ADDR", "127.0.0.1:1025"), "SMTP listen address (env VIGIL_MAILCATCHER_SMTP_ADDR)")
	fs.StringVar(&cfg.httpAddr, "http-addr", standin.EnvOr(getenv, "VIGIL_MAILCATCHER_HTTP_ADDR", "127.0.0.1:8025"), "web listen address (env VIGIL_MAILCATCHER_HTTP_ADDR)")
	fs.StringVar(&cfg.statePath, "state", getenv("VIGIL_MAILCATCHER_STATE"), "JSON file keeping the caught mail across restarts; empty keeps it in memory only (env VIGIL_MAILCATCHER_STATE)")
	if err := standin.ParseFlags(fs, args); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// run serves SMTP and HTTP until ctx ends, then stops both.
func run(ctx context.Context, cfg config, logger *slog.Logger, stdout io.Writer) error {
	catcher, err := openCatcher(cfg.statePath, logger)
	if err != nil {
		return err
	}
	smtpL, err := net.Listen("tcp", cfg.smtpAddr)
	if err != nil {
		return fmt.Errorf("listen smtp: %w", err)
	}
	httpL, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		smtpL.Close()
		return fmt.Errorf("listen http: %w", err)
	}

	smtpDone := make(chan error, 1)
	go func() { smtpDone <- catcher.ServeSMTP(smtpL) }()
	web := standin.Serve(httpL, catcher.Handler())
	fmt.Fprintf(stdout, "mailcatcher ready smtp=%s http=%s\n", smtpL.Addr(), httpL.Addr())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-smtpDone:
	case err := <-web.Done():
		runErr = fmt.Errorf("serve http: %w", err)
	}
	logger.Info("mailcatcher stopping")
	if err := web.Stop(); err != nil {
		_ = web.Close()
	}
	if err := catcher.Close(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// openCatcher keeps the mail in the state file when there is one, else in memory.
func openCatcher(path string, logger *slog.Logger) (*mailcatcher.Catcher, error) {
	if path == "" {
		return mailcatcher.New(logger), nil
	}
	return mailcatcher.Open(path, logger)
}
