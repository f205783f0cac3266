//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/vigil-oss/vigil/internal/pinhash"
)

// ptyOutput collects everything the process writes to its terminal.
type ptyOutput struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

// ptySession is a process running on a pseudo-terminal whose slave side the
// test keeps open too. Why: when the last slave descriptor closes, Linux may
// answer the master's read with EIO before the process's final writes have
// been handed over, so a test that waited for EIO would now and then miss the
// last line the process printed. With the test's own descriptor open the
// output only ever grows; end closes it once the expected text has arrived.
type ptySession struct {
	cmd   *exec.Cmd
	ptmx  *os.File
	slave *os.File
	out   *ptyOutput
}

// startOnPTY starts cmd with a new terminal as its controlling terminal and
// standard streams.
func startOnPTY(t *testing.T, cmd *exec.Cmd) *ptySession {
	t.Helper()
	ptmx, slave, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pty: %v", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		ptmx.Close()
		slave.Close()
		t.Fatalf("start on a pty: %v", err)
	}
	s := &ptySession{cmd: cmd, ptmx: ptmx, slave: slave, out: readPTY(ptmx)}
	t.Cleanup(func() {
		slave.Close()
		ptmx.Close()
	})
	return s
}

// end waits for the process to exit and for its terminal to show last (the
// final text the test expects; "" when it expects none), then closes the
// terminal and returns the exit code and everything shown.
func (s *ptySession) end(t *testing.T, last string) (int, string) {
	t.Helper()
	code := exitCode(t, s.cmd.Wait())
	if last != "" {
		s.out.waitFor(t, last)
	}
	s.slave.Close()
	select {
	case <-s.out.done:
	case <-time.After(10 * time.Second):
		t.Fatal("terminal output did not end")
	}
	return code, s.out.String()
}

func readPTY(f *os.File) *ptyOutput {
	o := &ptyOutput{done: make(chan struct{})}
	go func() {
		defer close(o.done)
		b := make([]byte, 1024)
		for {
			n, err := f.Read(b)
			o.mu.Lock()
			o.buf.Write(b[:n])
			o.mu.Unlock()
			if err != nil { // EIO once every slave descriptor is closed
				return
			}
		}
	}()
	return o
}

func (o *ptyOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output contains s.
func (o *ptyOutput) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(o.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %q; terminal shows %q", s, o.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procFiles reads a process's command line and environment.
func procFiles(t *testing.T, pid int) (cmdline, environ []byte) {
	t.Helper()
	var err error
	if cmdline, err = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err != nil {
		t.Fatal(err)
	}
	if environ, err = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ"); err != nil {
		t.Fatal(err)
	}
	if len(cmdline) == 0 || len(environ) == 0 {
		t.Fatalf("empty /proc files for pid %d: the process is gone?", pid)
	}
	return cmdline, environ
}

func TestPINPromptOnTerminal(t *testing.T) {
	const pin = "48151623"
	received := make(chan []byte, 1)
	release := make(chan struct{})
	f := newFake(t, map[string]http.HandlerFunc{
		"POST /api/v1/requests": func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			received <- body
			<-release // hold the process while the test inspects it
			w.Header().Set("Location", "/api/v1/requests/req_7kq2m4xa")
			reply(201, requestDoc(t, "awaiting_approval", map[string]any{"approval_deadline": "2026-03-01T14:05:00Z"}))(w, r)
		},
	})
	cmd := exec.Command(bin, "resend-credentials", "--customer", "C-1042", "--server", "srv-1", "--reason", "lost root password, ticket 8812")
	cmd.Env = agentEnv(t, f)
	sess := startOnPTY(t, cmd)
	ptmx, out := sess.ptmx, sess.out
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })

	out.waitFor(t, "Customer's support PIN: ")
	cmdline, environ := procFiles(t, cmd.Process.Pid)
	if !bytes.Contains(cmdline, []byte("resend-credentials")) || !bytes.Contains(environ, []byte("VIGIL_TOKEN=")) {
		t.Fatalf("/proc files do not look like starter's: %q / %q", cmdline, environ)
	}
	if _, err := io.WriteString(ptmx, pin+"\r"); err != nil {
		t.Fatal(err)
	}

	var body []byte
	select {
	case body = <-received:
	case <-time.After(20 * time.Second):
		t.Fatalf("the API received nothing; terminal shows %q", out.String())
	}
	// The PIN is now in the process's memory; it must be in neither its
	// arguments nor its environment.
	cmdline, environ = procFiles(t, cmd.Process.Pid)
	if bytes.Contains(cmdline, []byte(pin)) || bytes.Contains(environ, []byte(pin)) {
		t.Errorf("the PIN shows in /proc: cmdline %q environ %q", cmdline, environ)
	}
	releaseOnce.Do(func() { close(release) })

	const outcome = "Request req_7kq2m4xa opened: PIN verified; waiting for a senior to approve in Slack (expires "
	code, shown := sess.end(t, outcome)
	if code != 0 {
		t.Fatalf("exit %d; terminal shows %q", code, shown)
	}
	if strings.Contains(shown, pin) {
		t.Errorf("the PIN was echoed: %q", shown)
	}
	if !strings.Contains(shown, outcome) {
		t.Errorf("terminal lacks the outcome: %q", shown)
	}

	var sent map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&sent); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	want := map[string]any{"action": "resend_credentials", "customer_id": "C-1042", "server_id": "srv-1", "reason": "lost root password, ticket 8812", "pin": pin}
	if len(sent) != len(want) {
		t.Errorf("body fields %v, want exactly %v", sent, want)
	}
	for k, v := range want {
		if sent[k] != v {
			t.Errorf("body %s = %v, want %v", k, sent[k], v)
		}
	}
	if a := f.only("POST", "/api/v1/requests")[0].Auth; a != "Bearer "+agentToken {
		t.Errorf("Authorization = %q", a)
	}
}

