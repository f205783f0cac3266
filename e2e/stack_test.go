package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/agentauth"
	"github.com/vigil-oss/vigil/internal/oidcprovider/oidctest"
	"github.com/vigil-oss/vigil/internal/testpg"
)

// bins holds the binaries TestMain built, by name.
var bins = map[string]string{}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	if err := buildAll(dir); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building the binaries failed: %v\n", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildAll(dir string) error {
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./worker", "./web", "./starter", "./standins/mail", "./standins/sms", "./standins/panel", "./standins/slack", "./standins/oidc")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	for _, n := range []string{"worker", "web", "starter", "mail", "sms", "panel", "slack", "oidc"} {
		bins[n] = filepath.Join(dir, n)
	}
	if b := os.Getenv("VIGIL_DEVSERVER_BIN"); b != "" {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("VIGIL_DEVSERVER_BIN=%s: %w", b, err)
		}
		bins["devserver"] = b
		return nil
	}
	fmt.Fprintln(os.Stderr, "e2e: building the devserver (set VIGIL_DEVSERVER_BIN to skip; the first build takes ~6 minutes)")
	cmd = exec.Command("go", "build", "-o", filepath.Join(dir, "devserver"), ".")
	cmd.Dir = filepath.Join(root, "devserver")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build devserver: %v\n%s", err, out)
	}
	bins["devserver"] = filepath.Join(dir, "devserver")
	return nil
}

