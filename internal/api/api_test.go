package api

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/agentauth"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/ratelimit"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/syncbuf"
	"github.com/vigil-oss/vigil/internal/testpg"
)

const (
	testPIN    = "739164"
	adminToken = "admin-secret-for-tests-0123456789"
)

// env is a real API over loopback HTTP on a fresh Postgres database. Its
// Temporal client is a real SDK client aimed at a closed port: every call
// that reaches Temporal fails as temporal_unavailable, so a test that expects
// another answer proves the request was refused before Temporal. The e2e
// suite covers the paths through a running Temporal.
type env struct {
	t      testing.TB
	st     *store.Store
	db     *sql.DB
	srv    *httptest.Server
	logs   *syncbuf.Buffer
	tokens map[string]string // agent id -> token
	// temporal counts the calls that would change something in Temporal.
	temporal *temporalWatch
}

func newEnv(t *testing.T, admin string, opts Options) *env {
	t.Helper()
	db := testpg.New(t)
	return newEnvOn(t, admin, opts, db, db, db)
}

// newEnvOn is newEnv on db, a fresh database it migrates and seeds, with the
// API's own store (token lookups, lists, admin calls) on the pool apiDB and
// the requests service's store on svcDB. These may reach the database some
// other way than db does, so that a test can cut one of them off.
func newEnvOn(t *testing.T, admin string, opts Options, db, apiDB, svcDB *sql.DB) *env {
	t.Helper()
	return newEnvAt(t, admin, opts, db, apiDB, svcDB, "")
}

// newEnvAt is newEnvOn with the Temporal at temporalAddr ("" for one nobody
// listens on). No worker runs there; Open does not wait for one.
func newEnvAt(t testing.TB, admin string, opts Options, db, apiDB, svcDB *sql.DB, temporalAddr string) *env {
	t.Helper()
	st := store.New(db)
	ctx := context.Background()
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tw := watchTemporal(t, logger, temporalAddr)
	svc, err := requests.New(tw.client, store.New(svcDB), requests.Timings{ApprovalTimeout: time.Hour, NoticeTimeout: time.Hour,
		ExecuteMaxAttempts: 3, Cooling: domain.DefaultCoolingPeriods()}, requests.RiskChecks{Off: true}, logger)
	if err != nil {
		t.Fatal(err)
	}
	if opts.AdminFailureLimit == (ratelimit.Limit{}) {
		// Table tests make many failed admin calls from one address; the
		// throttle has a test of its own.
		opts.AdminFailureLimit = ratelimit.Limit{PerMinute: 6000, Burst: 1000}
	}
	a := New(svc, store.New(apiDB), admin, logger, opts)
	// The two listeners of the web front, on one test server: the admin API
	// is reached only through its own handler.
	pub, adm := a.Handler(), a.AdminHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if under(r.URL.Path, "/admin") {
			adm.ServeHTTP(w, r)
			return
		}
		pub.ServeHTTP(w, r)
	}))
	e := &env{t: t, st: st, db: db, srv: srv, logs: logs, tokens: map[string]string{}, temporal: tw}
	t.Cleanup(srv.Close)

	hash, err := pinhash.Hash(testPIN, pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertCustomer(ctx, store.CustomerImport{ID: "C-1042", Name: "Acme", PrimaryEmail: "owner@acme.test",
		PINHash: hash, Servers: []string{"srv-1"}}); err != nil {
		t.Fatal(err)
	}
	for _, ag := range []store.Agent{
		{ID: "ag_req", Name: "Rita Requester", Email: "rita@vigil.test", Role: domain.RoleAgent, SlackUserID: "U0RITA"},
		{ID: "ag_senior", Name: "Sam Senior", Email: "sam@vigil.test", Role: domain.RoleSenior},
		{ID: "ag_off", Name: "Olga Offboarded", Role: domain.RoleSenior, Disabled: true},
		{ID: "ag_root", Name: "Ada Admin", Email: "ada@vigil.test", Role: domain.RoleAdmin},
	} {
		tok, err := agentauth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateAgent(ctx, ag, agentauth.Hash(tok)); err != nil {
			t.Fatal(err)
		}
		e.tokens[ag.ID] = tok
	}
	return e
}

// response is what a call got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) problem(t *testing.T) Problem {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json (status %d, body %s)", ct, r.status, r.body)
	}
	var p Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	if p.Type != problemTypeBase+p.Code || p.Status != r.status || p.Title == "" || p.Detail == "" {
		t.Fatalf("malformed problem %+v for status %d", p, r.status)
	}
	return p
}

