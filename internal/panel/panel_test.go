package panel_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/panelstandin"
	"github.com/vigil-oss/vigil/internal/testpg"
)

const (
	token     = "test-panel-token-7c1d"
	readToken = "test-panel-read-token-3e9a"
)

type fixture struct {
	standin *panelstandin.Server
	url     string
	client  *panel.Client
}

func setup(t *testing.T) fixture {
	t.Helper()
	db := testpg.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := panelstandin.New(ctx, db, token, readToken, nil)
	if err != nil {
		t.Fatalf("panelstandin.New: %v", err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	c, err := panel.NewClient(srv.URL, token, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return fixture{standin: s, url: srv.URL, client: c}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func performed(t *testing.T, f fixture) []panelstandin.Call {
	t.Helper()
	p, err := f.standin.Performed(ctx(t))
	if err != nil {
		t.Fatalf("Performed: %v", err)
	}
	return p
}

func calls(t *testing.T, f fixture) []panelstandin.Call {
	t.Helper()
	c, err := f.standin.Calls(ctx(t))
	if err != nil {
		t.Fatalf("Calls: %v", err)
	}
	return c
}

func TestExecuteEachAction(t *testing.T) {
	f := setup(t)
	tests := []struct {
		job      panel.Job
		wantPath string
		wantRef  string
	}{
		{panel.Job{Action: domain.ActionResendCredentials, CustomerID: "cus-1", ServerID: "srv-1"}, "/v1/customers/cus-1/servers/srv-1/credentials", "ref-"},
		{panel.Job{Action: domain.ActionReinstallVPS, CustomerID: "cus 1/a?b", ServerID: "srv/2#x"}, "/v1/customers/cus%201%2Fa%3Fb/servers/srv%2F2%23x/reinstall", "job-"},
		{panel.Job{Action: domain.ActionAddContactEmail, CustomerID: "cus-1", Email: "new@example.com"}, "/v1/customers/cus-1/contacts", "ref-"},
		{panel.Job{Action: domain.ActionChangeAccountEmail, CustomerID: "cus-1", Email: "owner@example.com"}, "/v1/customers/cus-1/email", "ref-"},
		{panel.Job{Action: domain.ActionDisable2FA, CustomerID: "cus-1"}, "/v1/customers/cus-1/2fa", "ref-"},
	}
	for i, tt := range tests {
		t.Run(string(tt.job.Action), func(t *testing.T) {
			tt.job.IdempotencyKey = fmt.Sprintf("req-%d-execute", i)
			res, err := f.client.Execute(ctx(t), tt.job)
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if !strings.HasPrefix(res.Reference, tt.wantRef) {
				t.Errorf("reference %q, want prefix %q", res.Reference, tt.wantRef)
			}
			if tt.job.Action == domain.ActionResendCredentials {
				if res.Credentials == nil || res.Credentials.Username == "" || len(res.Credentials.Password) < 16 {
					t.Errorf("credentials missing or weak: %v", res.Credentials != nil)
				}
			} else if res.Credentials != nil {
				t.Errorf("credentials returned for %s", tt.job.Action)
			}
			p := performed(t, f)
			last := p[len(p)-1]
			if len(p) != i+1 || last.Path != tt.wantPath || last.Action != string(tt.job.Action) ||
				last.CustomerID != tt.job.CustomerID || last.ServerID != tt.job.ServerID || last.Email != tt.job.Email ||
				last.IdempotencyKey != tt.job.IdempotencyKey {
				t.Errorf("performed %d; last = %+v", len(p), last)
			}
		})
	}
}

func TestRepeatedKeyPerformsOnce(t *testing.T) {
	f := setup(t)
	job := panel.Job{IdempotencyKey: "req-repeat", Action: domain.ActionResendCredentials, CustomerID: "cus-1", ServerID: "srv-1"}
	first, err := f.client.Execute(ctx(t), job)
	if err != nil {
		t.Fatalf("first Execute: %v", err)
	}
	second, err := f.client.Execute(ctx(t), job)
	if err != nil {
		t.Fatalf("second Execute: %v", err)
	}
	if first.Reference != second.Reference || *first.Credentials != *second.Credentials {
		t.Fatalf("replay differs: %q vs %q, same credentials %v", first.Reference, second.Reference, *first.Credentials == *second.Credentials)
	}
	if p := performed(t, f); len(p) != 1 {
		t.Fatalf("performed %d times, want 1", len(p))
	}
	c := calls(t, f)
	if len(c) != 2 || c[0].Replayed || !c[1].Replayed || c[1].Status != 200 {
		t.Fatalf("calls = %+v, want the second replayed", c)
	}

	// A different key for the same server gets new credentials.
	job.IdempotencyKey = "req-repeat-2"
	third, err := f.client.Execute(ctx(t), job)
	if err != nil {
		t.Fatalf("third Execute: %v", err)
	}
	if third.Credentials.Password == first.Credentials.Password {
		t.Fatalf("a new key reused the old password")
	}

	// The same key for a different request is refused permanently.
	job.ServerID = "srv-other"
	_, err = f.client.Execute(ctx(t), job)
	var pe *panel.PermanentError
	if !errors.As(err, &pe) || pe.Status != 422 || pe.Code != "idempotency_key_reused" {
		t.Fatalf("key reuse: %v, want 422 PermanentError", err)
	}
}

func TestReplayHeader(t *testing.T) {
	f := setup(t)
	do := func() *http.Response {
		req, _ := http.NewRequest(http.MethodDelete, f.url+"/v1/customers/cus-1/2fa", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Idempotency-Key", "raw-key")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("DELETE: %v", err)
		}
		resp.Body.Close()
		return resp
	}
	if r := do(); r.StatusCode != 200 || r.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d replayed=%q", r.StatusCode, r.Header.Get("Idempotent-Replayed"))
	}
	if r := do(); r.StatusCode != 200 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("second: %d replayed=%q", r.StatusCode, r.Header.Get("Idempotent-Replayed"))
	}
}

func TestErrorClassification(t *testing.T) {
	f := setup(t)
	tests := []struct {
		status    int
		permanent bool
	}{
		{400, true}, {403, true}, {404, true}, {422, true},
		{408, false}, {409, false}, {425, false}, {429, false},
		{500, false}, {502, false}, {503, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			f.standin.SetFault(panelstandin.Fault{FailNext: 1, Status: tt.status})
			job := panel.Job{IdempotencyKey: fmt.Sprintf("req-class-%d", tt.status), Action: domain.ActionDisable2FA, CustomerID: "cus-1"}
			_, err := f.client.Execute(ctx(t), job)
			if err == nil {
				t.Fatal("Execute succeeded despite the injected fault")
			}
			if panel.IsPermanent(err) != tt.permanent {
				t.Fatalf("status %d: IsPermanent = %v, want %v (err %v)", tt.status, panel.IsPermanent(err), tt.permanent, err)
			}
			if !strings.Contains(err.Error(), fmt.Sprint(tt.status)) {
				t.Errorf("error %q does not name the status", err)
			}
			// The fault was consumed before performing: a retry performs once.
			if _, err := f.client.Execute(ctx(t), job); err != nil {
				t.Fatalf("retry: %v", err)
			}
		})
	}
	if p := performed(t, f); len(p) != len(tests) {
		t.Fatalf("performed %d, want %d (one per retried key)", len(p), len(tests))
	}
}

func TestFailNext500IsRetryable(t *testing.T) {
	f := setup(t)
	f.standin.SetFault(panelstandin.Fault{FailNext: 2})
	job := panel.Job{IdempotencyKey: "req-500", Action: domain.ActionReinstallVPS, CustomerID: "cus-1", ServerID: "srv-1"}
	for i := range 2 {
		if _, err := f.client.Execute(ctx(t), job); err == nil || panel.IsPermanent(err) {
			t.Fatalf("attempt %d: err %v, want retryable", i+1, err)
		}
	}
	if p := performed(t, f); len(p) != 0 {
		t.Fatalf("performed %d despite failures before performing", len(p))
	}
	res, err := f.client.Execute(ctx(t), job)
	if err != nil || !strings.HasPrefix(res.Reference, "job-") {
		t.Fatalf("third attempt: %+v, %v", res, err)
	}
	if c := calls(t, f); len(c) != 3 || c[0].Status != 500 || c[1].Status != 500 || c[2].Status != 202 {
		t.Fatalf("calls = %+v", c)
	}
}

func TestBadTokenIsPermanent(t *testing.T) {
	f := setup(t)
	const wrong = "wrong-token-abcdef"
	c, err := panel.NewClient(f.url, wrong, nil)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	_, err = c.Execute(ctx(t), panel.Job{IdempotencyKey: "req-401", Action: domain.ActionDisable2FA, CustomerID: "cus-1"})
	var pe *panel.PermanentError
	if !errors.As(err, &pe) || pe.Status != 401 || pe.Code != "unauthorized" {
		t.Fatalf("Execute with bad token = %v, want 401 PermanentError", err)
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), token) {
		t.Fatalf("error leaks a token: %v", err)
	}
	if p := performed(t, f); len(p) != 0 {
		t.Fatalf("performed with a bad token")
	}
	if s := fmt.Sprintf("%v %#v", c, c); strings.Contains(s, wrong) {
		t.Fatalf("client formatting leaks its token: %s", s)
	}
}

