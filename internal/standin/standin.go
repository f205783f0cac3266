// Package standin holds the process scaffolding the stand-in commands under
// standins/ share: settings from a flag, else the environment, else a
// default; stopping on SIGINT or SIGTERM; and serving HTTP until then.
package standin

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// EnvOr returns getenv(key), or def when that is empty. Stand-ins use it as
// a flag's default, so a flag beats the environment, which beats def.
func EnvOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// ParseFlags parses args into fs and refuses positional arguments, which no
// stand-in takes.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return nil
}

// SignalContext returns a context that ends on SIGINT or SIGTERM, the ways
// scripts, tests and a terminal stop a stand-in.
func SignalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Main is the whole main function of a stand-in: it reads the settings from
// the command line and environment with parse, then calls run with a context
// that ends on SIGINT or SIGTERM, a text logger on stderr, and stdout for the
// ready line. If parse refuses the command line, Main prints why and exits 2;
// if run fails, it logs "<name> stopped" with the error and exits 1.
func Main[C any](name string, parse func(args []string, getenv func(string) string) (C, error),
	run func(ctx context.Context, cfg C, logger *slog.Logger, stdout io.Writer) error) {
	cfg, err := parse(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := SignalContext()
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, cfg, logger, os.Stdout); err != nil {
		logger.Error(name+" stopped", "err", err)
		os.Exit(1)
	}
}
