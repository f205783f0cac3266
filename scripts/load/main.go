// Command load starts a local Vigil stack in one process tree and measures
// it from outside: N requests at concurrency C through the agents' API, the
// signed Slack interaction endpoint and the mail catcher, next to a bare
// workflow of the same shape on the same Temporal devserver. With -memory
// it instead fills the worker with requests waiting in cooling and reports
// the worker's memory as they grow. It needs no network: everything listens
// on loopback, Postgres is the machine's own.
//
//	go run ./scripts/load -n 200 -c 20
//	go run ./scripts/load -memory 10000 -c 20
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-oss/vigil/internal/loadstack"
)

// settings is what the flags choose.
type settings struct {
	n, c        int
	cooling     time.Duration
	memory      int
	checkpoints []int
	stickyCache int
	skipBare    bool
	devserver   string
	adminDSN    string
	dir         string
	keep        bool
}

const usageText = `Usage: go run ./scripts/load [flags]     (or: make load ARGS="-n 200 -c 20")

Starts the whole local stack (Temporal devserver, mail catcher, panel and Slack
stand-ins, worker, web) on loopback ports and a fresh Postgres database, then:

  default   drives -n requests, -c at a time, each as an agent and a senior would:
            open (POST /api/v1/requests with the PIN, as the starter CLI does), click
            Approve on the Slack message (signed as Slack signs it, through the Slack
            stand-in), read the notice in the mail catcher, wait out -cooling, see it
            executed. Then the same number of a bare workflow of the same shape (same
            activities and options, one Update, the same timers; activities that do
            nothing) on the same devserver. Prints throughput for both and the ratio,
            latency percentiles (open call, click ack, open to executed) and CPU per
            request of every process (from /proc/<pid>/stat).
  -memory K opens K requests and leaves them waiting in a 24 h cooling period;
            prints the worker's RSS at each checkpoint, the bytes per waiting
            request and an extrapolation to 100,000.

Nothing is left behind: the processes stop and the database is dropped at the end
(logs stay in -dir). Postgres must run locally (scripts/test starts it); the
devserver binary is built once with 'make build' (or named by VIGIL_DEVSERVER_BIN).

Flags:
`

func parseFlags(args []string, getenv func(string) string, out io.Writer) (settings, error) {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, usageText)
		fs.PrintDefaults()
	}
	var c settings
	var checkpoints string
	fs.IntVar(&c.n, "n", 200, "requests to drive through Vigil, and as many bare workflows")
	fs.IntVar(&c.c, "c", 20, "requests in flight at once (1 to 500)")
	fs.DurationVar(&c.cooling, "cooling", time.Second, "the cooling period, set through the worker's VIGIL_COOLING_ADD_CONTACT_EMAIL (and the bare workflow's timer)")
	fs.IntVar(&c.memory, "memory", 0, "memory mode: open this many requests and leave them waiting in cooling (0: throughput mode)")
	fs.StringVar(&checkpoints, "checkpoints", "1000,5000,10000,20000,50000,100000", "memory mode: read the worker's RSS when this many requests wait (those up to -memory, and -memory itself)")
	fs.IntVar(&c.stickyCache, "sticky-cache", -1, "the worker's sticky workflow cache size (VIGIL_WORKER_STICKY_CACHE_SIZE); -1 keeps the worker's default")
	fs.BoolVar(&c.skipBare, "skip-bare", false, "throughput mode: leave out the bare workflow")
	fs.StringVar(&c.devserver, "devserver", getenv("VIGIL_DEVSERVER_BIN"), "the devserver binary (default: $VIGIL_DEVSERVER_BIN, else .bin/devserver)")
	fs.StringVar(&c.adminDSN, "admin-dsn", or(getenv("VIGIL_TEST_DATABASE_URL"), "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
		"Postgres URL of a user that may create and drop databases ($VIGIL_TEST_DATABASE_URL)")
	fs.StringVar(&c.dir, "dir", "", "where the binaries, Temporal's state and the logs go (default .vigil/load/<time>)")
	fs.BoolVar(&c.keep, "keep", false, "keep -dir after a successful run (it is always kept after a failure)")
	if err := fs.Parse(args); err != nil {
		return settings{}, err
	}
	if fs.NArg() > 0 {
		return settings{}, fmt.Errorf("unexpected argument %q (all settings are flags; see -h)", fs.Arg(0))
	}
	switch {
	case c.n < 1:
		return settings{}, errors.New("-n must be at least 1")
	case c.c < 1 || c.c > 500:
		return settings{}, errors.New("-c must be from 1 to 500")
	case c.cooling < 100*time.Millisecond || c.cooling > time.Hour:
		return settings{}, errors.New("-cooling must be from 100ms to 1h")
	case c.memory < 0:
		return settings{}, errors.New("-memory must not be negative")
	case c.stickyCache < -1 || c.stickyCache > 100_000:
		return settings{}, errors.New("-sticky-cache must be -1 (the default) or from 0 to 100000")
	}
	if c.memory > 0 {
		var err error
		if c.checkpoints, err = parseCheckpoints(checkpoints, c.memory); err != nil {
			return settings{}, err
		}
	}
	return c, nil
}