func TestMissingKey(t *testing.T) {
	f := setup(t)
	// The client refuses to call without a key.
	_, err := f.client.Execute(ctx(t), panel.Job{Action: domain.ActionDisable2FA, CustomerID: "cus-1"})
	if !panel.IsPermanent(err) {
		t.Fatalf("Execute without key = %v, want PermanentError", err)
	}
	if c := calls(t, f); len(c) != 0 {
		t.Fatalf("a call was made without a key: %+v", c)
	}
	// The panel refuses a call without a key.
	req, _ := http.NewRequest(http.MethodDelete, f.url+"/v1/customers/cus-1/2fa", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 400 || body.Error.Code != "idempotency_key_required" {
		t.Fatalf("no key: status %d, body %+v", resp.StatusCode, body)
	}
	if p := performed(t, f); len(p) != 0 {
		t.Fatalf("performed without a key")
	}
}

func TestHangAfterPerformThenRetry(t *testing.T) {
	f := setup(t)
	f.standin.SetFault(panelstandin.Fault{HangAfterPerform: 5 * time.Second})
	impatient, err := panel.NewClient(f.url, token, &http.Client{Timeout: time.Second})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	job := panel.Job{IdempotencyKey: "req-hang", Action: domain.ActionResendCredentials, CustomerID: "cus-1", ServerID: "srv-1"}
	start := time.Now()
	_, err = impatient.Execute(ctx(t), job)
	if err == nil || panel.IsPermanent(err) {
		t.Fatalf("Execute during hang = %v, want a retryable timeout", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("client waited %v despite its 1s timeout", d)
	}
	if p := performed(t, f); len(p) != 1 {
		t.Fatalf("performed %d, want 1 (the hang comes after performing)", len(p))
	}
	// The retry with the same key gets the first result at once (replays do not hang).
	res, err := impatient.Execute(ctx(t), job)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if res.Credentials == nil || res.Credentials.Password == "" {
		t.Fatal("retry lost the credentials")
	}
	if p := performed(t, f); len(p) != 1 {
		t.Fatalf("performed %d after retry, want 1", len(p))
	}
	c := calls(t, f)
	// The abandoned call's status (499) is written when the stand-in notices the
	// client left, which may be after the retry; panelstandin's tests check it.
	if len(c) != 2 || c[0].Replayed || !c[1].Replayed || c[1].Status != 200 {
		t.Fatalf("calls = %+v, want the abandoned call then a replay", c)
	}
}

func TestConcurrentSameKeyPerformsOnce(t *testing.T) {
	f := setup(t)
	job := panel.Job{IdempotencyKey: "req-concurrent", Action: domain.ActionResendCredentials, CustomerID: "cus-1", ServerID: "srv-1"}
	const n = 8
	results := make([]panel.Result, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = f.client.Execute(ctx(t), job)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if results[i].Reference != results[0].Reference || *results[i].Credentials != *results[0].Credentials {
			t.Fatalf("goroutine %d got a different result", i)
		}
	}
	if p := performed(t, f); len(p) != 1 {
		t.Fatalf("performed %d times, want 1", len(p))
	}
	replayed := 0
	for _, c := range calls(t, f) {
		if c.Replayed {
			replayed++
		}
	}
	if replayed != n-1 {
		t.Fatalf("%d replayed calls, want %d", replayed, n-1)
	}
}

func TestExecuteRejectsInvalidJobs(t *testing.T) {
	f := setup(t)
	good := panel.Job{IdempotencyKey: "k", Action: domain.ActionAddContactEmail, CustomerID: "cus-1", Email: "a@example.com"}
	tests := []struct {
		name string
		mod  func(*panel.Job)
	}{
		{"unknown action", func(j *panel.Job) { j.Action = "wipe_everything" }},
		{"no customer", func(j *panel.Job) { j.CustomerID = "" }},
		{"dot-dot customer", func(j *panel.Job) { j.CustomerID = ".." }},
		{"control char customer", func(j *panel.Job) { j.CustomerID = "a\nb" }},
		{"bad email", func(j *panel.Job) { j.Email = "not-an-email" }},
		{"named email", func(j *panel.Job) { j.Email = "Eve <eve@example.com>" }},
		{"key with space", func(j *panel.Job) { j.IdempotencyKey = "a b" }},
		{"long key", func(j *panel.Job) { j.IdempotencyKey = strings.Repeat("k", 256) }},
		{"reinstall without server", func(j *panel.Job) { j.Action = domain.ActionReinstallVPS }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := good
			tt.mod(&j)
			var pe *panel.PermanentError
			if _, err := f.client.Execute(ctx(t), j); !errors.As(err, &pe) || pe.Code != "invalid_job" {
				t.Fatalf("Execute = %v, want invalid_job PermanentError", err)
			}
		})
	}
	if c := calls(t, f); len(c) != 0 {
		t.Fatalf("invalid jobs reached the panel: %+v", c)
	}
}

// TestMalformedResponses uses tiny real HTTP servers that break the contract.
func TestMalformedResponses(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		permanent bool
	}{
		{"not json", 200, "<html>oops</html>", true},
		{"no reference", 200, `{"username":"root","password":"x"}`, true},
		{"credentials missing", 200, `{"reference":"ref-1"}`, true},
		{"huge body", 200, `{"reference":"` + strings.Repeat("a", 70<<10) + `"}`, false},
		{"error without json", 502, "bad gateway", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c, err := panel.NewClient(srv.URL+"/panel/", token, nil)
			if err != nil {
				t.Fatalf("NewClient: %v", err)
			}
			_, err = c.Execute(ctx(t), panel.Job{IdempotencyKey: "k", Action: domain.ActionResendCredentials, CustomerID: "c", ServerID: "s"})
			if err == nil || panel.IsPermanent(err) != tt.permanent {
				t.Fatalf("Execute = %v (permanent %v), want error with permanent=%v", err, panel.IsPermanent(err), tt.permanent)
			}
		})
	}
}