func TestCtrlCAtPINPromptRestoresEcho(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{})
	cmd := exec.Command(bin, "disable-2fa", "--customer", "C-1042", "--reason", "lost phone")
	cmd.Env = agentEnv(t, f)
	sess := startOnPTY(t, cmd)
	ptmx := sess.ptmx
	sess.out.waitFor(t, "Customer's support PIN: ")
	if _, err := ptmx.Write([]byte{3}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	if code := exitCode(t, cmd.Wait()); code != 130 {
		t.Fatalf("exit %d, want 130; terminal shows %q", code, sess.out.String())
	}
	tio, err := unix.IoctlGetTermios(int(ptmx.Fd()), ioctlReadTermios)
	if err != nil {
		t.Fatal(err)
	}
	if tio.Lflag&unix.ECHO == 0 {
		t.Error("echo is still off after Ctrl-C")
	}
	if n := len(f.recorded()); n != 0 {
		t.Errorf("%d calls reached the API", n)
	}
}

func TestPINWithoutTerminal(t *testing.T) {
	var mu sync.Mutex
	var pins []string
	f := newFake(t, map[string]http.HandlerFunc{
		"POST /api/v1/requests": func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				PIN string `json:"pin"`
			}
			json.NewDecoder(r.Body).Decode(&body)
			mu.Lock()
			pins = append(pins, body.PIN)
			mu.Unlock()
			reply(201, requestDoc(t, "awaiting_approval", nil))(w, r)
		},
	})
	env := agentEnv(t, f)
	args := []string{"disable-2fa", "--customer", "C-1042", "--reason", "lost phone"}

	r := run(t, env, "2468\n", args...)
	wantExit(t, r, 2, "no terminal to ask the PIN on; pass --pin-stdin to read it from standard input")
	if n := len(f.recorded()); n != 0 {
		t.Fatalf("%d calls reached the API without a PIN", n)
	}

	r = run(t, env, "2468\r\nnot read\n", append(args, "--pin-stdin")...)
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "Request req_7kq2m4xa opened: PIN verified") {
		t.Errorf("stdout: %s", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(pins) != 1 || pins[0] != "2468" {
		t.Errorf("API received PINs %q, want [2468]", pins)
	}

	r = run(t, env, "\n", append(args, "--pin-stdin")...)
	wantExit(t, r, 2, "no PIN entered")
}

func TestPINNeverAFlagOrArgument(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"POST /api/v1/requests": reply(201, `{}`)})
	env := agentEnv(t, f)
	base := []string{"disable-2fa", "--customer", "C-1042", "--reason", "lost phone"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"--pin value", append(base, "--pin", "97531"), "the PIN is never given as a flag; you will be asked for it"},
		{"--pin=value", append(base, "--pin=97531"), "the PIN is never given as a flag; you will be asked for it"},
		{"-pin value", append(base, "-pin", "97531"), "the PIN is never given as a flag; you will be asked for it"},
		{"--PIN=value", append(base, "--PIN=97531"), "the PIN is never given as a flag; you will be asked for it"},
		{"before the command", append([]string{"--pin", "97531"}, base...), "the PIN is never given as a flag; you will be asked for it"},
		{"first flag", []string{"reinstall-vps", "--pin", "97531", "--customer", "C-1"}, "the PIN is never given as a flag; you will be asked for it"},
		{"positional", append(base, "97531"), "the PIN is never given on the command line, you will be asked for it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, env, "97531\n", tt.args...)
			wantExit(t, r, 2, tt.want)
			if strings.Contains(r.stderr+r.stdout, "97531") {
				t.Errorf("the PIN was echoed back: %s", r)
			}
		})
	}
	if n := len(f.recorded()); n != 0 {
		t.Errorf("%d calls reached the API", n)
	}
}

