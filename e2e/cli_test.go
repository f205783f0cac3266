package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// cliResult is what one run of the starter binary left behind.
type cliResult struct {
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return "exit " + strconv.Itoa(r.code) + "\nstdout: " + r.stdout + "\nstderr: " + r.stderr
}

// transcript keeps every byte the CLI printed, for the secrecy check.
type transcript struct {
	mu  sync.Mutex
	out []string
}

func (tr *transcript) add(s ...string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.out = append(tr.out, s...)
}

func (tr *transcript) all() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return strings.Join(tr.out, "\n")
}

// cliUser is one person at one workstation: their own HOME and config
// directory, and no VIGIL_* variables unless a run adds them.
type cliUser struct {
	home, config string
	log          *transcript
}

func newCLIUser(t *testing.T, log *transcript) *cliUser {
	t.Helper()
	home := t.TempDir()
	return &cliUser{home: home, config: filepath.Join(home, "config"), log: log}
}

func (u *cliUser) command(ctx context.Context, stdin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bins["starter"], args...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + u.home,
		"XDG_CONFIG_HOME=" + u.config,
	}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// run runs starter to the end and returns its exit code and output.
func (u *cliUser) run(t *testing.T, stdin string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := u.command(ctx, stdin, env, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	u.log.add(res.stdout, res.stderr)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
	default:
		t.Fatalf("starter %s: %v (%s)", strings.Join(args, " "), err, res)
	}
	return res
}

// expect runs starter and fails the test unless it exits with code.
func (u *cliUser) expect(t *testing.T, code int, stdin string, env []string, args ...string) cliResult {
	t.Helper()
	res := u.run(t, stdin, env, args...)
	if res.code != code {
		t.Fatalf("starter %s: want exit %d, got %s", strings.Join(args, " "), code, res)
	}
	return res
}

// bgCLI is a starter process running while the test does something else.
type bgCLI struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
	done           chan struct{}
	err            error
	log            *transcript
}

func (u *cliUser) start(t *testing.T, args ...string) *bgCLI {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	b := &bgCLI{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{}), log: u.log}
	b.cmd = u.command(ctx, "", nil, args...)
	b.cmd.Stdout, b.cmd.Stderr = b.stdout, b.stderr
	if err := b.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start starter %s: %v", strings.Join(args, " "), err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-b.done
	})
	return b
}

// wait waits for the process to end and returns its exit code.
func (b *bgCLI) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(within):
		t.Fatalf("starter %v still running after %s; stdout so far:\n%s\nstderr:\n%s", b.cmd.Args[1:], within, b.stdout, b.stderr)
	}
	b.log.add(b.stdout.String(), b.stderr.String())
	var ee *exec.ExitError
	switch {
	case b.err == nil:
		return 0
	case errors.As(b.err, &ee) && ee.Exited():
		return ee.ExitCode()
	}
	t.Fatalf("starter %v: %v", b.cmd.Args[1:], b.err)
	return -1
}

// cliRequest is the part of the API's Request object the test reads.
type cliRequest struct {
	ID          string `json:"id"`
	Action      string `json:"action"`
	CustomerID  string `json:"customer_id"`
	RequesterID string `json:"requester_id"`
	ServerID    string `json:"server_id"`
	Status      string `json:"status"`
	Final       bool   `json:"final"`
	Reference   string `json:"reference"`
	// PINVerifiedAt is when the web front verified the PIN.
	PINVerifiedAt string `json:"pin_verified_at"`
	Decision      *struct {
		Decision   string `json:"decision"`
		ApproverID string `json:"approver_id"`
	} `json:"decision"`
	Cancellation *struct {
		By      string `json:"by"`
		ActorID string `json:"actor_id"`
		Reason  string `json:"reason"`
	} `json:"cancellation"`
}

func decodeRequest(t *testing.T, what, raw string) cliRequest {
	t.Helper()
	var r cliRequest
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		t.Fatalf("%s: stdout is not one JSON request object: %v\n%s", what, err, raw)
	}
	if r.ID == "" || r.Status == "" {
		t.Fatalf("%s: JSON has no id or status: %s", what, raw)
	}
	return r
}

func decodeList(t *testing.T, what, raw string) []cliRequest {
	t.Helper()
	var l struct {
		Requests []cliRequest `json:"requests"`
	}
	if err := json.Unmarshal([]byte(raw), &l); err != nil {
		t.Fatalf("%s: stdout is not the API's list object: %v\n%s", what, err, raw)
	}
	return l.Requests
}

