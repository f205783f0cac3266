package cliclient

// The httptest servers below are a test double of the Vigil API that speaks
// the v1 contract (/tmp/api-contract.md), for this client's unit tests only.
// The real web server is exercised against the CLI by the e2e tests.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

const agentToken = "vgl_abcdefghijklmnopqrstuvwxyz234567"

// recorded is one call the fake API received.
type recorded struct {
	Method, Path, RawPath, Query, Auth, ContentType string
	Body                                            []byte
}

// fakeAPI answers each "METHOD /path" with a canned status and body and
// records what it got.
type fakeAPI struct {
	mu      sync.Mutex
	calls   []recorded
	answers map[string]answer
}

type answer struct {
	status  int
	ctype   string
	body    string
	headers map[string]string
}

func newFakeAPI(t *testing.T, answers map[string]answer) (*fakeAPI, *httptest.Server) {
	t.Helper()
	f := &fakeAPI{answers: answers}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.calls = append(f.calls, recorded{r.Method, r.URL.Path, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body})
		f.mu.Unlock()
		a, ok := f.answers[r.Method+" "+r.URL.Path]
		if !ok {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"type":"https://vigil.dev/problems/request_not_found","title":"Not found","status":404,"detail":"no such path in the fake","code":"request_not_found"}`)
			return
		}
		for k, v := range a.headers {
			w.Header().Set(k, v)
		}
		if a.ctype == "" {
			a.ctype = "application/json"
		}
		w.Header().Set("Content-Type", a.ctype)
		w.WriteHeader(a.status)
		fmt.Fprint(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeAPI) last(t *testing.T) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatal("the fake API received no call")
	}
	return f.calls[len(f.calls)-1]
}

func (f *fakeAPI) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func newClient(t *testing.T, base, token string, opts ...Option) *Client {
	t.Helper()
	c, err := New(base, token, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

const meJSON = `{"id":"ag_ana","name":"Ana","email":"ana@example.com","team":"support","role":"senior","slack_user_id":"U123"}`

func TestMeSendsBearerAndDecodes(t *testing.T) {
	f, srv := newFakeAPI(t, map[string]answer{"GET /api/v1/me": {status: 200, body: meJSON}})
	c := newClient(t, srv.URL+"/", agentToken)
	me, err := c.Me(context.Background())
	if err != nil {
		t.Fatalf("Me: %v", err)
	}
	got := f.last(t)
	if got.Auth != "Bearer "+agentToken {
		t.Errorf("Authorization = %q, want the bearer token", got.Auth)
	}
	if got.Path != "/api/v1/me" {
		t.Errorf("path = %q, want /api/v1/me (trailing slash of the base URL dropped)", got.Path)
	}
	want := Agent{ID: "ag_ana", Name: "Ana", Email: "ana@example.com", Team: "support", Role: domain.RoleSenior, SlackUserID: "U123"}
	me.Raw = nil
	if fmt.Sprint(me) != fmt.Sprint(want) {
		t.Errorf("Me = %+v, want %+v", me, want)
	}
}

func TestNoTokenSendsNoAuthorization(t *testing.T) {
	f, srv := newFakeAPI(t, map[string]answer{"GET /api/v1/me": {status: 200, body: meJSON}})
	if _, err := newClient(t, srv.URL, "").Me(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a := f.last(t).Auth; a != "" {
		t.Errorf("Authorization = %q, want none", a)
	}
}

const requestJSON = `{"id":"req_abc","action":"reinstall_vps","customer_id":"C-1042","requester_id":"ag_bob","server_id":"srv-1",
"status":"cooling","opened_at":"2026-03-01T10:00:00Z","pin_verified_at":"2026-03-01T10:00:02Z",
"approval_deadline":"2026-03-01T11:00:00Z","decision":{"decision":"approve","approver_id":"ag_ana","reason":"ok","at":"2026-03-01T10:05:00Z"},
"notified_at":"2026-03-01T10:05:01Z","recipients":2,"cooling_ends_at":"2026-03-03T10:05:01Z","final":false,"some_future_field":1}`

// breakGlassJSON is a request decided through the break-glass path.
const breakGlassJSON = `{"id":"req_abc","action":"disable_2fa","customer_id":"C-1042","requester_id":"ag_bob","status":"notifying",
"decision":{"decision":"approve","approver_id":"ag_ana","second_approver_id":"ag_ben","break_glass":true,"reason":"Slack outage, INC-42","at":"2026-03-01T10:05:00Z"},
"pin_failures":0,"recipients":0,"final":false}`

func TestOpenRequestBodyAndDecoding(t *testing.T) {
	f, srv := newFakeAPI(t, map[string]answer{"POST /api/v1/requests": {status: 201, body: requestJSON, headers: map[string]string{"Location": "/api/v1/requests/req_abc"}}})
	c := newClient(t, srv.URL, agentToken)
	pin := []byte(`12"3\4<5>&é`)
	r, err := c.OpenRequest(context.Background(), NewRequest{
		Action: domain.ActionReinstallVPS, CustomerID: "C-1042", ServerID: "srv-1", Reason: "customer asked by phone", PIN: pin,
	})
	if err != nil {
		t.Fatalf("OpenRequest: %v", err)
	}
	got := f.last(t)
	if got.ContentType != "application/json" {
		t.Errorf("Content-Type = %q", got.ContentType)
	}
	// Decode exactly as the server does: strictly.
	var body struct {
		Action     string `json:"action"`
		CustomerID string `json:"customer_id"`
		ServerID   string `json:"server_id"`
		Email      string `json:"email"`
		Reason     string `json:"reason"`
		PIN        string `json:"pin"`
	}
	dec := json.NewDecoder(bytes.NewReader(got.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body %s does not decode strictly: %v", got.Body, err)
	}
	if body.PIN != `12"3\4<5>&é` || body.Action != "reinstall_vps" || body.CustomerID != "C-1042" || body.ServerID != "srv-1" || body.Reason != "customer asked by phone" || body.Email != "" {
		t.Errorf("server received %+v", body)
	}
	if bytes.Contains(got.Body, []byte(`"email"`)) {
		t.Errorf("empty email sent: %s", got.Body)
	}
	if string(pin) != `12"3\4<5>&é` {
		t.Errorf("OpenRequest changed the caller's PIN slice")
	}

	if r.ID != "req_abc" || r.Status != domain.StatusCooling || r.Decision == nil || r.Decision.ApproverID != "ag_ana" ||
		r.Recipients != 2 || !r.CoolingEndsAt.Equal(time.Date(2026, 3, 3, 10, 5, 1, 0, time.UTC)) || r.Final {
		t.Errorf("decoded %+v", r)
	}
	if !json.Valid(r.Raw) || !bytes.Contains(r.Raw, []byte("some_future_field")) {
		t.Errorf("Raw = %s, want the server's document", r.Raw)
	}
}

func TestOpenRequestRefusesBadPINLocally(t *testing.T) {
	f, srv := newFakeAPI(t, map[string]answer{"POST /api/v1/requests": {status: 201, body: requestJSON}})
	c := newClient(t, srv.URL, agentToken)
	for _, pin := range [][]byte{nil, []byte("12\n34"), {0xff, 0xfe}, bytes.Repeat([]byte("1"), 129)} {
		_, err := c.OpenRequest(context.Background(), NewRequest{Action: domain.ActionDisable2FA, CustomerID: "C-1", Reason: "r", PIN: pin})
		if !errors.Is(err, ErrBadPIN) {
			t.Errorf("PIN %q: err = %v, want ErrBadPIN", pin, err)
		}
	}
	if n := f.count(); n != 0 {
		t.Errorf("%d calls reached the server", n)
	}
}

func TestProblems(t *testing.T) {
	tests := []struct {
		name        string
		a           answer
		wantStatus  int
		wantCode    string
		wantDetail  string
		wantRefused bool
		wantRetry   time.Duration
		wantRaw     bool
	}{
		{
			name:       "unauthenticated",
			a:          answer{status: 401, ctype: "application/problem+json", body: `{"type":"https://vigil.dev/problems/unauthenticated","title":"Unauthenticated","status":401,"detail":"log in","code":"unauthenticated"}`, headers: map[string]string{"WWW-Authenticate": "Bearer"}},
			wantStatus: 401, wantCode: "unauthenticated", wantDetail: "log in", wantRefused: true, wantRaw: true,
		},
		{
			name:       "rate limited with Retry-After",
			a:          answer{status: 429, ctype: "application/problem+json", body: `{"type":"https://vigil.dev/problems/rate_limited","title":"Slow down","status":429,"detail":"too many","code":"rate_limited","request_id":"r-1"}`, headers: map[string]string{"Retry-After": "17"}},
			wantStatus: 429, wantCode: "rate_limited", wantDetail: "too many", wantRefused: true, wantRetry: 17 * time.Second, wantRaw: true,
		},
		{
			name:       "code derived from type",
			a:          answer{status: 404, ctype: "application/problem+json", body: `{"type":"https://vigil.dev/problems/unknown_customer","title":"Unknown customer","status":404,"detail":"no C-9"}`},
			wantStatus: 404, wantCode: "unknown_customer", wantDetail: "no C-9", wantRefused: true, wantRaw: true,
		},
		{
			name:       "temporal unavailable is not a refusal",
			a:          answer{status: 503, ctype: "application/problem+json", body: `{"type":"https://vigil.dev/problems/temporal_unavailable","title":"Degraded","status":503,"detail":"try again","code":"temporal_unavailable"}`},
			wantStatus: 503, wantCode: "temporal_unavailable", wantDetail: "try again", wantRaw: true,
		},
		{
			name:       "proxy HTML page",
			a:          answer{status: 502, ctype: "text/html", body: `<html>bad gateway secret-internal-host</html>`},
			wantStatus: 502, wantCode: "", wantDetail: "the server answered 502 Bad Gateway without a problem description",
		},
		{
			name:       "problem JSON that is not one",
			a:          answer{status: 400, ctype: "application/problem+json", body: `not json`},
			wantStatus: 400, wantCode: "", wantDetail: "the server answered 400 Bad Request without a problem description", wantRefused: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newFakeAPI(t, map[string]answer{"GET /api/v1/requests/req_x": tt.a})
			_, err := newClient(t, srv.URL, agentToken).GetRequest(context.Background(), "req_x")
			p, ok := AsProblem(err)
			if !ok {
				t.Fatalf("err = %v (%T), want a *Problem", err, err)
			}
			if p.Status != tt.wantStatus || p.Code != tt.wantCode || p.Detail != tt.wantDetail || p.Refused() != tt.wantRefused || p.RetryAfter != tt.wantRetry {
				t.Errorf("problem = %+v (refused %v)", p, p.Refused())
			}
			if (len(p.Raw) > 0) != tt.wantRaw {
				t.Errorf("Raw = %q, want present=%v", p.Raw, tt.wantRaw)
			}
			var doc map[string]any
			if err := json.Unmarshal(p.JSON(), &doc); err != nil {
				t.Fatalf("JSON() is not JSON: %v", err)
			}
			if int(doc["status"].(float64)) != tt.wantStatus {
				t.Errorf("JSON() = %s", p.JSON())
			}
			if strings.Contains(err.Error(), "secret-internal-host") {
				t.Errorf("error quotes the body: %v", err)
			}
		})
	}
}