func TestVIGILPINIsIgnored(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"POST /api/v1/requests": reply(201, `{}`)})
	env := append(agentEnv(t, f), "VIGIL_PIN=1357")
	r := run(t, env, "", "disable-2fa", "--customer", "C-1042", "--reason", "lost phone")
	wantExit(t, r, 2, "no terminal to ask the PIN on")
	if n := len(f.recorded()); n != 0 {
		t.Errorf("%d calls reached the API: the environment PIN was used", n)
	}
}

func TestHashPIN(t *testing.T) {
	env := baseEnv(t, t.TempDir())
	r := run(t, env, "864213\n", "admin", "hash-pin", "--pin-stdin")
	wantExit(t, r, 0)
	hash := strings.TrimSpace(r.stdout)
	if ok, err := pinhash.Verify(hash, "864213"); err != nil || !ok {
		t.Fatalf("output %q does not verify: %v, %v", hash, ok, err)
	}
	p, err := pinhash.ParamsOf(hash)
	if err != nil || p != pinhash.DefaultParams() {
		t.Errorf("params %+v, %v; want DefaultParams", p, err)
	}
	if ok, _ := pinhash.Verify(hash, "864214"); ok {
		t.Error("another PIN verifies")
	}

	// A PIN the API would refuse to check is not hashed either.
	for _, short := range []string{"8642", "86421", "8642-13"} {
		r = run(t, env, short+"\n", "admin", "hash-pin", "--pin-stdin")
		wantExit(t, r, 2, "a support PIN has 6 to 32 letters or digits")
		if strings.Contains(r.stdout, "$argon2id") {
			t.Errorf("%q was hashed: %s", short, r.stdout)
		}
	}

	r = run(t, env, "864213\n", "admin", "hash-pin")
	wantExit(t, r, 2, "no terminal to ask the PIN on")
}

func TestHashPINOnTerminal(t *testing.T) {
	tests := []struct {
		name, first, second string
		wantCode            int
		last                string // the final text on the terminal
	}{
		{"same twice", "555555", "555555", 0, "$argon2id$v=19$m=19456,t=2,p=1$"},
		{"differ", "555555", "555556", 2, "the two PINs differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, "admin", "hash-pin")
			cmd.Env = baseEnv(t, t.TempDir())
			sess := startOnPTY(t, cmd)
			sess.out.waitFor(t, "PIN to hash: ")
			io.WriteString(sess.ptmx, tt.first+"\r")
			sess.out.waitFor(t, "Same PIN again: ")
			io.WriteString(sess.ptmx, tt.second+"\r")
			code, shown := sess.end(t, tt.last)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; terminal %q", code, tt.wantCode, shown)
			}
			if strings.Contains(shown, tt.first) || strings.Contains(shown, tt.second) {
				t.Errorf("PIN echoed: %q", shown)
			}
			if tt.wantCode == 0 && !strings.Contains(shown, "$argon2id$v=19$m=19456,t=2,p=1$") {
				t.Errorf("no hash printed: %q", shown)
			}
			if tt.wantCode == 2 && !strings.Contains(shown, "the two PINs differ") {
				t.Errorf("no mismatch message: %q", shown)
			}
		})
	}
}

func TestLoginWithoutTerminal(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/me": meRoute(agentToken)})
	cmd := exec.Command(bin, "login", "--url", f.URL)
	cmd.Env = baseEnv(t, t.TempDir())
	cmd.Stdin = strings.NewReader(agentToken + "\n")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // no controlling terminal
	out, err := cmd.CombinedOutput()
	if code := exitCode(t, err); code != 2 || !strings.Contains(string(out), "pass --token-stdin") {
		t.Fatalf("exit %d, output %q; want 2 and advice to use --token-stdin", code, out)
	}
	// Only the public sign-in discovery (no token) may have been asked.
	for _, c := range f.recorded() {
		if c.Path != "/api/v1/sign-in" || c.Auth != "" {
			t.Errorf("%s %s (auth %t) reached the API", c.Method, c.Path, c.Auth != "")
		}
	}
}
