// Command mail runs the local mail catcher: an SMTP server that keeps every
// message and a web page (and JSON API) to read them.
package main

import (
	"context"
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

	"github.com/vigil-oss/vigil/internal/mailcatcher"
)

type config struct {
	smtpAddr string
	httpAddr string
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
		logger.Error("mailcatcher stopped", "err", err)
		os.Exit(1)
	}
}

// parseConfig reads flags, falling back to environment variables, then defaults.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("mailcatcher", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.smtpAddr, "smtp-addr", envOr(getenv, "VIGIL_MAILCATCHER_SMTP_ADDR", "127.0.0.1:1025"), "SMTP listen address (env VIGIL_MAILCATCHER_SMTP_ADDR)")
	fs.StringVar(&cfg.httpAddr, "http-addr", envOr(getenv, "VIGIL_MAILCATCHER_HTTP_ADDR", "127.0.0.1:8025"), "web listen address (env VIGIL_MAILCATCHER_HTTP_ADDR)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return cfg, nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// run serves SMTP and HTTP until ctx ends, then stops both.
func run(ctx context.Context, cfg config, logger *slog.Logger, stdout io.Writer) error {
	smtpL, err := net.Listen("tcp", cfg.smtpAddr)
	if err != nil {
		return fmt.Errorf("listen smtp: %w", err)
	}
	httpL, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		smtpL.Close()
		return fmt.Errorf("listen http: %w", err)
	}
	catcher := mailcatcher.New(logger)
	web := &http.Server{Handler: catcher.Handler(), ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 2)
	go func() { errc <- catcher.ServeSMTP(smtpL) }()
	go func() {
		if err := web.Serve(httpL); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve http: %w", err)
			return
		}
		errc <- nil
	}()
	fmt.Fprintf(stdout, "mailcatcher ready smtp=%s http=%s\n", smtpL.Addr(), httpL.Addr())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	logger.Info("mailcatcher stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := web.Shutdown(shutdownCtx); err != nil {
		_ = web.Close()
	}
	if err := catcher.Close(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}
