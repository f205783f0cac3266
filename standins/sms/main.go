// Command sms runs the local SMS gateway: Twilio's Messages API for one
// account, a web page of every message it accepted, and a test API that
// makes the next sends fail.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/vigil-oss/vigil/internal/smsgateway"
	"github.com/vigil-oss/vigil/internal/standin"
)

type config struct {
	httpAddr  string
	account   string
	token     string
	statePath string // empty: messages live in memory only
}

func main() {
	standin.Main("smsgateway", parseConfig, run)
}

// parseConfig reads flags, falling back to environment variables, then
// defaults. The account and token are the ones Vigil's worker is given
// (VIGIL_SMS_ACCOUNT_SID, VIGIL_SMS_AUTH_TOKEN).
func parseConfig(args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("smsgateway", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.httpAddr, "http-addr", standin.EnvOr(getenv, "VIGIL_SMSGATEWAY_HTTP_ADDR", "127.0.0.1:8035"), "listen address of the API and the page (env VIGIL_SMSGATEWAY_HTTP_ADDR)")
	fs.StringVar(&cfg.account, "account", getenv("VIGIL_SMS_ACCOUNT_SID"), "the one account sends are accepted for (env VIGIL_SMS_ACCOUNT_SID)")
	fs.StringVar(&cfg.statePath, "state", getenv("VIGIL_SMSGATEWAY_STATE"), "JSON file keeping the messages across restarts; empty keeps them in memory only (env VIGIL_SMSGATEWAY_STATE)")
	if err := standin.ParseFlags(fs, args); err != nil {
		return config{}, err
	}
	// The token only from the environment: a flag would show in ps.
	cfg.token = getenv("VIGIL_SMS_AUTH_TOKEN")
	if cfg.account == "" || cfg.token == "" {
		return config{}, errors.New("smsgateway: set VIGIL_SMS_ACCOUNT_SID (or -account) and VIGIL_SMS_AUTH_TOKEN to the worker's")
	}
	return cfg, nil
}

// run serves HTTP until ctx ends.
func run(ctx context.Context, cfg config, logger *slog.Logger, stdout io.Writer) error {
	var (
		g   *smsgateway.Gateway
		err error
	)
	if cfg.statePath == "" {
		g = smsgateway.New(cfg.account, cfg.token, logger)
	} else if g, err = smsgateway.Open(cfg.statePath, cfg.account, cfg.token, logger); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	web := standin.Serve(ln, g.Handler())
	fmt.Fprintf(stdout, "smsgateway ready http=%s\n", ln.Addr())
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-web.Done():
		runErr = fmt.Errorf("serve http: %w", err)
	}
	logger.Info("smsgateway stopping")
	if err := web.Stop(); err != nil {
		_ = web.Close()
	}
	return runErr
}
