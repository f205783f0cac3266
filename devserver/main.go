// Command devserver runs an embedded, single-process Temporal server backed by
// SQLite (or, with -postgres, by Postgres as production is), for Vigil
// development and tests only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// config holds the devserver settings parsed from flags and environment.
type config struct {
	Addr     string // frontend gRPC host:port
	HTTPAddr string // frontend HTTP API host:port; empty disables it
	DBFile   string // SQLite file, ignored when InMemory is set
	InMemory bool   // use an in-memory SQLite database
	// Postgres is a postgres:// URL naming the database Temporal persists
	// to (visibility goes to <name>_visibility); empty means SQLite.
	Postgres  string
	Namespace string     // namespace to create and register search attributes in
	LogLevel  slog.Level // minimum level for server and devserver logs
	// UIAddr is where the Temporal Web UI listens; empty disables it.
	UIAddr string
	// UIWriteActions turns on the UI's terminate, cancel, signal, reset, start
	// and batch actions; off, the UI server refuses every write call.
	UIWriteActions bool
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "devserver:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, cfg, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "devserver:", err)
		os.Exit(1)
	}
}

// parseConfig parses command-line flags, using environment variables (read
// through getenv) as defaults for flags that are not given.
func parseConfig(args []string, getenv func(string) string, output io.Writer) (config, error) {
	envOr := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("devserver", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprintf(output, "Usage: devserver [flags]\n\n"+
			"Runs an embedded Temporal server (SQLite, or Postgres with -postgres) for Vigil development\n"+
			"and tests. Not for production. Prints %q to stdout\n"+
			"once the namespace and Vigil search attributes are ready. Logs go to stderr.\n"+
			"Each flag falls back to the environment variable named in its description.\n\n"+
			"Flags:\n", "devserver ready addr=<host:port> namespace=<ns>")
		fs.PrintDefaults()
	}

	inMemoryDefault := false
	if v := getenv("VIGIL_DEVSERVER_IN_MEMORY"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return config{}, fmt.Errorf("invalid VIGIL_DEVSERVER_IN_MEMORY %q: %w", v, err)
		}
		inMemoryDefault = b
	}

	var cfg config
	var logLevel string
	fs.StringVar(&cfg.Addr, "addr", envOr("VIGIL_DEVSERVER_ADDR", "127.0.0.1:7233"),
		"frontend gRPC `host:port` (env VIGIL_DEVSERVER_ADDR)")
	fs.StringVar(&cfg.DBFile, "db-file", envOr("VIGIL_DEVSERVER_DB", ".vigil/temporal.db"),
		"SQLite database `file`, created with its schema if missing (env VIGIL_DEVSERVER_DB)")
	fs.BoolVar(&cfg.InMemory, "in-memory", inMemoryDefault,
		"use an in-memory SQLite database instead of -db-file; state is lost on exit (env VIGIL_DEVSERVER_IN_MEMORY)")
	fs.StringVar(&cfg.Postgres, "postgres", envOr("VIGIL_DEVSERVER_POSTGRES", ""),
		"persist to Postgres instead of SQLite: `postgres://user@host:port/database` (Temporal's postgres12 plugin; "+
			"database and database_visibility are created with Temporal's schema if missing; never Vigil's own database) (env VIGIL_DEVSERVER_POSTGRES)")
	fs.StringVar(&cfg.Namespace, "namespace", envOr("VIGIL_DEVSERVER_NAMESPACE", "default"),
		"namespace to create if missing (env VIGIL_DEVSERVER_NAMESPACE)")
	fs.StringVar(&logLevel, "log-level", envOr("VIGIL_DEVSERVER_LOG_LEVEL", "warn"),
		"log level: debug|info|warn|error (env VIGIL_DEVSERVER_LOG_LEVEL)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", envOr("VIGIL_DEVSERVER_HTTP_ADDR", ""),
		"frontend HTTP API `host:port` (host must match -addr's host); empty disables it (env VIGIL_DEVSERVER_HTTP_ADDR)")
	fs.StringVar(&cfg.UIAddr, "ui-addr", envOr("VIGIL_DEVSERVER_UI_ADDR", ""),
		"Temporal Web UI `host:port`; empty disables it (env VIGIL_DEVSERVER_UI_ADDR)")
	fs.BoolVar(&cfg.UIWriteActions, "ui-write-actions", false,
		"allow the UI's write actions (terminate, reset, signal, start, batch); they bypass Vigil's gates, so off by default")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	if err := cfg.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return config{}, fmt.Errorf("invalid -log-level %q: %w", logLevel, err)
	}
	if strings.TrimSpace(cfg.Namespace) == "" {
		return config{}, errors.New("-namespace must not be empty")
	}
	if cfg.Postgres != "" {
		if cfg.InMemory {
			return config{}, errors.New("-postgres and -in-memory exclude each other")
		}
		if _, err := parsePostgresURL(cfg.Postgres); err != nil {
			return config{}, err
		}
		return cfg, nil
	}
	if !cfg.InMemory && cfg.DBFile == "" {
		return config{}, errors.New("-db-file must not be empty (or use -in-memory)")
	}
	return cfg, nil
}