func TestRetryAfterDate(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	if got := parseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now); got != 90*time.Second {
		t.Errorf("date Retry-After = %v, want 90s", got)
	}
	for _, v := range []string{"", "-3", "soon"} {
		if got := parseRetryAfter(v, now); got != 0 {
			t.Errorf("parseRetryAfter(%q) = %v, want 0", v, got)
		}
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	c := newClient(t, srv.URL, agentToken, WithTimeout(150*time.Millisecond))
	start := time.Now()
	_, err := c.Me(context.Background())
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("call took %v despite a 150ms timeout", took)
	}
	var te *TransportError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v (%T), want *TransportError", err, err)
	}
	if !te.Timeout() {
		t.Errorf("Timeout() = false for %v", err)
	}
	if _, ok := AsProblem(err); ok {
		t.Error("a timeout must not look like a Problem")
	}
}

func TestContextCancel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := newClient(t, srv.URL, agentToken).Me(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded in the chain", err)
	}
}

func TestConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	_, err := newClient(t, addr, agentToken).Me(context.Background())
	var te *TransportError
	if !errors.As(err, &te) || te.Timeout() {
		t.Fatalf("err = %v, want a non-timeout *TransportError", err)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	var leaked sync.Map
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store("auth", r.Header.Get("Authorization"))
	}))
	t.Cleanup(other.Close)
	_, srv := newFakeAPI(t, map[string]answer{"GET /api/v1/me": {status: 307, headers: map[string]string{"Location": other.URL + "/api/v1/me"}}})
	_, err := newClient(t, srv.URL, agentToken).Me(context.Background())
	if err == nil || !strings.Contains(err.Error(), "redirected") {
		t.Fatalf("err = %v, want a redirect error", err)
	}
	if _, ok := leaked.Load("auth"); ok {
		t.Error("the redirect target was called")
	}
}

