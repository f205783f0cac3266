package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/vigil-oss/vigil/internal/api"
	"github.com/vigil-oss/vigil/internal/cancelpage"
	"github.com/vigil-oss/vigil/internal/config"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/syncbuf"
	"github.com/vigil-oss/vigil/internal/temporaltest"
	"github.com/vigil-oss/vigil/internal/testpg"
	"github.com/vigil-oss/vigil/internal/tokens"
)

func TestLogPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/c/abc.def", "/c/…"},
		{"/c/", "/c/…"},
		{"/c", "/c/…"},
		{"//c/abc", "/c/…"},
		{"/x/../c/abc", "/c/…"},
		{"/api/v1/requests/req_1", "/api/v1/requests/req_1"},
		{"/cats", "/cats"},
		{"/healthz", "/healthz"},
	}
	for _, tt := range tests {
		if got := logPath(tt.in); got != tt.want {
			t.Errorf("logPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// site is the whole handler tree over loopback HTTP, on a real database,
// with a real Temporal client aimed at a closed port.
type site struct {
	url    string
	logs   *syncbuf.Buffer
	st     *store.Store
	signer *tokens.Signer
	close  func()
}

func newSite(t *testing.T, ready func(context.Context) error) *site {
	t.Helper()
	st := store.New(testpg.New(t))
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tc, err := client.NewLazyClient(client.Options{HostPort: temporaltest.ClosedAddr(t), Logger: tlog.NewStructuredLogger(logger)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	key := []byte("token-key-for-web-tests-0123456789")
	signer, err := tokens.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := requests.New(tc, st, requests.Timings{Cooling: domain.DefaultCoolingPeriods()}, requests.RiskChecks{Off: true}, logger)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	pages := cancelpage.New(svc, st, signer, cancelpage.Options{PublicURL: base, CSRFKey: csrfKey(key)}, logger)
	if ready == nil {
		ready = func(ctx context.Context) error {
			_, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}
	}
	// Slack interactions have their own tests (internal/slackapp, e2e); here
	// the route only has to exist.
	slackRoute := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := newServer(routes(api.New(svc, st, "", logger, api.Options{}).Handler(), pages.Handler(), slackRoute, nil, ready, logger, nil), logger)
	go func() { _ = srv.Serve(ln) }()
	s := &site{url: base, logs: logs, st: st, signer: signer, close: func() { _ = srv.Close() }}
	t.Cleanup(s.close)
	return s
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestRoutes(t *testing.T) {
	s := newSite(t, nil)
	tests := []struct {
		path     string
		want     int
		contains string
	}{
		{"/healthz", 200, "ok"},
		{"/readyz", 503, "not ready"}, // Temporal is unreachable
		{"/api/v1/me", 401, "unauthenticated"},
		{"/admin/v1/agents", 404, "VIGIL_ADMIN_ADDR"}, // the admin API has its own listener
		{"/c/not-a-token", 400, "This link is not valid"},
		{"/nothing", 404, "not found"},
	}
	for _, tt := range tests {
		code, body := get(t, s.url+tt.path)
		if code != tt.want || !strings.Contains(body, tt.contains) {
			t.Errorf("GET %s = %d %q, want %d with %q", tt.path, code, body, tt.want, tt.contains)
		}
	}
}

func TestReadyWhenChecksPass(t *testing.T) {
	var st *store.Store
	s := newSite(t, func(ctx context.Context) error { return st.Ping(ctx) })
	st = s.st
	if code, body := get(t, s.url+"/readyz"); code != 200 || strings.TrimSpace(body) != "ready" {
		t.Fatalf("readyz = %d %q", code, body)
	}
}

func TestCancelTokensNeverLogged(t *testing.T) {
	s := newSite(t, nil)
	ctx := context.Background()
	hash, _ := pinhash.Hash("1234", pinhash.TestParams())
	if err := s.st.UpsertCustomer(ctx, store.CustomerImport{ID: "C-1", PrimaryEmail: "a@b.test", PINHash: hash}); err != nil {
		t.Fatal(err)
	}
	if err := s.st.CreateAgent(ctx, store.Agent{ID: "ag_1", Name: "A", Role: domain.RoleAgent}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.st.CreateRequest(ctx, store.Request{ID: "req_1", WorkflowID: "wf-1", Action: domain.ActionDisable2FA,
		CustomerID: "C-1", RequesterID: "ag_1", Reason: "r", Status: domain.StatusCooling}); err != nil {
		t.Fatal(err)
	}
	id, _ := tokens.NewID()
	exp := time.Now().Add(time.Hour)
	if err := s.st.CreateCancelToken(ctx, store.CancelToken{ID: id, RequestID: "req_1", Recipient: "a@b.test", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	tok, err := s.signer.Sign(tokens.Claims{ID: id, RequestID: "req_1", Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/c/" + tok, "/x/../c/" + tok, "//c/" + tok, "/c/" + tok + "/extra"} {
		req, _ := http.NewRequest("GET", s.url+"/", nil)
		req.URL.Path = p // sent as is; the server cleans and redirects
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	if code, _ := get(t, s.url+"/c/"+tok); code != 200 {
		t.Fatalf("confirmation page: %d", code)
	}
	s.close()
	logs := s.logs.String()
	if !strings.Contains(logs, "path=/c/…") {
		t.Fatalf("expected sanitised /c/ lines:\n%s", logs)
	}
	payload, _, _ := strings.Cut(tok, ".")
	if strings.Contains(logs, payload) || strings.Contains(logs, id) {
		t.Fatalf("a cancel token reached the log:\n%s", logs)
	}
}

func TestServeGracefully(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, newServer(mux, logger), ln, pw, logger) }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || line != "web ready addr="+ln.Addr().String()+"\n" {
		t.Fatalf("ready line %q, %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()

	type result struct {
		body string
		err  error
	}
	inflight := make(chan result, 1)
	go func() {
		res, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			inflight <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		inflight <- result{string(b), err}
	}()
	time.Sleep(200 * time.Millisecond) // let the request arrive
	cancel()
	time.Sleep(200 * time.Millisecond)
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting connections after shutdown began")
	}
	close(release)
	if r := <-inflight; r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return")
	}
}

// TestServeAdminListener: the admin API's own socket serves /admin/ only,
// and the ready line names both addresses.
func TestServeAdminListener(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := store.New(testpg.New(t))
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	a := api.New(nil, st, "", logger, api.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, newServer(http.NotFoundHandler(), logger), ln, pw, logger,
			listener{"admin_addr", newServer(adminRoutes(a.AdminHandler(), logger), logger), aln})
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if want := "web ready addr=" + ln.Addr().String() + " admin_addr=" + aln.Addr().String() + "\n"; err != nil || line != want {
		t.Fatalf("ready line %q, %v; want %q", line, err, want)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	admin := "http://" + aln.Addr().String()
	for _, c := range []struct {
		path     string
		want     int
		contains string
	}{
		{"/admin/v1/agents", 401, "unauthenticated"},
		{"/healthz", 200, "ok"},
		{"/api/v1/me", 404, "this is the admin API"},
		{"/c/x", 404, "this is the admin API"},
	} {
		if code, body := get(t, admin+c.path); code != c.want || !strings.Contains(body, c.contains) {
			t.Errorf("GET %s on the admin listener = %d %q, want %d with %q", c.path, code, body, c.want, c.contains)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func TestRunRefusesBadSetup(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	codecKey := "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	tokenKey := base64.StdEncoding.EncodeToString([]byte("token-key-for-web-tests-0123456789"))
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no secrets", map[string]string{}, "VIGIL_CODEC_KEYS"},
		{"short token key", map[string]string{"VIGIL_CODEC_KEYS": codecKey, "VIGIL_TOKEN_KEY": base64.StdEncoding.EncodeToString([]byte("short"))}, "VIGIL_TOKEN_KEY"},
		{"no Slack settings", map[string]string{"VIGIL_CODEC_KEYS": codecKey, "VIGIL_TOKEN_KEY": tokenKey}, "VIGIL_SLACK_BOT_TOKEN"},
		{"no signing secret", map[string]string{"VIGIL_CODEC_KEYS": codecKey, "VIGIL_TOKEN_KEY": tokenKey, "VIGIL_SLACK_BOT_TOKEN": "xoxb-test"}, "VIGIL_SLACK_SIGNING_SECRET"},
		{"no panel read token", map[string]string{"VIGIL_CODEC_KEYS": codecKey, "VIGIL_TOKEN_KEY": tokenKey,
			"VIGIL_SLACK_BOT_TOKEN": "xoxb-test", "VIGIL_SLACK_SIGNING_SECRET": "signing-secret", "VIGIL_SLACK_TEAM_ID": "T1", "VIGIL_SLACK_APP_ID": "A1"}, "VIGIL_PANEL_READ_TOKEN"},
		{"the panel read token is the acting token", map[string]string{"VIGIL_CODEC_KEYS": codecKey, "VIGIL_TOKEN_KEY": tokenKey,
			"VIGIL_SLACK_BOT_TOKEN": "xoxb-test", "VIGIL_SLACK_SIGNING_SECRET": "signing-secret", "VIGIL_SLACK_TEAM_ID": "T1", "VIGIL_SLACK_APP_ID": "A1",
			"VIGIL_PANEL_TOKEN": "same-panel-token", "VIGIL_PANEL_READ_TOKEN": "same-panel-token"}, "must not be VIGIL_PANEL_TOKEN"},
		{"a bad risk policy file", map[string]string{"VIGIL_CODEC_KEYS": codecKey, "VIGIL_TOKEN_KEY": tokenKey,
			"VIGIL_SLACK_BOT_TOKEN": "xoxb-test", "VIGIL_SLACK_SIGNING_SECRET": "signing-secret", "VIGIL_SLACK_TEAM_ID": "T1", "VIGIL_SLACK_APP_ID": "A1",
			"VIGIL_PANEL_READ_TOKEN": "read-token", "VIGIL_RISK_POLICY_FILE": writeFile(t, `{"rules":[{"name":"x"}]}`)}, "no event kinds"},
		{"Temporal unreachable", map[string]string{"VIGIL_CODEC_KEYS": codecKey, "VIGIL_TOKEN_KEY": tokenKey,
			"VIGIL_SLACK_BOT_TOKEN": "xoxb-test", "VIGIL_SLACK_SIGNING_SECRET": "signing-secret", "VIGIL_SLACK_TEAM_ID": "T1", "VIGIL_SLACK_APP_ID": "A1",
			"VIGIL_PANEL_READ_TOKEN": "read-token",
			"VIGIL_DATABASE_URL":     testpg.NewDSN(t), "VIGIL_TEMPORAL_ADDRESS": temporaltest.ClosedAddr(t), "VIGIL_HTTP_ADDR": temporaltest.ClosedAddr(t)}, "Temporal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = run(ctx, cfg, logger)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error about %s", err, tt.want)
			}
			if strings.Contains(err.Error(), tokenKey) || strings.Contains(err.Error(), codecKey) {
				t.Fatal("error shows a secret")
			}
		})
	}
}

// writeFile writes body to a file of the test's own and returns its path.
func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
