// Package loadstack starts a whole local Vigil stack (devserver, mail
// catcher, panel and Slack stand-ins, worker, web) as child processes of the
// caller, on loopback ports of its own and a fresh Postgres database, for
// the load command. Each child dies with the caller (PR_SET_PDEATHSIG).
package loadstack

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/lib/pq" // registers the "postgres" driver
)

// Options chooses where the stack's pieces come from.
type Options struct {
	// Root is the repository's root (where go.mod is).
	Root string
	// Devserver is the devserver binary (built once with `make build`).
	Devserver string
	// AdminDSN reaches the local Postgres as a user that may create databases.
	AdminDSN string
	// Dir receives the binaries, Temporal's SQLite file and one log per process.
	Dir string
	// Env is added to every Vigil process's environment (worker settings,
	// cooling periods); it wins over the stack's own values.
	Env []string
	// Logf reports progress; nil is silent.
	Logf func(format string, args ...any)
}

// Proc is one running child.
type Proc struct {
	Name string
	// Ready is the line the process printed when it was ready.
	Ready string
	cmd   *exec.Cmd
	done  chan struct{}
	log   *os.File
}

// PID is the child's process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stack is a running local stack.
type Stack struct {
	opts      Options
	bins      map[string]string
	env       []string
	DSN       string
	dbName    string
	Temporal  string
	Namespace string
	WebURL    string
	MailURL   string
	// SMSURL is the SMS gateway stand-in.
	SMSURL   string
	SlackURL string
	PanelURL string
	// AdminURL is the admin API's own listener (VIGIL_ADMIN_ADDR);
	// AdminToken the bootstrap token, which only creates the first admin.
	AdminURL   string
	AdminToken string
	// WorkerMetrics is the worker's Prometheus endpoint.
	WorkerMetrics string

	mu    sync.Mutex
	procs []*Proc
}

// Binaries are the commands the stack builds from the repository.
var binaries = []string{"./worker", "./web", "./standins/mail", "./standins/sms", "./standins/panel", "./standins/slack"}

// Start builds the binaries, creates the database and starts every process,
// each once the one before is ready. On error, whatever started is stopped.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if _, err := os.Stat(o.Devserver); err != nil {
		return nil, fmt.Errorf("loadstack: the devserver binary: %w (build it once with `make build`, or set VIGIL_DEVSERVER_BIN)", err)
	}
	s := &Stack{opts: o, bins: map[string]string{"devserver": o.Devserver}, Namespace: "default"}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	binDir := filepath.Join(o.Dir, "bin")
	o.Logf("building %s into %s", strings.Join(binaries, " "), binDir)
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", binDir + "/"}, binaries...)...)
	cmd.Dir = o.Root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("loadstack: go build: %w\n%s", err, out)
	}
	for _, b := range binaries {
		s.bins[filepath.Base(b)] = filepath.Join(binDir, filepath.Base(b))
	}
	if err := s.createDatabase(ctx); err != nil {
		return nil, err
	}
	if err := s.startAll(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Stack) createDatabase(ctx context.Context) error {
	u, err := url.Parse(s.opts.AdminDSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return errors.New("loadstack: the admin DSN must be a postgres:// URL")
	}
	admin, err := sql.Open("postgres", s.opts.AdminDSN)
	if err != nil {
		return fmt.Errorf("loadstack: open %s: %w", u.Redacted(), err)
	}
	defer admin.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := admin.PingContext(cctx); err != nil {
		return fmt.Errorf("loadstack: Postgres is not reachable at %s (%w); start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start`", u.Redacted(), err)
	}
	s.dbName = "vigil_load_" + randomHex(6)
	if _, err := admin.ExecContext(cctx, "CREATE DATABASE "+s.dbName); err != nil {
		return fmt.Errorf("loadstack: create database %s: %w", s.dbName, err)
	}
	s.opts.Logf("created database %s", s.dbName)
	u.Path = "/" + s.dbName
	s.DSN = u.String()
	return nil
}