func TestNonJSONSuccessIsAnError(t *testing.T) {
	_, srv := newFakeAPI(t, map[string]answer{"GET /api/v1/me": {status: 200, ctype: "text/html", body: "<html>login portal</html>"}})
	_, err := newClient(t, srv.URL, agentToken).Me(context.Background())
	var te *TransportError
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "not JSON") {
		t.Fatalf("err = %v, want a TransportError saying the answer is not JSON", err)
	}
}

func TestListQueryAndPaths(t *testing.T) {
	f, srv := newFakeAPI(t, map[string]answer{
		"GET /api/v1/requests":                   {status: 200, body: `{"requests":[` + requestJSON + `]}`},
		"GET /api/v1/requests/req a":             {status: 200, body: requestJSON},
		"POST /api/v1/requests/req_abc/withdraw": {status: 200, body: requestJSON},
		"POST /api/v1/requests/req_abc/veto":     {status: 200, body: requestJSON},
	})
	c := newClient(t, srv.URL, agentToken)
	ctx := context.Background()

	list, err := c.ListRequests(ctx, ListFilter{Mine: true, Open: true, CustomerID: "C-1042", Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if q := f.last(t).Query; q != "customer=C-1042&limit=5&mine=true&open=true" {
		t.Errorf("query = %q", q)
	}
	if len(list.Requests) != 1 || list.Requests[0].ID != "req_abc" || !json.Valid(list.Raw) {
		t.Errorf("list = %+v", list)
	}
	if _, err := c.ListRequests(ctx, ListFilter{}); err != nil {
		t.Fatal(err)
	}
	if q := f.last(t).Query; q != "" {
		t.Errorf("empty filter sent query %q", q)
	}

	if _, err := c.GetRequest(ctx, "req a"); err != nil {
		t.Fatal(err)
	}
	if p := f.last(t).RawPath; p != "/api/v1/requests/req%20a" {
		t.Errorf("escaped path = %q", p)
	}
	for _, bad := range []string{"", "..", "req/../../admin", `a\b`, "a\x00"} {
		before := f.count()
		if _, err := c.GetRequest(ctx, bad); err == nil {
			t.Errorf("GetRequest(%q) succeeded", bad)
		}
		if f.count() != before {
			t.Errorf("GetRequest(%q) reached the server", bad)
		}
	}

	for verb, call := range map[string]func(context.Context, string, string) (Request, error){"withdraw": c.Withdraw, "veto": c.Veto} {
		if _, err := call(ctx, "req_abc", "wrong customer"); err != nil {
			t.Fatalf("%s: %v", verb, err)
		}
		got := f.last(t)
		if got.Method != "POST" || got.Path != "/api/v1/requests/req_abc/"+verb || string(got.Body) != `{"reason":"wrong customer"}` {
			t.Errorf("%s sent %s %s %s", verb, got.Method, got.Path, got.Body)
		}
	}
}

func TestAdminCalls(t *testing.T) {
	const adminToken = "admin-secret-token"
	issued := `{"agent":` + meJSON + `,"token":"` + agentToken + `"}`
	f, srv := newFakeAPI(t, map[string]answer{
		"POST /admin/v1/agents":                {status: 201, body: issued},
		"PATCH /admin/v1/agents/ag_ana":        {status: 200, body: meJSON},
		"POST /admin/v1/agents/ag_ana/disable": {status: 200, body: meJSON},
		"POST /admin/v1/agents/ag_ana/token":   {status: 200, body: issued},
		"GET /admin/v1/agents":                 {status: 200, body: `{"agents":[` + meJSON + `]}`},
		"PUT /admin/v1/customers/C-1042":       {status: 200, body: `{}`},
	})
	c := newClient(t, srv.URL, adminToken)
	ctx := context.Background()

	tok, err := c.CreateAgent(ctx, NewAgent{ID: "ag_ana", Name: "Ana", Email: "ana@example.com", Team: "support", Role: domain.RoleSenior, SlackUserID: "U123"})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Token != agentToken || tok.Agent.ID != "ag_ana" {
		t.Errorf("CreateAgent = %+v", tok)
	}
	got := f.last(t)
	if got.Auth != "Bearer "+adminToken || string(got.Body) != `{"id":"ag_ana","name":"Ana","email":"ana@example.com","team":"support","role":"senior","slack_user_id":"U123"}` {
		t.Errorf("CreateAgent sent %q %s", got.Auth, got.Body)
	}

	if _, err := c.SetRole(ctx, "ag_ana", "senior"); err != nil {
		t.Fatal(err)
	}
	if got := f.last(t); got.Method != "PATCH" || string(got.Body) != `{"role":"senior"}` {
		t.Errorf("SetRole sent %s %s", got.Method, got.Body)
	}
	if _, err := c.DisableAgent(ctx, "ag_ana"); err != nil {
		t.Fatal(err)
	}
	if tok, err := c.RotateToken(ctx, "ag_ana"); err != nil || tok.Token != agentToken {
		t.Fatalf("RotateToken = %v, %v", tok, err)
	}
	if list, err := c.ListAgents(ctx); err != nil || len(list.Agents) != 1 || list.Agents[0].Role != domain.RoleSenior {
		t.Fatalf("ListAgents = %+v, %v", list, err)
	}
	if err := c.PutCustomer(ctx, "C-1042", Customer{Name: "Acme", PrimaryEmail: "ops@acme.test", PINHash: "$argon2id$x"}); err != nil {
		t.Fatal(err)
	}
	if got := f.last(t); got.Method != "PUT" || string(got.Body) != `{"name":"Acme","primary_email":"ops@acme.test","pin_hash":"$argon2id$x","contacts":[],"phones":[],"servers":[]}` {
		t.Errorf("PutCustomer sent %s %s", got.Method, got.Body)
	}
}

// consentJSON is a first break-glass consent, waiting for a second senior.
const consentJSON = `{"request_id":"req_abc","agent_id":"ag_ana","decision":"approve","expires_at":"2026-03-01T10:20:00Z","waiting_for":"a second senior's consent to the same decision"}`

func TestBreakGlassConsent(t *testing.T) {
	f, srv := newFakeAPI(t, map[string]answer{
		"POST /api/v1/requests/req_one/break-glass": {status: 202, body: consentJSON},
		"POST /api/v1/requests/req_abc/break-glass": {status: 200, body: breakGlassJSON},
	})
	c := newClient(t, srv.URL, agentToken)
	ctx := context.Background()
	ans, err := c.BreakGlass(ctx, "req_one", BreakGlassDecision{Decision: domain.DecisionApprove, Reason: "Slack outage, INC-42"})
	if err != nil {
		t.Fatalf("BreakGlass: %v", err)
	}
	if ans.Request != nil || ans.Consent == nil || ans.Consent.AgentID != "ag_ana" || !ans.Consent.ExpiresAt.Equal(time.Date(2026, 3, 1, 10, 20, 0, 0, time.UTC)) {
		t.Errorf("first consent = %+v (consent %+v)", ans, ans.Consent)
	}
	got := f.last(t)
	if got.Method != "POST" || got.Path != "/api/v1/requests/req_one/break-glass" || got.Auth != "Bearer "+agentToken ||
		string(got.Body) != `{"decision":"approve","reason":"Slack outage, INC-42"}` {
		t.Errorf("BreakGlass sent %s %s %q %s", got.Method, got.Path, got.Auth, got.Body)
	}
	ans, err = c.BreakGlass(ctx, "req_abc", BreakGlassDecision{Decision: domain.DecisionApprove, Reason: "Slack outage, INC-42"})
	if err != nil {
		t.Fatalf("BreakGlass: %v", err)
	}
	r := ans.Request
	if ans.Consent != nil || r == nil || r.ID != "req_abc" || r.Decision == nil || !r.Decision.BreakGlass || r.Decision.SecondApproverID != "ag_ben" || r.Decision.ApproverID != "ag_ana" {
		t.Errorf("second consent = %+v (request %+v)", ans, r)
	}
	if string(ans.Raw) != breakGlassJSON {
		t.Errorf("Raw = %s", ans.Raw)
	}
	for _, bad := range []string{"", "..", "req/../../agents"} {
		before := f.count()
		if _, err := c.BreakGlass(ctx, bad, BreakGlassDecision{Decision: domain.DecisionReject}); err == nil {
			t.Errorf("BreakGlass(%q) succeeded", bad)
		}
		if f.count() != before {
			t.Errorf("BreakGlass(%q) reached the server", bad)
		}
	}
}

func TestNormalizeBaseURL(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", false},
		{"HTTP://Vigil.Example.COM/", "http://vigil.example.com", false},
		{" https://vigil.example/base/ ", "https://vigil.example/base", false},
		{"ftp://x", "", true},
		{"127.0.0.1:8080", "", true},
		{"http://", "", true},
		{"http://user:pw@host", "", true},
		{"http://host/?x=1", "", true},
		{"http://host/#frag", "", true},
	}
	for _, tt := range tests {
		got, err := NormalizeBaseURL(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("NormalizeBaseURL(%q) = %q, %v; want %q, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("error %q quotes a password", err)
		}
	}
}

func TestNewRejectsBadToken(t *testing.T) {
	for _, tok := range []string{"vgl_abc def", "vgl_abc\r\nX-Evil: 1", "vgl_é"} {
		_, err := New("http://127.0.0.1:1", tok)
		if err == nil {
			t.Errorf("New accepted token %q", tok)
			continue
		}
		if strings.Contains(err.Error(), "vgl_") {
			t.Errorf("error %q quotes the token", err)
		}
	}
}

func TestSecretsRedacted(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1", agentToken)
	nr := NewRequest{Action: domain.ActionDisable2FA, CustomerID: "C-1", Reason: "r", PIN: []byte("987654")}
	it := IssuedToken{Agent: Agent{ID: "ag_x"}, Token: agentToken}
	cu := Customer{Name: "Acme", PINHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "client", c, "req", nr, "issued", it, "customer", cu)
	outputs := []string{logged.String()}
	for _, v := range []any{c, nr, it, cu} {
		outputs = append(outputs, fmt.Sprint(v), fmt.Sprintf("%+v", v), fmt.Sprintf("%#v", v))
	}
	for _, s := range outputs {
		for _, secret := range []string{agentToken, "987654", "aGFzaGhhc2g"} {
			if strings.Contains(s, secret) {
				t.Errorf("secret %q leaked in %q", secret, s)
			}
		}
	}
}

func TestRecipientsShapes(t *testing.T) {
	for in, want := range map[string]Recipients{`{"recipients":3}`: 3, `{"recipients":["a@x","b@x"]}`: 2, `{}`: 0} {
		var r Request
		if err := json.Unmarshal([]byte(in), &r); err != nil || r.Recipients != want {
			t.Errorf("%s: recipients = %d, %v; want %d", in, r.Recipients, err, want)
		}
	}
	var r Request
	if err := json.Unmarshal([]byte(`{"recipients":"two"}`), &r); err == nil {
		t.Error("a string recipients field was accepted")
	}
}