func ids(rs []cliRequest) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// mustContain fails unless s contains every one of wants.
func mustContain(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, s)
		}
	}
}

var openedLine = regexp.MustCompile(`Request (req_[A-Za-z0-9_-]+) opened: `)

// pinAlone finds the PIN as a number of its own: a nanosecond timestamp may
// hold the same six digits by chance, a leak ("pin":"739218", pin=739218)
// does not sit inside a longer run of digits.
var pinAlone = regexp.MustCompile(`(^|[^0-9])` + customerPIN + `([^0-9]|$)`)

// TestCLIEndToEnd runs the real starter binary, as an agent would, against
// the real web API, worker and devserver: login, open (JSON and human),
// a wrong PIN, status, list, watch through a Slack approval to execution,
// withdraw, and the refusals with their exit codes and advice. The PIN never
// shows in any output or log.
func TestCLIEndToEnd(t *testing.T) {
	began := time.Now()
	s := startStack(t, stackOptions{extraEnv: []string{
		"VIGIL_COOLING_RESEND_CREDENTIALS=3s",
		"VIGIL_COOLING_REINSTALL_VPS=30m",
	}})
	aliceToken, bobToken := seed(t, s)
	t.Logf("stack up and seeded in %s", time.Since(began).Round(time.Millisecond))
	log := &transcript{}
	url := s.webURL
	pinIn := customerPIN + "\n"

	// Login: the token comes on stdin, is checked, and saved 0600 in 0700.
	alice := newCLIUser(t, log)
	res := alice.expect(t, 0, aliceToken+"\n", nil, "login", "--url", url, "--token-stdin")
	mustContain(t, "login", res.stdout, "Logged in as Alice Moreau (agent) on "+url)
	if strings.Contains(res.stdout+res.stderr, aliceToken) {
		t.Error("login printed the token")
	}
	credPath := filepath.Join(alice.config, "vigil", "credentials.json")
	fi, err := os.Stat(credPath)
	if err != nil {
		t.Fatalf("login saved no credentials at %s: %v", credPath, err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("credentials file mode %o, want 600", m)
	}
	if di, err := os.Stat(filepath.Dir(credPath)); err != nil {
		t.Errorf("credentials directory: %v", err)
	} else if m := di.Mode().Perm(); m != 0o700 {
		t.Errorf("credentials directory mode %o, want 700", m)
	}
	var saved struct{ Server, Token string }
	if raw, err := os.ReadFile(credPath); err != nil || json.Unmarshal(raw, &saved) != nil {
		t.Fatalf("credentials file unreadable: %v", err)
	}
	if saved.Server != url || saved.Token != aliceToken {
		t.Errorf("credentials file holds server %q and another token; want %q and alice's", saved.Server, url)
	}

	// Open with --json: PIN on stdin, the API's object on stdout. From here
	// on the saved server is used, no --url.
	res = alice.expect(t, 0, pinIn, nil, "resend-credentials", "--customer", customerID, "--server", "srv-1",
		"--reason", "customer asked in chat", "--pin-stdin", "--json")
	r1 := decodeRequest(t, "resend-credentials --json", res.stdout)
	// The open answers right after the start: the PIN verified by the web
	// front, the workflow about to take it to the approval gate.
	if r1.Status != "pin_check" || r1.PINVerifiedAt == "" || r1.Action != "resend_credentials" || r1.ServerID != "srv-1" || r1.Final {
		t.Fatalf("opened request: %+v, want resend_credentials on srv-1, pin_check with the PIN verified", r1)
	}

	// Open, human output: it says the PIN passed and a senior must approve.
	res = alice.expect(t, 0, pinIn, nil, "reinstall-vps", "--customer", customerID, "--server", "srv-2",
		"--reason", "customer reports a compromised server", "--pin-stdin")
	m := openedLine.FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("reinstall-vps: no 'Request … opened' line:\n%s", res)
	}
	r2 := m[1]
	mustContain(t, "reinstall-vps output", res.stdout, "PIN verified", "waiting for a senior to approve in Slack", "starter watch "+r2)

	// A wrong PIN: refused (3), says so, and that nothing was done.
	res = alice.expect(t, 3, "000000\n", nil, "disable-2fa", "--customer", customerID,
		"--reason", "customer lost their phone", "--pin-stdin")
	mustContain(t, "wrong PIN output", res.stdout, "Wrong PIN", "nothing was done")
	m = openedLine.FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("wrong PIN: no request id in the output:\n%s", res)
	}
	r3 := m[1]

	// status, human and JSON, once the workflow took the verified request to
	// the approval gate.
	eventually(t, 30*time.Second, r1.ID+" awaiting approval", func() (bool, string) {
		res := alice.expect(t, 0, "", nil, "status", r1.ID, "--json")
		st := decodeRequest(t, "status --json", res.stdout)
		return st.Status == "awaiting_approval", st.Status
	})
	res = alice.expect(t, 0, "", nil, "status", r1.ID)
	mustContain(t, "status (human)", res.stdout, "Request", r1.ID, "awaiting_approval", "waiting for a senior to approve in Slack",
		"none yet; deadline", "PIN", "verified", "Requester", "ag_alice")
	res = alice.expect(t, 0, "", nil, "status", r1.ID, "--json")
	st := decodeRequest(t, "status --json", res.stdout)
	if st.ID != r1.ID || st.Status != "awaiting_approval" || st.RequesterID != "ag_alice" || st.CustomerID != customerID {
		t.Fatalf("status --json: %+v", st)
	}
	res = alice.expect(t, 0, "", nil, "status", r3, "--json")
	if got := decodeRequest(t, "status of the wrong-PIN request", res.stdout); got.Status != "pin_rejected" || !got.Final {
		t.Fatalf("wrong-PIN request: status %s final %v, want pin_rejected, final", got.Status, got.Final)
	}

	// list: the open ones of mine; everything of the customer.
	eventually(t, 30*time.Second, "list --mine --open shows both open requests and not the rejected one", func() (bool, string) {
		res := alice.expect(t, 0, "", nil, "list", "--mine", "--open", "--json")
		got := ids(decodeList(t, "list --mine --open --json", res.stdout))
		return slices.Contains(got, r1.ID) && slices.Contains(got, r2) && !slices.Contains(got, r3), strings.Join(got, ",")
	})
	res = alice.expect(t, 0, "", nil, "list", "--customer", customerID)
	mustContain(t, "list --customer (table)", res.stdout, "ID", "ACTION", "CUSTOMER", "STATUS", "OPENED", r1.ID, r2, r3, "reinstall_vps")
	eventually(t, 30*time.Second, "list --customer --json shows the 3 requests, the wrong-PIN one as pin_rejected", func() (bool, string) {
		res := alice.expect(t, 0, "", nil, "list", "--customer", customerID, "--json")
		got := decodeList(t, "list --customer --json", res.stdout)
		rejected := slices.ContainsFunc(got, func(r cliRequest) bool { return r.ID == r3 && r.Status == "pin_rejected" })
		return len(got) == 3 && rejected, res.stdout
	})

	// watch while a senior approves in Slack: each change on its own line,
	// exit 0 once executed.
	watchStart := time.Now()
	w := alice.start(t, "watch", r1.ID, "--interval", "500ms")
	eventually(t, 15*time.Second, "watch prints the first status", func() (bool, string) {
		return strings.Contains(w.stdout.String(), "awaiting_approval"), w.stdout.String() + w.stderr.String()
	})
	s.click(t, r1.ID, "approve", "U0BOB")
	if code := w.wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("watch of the approved request exited %d, want 0\nstdout:\n%s\nstderr:\n%s", code, w.stdout, w.stderr)
	}
	t.Logf("watch: approval to executed in %s", time.Since(watchStart).Round(time.Millisecond))
	var seen []string
	for _, line := range strings.Split(strings.TrimSpace(w.stdout.String()), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Fatalf("watch line %q is not 'TIME  STATUS  DESCRIPTION'", line)
		}
		if _, err := time.Parse(time.RFC3339, f[0]); err != nil {
			t.Errorf("watch line %q does not start with a timestamp: %v", line, err)
		}
		seen = append(seen, f[1])
	}
	if len(seen) < 3 || seen[0] != "awaiting_approval" || seen[len(seen)-1] != "executed" || !slices.Contains(seen, "cooling") {
		t.Fatalf("watch printed statuses %v; want awaiting_approval … cooling … executed\n%s", seen, w.stdout)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] == seen[i-1] {
			t.Errorf("watch printed %s twice in a row: one line per change only\n%s", seen[i], w.stdout)
		}
	}
	mustContain(t, "watch's last line", w.stdout.String(), "approved by ag_bob", "reference")
	res = alice.expect(t, 0, "", nil, "status", r1.ID, "--json")
	done := decodeRequest(t, "status of the executed request", res.stdout)
	if done.Status != "executed" || done.Reference == "" || done.Decision == nil || done.Decision.ApproverID != "ag_bob" {
		t.Fatalf("executed request: %s", res.stdout)
	}
	// list --json and status --json tell the same about the executed
	// request, field by field (issue 14); only the listing has the reason.
	listEntry := func() map[string]any {
		res := alice.expect(t, 0, "", nil, "list", "--customer", customerID, "--json")
		var l struct {
			Requests []map[string]any `json:"requests"`
		}
		if err := json.Unmarshal([]byte(res.stdout), &l); err != nil {
			t.Fatalf("list --json: %v\n%s", err, res.stdout)
		}
		for _, r := range l.Requests {
			if r["id"] == r1.ID {
				return r
			}
		}
		t.Fatalf("list --json lacks %s:\n%s", r1.ID, res.stdout)
		return nil
	}()
	var statusAnswer map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &statusAnswer); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	if listEntry["reason"] != "customer asked in chat" {
		t.Errorf("list --json: reason %v", listEntry["reason"])
	}
	delete(listEntry, "reason")
	for k := range statusAnswer {
		if _, ok := listEntry[k]; !ok {
			listEntry[k] = nil
		}
	}
	for k, v := range listEntry {
		if got, _ := json.Marshal(v); string(got) != mustJSON(t, statusAnswer[k]) {
			t.Errorf("%s of the executed request: list --json %s, status --json %s", k, got, mustJSON(t, statusAnswer[k]))
		}
	}
	if n, _ := listEntry["recipients"].(float64); n == 0 {
		t.Errorf("list --json: the executed request's notice went to no address: %v", listEntry["recipients"])
	}

	// Refusals: each with its exit code and advice, and nothing created.
	countAll := func() int {
		res := alice.expect(t, 0, "", nil, "list", "--json", "--limit", "100")
		return len(decodeList(t, "list --json", res.stdout))
	}
	before := countAll()
	if before != 3 {
		t.Fatalf("list --json shows %d requests, want the 3 opened so far", before)
	}

	// Bob, a senior, cannot withdraw Alice's request (he could veto it).
	bob := newCLIUser(t, log)
	res = bob.expect(t, 0, bobToken+"\n", nil, "--url", url, "login", "--token-stdin")
	mustContain(t, "bob's login", res.stdout, "Bob Lindqvist (senior)")
	res = bob.expect(t, 3, "", nil, "withdraw", r2, "--reason", "not my request but let me try")
	mustContain(t, "bob withdraws alice's request", res.stderr, "Vigil refused", "[not_requester]", "a senior can veto it")
	res = alice.expect(t, 0, "", nil, "status", r2, "--json")
	if got := decodeRequest(t, "status after bob's refused withdraw", res.stdout); got.Status != "awaiting_approval" {
		t.Fatalf("after bob's refused withdraw the reinstall is %s", got.Status)
	}

	// Unknown customer: refused by Vigil; as text, then as problem JSON.
	res = alice.expect(t, 3, pinIn, nil, "resend-credentials", "--customer", "C-0000", "--server", "srv-1",
		"--reason", "customer asked in chat", "--pin-stdin")
	mustContain(t, "unknown customer", res.stderr, "Vigil refused", "C-0000", "[unknown_customer]", "What to do: check the customer id")
	res = alice.expect(t, 3, pinIn, nil, "resend-credentials", "--customer", "C-0000", "--server", "srv-1",
		"--reason", "customer asked in chat", "--pin-stdin", "--json")
	var problem struct {
		Type, Title, Detail, Code string
		Status                    int
	}
	if err := json.Unmarshal([]byte(res.stderr), &problem); err != nil || problem.Code != "unknown_customer" || problem.Status/100 != 4 {
		t.Errorf("unknown customer with --json: stderr is not the server's problem document (%v): %s", err, res.stderr)
	}
	if res.stdout != "" {
		t.Errorf("unknown customer with --json printed on stdout: %s", res.stdout)
	}

	// An invalid email is caught before anything is sent, PIN unread.
	res = alice.expect(t, 2, pinIn, nil, "add-contact-email", "--customer", customerID, "--email", "ops at example",
		"--reason", "new on-call address", "--pin-stdin")
	mustContain(t, "invalid email", res.stderr, "--email: must be a bare address")

	// Not logged in: a fresh workstation.
	nobody := newCLIUser(t, log)
	res = nobody.run(t, pinIn, nil, "--url", url, "resend-credentials", "--customer", customerID, "--server", "srv-1",
		"--reason", "customer asked in chat", "--pin-stdin")
	if res.code != 2 && res.code != 3 {
		t.Fatalf("open without login: want exit 2 or 3, got %s", res)
	}
	mustContain(t, "open without login", res.stderr, "starter login")
	res = nobody.run(t, "", nil, "--url", url, "list")
	if res.code != 2 && res.code != 3 {
		t.Fatalf("list without login: want exit 2 or 3, got %s", res)
	}
	mustContain(t, "list without login", res.stderr, "starter login")

	// A disabled agent's saved token stops working at once.
	admin := []string{"VIGIL_ADMIN_TOKEN=" + s.adminToken, "VIGIL_ADMIN_URL=" + s.adminURL}
	res = alice.expect(t, 0, "", admin, "admin", "create-agent", "--id", "ag_dave", "--name", "Dave Ortiz",
		"--email", "dave@vigil.example", "--team", "Support", "--role", "agent", "--slack-user", "U0DAVE", "--json")
	var issued struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &issued); err != nil || !strings.HasPrefix(issued.Token, "vgl_") {
		t.Fatalf("admin create-agent --json: no token (%v): %s", err, res.stdout)
	}
	dave := newCLIUser(t, log)
	dave.expect(t, 0, issued.Token+"\n", nil, "login", "--url", url, "--token-stdin")
	dave.expect(t, 0, "", nil, "list", "--mine")
	res = alice.expect(t, 0, "", admin, "admin", "disable-agent", "ag_dave")
	mustContain(t, "disable-agent", res.stdout, "Disabled ag_dave")
	res = dave.expect(t, 3, pinIn, nil, "resend-credentials", "--customer", customerID, "--server", "srv-1",
		"--reason", "customer asked in chat", "--pin-stdin")
	mustContain(t, "disabled agent opens", res.stderr, "Vigil refused", "[unauthenticated]", "starter login")
	res = dave.expect(t, 3, "", nil, "list")
	mustContain(t, "disabled agent lists", res.stderr, "[unauthenticated]")

	if after := countAll(); after != before {
		t.Fatalf("the refusals created requests: list shows %d, was %d", after, before)
	}

	// Alice withdraws the reinstall before any approval; watch then ends 4.
	res = alice.expect(t, 0, "", nil, "withdraw", r2, "--reason", "customer changed their mind")
	mustContain(t, "withdraw", res.stdout, "Request "+r2, "withdrawn", "nothing was done")
	res = alice.expect(t, 0, "", nil, "status", r2, "--json")
	wd := decodeRequest(t, "status of the withdrawn request", res.stdout)
	if wd.Status != "withdrawn" || !wd.Final || wd.Cancellation == nil || wd.Cancellation.ActorID != "ag_alice" ||
		wd.Cancellation.Reason != "customer changed their mind" {
		t.Fatalf("withdrawn request: %s", res.stdout)
	}
	res = alice.expect(t, 4, "", nil, "watch", r2, "--interval", "500ms")
	mustContain(t, "watch of the withdrawn request", res.stdout, "withdrawn", "nothing was done")
	alice.expect(t, 4, "", nil, "status", r2, "--wait", "--interval", "500ms")

	// Exactly one action reached the panel: the executed request's.
	calls := s.panelCalls(t)
	if len(calls) != 1 || calls[0].IdempotencyKey != "vigil-"+r1.ID {
		t.Fatalf("panel calls %+v, want exactly one, keyed vigil-%s", calls, r1.ID)
	}

	// The PIN is in no CLI output and no process's log.
	if pinAlone.MatchString(log.all()) {
		t.Error("the CLI printed the PIN")
	}
	for _, n := range []string{"web", "worker", "devserver", "panel", "mail", "slack"} {
		if pinAlone.MatchString(s.logs(n)) {
			t.Errorf("%s log contains the PIN", n)
		}
	}
	if s.logs("web") == "" || s.logs("worker") == "" {
		t.Error("web or worker log is empty; the PIN check proves nothing")
	}
	t.Logf("whole test %s", time.Since(began).Round(time.Millisecond))
}

// mustJSON is v encoded, for comparing decoded JSON values.
func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