func (s *Stack) startAll(ctx context.Context) error {
	dev, err := s.Run(ctx, "devserver", s.bins["devserver"],
		[]string{"-addr", "127.0.0.1:0", "-db-file", filepath.Join(s.opts.Dir, "temporal.db")}, nil, "devserver ready", nil)
	if err != nil {
		return err
	}
	if s.Temporal, err = readyField(dev.Ready, "addr"); err != nil {
		return err
	}
	// Ports are chosen once the devserver holds its own, so no two
	// processes are handed the same one.
	addr := map[string]string{}
	for _, n := range []string{"smtp", "mail", "sms", "panel", "web", "admin", "slack", "webmetrics", "workermetrics"} {
		if addr[n], err = freeAddr(); err != nil {
			return err
		}
	}
	s.WebURL, s.MailURL, s.SlackURL, s.PanelURL = "http://"+addr["web"], "http://"+addr["mail"], "http://"+addr["slack"], "http://"+addr["panel"]
	s.WorkerMetrics = "http://" + addr["workermetrics"] + "/metrics"
	s.SMSURL = "http://" + addr["sms"]
	s.AdminURL = "http://" + addr["admin"]
	s.AdminToken = "adm_" + randomToken(32)
	s.env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.opts.Dir,
		"VIGIL_DATABASE_URL=" + s.DSN,
		"VIGIL_TEMPORAL_ADDRESS=" + s.Temporal,
		"VIGIL_TEMPORAL_NAMESPACE=" + s.Namespace,
		"VIGIL_CODEC_KEYS=load:" + randomKey(),
		"VIGIL_TOKEN_KEY=" + randomKey(),
		"VIGIL_ADMIN_TOKEN=" + s.AdminToken,
		"VIGIL_PANEL_TOKEN=panel-" + randomToken(16),
		// The web front reads each account's security events with it at
		// every open (the risk checks), so they are part of the load.
		"VIGIL_PANEL_READ_TOKEN=panel-read-" + randomToken(16),
		"VIGIL_PANEL_URL=" + s.PanelURL,
		"VIGIL_PANEL_STANDIN_ADDR=" + addr["panel"],
		"VIGIL_SMTP_ADDR=" + addr["smtp"],
		"VIGIL_MAILCATCHER_SMTP_ADDR=" + addr["smtp"],
		"VIGIL_MAILCATCHER_HTTP_ADDR=" + addr["mail"],
		"VIGIL_SMS_URL=" + s.SMSURL,
		"VIGIL_SMS_ACCOUNT_SID=AC" + randomToken(32),
		"VIGIL_SMS_AUTH_TOKEN=sms-" + randomToken(16),
		"VIGIL_SMS_FROM=+447911000001",
		"VIGIL_SMSGATEWAY_HTTP_ADDR=" + addr["sms"],
		"VIGIL_HTTP_ADDR=" + addr["web"],
		"VIGIL_ADMIN_ADDR=" + addr["admin"],
		// The load's cooling period is a second: below every action's floor.
		"VIGIL_DEV_BELOW_FLOORS=true",
		"VIGIL_WEB_METRICS_ADDR=" + addr["webmetrics"],
		"VIGIL_WORKER_METRICS_ADDR=" + addr["workermetrics"],
		"VIGIL_PUBLIC_URL=" + s.WebURL,
		"VIGIL_LOG_LEVEL=info",
		"VIGIL_SLACK_BOT_TOKEN=xoxb-load-" + randomToken(16),
		"VIGIL_SLACK_SIGNING_SECRET=" + randomToken(32),
		"VIGIL_SLACK_API_URL=" + s.SlackURL + "/api/",
		"VIGIL_SLACK_TEAM_ID=T0VIGIL",
		"VIGIL_SLACK_APP_ID=A0VIGIL",
		"VIGIL_SLACK_STANDIN_ADDR=" + addr["slack"],
		"VIGIL_SLACK_INTERACTION_URL=" + s.WebURL + "/slack/interactions",
	}, s.opts.Env...)
	for _, p := range []struct{ name, ready string }{
		{"mail", "mailcatcher ready"}, {"sms", "smsgateway ready"}, {"panel", "panel-standin ready"}, {"slack", "slack-standin ready"},
		{"worker", "worker ready"}, {"web", "web ready"},
	} {
		if _, err := s.Run(ctx, p.name, s.bins[p.name], nil, s.env, p.ready, nil); err != nil {
			return err
		}
	}
	return nil
}

// Env is the environment the Vigil processes run with.
func (s *Stack) Env() []string { return append([]string(nil), s.env...) }

// Run starts bin as a child named name with env (nil: only PATH and HOME),
// sends its stderr and stdout to <Dir>/<name>.log, hands each stdout line to
// onLine (if set) and waits until a line starts with ready.
func (s *Stack) Run(ctx context.Context, name, bin string, args, env []string, ready string, onLine func(string)) (*Proc, error) {
	s.opts.Logf("starting %s (log: %s)", name, filepath.Join(s.opts.Dir, name+".log"))
	logFile, err := os.Create(filepath.Join(s.opts.Dir, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("loadstack: %w", err)
	}
	p := &Proc{Name: name, done: make(chan struct{}), log: logFile}
	p.cmd = exec.Command(bin, args...)
	if env == nil {
		env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.opts.Dir}
	}
	p.cmd.Env = env
	p.cmd.Stderr = logFile
	// Its own process group, so a Ctrl-C reaches this process alone, which
	// stops the children in order; the kernel kills a child whose parent
	// died without doing so.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("loadstack: %w", err)
	}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("loadstack: start %s: %w", name, err)
	}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	readyLine := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(logFile, "[stdout] %s\n", line)
			if !seen && strings.HasPrefix(line, ready) {
				seen = true
				readyLine <- line
			}
			if onLine != nil {
				onLine(line)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = p.cmd.Wait()
		close(p.done)
	}()
	select {
	case p.Ready = <-readyLine:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("loadstack: %s exited before it was ready; see %s", name, logFile.Name())
	case <-time.After(90 * time.Second):
		return nil, fmt.Errorf("loadstack: %s not ready after 90 s; see %s", name, logFile.Name())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Procs lists the running children in start order.
func (s *Stack) Procs() []*Proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Proc(nil), s.procs...)
}

// Proc returns the child called name, or nil.
func (s *Stack) Proc(name string) *Proc {
	for _, p := range s.Procs() {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Stop stops the children newest first (SIGTERM, then SIGKILL after 15 s)
// and drops the database.
func (s *Stack) Stop() {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		_ = syscall.Kill(-p.PID(), syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
			<-p.done
		}
		p.log.Close()
	}
	if s.dbName == "" {
		return
	}
	admin, err := sql.Open("postgres", s.opts.AdminDSN)
	if err != nil {
		s.opts.Logf("drop database %s: %v", s.dbName, err)
		return
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+s.dbName+" WITH (FORCE)"); err != nil {
		s.opts.Logf("drop database %s: %v", s.dbName, err)
	}
	s.dbName = ""
}

// readyField returns key's value in a ready line such as
// "devserver ready addr=127.0.0.1:7233 namespace=default".
func readyField(line, key string) (string, error) {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("loadstack: ready line %q has no %s=", line, key)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("loadstack: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomKey is 32 random bytes in standard base64, as the codec and token keys want.
func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// randomToken is n characters of URL-safe random text.
func randomToken(n int) string {
	return randomHex((n + 1) / 2)[:n]
}
