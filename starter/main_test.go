package main

// These tests build the real starter binary and run it as a process. The
// HTTP server they run it against (fakeVigil) is a test double of the Vigil
// API that speaks the v1 contract, for the CLI's own tests only; the e2e
// tests run starter against the real web server.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// bin is the starter binary built by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "starter-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "starter")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build starter: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	agentToken = "vgl_abcdefghijklmnopqrstuvwxyz234567"
	adminToken = "admin-test-token-0123456789"
)

// call is one request the fake received.
type call struct {
	Method, Path, Query, Auth string
	Body                      []byte
}

// fakeVigil routes "METHOD /path" to handlers and records every call.
type fakeVigil struct {
	*httptest.Server
	mu     sync.Mutex
	calls  []call
	routes map[string]http.HandlerFunc
}

func newFake(t *testing.T, routes map[string]http.HandlerFunc) *fakeVigil {
	t.Helper()
	f := &fakeVigil{routes: routes}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.calls = append(f.calls, call{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization"), body})
		h, ok := f.routes[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if !ok {
			problem(w, 404, "request_not_found", "no such route in the test double")
			return
		}
		h(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeVigil) recorded() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// only returns the calls to one route.
func (f *fakeVigil) only(method, path string) []call {
	var out []call
	for _, c := range f.recorded() {
		if c.Method == method && c.Path == path {
			out = append(out, c)
		}
	}
	return out
}

func reply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func problem(w http.ResponseWriter, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"type": "https://vigil.dev/problems/" + code, "title": code, "status": status, "detail": detail, "code": code})
	w.Write(b)
}

func replyProblem(status int, code, detail string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		problem(w, status, code, detail)
	}
}

// requestDoc is a Request object as the API sends it.
func requestDoc(t *testing.T, status string, extra map[string]any) string {
	t.Helper()
	doc := map[string]any{
		"id": "req_7kq2m4xa", "action": "resend_credentials", "customer_id": "C-1042", "requester_id": "ag_bob",
		"server_id": "srv-1", "status": status, "opened_at": "2026-03-01T10:00:00Z", "final": false,
	}
	switch status {
	case "executed", "pin_rejected", "locked", "rejected", "expired", "cancelled", "withdrawn", "failed":
		doc["final"] = true
	}
	for k, v := range extra {
		doc[k] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// result is how a starter run ended.
type result struct {
	code           int
	stdout, stderr string
}

// env is a minimal environment for a run: a private config dir and HOME,
// plus the given variables.
func baseEnv(t *testing.T, configHome string, vars ...string) []string {
	t.Helper()
	return append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + configHome,
		"XDG_CONFIG_HOME=" + configHome,
	}, vars...)
}

// run starts the binary with stdin (a pipe, never a terminal) and waits.
func run(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("run starter %v: %v", args, err)
	}
	return res
}

// agentEnv is an environment pointing at f with an agent token.
func agentEnv(t *testing.T, f *fakeVigil) []string {
	return baseEnv(t, t.TempDir(), "VIGIL_URL="+f.URL, "VIGIL_TOKEN="+agentToken)
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

func wantExit(t *testing.T, r result, code int, stderrHas ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %s", code, r)
	}
	for _, s := range stderrHas {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r)
		}
	}
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("wait: %v", err)
	return -1
}