// parseCheckpoints reads a comma-separated list of counts, keeps those below
// upTo in increasing order and ends it with upTo.
func parseCheckpoints(s string, upTo int) ([]int, error) {
	var out []int
	last := 0
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-checkpoints: %q is not a positive whole number", f)
		}
		if n <= last {
			return nil, errors.New("-checkpoints must increase")
		}
		last = n
		if n < upTo {
			out = append(out, n)
		}
	}
	return append(out, upTo), nil
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == bareWorkerCommand {
		if err := runBareWorker(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "bare worker: %v\n", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg settings, out io.Writer) (err error) {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if cfg.devserver == "" {
		cfg.devserver = filepath.Join(root, ".bin", "devserver")
	}
	if cfg.dir == "" {
		cfg.dir = filepath.Join(root, ".vigil", "load", time.Now().UTC().Format("20060102-150405"))
	}
	if err := os.MkdirAll(cfg.dir, 0o700); err != nil {
		return err
	}
	defer func() {
		if err == nil && !cfg.keep {
			os.RemoveAll(cfg.dir)
		} else {
			fmt.Fprintf(os.Stderr, "load: logs and state kept in %s\n", cfg.dir)
		}
	}()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "==> "+format+"\n", args...) }
	st, err := loadstack.Start(ctx, loadstack.Options{
		Root: root, Devserver: cfg.devserver, AdminDSN: cfg.adminDSN, Dir: cfg.dir, Env: stackEnv(cfg), Logf: logf,
	})
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping the stack")
		st.Stop()
	}()
	if cfg.memory > 0 {
		return runMemory(ctx, cfg, st, out, logf)
	}
	return runThroughput(ctx, cfg, st, out, logf)
}

// stackEnv is the worker's and web's configuration for a run.
func stackEnv(cfg settings) []string {
	cooling := cfg.cooling
	if cfg.memory > 0 {
		// Long enough that none of them leaves before the run ends.
		cooling = 24 * time.Hour
	}
	env := []string{
		"VIGIL_COOLING_ADD_CONTACT_EMAIL=" + cooling.String(),
		"VIGIL_APPROVAL_TIMEOUT=" + policy(cfg).ApprovalTimeout.String(),
		"VIGIL_NOTICE_TIMEOUT=" + policy(cfg).NoticeTimeout.String(),
		"VIGIL_EXECUTE_MAX_ATTEMPTS=" + strconv.Itoa(int(policy(cfg).ExecuteMaxAttempts)),
	}
	if cfg.stickyCache >= 0 {
		env = append(env, "VIGIL_WORKER_STICKY_CACHE_SIZE="+strconv.Itoa(cfg.stickyCache))
	}
	return env
}

// repoRoot finds the repository's root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/vigil-oss/vigil\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run this from inside the Vigil repository (no go.mod of github.com/vigil-oss/vigil above the working directory)")
		}
		dir = parent
	}
}