// proc is one running binary of the stack.
type proc struct {
	name      string
	readyLine string
	cmd       *exec.Cmd
	log       *lockedBuffer
	ready     chan struct{}
	done      chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// stack is a whole Vigil installation of real processes on loopback ports.
type stack struct {
	t          testing.TB
	dir        string
	dsn        string
	env        []string
	adminToken string
	temporal   string
	webURL     string
	// adminURL is the web front's admin API, on its own listener.
	adminURL string
	// Prometheus endpoints of the web front and the worker.
	webMetrics, workerMetrics string
	smtpAddr                  string
	mailURL                   string
	// smsURL is the SMS gateway stand-in (its page, /api/messages, /api/fail).
	smsURL   string
	panelURL string
	slackURL string
	// oidcIssuer is the local identity provider's issuer when stackOptions.oidc.
	oidcIssuer string
	// uiURL is the Temporal Web UI when stackOptions.ui.
	uiURL string
	// front balances over the web replicas when stackOptions.replicas;
	// webAddrs are the replicas' own addresses (web, web2).
	front    *front
	webAddrs []string
	// temporalDSN is the devserver's database when stackOptions.temporalPostgres.
	temporalDSN string
	mu          sync.Mutex
	procs       map[string]*proc
}

type stackOptions struct {
	extraEnv []string
	// dsn, if set, is the database to use instead of a fresh one on the
	// shared test server.
	dsn string
	// oidc starts the local identity provider (standins/oidc, the seed agents
	// as users, oidctest's password and TOTP seed) and points the web front at it.
	oidc bool
	// ui serves the Temporal Web UI from the devserver (needs a devserver
	// built from this tree: VIGIL_DEVSERVER_BIN unset, or pointing at one).
	ui bool
	// temporalPostgres runs the devserver on Postgres persistence (a fresh
	// database of its own) instead of SQLite.
	temporalPostgres bool
	// replicas starts a second worker (worker2) and a second web front
	// (web2) and puts a balancer (front) in front of both web fronts:
	// webURL, the public URL and Slack's interaction URL all point at it.
	replicas bool
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// startStack starts devserver, mail catcher, SMS gateway, panel stand-in, worker and web
// against a fresh database, and stops them all when the test ends.
func startStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	s := &stack{
		t:          t,
		dir:        t.TempDir(),
		dsn:        o.dsn,
		adminToken: "adm_" + strings.TrimRight(randKey(t), "="),
		procs:      map[string]*proc{},
	}
	if s.dsn == "" {
		s.dsn = testpg.NewDSN(t)
	}
	if o.temporalPostgres {
		s.temporalDSN = temporalDSN(t)
	}
	t.Cleanup(s.stopAll)
	// The devserver picks its own free ports (frontend and internal services)
	// and says which in its ready line; the other ports are chosen only once
	// it holds its own, so no two processes are handed the same one.
	s.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.dir}
	devArgs := []string{"-addr", "127.0.0.1:0", "-db-file", filepath.Join(s.dir, "temporal.db")}
	if o.temporalPostgres {
		devArgs = []string{"-addr", "127.0.0.1:0", "-postgres", s.temporalDSN}
	}
	if o.ui {
		s.uiURL = "http://" + freeAddr(t)
		devArgs = append(devArgs, "-ui-addr", strings.TrimPrefix(s.uiURL, "http://"))
	}
	dev := s.start("devserver", bins["devserver"], devArgs, "devserver ready")
	s.temporal = readyField(t, dev.readyLine, "addr")
	s.smtpAddr = freeAddr(t)
	mailHTTP := freeAddr(t)
	panelAddr := freeAddr(t)
	webAddr := freeAddr(t)
	adminAddr := freeAddr(t)
	slackAddr := freeAddr(t)
	smsAddr := freeAddr(t)
	s.smsURL = "http://" + smsAddr
	s.slackURL = "http://" + slackAddr
	s.mailURL = "http://" + mailHTTP
	s.panelURL = "http://" + panelAddr
	s.webURL = "http://" + webAddr
	s.adminURL = "http://" + adminAddr
	s.webAddrs = []string{webAddr}
	var extra []string
	if o.replicas {
		s.webAddrs = append(s.webAddrs, freeAddr(t))
		s.front, s.webURL = startFront(t, s.webAddrs)
		// The balancer is on loopback; the cancel pages' per-address budgets
		// must see the customer's address it forwards, not its own.
		extra = append(extra, "VIGIL_TRUSTED_PROXIES=127.0.0.1/32")
	}
	webMetricsAddr, workerMetricsAddr := freeAddr(t), freeAddr(t)
	s.webMetrics, s.workerMetrics = "http://"+webMetricsAddr+"/metrics", "http://"+workerMetricsAddr+"/metrics"
	s.env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + s.dir,
		"VIGIL_DATABASE_URL=" + s.dsn,
		"VIGIL_TEMPORAL_ADDRESS=" + s.temporal,
		"VIGIL_CODEC_KEYS=e2e:" + randKey(t),
		"VIGIL_TOKEN_KEY=" + randKey(t),
		"VIGIL_ADMIN_TOKEN=" + s.adminToken,
		"VIGIL_PANEL_TOKEN=panel-" + strings.TrimRight(randKey(t), "=")[:16],
		"VIGIL_PANEL_READ_TOKEN=panel-read-" + strings.TrimRight(randKey(t), "=")[:16],
		"VIGIL_PANEL_URL=" + s.panelURL,
		"VIGIL_PANEL_STANDIN_ADDR=" + panelAddr,
		"VIGIL_SMTP_ADDR=" + s.smtpAddr,
		"VIGIL_MAILCATCHER_SMTP_ADDR=" + s.smtpAddr,
		"VIGIL_MAILCATCHER_HTTP_ADDR=" + mailHTTP,
		"VIGIL_SMS_URL=" + s.smsURL,
		"VIGIL_SMS_ACCOUNT_SID=AC" + strings.Repeat("e2e0", 8),
		"VIGIL_SMS_AUTH_TOKEN=sms-" + strings.TrimRight(randKey(t), "=")[:16],
		"VIGIL_SMS_FROM=+447911000001",
		"VIGIL_SMSGATEWAY_HTTP_ADDR=" + smsAddr,
		"VIGIL_HTTP_ADDR=" + webAddr,
		"VIGIL_ADMIN_ADDR=" + adminAddr,
		"VIGIL_WEB_METRICS_ADDR=" + webMetricsAddr,
		"VIGIL_WORKER_METRICS_ADDR=" + workerMetricsAddr,
		"VIGIL_PUBLIC_URL=" + s.webURL,
		"VIGIL_LOG_LEVEL=debug",
		"VIGIL_SLACK_BOT_TOKEN=xoxb-e2e-" + strings.TrimRight(randKey(t), "=")[:16],
		"VIGIL_SLACK_SIGNING_SECRET=" + strings.TrimRight(randKey(t), "=")[:32],
		"VIGIL_SLACK_API_URL=" + s.slackURL + "/api/",
		"VIGIL_SLACK_TEAM_ID=T0VIGIL",
		"VIGIL_SLACK_APP_ID=A0VIGIL",
		"VIGIL_SLACK_STANDIN_ADDR=" + slackAddr,
		"VIGIL_SLACK_INTERACTION_URL=" + s.webURL + "/slack/interactions",
		"VIGIL_APPROVAL_TIMEOUT=10m",
		"VIGIL_EXECUTE_MAX_ATTEMPTS=5",
		// The tests' cooling periods are seconds: below every floor.
		"VIGIL_DEV_BELOW_FLOORS=true",
	}, append(extra, o.extraEnv...)...)

	if o.oidc {
		oidcAddr := freeAddr(t)
		s.oidcIssuer = "http://" + oidcAddr
		users, err := filepath.Abs(filepath.Join("..", "deploy", "seed", "agents.json"))
		if err != nil {
			t.Fatal(err)
		}
		s.start("oidc", bins["oidc"], []string{"-addr", oidcAddr, "-users", users,
			"-password", oidctest.Password, "-totp-seed", oidctest.TOTPSeed, "-client-id", oidctest.ClientID,
			// Shorter than starter's 30 s renewal margin: every CLI call renews the
			// session quietly, so the tests exercise the refresh.
			"-token-ttl", "25s"}, "oidc ready")
		s.env = append(s.env, "VIGIL_OIDC_ISSUER="+s.oidcIssuer, "VIGIL_OIDC_CLIENT_ID="+oidctest.ClientID)
	}
	s.start("mail", bins["mail"], nil, "mailcatcher ready")
	s.start("sms", bins["sms"], nil, "smsgateway ready")
	s.start("panel", bins["panel"], nil, "panel-standin ready")
	s.start("slack", bins["slack"], nil, "slack-standin ready")
	s.start("worker", bins["worker"], nil, "worker ready")
	s.start("web", bins["web"], nil, "web ready")
	if o.replicas {
		s.startReplica("worker2")
		s.startReplica("web2")
	}
	s.bootstrapAdmin(t)
	return s
}