func TestBasePathAndHeaders(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		buf := new(bytes.Buffer)
		_, _ = buf.ReadFrom(r.Body)
		body = buf.Bytes()
		w.WriteHeader(201)
		_, _ = w.Write([]byte(`{"reference":"ref-9"}`))
	}))
	defer srv.Close()
	c, err := panel.NewClient(srv.URL+"/api/", token, nil)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	res, err := c.Execute(ctx(t), panel.Job{IdempotencyKey: "key-1", Action: domain.ActionAddContactEmail, CustomerID: "c/1", Email: "a@example.com"})
	if err != nil || res.Reference != "ref-9" {
		t.Fatalf("Execute = %+v, %v", res, err)
	}
	if got.Method != "POST" || got.URL.EscapedPath() != "/api/v1/customers/c%2F1/contacts" {
		t.Errorf("request %s %s", got.Method, got.URL.EscapedPath())
	}
	if got.Header.Get("Authorization") != "Bearer "+token || got.Header.Get("Idempotency-Key") != "key-1" || got.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", got.Header)
	}
	if string(body) != `{"email":"a@example.com"}` {
		t.Errorf("body %s", body)
	}
}

func TestNetworkErrorIsRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := panel.NewClient(url, token, nil)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	_, err = c.Execute(ctx(t), panel.Job{IdempotencyKey: "k", Action: domain.ActionDisable2FA, CustomerID: "c"})
	if err == nil || panel.IsPermanent(err) || strings.Contains(err.Error(), token) {
		t.Fatalf("Execute against a closed port = %v", err)
	}
}