// call sends one request. auth is the whole Authorization header ("" for
// none); contentType "" sends none.
func (e *env) call(method, path, auth, contentType, body string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// as calls as agent id with a JSON body.
func (e *env) as(id, method, path, body string) response {
	e.t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return e.call(method, path, "Bearer "+e.tokens[id], ct, body)
}

func (e *env) admin(method, path, body string) response {
	e.t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return e.call(method, path, "Bearer "+e.tokens["ag_root"], ct, body)
}

func (e *env) count(table string) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) auditEvents(event string) []map[string]any {
	e.t.Helper()
	rows, err := e.db.Query(`SELECT actor, details FROM audit_events WHERE event = $1 ORDER BY id`, event)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		var actor string
		var raw []byte
		if err := rows.Scan(&actor, &raw); err != nil {
			e.t.Fatal(err)
		}
		d := map[string]any{}
		if err := json.Unmarshal(raw, &d); err != nil {
			e.t.Fatal(err)
		}
		d["_actor"] = actor
		out = append(out, d)
	}
	return out
}

func openJSON(fields map[string]any) string {
	b, _ := json.Marshal(fields)
	return string(b)
}

var validOpen = openJSON(map[string]any{"action": "reinstall_vps", "customer_id": "C-1042", "server_id": "srv-1",
	"reason": "customer locked out after a bad kernel upgrade", "pin": testPIN})

func TestAgentAuthRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	wrong, err := agentauth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, auth string
	}{
		{"no header", ""},
		{"basic scheme", "Basic dXNlcjpwYXNz"},
		{"empty bearer", "Bearer "},
		{"malformed token", "Bearer not-a-vigil-token"},
		{"token with wrong case", "Bearer " + strings.ToUpper(e.tokens["ag_req"])},
		{"well-formed but unknown token", "Bearer " + wrong},
		{"disabled agent's token", "Bearer " + e.tokens["ag_off"]},
		{"admin token on the agent API", "Bearer " + adminToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs, audits := e.count("requests"), e.count("audit_events")
			for _, c := range []struct{ method, path, body string }{
				{"POST", "/api/v1/requests", validOpen},
				{"GET", "/api/v1/me", ""},
				{"GET", "/api/v1/requests", ""},
				{"POST", "/api/v1/requests/req_abc/veto", `{"reason":"x"}`},
			} {
				ct := ""
				if c.body != "" {
					ct = "application/json"
				}
				res := e.call(c.method, c.path, tt.auth, ct, c.body)
				if res.status != http.StatusUnauthorized {
					t.Fatalf("%s %s: status %d, want 401: %s", c.method, c.path, res.status, res.body)
				}
				if p := res.problem(t); p.Code != "unauthenticated" {
					t.Fatalf("code %q, want unauthenticated", p.Code)
				}
				if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
					t.Fatalf("WWW-Authenticate = %q", res.header.Get("WWW-Authenticate"))
				}
			}
			if n := e.count("requests"); n != reqs {
				t.Fatalf("requests rows %d -> %d", reqs, n)
			}
			if n := e.count("audit_events"); n != audits {
				t.Fatalf("audit rows %d -> %d", audits, n)
			}
		})
	}
	// The tokens themselves never reach the log.
	e.srv.Close()
	for id, tok := range e.tokens {
		if strings.Contains(e.logs.String(), tok) {
			t.Fatalf("token of %s appears in the log", id)
		}
	}
}

func TestMe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "", Options{})
	res := e.as("ag_req", "GET", "/api/v1/me", "")
	if res.status != http.StatusOK {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	var got map[string]any
	if err := json.Unmarshal(res.body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": "ag_req", "name": "Rita Requester", "email": "rita@vigil.test", "team": "Support",
		"role": "agent", "slack_user_id": "U0RITA"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("me = %v, want %v", got, want)
	}
	if res.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control = %q", res.header.Get("Cache-Control"))
	}
}

func TestBodyRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{OpenLimit: ratelimit.Limit{PerMinute: 600, Burst: 100}})
	big := `{"action":"reinstall_vps","customer_id":"C-1042","server_id":"srv-1","pin":"` + testPIN + `","reason":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantCode    string
	}{
		{"unknown field", "application/json", `{"action":"disable_2fa","customer_id":"C-1042","reason":"r","pin":"` + testPIN + `","color":"red"}`, 400, "invalid_input"},
		{"requester in the body", "application/json", `{"action":"disable_2fa","customer_id":"C-1042","reason":"r","pin":"` + testPIN + `","requester_id":"ag_senior"}`, 400, "invalid_input"},
		{"trailing data", "application/json", validOpen + `{"x":1}`, 400, "invalid_input"},
		{"trailing garbage", "application/json", validOpen + `garbage`, 400, "invalid_input"},
		{"malformed JSON", "application/json", `{"action":`, 400, "invalid_input"},
		{"not an object", "application/json", `[1,2]`, 400, "invalid_input"},
		{"empty body", "application/json", ``, 400, "invalid_input"},
		{"PIN as a number", "application/json", `{"action":"disable_2fa","customer_id":"C-1042","reason":"r","pin":` + testPIN + `}`, 400, "invalid_input"},
		{"body over 64 KiB", "application/json", big, 413, "body_too_large"},
		{"text/plain", "text/plain", validOpen, 415, "unsupported_media_type"},
		{"form", "application/x-www-form-urlencoded", "action=disable_2fa", 415, "unsupported_media_type"},
		{"no content type", "", validOpen, 415, "unsupported_media_type"},
		{"json with charset is fine until validation", "application/json; charset=utf-8", `{"action":"nope","customer_id":"C-1042","reason":"r","pin":"` + testPIN + `"}`, 400, "invalid_input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs := e.count("requests")
			res := e.call("POST", "/api/v1/requests", "Bearer "+e.tokens["ag_req"], tt.contentType, tt.body)
			if res.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			if p := res.problem(t); p.Code != tt.wantCode {
				t.Fatalf("code %q, want %q (%s)", p.Code, tt.wantCode, p.Detail)
			}
			if strings.Contains(string(res.body), testPIN) {
				t.Fatalf("response quotes the PIN: %s", res.body)
			}
			if n := e.count("requests"); n != reqs {
				t.Fatalf("requests rows %d -> %d", reqs, n)
			}
		})
	}
}

func TestOpenRefusedBeforeTemporal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	tests := []struct {
		name       string
		body       map[string]any
		wantStatus int
		wantCode   string
	}{
		{"unknown customer", map[string]any{"action": "disable_2fa", "customer_id": "C-9999", "reason": "lost phone", "pin": testPIN}, 404, "unknown_customer"},
		{"server of someone else", map[string]any{"action": "reinstall_vps", "customer_id": "C-1042", "server_id": "srv-9", "reason": "broken", "pin": testPIN}, 404, "unknown_server"},
		{"empty reason", map[string]any{"action": "disable_2fa", "customer_id": "C-1042", "reason": "", "pin": testPIN}, 400, "invalid_input"},
		{"blank reason", map[string]any{"action": "disable_2fa", "customer_id": "C-1042", "reason": "   ", "pin": testPIN}, 400, "invalid_input"},
		{"invalid email", map[string]any{"action": "add_contact_email", "customer_id": "C-1042", "email": "not an email", "reason": "new admin", "pin": testPIN}, 400, "invalid_input"},
		{"email with display name", map[string]any{"action": "change_account_email", "customer_id": "C-1042", "email": "Eve <eve@evil.test>", "reason": "r", "pin": testPIN}, 400, "invalid_input"},
		{"unknown action", map[string]any{"action": "delete_everything", "customer_id": "C-1042", "reason": "r", "pin": testPIN}, 400, "invalid_input"},
		{"missing PIN", map[string]any{"action": "disable_2fa", "customer_id": "C-1042", "reason": "r"}, 400, "invalid_input"},
		{"malformed PIN", map[string]any{"action": "disable_2fa", "customer_id": "C-1042", "reason": "r", "pin": testPIN + "!"}, 400, "invalid_input"},
		{"server on a non-server action", map[string]any{"action": "disable_2fa", "customer_id": "C-1042", "server_id": "srv-1", "reason": "r", "pin": testPIN}, 400, "invalid_input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs, audits := e.count("requests"), e.count("audit_events")
			res := e.as("ag_req", "POST", "/api/v1/requests", openJSON(tt.body))
			if res.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			if p := res.problem(t); p.Code != tt.wantCode {
				t.Fatalf("code %q, want %q (%s)", p.Code, tt.wantCode, p.Detail)
			}
			if n := e.count("requests"); n != reqs {
				t.Fatalf("requests rows %d -> %d", reqs, n)
			}
			if n := e.count("audit_events"); n != audits {
				t.Fatalf("audit rows %d -> %d", audits, n)
			}
		})
	}
}

func TestPINNeverLeaks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	var bodies []string
	for _, body := range []string{
		openJSON(map[string]any{"action": "disable_2fa", "customer_id": "C-404", "reason": "r", "pin": testPIN}),
		openJSON(map[string]any{"action": "add_contact_email", "customer_id": "C-1042", "email": "bad", "reason": "r", "pin": testPIN}),
		openJSON(map[string]any{"action": "disable_2fa", "customer_id": "C-1042", "reason": "", "pin": testPIN}),
		openJSON(map[string]any{"action": "disable_2fa", "customer_id": "C-1042", "reason": "r", "pin": testPIN + "$$"}),
		openJSON(map[string]any{"action": "disable_2fa", "customer_id": "C-1042", "reason": "r", "pin": testPIN, "extra": testPIN}),
		`{"action":"disable_2fa","customer_id":"C-1042","reason":"r","pin":` + testPIN + `}`,
		`{"action":"disable_2fa","customer_id":"C-1042","reason":"r","pin":"` + testPIN + `"} ` + testPIN,
		`{"pin":"` + testPIN + `",`,
	} {
		res := e.as("ag_req", "POST", "/api/v1/requests", body)
		if res.status < 400 {
			t.Fatalf("body %d accepted with %d", len(bodies), res.status)
		}
		bodies = append(bodies, string(res.body))
	}
	e.srv.Close() // waits for handlers, so every log line is written
	for i, b := range bodies {
		if strings.Contains(b, testPIN) {
			t.Errorf("response %d contains the PIN: %s", i, b)
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "/api/v1/requests") {
		t.Fatalf("access log missing: %q", logs)
	}
	if strings.Contains(logs, testPIN) {
		t.Fatalf("log contains the PIN:\n%s", logs)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{
		OpenLimit:    ratelimit.Limit{PerMinute: 1, Burst: 2},
		GeneralLimit: ratelimit.Limit{PerMinute: 1, Burst: 3},
	})
	unknownCust := openJSON(map[string]any{"action": "disable_2fa", "customer_id": "C-404", "reason": "r", "pin": testPIN})
	for i := range 2 {
		if res := e.as("ag_req", "POST", "/api/v1/requests", unknownCust); res.status != http.StatusNotFound {
			t.Fatalf("open %d: status %d, want 404: %s", i, res.status, res.body)
		}
	}
	res := e.as("ag_req", "POST", "/api/v1/requests", unknownCust)
	if res.status != http.StatusTooManyRequests {
		t.Fatalf("third open: status %d, want 429: %s", res.status, res.body)
	}
	if p := res.problem(t); p.Code != "rate_limited" {
		t.Fatalf("code %q", p.Code)
	}
	if s, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Fatalf("Retry-After = %q", res.header.Get("Retry-After"))
	}
	// The open bucket is separate from the general one, and per agent.
	if res := e.as("ag_req", "GET", "/api/v1/me", ""); res.status != http.StatusOK {
		t.Fatalf("me after open limit: %d", res.status)
	}
	if res := e.as("ag_senior", "POST", "/api/v1/requests", unknownCust); res.status != http.StatusNotFound {
		t.Fatalf("other agent's open: %d", res.status)
	}
	for i := range 2 {
		if res := e.as("ag_req", "GET", "/api/v1/me", ""); res.status != http.StatusOK {
			t.Fatalf("me %d: %d", i, res.status)
		}
	}
	res = e.as("ag_req", "GET", "/api/v1/me", "")
	if res.status != http.StatusTooManyRequests || res.header.Get("Retry-After") == "" {
		t.Fatalf("fourth me: status %d Retry-After %q", res.status, res.header.Get("Retry-After"))
	}
}

func TestCreateAgentTokenWorks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	res := e.admin("POST", "/admin/v1/agents", `{"id":"ag_jane","name":"Jane Doe","email":"jane@vigil.test","team":"Night shift","role":"senior","slack_user_id":"U0JANE"}`)
	if res.status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	if loc := res.header.Get("Location"); loc != "/admin/v1/agents/ag_jane" {
		t.Fatalf("Location = %q", loc)
	}
	var created AgentWithToken
	if err := json.Unmarshal(res.body, &created); err != nil {
		t.Fatal(err)
	}
	if !agentauth.WellFormed(created.Token) {
		t.Fatalf("token %q is not well formed", created.Token)
	}
	if created.Agent.ID != "ag_jane" || created.Agent.Role != domain.RoleSenior || created.Agent.Team != "Night shift" || created.Agent.Disabled {
		t.Fatalf("agent = %+v", created.Agent)
	}
	me := e.call("GET", "/api/v1/me", "Bearer "+created.Token, "", "")
	if me.status != http.StatusOK || !strings.Contains(string(me.body), `"id":"ag_jane"`) {
		t.Fatalf("me with the new token: %d %s", me.status, me.body)
	}
	// Shown once: the listing and the audit trail never carry it.
	list := e.admin("GET", "/admin/v1/agents", "")
	if list.status != http.StatusOK || strings.Contains(string(list.body), created.Token) || !strings.Contains(string(list.body), "ag_jane") {
		t.Fatalf("list: %d %s", list.status, list.body)
	}
	ev := e.auditEvents("agent.created")
	if len(ev) != 1 || ev[0]["_actor"] != "admin:ag_root" || ev[0]["agent_id"] != "ag_jane" {
		t.Fatalf("audit = %v", ev)
	}
	var raw string
	if err := e.db.QueryRow(`SELECT string_agg(details::text, ' ') FROM audit_events`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(raw, created.Token) {
		t.Fatal("token in the audit trail")
	}
	if dup := e.admin("POST", "/admin/v1/agents", `{"id":"ag_jane","name":"Again","role":"agent"}`); dup.status != http.StatusConflict || dup.problem(t).Code != "conflict" {
		t.Fatalf("duplicate: %d %s", dup.status, dup.body)
	}
	for _, bad := range []string{
		`{"id":"","name":"X","role":"agent"}`,
		`{"id":"ag x","name":"X","role":"agent"}`,
		`{"id":"ag_y","name":"","role":"agent"}`,
		`{"id":"ag_y","name":"Y","role":"boss"}`,
		`{"id":"ag_y","name":"Y","role":"agent","email":"nope"}`,
		`{"id":"ag_y","name":"Y","role":"agent","token":"vgl_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`,
	} {
		if res := e.admin("POST", "/admin/v1/agents", bad); res.status != http.StatusBadRequest || res.problem(t).Code != "invalid_input" {
			t.Fatalf("%s: %d %s", bad, res.status, res.body)
		}
	}
	if _, err := e.st.Agent(context.Background(), "ag_y"); err == nil {
		t.Fatal("invalid agent was created")
	}
}

func TestDisableAndRotate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	old := e.tokens["ag_req"]
	if res := e.as("ag_req", "GET", "/api/v1/me", ""); res.status != http.StatusOK {
		t.Fatalf("before rotation: %d", res.status)
	}
	rot := e.admin("POST", "/admin/v1/agents/ag_req/token", "")
	if rot.status != http.StatusOK {
		t.Fatalf("rotate: %d %s", rot.status, rot.body)
	}
	// The answer carries no token; ag_req's new one is in the direct
	// message queued for them.
	got := AgentWithToken{Token: e.queuedDMToken("U0RITA")}
	if got.Token == old || !agentauth.WellFormed(got.Token) {
		t.Fatalf("rotated token %q", got.Token)
	}
	if res := e.call("GET", "/api/v1/me", "Bearer "+old, "", ""); res.status != http.StatusUnauthorized {
		t.Fatalf("old token after rotation: %d", res.status)
	}
	if res := e.call("GET", "/api/v1/me", "Bearer "+got.Token, "", ""); res.status != http.StatusOK {
		t.Fatalf("new token: %d", res.status)
	}

	dis := e.admin("POST", "/admin/v1/agents/ag_req/disable", "")
	if dis.status != http.StatusOK || !strings.Contains(string(dis.body), `"disabled":true`) {
		t.Fatalf("disable: %d %s", dis.status, dis.body)
	}
	if res := e.call("GET", "/api/v1/me", "Bearer "+got.Token, "", ""); res.status != http.StatusUnauthorized || res.problem(t).Code != "unauthenticated" {
		t.Fatalf("token of a disabled agent: %d %s", res.status, res.body)
	}
	for _, ev := range []string{"agent.token_rotated", "agent.disabled"} {
		if a := e.auditEvents(ev); len(a) != 1 || a[0]["_actor"] != "admin:ag_root" || a[0]["agent_id"] != "ag_req" {
			t.Fatalf("%s audit = %v", ev, a)
		}
	}
	for _, c := range []struct {
		method, path, body string
		want               int
		code               string
	}{
		{"POST", "/admin/v1/agents/ag_nobody/disable", "", 404, "agent_not_found"},
		{"POST", "/admin/v1/agents/ag_nobody/token", "", 404, "agent_not_found"},
		{"POST", "/admin/v1/agents/ag_req/disable", `{"force":true}`, 400, "invalid_input"},
		{"PATCH", "/admin/v1/agents/ag_nobody", `{"role":"senior"}`, 404, "agent_not_found"},
		{"PATCH", "/admin/v1/agents/ag_senior", `{"role":"overlord"}`, 400, "invalid_input"},
		{"PATCH", "/admin/v1/agents/ag_senior", `{"name":"Renamed"}`, 400, "invalid_input"},
		{"DELETE", "/admin/v1/agents/ag_senior", "", 405, "method_not_allowed"},
		{"GET", "/admin/v1/unknown", "", 404, "not_found"},
	} {
		res := e.admin(c.method, c.path, c.body)
		if res.status != c.want || res.problem(t).Code != c.code {
			t.Fatalf("%s %s: %d %s, want %d %s", c.method, c.path, res.status, res.body, c.want, c.code)
		}
	}
}