// startReplica starts worker2 or web2: the same environment as worker and
// web but listening on ports of its own.
func (s *stack) startReplica(name string) *proc {
	s.t.Helper()
	if name == "web2" {
		return s.startEnv(name, bins["web"], nil, "web ready", []string{"VIGIL_HTTP_ADDR=" + s.webAddrs[1],
			"VIGIL_ADMIN_ADDR=" + freeAddr(s.t), "VIGIL_WEB_METRICS_ADDR=" + freeAddr(s.t)})
	}
	return s.startEnv(name, bins["worker"], nil, "worker ready", []string{"VIGIL_WORKER_METRICS_ADDR=" + freeAddr(s.t)})
}

// stackAdmin is the named admin every stack's admin calls are made by.
const stackAdmin = "ag_e2e_admin"

// bootstrapAdmin makes the stack's named admin and keeps its personal
// token in s.adminToken: on a fresh database with the bootstrap token, as a
// new install does; on a database a stack made before (o.dsn), the admin
// is there already, and it gets a new token the way an admin's lost one is
// replaced, straight in the database.
func (s *stack) bootstrapAdmin(t testing.TB) {
	t.Helper()
	var issued agentToken
	code, body := s.call("POST", "/admin/v1/agents", s.adminToken, map[string]any{
		"id": stackAdmin, "name": "E2E Admin", "email": "e2e-admin@vigil.example", "team": "Operations", "role": "admin"}, &issued)
	if code == 201 {
		s.adminToken = issued.Token
		return
	}
	if code != 403 || !strings.Contains(string(body), "bootstrap_only") {
		t.Fatalf("bootstrap the stack's admin: %d %s", code, body)
	}
	tok, err := agentauth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE agents SET token_hash = $2 WHERE id = $1 AND role = 'admin' AND disabled_at IS NULL`, stackAdmin, agentauth.Hash(tok))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("the database has an admin but not the stack's own %s", stackAdmin)
	}
	s.adminToken = tok
}

// start runs a binary and waits for its ready line on stdout.
func (s *stack) start(name, bin string, args []string, readyLine string) *proc {
	s.t.Helper()
	return s.startEnv(name, bin, args, readyLine, nil)
}

// startEnv is start with env added to (and winning over) the stack's.
func (s *stack) startEnv(name, bin string, args []string, readyLine string, env []string) *proc {
	s.t.Helper()
	p := &proc{name: name, log: &lockedBuffer{}, ready: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(append([]string(nil), s.env...), env...)
	p.cmd.Stderr = p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		seen := false
		for sc.Scan() {
			fmt.Fprintf(p.log, "[stdout] %s\n", sc.Text())
			if !seen && strings.HasPrefix(sc.Text(), readyLine) {
				seen = true
				p.readyLine = sc.Text()
				close(p.ready)
			}
		}
		_ = p.cmd.Wait()
		close(p.done)
	}()
	select {
	case <-p.ready:
	case <-p.done:
		s.t.Fatalf("%s exited before it was ready:\n%s", name, tail(p.log.String(), 60))
	case <-time.After(90 * time.Second):
		s.t.Fatalf("%s not ready after 90s:\n%s", name, tail(p.log.String(), 60))
	}
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	return p
}

// readyField returns key's value in a ready line such as
// "devserver ready addr=127.0.0.1:7233 namespace=default".
func readyField(t testing.TB, line, key string) string {
	t.Helper()
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	t.Fatalf("ready line %q has no %s=", line, key)
	return ""
}

// kill ends a process with SIGKILL, as a crash would.
func (s *stack) kill(name string) {
	s.mu.Lock()
	p := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

func (s *stack) stopAll() {
	s.mu.Lock()
	procs := s.procs
	s.procs = map[string]*proc{}
	s.mu.Unlock()
	// Stop in reverse dependency order so nothing logs noise about its peers.
	for _, n := range []string{"web2", "web", "worker2", "worker", "slack", "panel", "sms", "mail", "devserver"} {
		p := procs[n]
		if p == nil {
			continue
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if s.t.Failed() {
			s.t.Logf("---- %s log (tail) ----\n%s", n, tail(p.log.String(), 80))
		}
	}
}

// logs returns everything the named process wrote so far.
func (s *stack) logs(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.procs[name]; p != nil {
		return p.log.String()
	}
	return ""
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// call sends a JSON request to the web front (an /admin/ path to its admin
// listener) and decodes the JSON answer.
func (s *stack) call(method, path, token string, body, out any) (int, []byte) {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := s.webURL
	if strings.HasPrefix(path, "/admin/") {
		// The admin API is served on its own listener only.
		base = s.adminURL
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, r)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %s (last: %s)", what, within, last)
}

// temporalDSN is a fresh, empty database for a Postgres-backed devserver,
// which keeps its visibility store in <name>_visibility; both are dropped
// when the test ends.
func temporalDSN(t testing.TB) string {
	t.Helper()
	dsn := testpg.NewDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	vis := strings.TrimPrefix(u.Path, "/") + "_visibility"
	admin := os.Getenv(testpg.EnvVar)
	if admin == "" {
		admin = testpg.DefaultAdminDSN
	}
	t.Cleanup(func() {
		db, err := sql.Open("postgres", admin)
		if err != nil {
			t.Errorf("drop %s: %v", vis, err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + vis + " WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", vis, err)
		}
	})
	return dsn
}