func TestNewClientValidates(t *testing.T) {
	tests := []struct{ name, url, token string }{
		{"relative", "/v1", token},
		{"ftp", "ftp://panel.example", token},
		{"userinfo", "https://user:pw@panel.example", token},
		{"query", "https://panel.example/?a=b", token},
		{"fragment", "https://panel.example/#x", token},
		{"no host", "https://", token},
		{"empty token", "https://panel.example", ""},
		{"token with newline", "https://panel.example", "abc\r\nX-Evil: 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := panel.NewClient(tt.url, tt.token, nil); err == nil {
				t.Fatalf("NewClient(%q) succeeded", tt.url)
			}
		})
	}
}

func TestCredentialsRedacted(t *testing.T) {
	const secret = "S3cret-Pa55word"
	cred := &panel.Credentials{Username: "root", Password: secret}
	res := panel.Result{Reference: "ref-1", Credentials: cred}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "cred", *cred, "credp", cred, "res", res)
	js, err := json.Marshal(res)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	for _, out := range []string{
		fmt.Sprint(*cred), fmt.Sprintf("%v %+v %#v %s", cred, cred, cred, cred),
		fmt.Sprintf("%v %+v", res, res), logs.String(), string(js),
	} {
		if strings.Contains(out, secret) || strings.Contains(out, "root") {
			t.Fatalf("credentials leaked: %s", out)
		}
	}
}