func TestPatchRole(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	res := e.admin("PATCH", "/admin/v1/agents/ag_req", `{"role":"senior"}`)
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"role":"senior"`) {
		t.Fatalf("patch: %d %s", res.status, res.body)
	}
	ag, err := e.st.Agent(context.Background(), "ag_req")
	if err != nil || ag.Role != domain.RoleSenior {
		t.Fatalf("stored role %q, %v", ag.Role, err)
	}
	ev := e.auditEvents("agent.role_changed")
	if len(ev) != 1 || ev[0]["previous_role"] != "agent" || ev[0]["role"] != "senior" || ev[0]["_actor"] != "admin:ag_root" {
		t.Fatalf("audit = %v", ev)
	}
}

func TestImportCustomer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	hash, err := pinhash.Hash("424242", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	body := func(pinHash string, extra string) string {
		return `{"name":"Globex","primary_email":"ops@globex.test","pin_hash":"` + pinHash + `",` +
			`"contacts":[{"email":"cto@globex.test","added_at":"2024-01-02T03:04:05Z","verified_at":"2024-01-03T00:00:00Z"}],` +
			`"servers":["srv-g1","srv-g2"]` + extra + `}`
	}
	tests := []struct {
		name string
		body string
		code string
	}{
		{"plain PIN instead of a hash", body("424242", ""), "invalid_input"},
		{"bcrypt hash", body("$2a$10$abcdefghijklmnopqrstuu", ""), "invalid_input"},
		{"argon2id without its key", body(hash[:strings.LastIndex(hash, "$")], ""), "invalid_input"},
		{"argon2id with a short key", body(hash[:strings.LastIndex(hash, "$")+10], ""), "invalid_input"},
		{"absurd cost", body("$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA", ""), "invalid_input"},
		{"missing hash", body("", ""), "invalid_input"},
		{"id in the body", body(hash, `,"id":"C-7"`), "invalid_input"},
		{"bad contact", strings.Replace(body(hash, ""), "cto@globex.test", "cto at globex", 1), "invalid_input"},
		{"bad time", strings.Replace(body(hash, ""), "2024-01-02T03:04:05Z", "yesterday", 1), "invalid_input"},
		{"bad primary email", strings.Replace(body(hash, ""), "ops@globex.test", "", 1), "invalid_input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.admin("PUT", "/admin/v1/customers/C-7", tt.body)
			if res.status != http.StatusBadRequest {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			p := res.problem(t)
			if p.Code != tt.code {
				t.Fatalf("code %q (%s)", p.Code, p.Detail)
			}
			if strings.Contains(p.Detail, "aGFzaGhh") || (len(hash) > 30 && strings.Contains(p.Detail, hash[len(hash)-30:])) {
				t.Fatalf("problem quotes the hash: %s", p.Detail)
			}
			if _, err := e.st.Customer(context.Background(), "C-7"); err == nil {
				t.Fatal("customer imported despite the error")
			}
		})
	}
	res := e.admin("PUT", "/admin/v1/customers/C-7", body(hash, ""))
	if res.status != http.StatusOK {
		t.Fatalf("import: %d %s", res.status, res.body)
	}
	if strings.Contains(string(res.body), hash) || strings.Contains(string(res.body), "pin_hash") {
		t.Fatalf("answer shows the hash: %s", res.body)
	}
	var c Customer
	if err := json.Unmarshal(res.body, &c); err != nil {
		t.Fatal(err)
	}
	if c.ID != "C-7" || c.PrimaryEmail != "ops@globex.test" || len(c.Servers) != 2 || len(c.Contacts) != 1 || c.Contacts[0].VerifiedAt == nil {
		t.Fatalf("customer = %+v", c)
	}
	if ok, err := e.st.ServerBelongsTo(context.Background(), "C-7", "srv-g2"); err != nil || !ok {
		t.Fatalf("server not imported: %v %v", ok, err)
	}
	ev := e.auditEvents("customer.imported")
	if len(ev) != 1 || ev[0]["customer_id"] != "C-7" || ev[0]["_actor"] != "admin:ag_root" {
		t.Fatalf("audit = %v", ev)
	}
	e.srv.Close()
	if strings.Contains(e.logs.String(), hash) {
		t.Fatal("PIN hash in the log")
	}
}

func TestListRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	ctx := context.Background()
	hash, _ := pinhash.Hash("1111", pinhash.TestParams())
	if err := e.st.UpsertCustomer(ctx, store.CustomerImport{ID: "C-2", PrimaryEmail: "b@b.test", PINHash: hash}); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	ended := base.Add(time.Hour)
	for i, r := range []store.Request{
		{ID: "req_a1", Action: domain.ActionDisable2FA, CustomerID: "C-1042", RequesterID: "ag_req", Reason: "one", Status: domain.StatusAwaitingApproval},
		{ID: "req_a2", Action: domain.ActionReinstallVPS, CustomerID: "C-1042", RequesterID: "ag_senior", ServerID: "srv-1", Reason: "two", Status: domain.StatusCooling},
		{ID: "req_a3", Action: domain.ActionDisable2FA, CustomerID: "C-2", RequesterID: "ag_req", Reason: "three", Status: domain.StatusCancelled, CancelledBy: "customer", CancelReason: "not me", EndedAt: &ended},
	} {
		r.WorkflowID = "wf-" + r.ID
		r.CreatedAt = base.Add(time.Duration(i) * time.Minute)
		if err := e.st.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		query string
		want  []string
	}{
		// ag_req is an agent: req_a2, ag_senior's, is never shown to them.
		{"", []string{"req_a3", "req_a1"}},
		{"?mine=true", []string{"req_a3", "req_a1"}},
		{"?mine=false", []string{"req_a3", "req_a1"}},
		{"?open=true", []string{"req_a1"}},
		{"?mine=true&open=true", []string{"req_a1"}},
		{"?customer=C-2", []string{"req_a3"}},
		{"?limit=1", []string{"req_a3"}},
	}
	for _, tt := range tests {
		res := e.as("ag_req", "GET", "/api/v1/requests"+tt.query, "")
		if res.status != http.StatusOK {
			t.Fatalf("%s: %d %s", tt.query, res.status, res.body)
		}
		var out struct{ Requests []Request }
		if err := json.Unmarshal(res.body, &out); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range out.Requests {
			ids = append(ids, r.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(tt.want) {
			t.Fatalf("%s: ids %v, want %v", tt.query, ids, tt.want)
		}
		for _, r := range out.Requests {
			if r.ID == "req_a3" && (!r.Final || r.Cancellation == nil || r.Cancellation.By != "customer" || r.EndedAt == nil || r.Reason != "three") {
				t.Fatalf("req_a3 rendered as %+v", r)
			}
		}
	}
	empty := e.as("ag_req", "GET", "/api/v1/requests?customer=C-none", "")
	if empty.status != http.StatusOK || !strings.Contains(string(empty.body), `"requests":[]`) {
		t.Fatalf("empty list: %d %s", empty.status, empty.body)
	}
	for _, q := range []string{"?mine=yes", "?limit=0", "?limit=501", "?limit=x", "?status=open", "?customer=a%20b", "?mine=true&mine=false"} {
		res := e.as("ag_req", "GET", "/api/v1/requests"+q, "")
		if res.status != http.StatusBadRequest || res.problem(t).Code != "invalid_input" {
			t.Fatalf("%s: %d %s", q, res.status, res.body)
		}
	}
}

func TestRefusedBeforeTemporal(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	ctx := context.Background()
	if err := e.st.CreateRequest(ctx, store.Request{ID: "req_v1", WorkflowID: "wf-v1", Action: domain.ActionDisable2FA,
		CustomerID: "C-1042", RequesterID: "ag_req", Reason: "r", Status: domain.StatusCooling}); err != nil {
		t.Fatal(err)
	}
	tok, err := agentauth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateAgent(ctx, store.Agent{ID: "ag_other", Name: "Otto Other", Role: domain.RoleAgent}, agentauth.Hash(tok)); err != nil {
		t.Fatal(err)
	}
	e.tokens["ag_other"] = tok
	tests := []struct {
		name, as, method, path, body string
		want                         int
		code                         string
	}{
		{"veto by a non-senior", "ag_req", "POST", "/api/v1/requests/req_v1/veto", `{"reason":"looks odd"}`, 403, "not_senior"},
		{"withdraw without reason", "ag_req", "POST", "/api/v1/requests/req_v1/withdraw", `{"reason":" "}`, 400, "invalid_input"},
		{"withdraw with unknown field", "ag_req", "POST", "/api/v1/requests/req_v1/withdraw", `{"reason":"x","by":"senior"}`, 400, "invalid_input"},
		{"veto without body", "ag_senior", "POST", "/api/v1/requests/req_v1/veto", ``, 415, "unsupported_media_type"},
		{"status of a malformed id", "ag_req", "GET", "/api/v1/requests/bogus", "", 404, "request_not_found"},
		{"withdraw a malformed id", "ag_req", "POST", "/api/v1/requests/nope/withdraw", `{"reason":"x"}`, 404, "request_not_found"},
		{"repost a malformed id", "ag_req", "POST", "/api/v1/requests/nope/repost", "", 404, "request_not_found"},
		{"repost with a field", "ag_req", "POST", "/api/v1/requests/req_v1/repost", `{"channel":"C0ELSEWHERE"}`, 400, "invalid_input"},
		{"repost of another agent's request", "ag_other", "POST", "/api/v1/requests/req_v1/repost", "", 404, "request_not_found"},
		{"wrong method", "ag_req", "DELETE", "/api/v1/requests/req_v1", "", 405, "method_not_allowed"},
		{"unknown path", "ag_req", "GET", "/api/v1/whatever", "", 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			audits := e.count("audit_events")
			var res response
			if tt.body == "" && tt.method == "POST" {
				res = e.call(tt.method, tt.path, "Bearer "+e.tokens[tt.as], "", "")
			} else {
				res = e.as(tt.as, tt.method, tt.path, tt.body)
			}
			if res.status != tt.want {
				t.Fatalf("status %d, want %d: %s", res.status, tt.want, res.body)
			}
			if p := res.problem(t); p.Code != tt.code {
				t.Fatalf("code %q, want %q (%s)", p.Code, tt.code, p.Detail)
			}
			if n := e.count("audit_events"); n != audits {
				t.Fatalf("audit rows %d -> %d", audits, n)
			}
		})
	}
	r, err := e.st.Request(ctx, "req_v1")
	if err != nil || r.Status != domain.StatusCooling {
		t.Fatalf("request changed: %v %v", r.Status, err)
	}
}

func TestTemporalUnreachable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	ctx := context.Background()
	if err := e.st.CreateRequest(ctx, store.Request{ID: "req_t1", WorkflowID: "wf-t1", Action: domain.ActionDisable2FA,
		CustomerID: "C-1042", RequesterID: "ag_req", Reason: "r", Status: domain.StatusCooling}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, as, method, path, body string
	}{
		{"open", "ag_req", "POST", "/api/v1/requests", validOpen},
		{"status", "ag_req", "GET", "/api/v1/requests/req_t1", ""},
		{"withdraw", "ag_req", "POST", "/api/v1/requests/req_t1/withdraw", `{"reason":"customer changed their mind"}`},
		{"veto", "ag_senior", "POST", "/api/v1/requests/req_t1/veto", `{"reason":"suspicious"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.as(tt.as, tt.method, tt.path, tt.body)
			if res.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503: %s", res.status, res.body)
			}
			p := res.problem(t)
			if p.Code != "temporal_unavailable" || strings.Contains(p.Detail, "127.0.0.1") {
				t.Fatalf("problem %+v", p)
			}
			if ra := res.header.Get("Retry-After"); ra != "5" {
				t.Fatalf("Retry-After %q, want 5", ra)
			}
		})
	}
	if n := e.count("requests"); n != 1 {
		t.Fatalf("requests rows = %d, want 1", n)
	}
	e.srv.Close()
	if strings.Contains(e.logs.String(), testPIN) {
		t.Fatal("PIN in the log")
	}
}

// TestBodyOfUnknownLength covers a chunked body, which has no Content-Length
// to refuse up front: the limit trips while decoding.
func TestBodyOfUnknownLength(t *testing.T) {
	t.Parallel()
	big := `{"reason":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	tests := []struct {
		name string
		body string
		dst  any
		want string
	}{
		{"too large while decoding", big, &reasonBody{}, codeBodyTooLarge},
		{"too large in trailing data", `{"reason":"x"}` + strings.Repeat(" ", MaxBodyBytes), &reasonBody{}, codeBodyTooLarge},
		{"fits", `{"reason":"x"}`, &reasonBody{}, ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "/api/v1/requests/req_x/withdraw", io.NopCloser(strings.NewReader(tt.body)))
		r.ContentLength = -1
		r.Header.Set("Content-Type", "application/json")
		p := decodeJSON(httptest.NewRecorder(), r, tt.dst)
		switch {
		case tt.want == "" && p != nil:
			t.Errorf("%s: %+v", tt.name, *p)
		case tt.want != "" && (p == nil || p.Code != tt.want):
			t.Errorf("%s: got %+v, want %s", tt.name, p, tt.want)
		}
	}
}
