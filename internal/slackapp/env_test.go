package slackapp

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/slackstandin"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/testpg"
	"github.com/vigil-oss/vigil/workflows"
)

const (
	botToken      = "xoxb-slackapp-test-token"
	signingSecret = "slackapp-test-signing-secret-7f3a9c"
	requestID     = "req_k3v9q2x7m4p8w1z5"
)

// Slack users of the test workspace and the agents they are linked to.
const (
	userAlice = "U0ALICE" // ag_alice, senior, opened the request
	userBob   = "U0BOB"   // ag_bob, senior
	userCarol = "U0CAROL" // ag_carol, agent (not senior), in the group
	userDave  = "U0DAVE"  // no Vigil agent
	userErin  = "U0ERIN"  // ag_erin, senior but disabled
	userFrank = "U0FRANK" // ag_frank, senior, not in the seniors group
)

var fastRetry = approvals.RetryPolicy{Initial: 2 * time.Millisecond, Max: 10 * time.Millisecond, Attempts: 4}

// decideCall is one call the recording decider received.
type decideCall struct {
	id string
	in workflows.DecideInput
}

// recordingDecider is a test double for *requests.Service. These tests are
// about the endpoint's checks and refusals before any decision is made, so a
// recording double is enough here; the real decide Update through Temporal
// (validators included) is covered by the e2e test.
type recordingDecider struct {
	mu      sync.Mutex
	calls   []decideCall
	err     error         // returned by every call
	started chan struct{} // if set, receives once per call before it blocks
	release chan struct{} // if set, each call waits for it
}

func (d *recordingDecider) Decide(ctx context.Context, id string, in workflows.DecideInput) (workflows.Status, error) {
	d.mu.Lock()
	d.calls = append(d.calls, decideCall{id, in})
	err := d.err
	d.mu.Unlock()
	if d.started != nil {
		d.started <- struct{}{}
	}
	if d.release != nil {
		select {
		case <-d.release:
		case <-ctx.Done():
			return workflows.Status{}, ctx.Err()
		}
	}
	if err != nil {
		return workflows.Status{}, err
	}
	st := domain.StatusNotifying
	if in.Decision == domain.DecisionReject {
		st = domain.StatusRejected
	}
	return workflows.Status{RequestID: id, Status: st}, nil
}

func (d *recordingDecider) Calls() []decideCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]decideCall(nil), d.calls...)
}

// captured is an interaction request as the stand-in sent it.
type captured struct {
	body   []byte
	header http.Header
}

// env is a real Postgres store, a Slack stand-in reached by the real
// slack-go client, the handler under test served over loopback, and one
// request awaiting approval whose message sits at channel/ts.
type env struct {
	t          testing.TB
	st         *store.Store
	standin    *slackstandin.Server
	slack      *approvals.Client
	h          *Handler
	dec        *recordingDecider
	logs       *syncBuffer
	vigilURL   string
	standinURL string
	channel    string
	ts         string
	capturing  atomic.Bool
	captures   chan captured
}

// syncBuffer is a log sink safe for the handler's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newEnv(t testing.TB, cfg Config, dec *recordingDecider) *env {
	t.Helper()
	ctx := context.Background()
	st := store.New(testpg.New(t))
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	e := &env{t: t, st: st, dec: dec, logs: &syncBuffer{}, captures: make(chan captured, 1)}

	vigil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.capturing.Load() {
			body, _ := io.ReadAll(r.Body)
			e.captures <- captured{body: body, header: r.Header.Clone()}
			return
		}
		e.h.ServeHTTP(w, r)
	}))
	t.Cleanup(vigil.Close)
	e.vigilURL = vigil.URL + "/slack/interactions"

	sl, err := slackstandin.New(slackstandin.Config{
		BotToken: botToken, SigningSecret: signingSecret, InteractionURL: e.vigilURL,
		Users: []slackstandin.User{
			{ID: userAlice, Name: "alice"}, {ID: userBob, Name: "bob"}, {ID: userCarol, Name: "carol"},
			{ID: userDave, Name: "dave"}, {ID: userErin, Name: "erin"}, {ID: userFrank, Name: "frank"},
		},
		Groups: map[string][]string{"S0SENIORS": {userAlice, userBob, userCarol, userDave, userErin}},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("stand-in: %v", err)
	}
	e.standin = sl
	slackSrv := httptest.NewServer(sl.Handler())
	t.Cleanup(slackSrv.Close)
	e.standinURL = slackSrv.URL
	api := slack.New(botToken, slack.OptionAPIURL(e.standinURL+"/api/"))
	e.slack = approvals.NewClient(api, approvals.Config{
		ApprovalsChannel: "#vigil-approvals", SecurityChannel: "#security", UserGroup: "S0SENIORS",
	}, slog.New(slog.DiscardHandler), approvals.WithRetryPolicy(fastRetry))

	for _, a := range []store.Agent{
		{ID: "ag_alice", Name: "Alice", Role: domain.RoleSenior, SlackUserID: userAlice},
		{ID: "ag_bob", Name: "Bob", Role: domain.RoleSenior, SlackUserID: userBob},
		{ID: "ag_carol", Name: "Carol", Role: domain.RoleAgent, SlackUserID: userCarol},
		{ID: "ag_erin", Name: "Erin", Role: domain.RoleSenior, SlackUserID: userErin, Disabled: true},
		{ID: "ag_frank", Name: "Frank", Role: domain.RoleSenior, SlackUserID: userFrank},
	} {
		if err := st.CreateAgent(ctx, a, nil); err != nil {
			t.Fatalf("agent %s: %v", a.ID, err)
		}
	}
	if err := st.UpsertCustomer(ctx, store.CustomerImport{
		ID: "C-1042", PrimaryEmail: "dana@example.com", PINHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", Servers: []string{"srv-77"},
	}); err != nil {
		t.Fatalf("customer: %v", err)
	}
	e.channel, e.ts = e.postApproval("#vigil-approvals")
	if err := st.CreateRequest(ctx, store.Request{
		ID: requestID, WorkflowID: workflows.WorkflowID(requestID), Action: domain.ActionResendCredentials,
		CustomerID: "C-1042", RequesterID: "ag_alice", ServerID: "srv-77", Reason: "laptop stolen",
		Status: domain.StatusAwaitingApproval, SlackChannel: e.channel, SlackTS: e.ts,
	}); err != nil {
		t.Fatalf("request: %v", err)
	}

	cfg.SigningSecret = signingSecret
	if cfg.TeamID == "" {
		cfg.TeamID = slackstandin.DefaultTeamID
	}
	if cfg.AppID == "" {
		cfg.AppID = slackstandin.DefaultAppID
	}
	h, err := New(dec, st, e.slack, cfg, slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.h = h
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	return e
}

// postApproval posts the request's approval message to channel, as the
// workflow's activity does, and returns where it landed.
func (e *env) postApproval(channel string) (string, string) {
	c := e.slack
	if channel != "#vigil-approvals" {
		api := slack.New(botToken, slack.OptionAPIURL(e.standinURL+"/api/"))
		c = approvals.NewClient(api, approvals.Config{ApprovalsChannel: channel}, nil, approvals.WithRetryPolicy(fastRetry))
	}
	ch, ts, err := c.PostApproval(context.Background(), approvals.Request{
		ID: requestID, Action: domain.ActionResendCredentials, CustomerID: "C-1042", ServerID: "srv-77",
		RequesterSlackID: userAlice, Reason: "laptop stolen", ExpiresAt: time.Now().Add(time.Hour), CoolingPeriod: time.Hour,
	})
	if err != nil {
		e.fatalf("post approval: %v", err)
	}
	return ch, ts
}

// click presses a button as Slack does and returns the HTTP status.
func (e *env) click(channel, ts, action, user string) int {
	resp, err := e.standin.Click(context.Background(), channel, ts, action, user)
	if err != nil {
		e.fatalf("click: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// dialog clicks Reject as user and waits for the reject dialog Vigil opens
// for them in the stand-in.
func (e *env) dialog(user string) slackstandin.View {
	e.t.Helper()
	if got := e.click(e.channel, e.ts, "reject", user); got != 200 {
		e.fatalf("reject click: %d", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, v := range e.standin.Views() {
			if v.User == user {
				return v
			}
		}
		if time.Now().After(deadline) {
			e.fatalf("no dialog opened for %s after the Reject click:\n%s", user, e.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reject clicks Reject as user and submits the dialog with values.
func (e *env) reject(user string, values map[string]string) slackstandin.SubmitResult {
	e.t.Helper()
	v := e.dialog(user)
	res, err := e.standin.SubmitView(context.Background(), v.ID, values)
	if err != nil {
		e.fatalf("submit dialog: %v", err)
	}
	return res
}

// captureSubmission builds and signs the submission of view Slack would
// send, without delivering it to the handler.
func (e *env) captureSubmission(viewID string, values map[string]string) captured {
	e.capturing.Store(true)
	defer e.capturing.Store(false)
	if _, err := e.standin.SubmitView(context.Background(), viewID, values); err != nil {
		e.fatalf("capture submission: %v", err)
	}
	return <-e.captures
}

// capture builds and signs the click Slack would send, without delivering it
// to the handler.
func (e *env) capture(channel, ts, action, user string) captured {
	e.capturing.Store(true)
	defer e.capturing.Store(false)
	resp, err := e.standin.Click(context.Background(), channel, ts, action, user)
	if err != nil {
		e.fatalf("capture click: %v", err)
	}
	resp.Body.Close()
	return <-e.captures
}

// send delivers req and returns the status.
func send(req *http.Request) (int, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// sendSigned signs body at ts as Slack would and delivers it.
func (e *env) sendSigned(body []byte, ts time.Time) int {
	req, err := e.standin.SignedRequest(context.Background(), body, ts)
	if err != nil {
		e.fatalf("sign: %v", err)
	}
	code, err := send(req)
	if err != nil {
		e.fatalf("send: %v", err)
	}
	return code
}

// mutate rewrites fields of a captured click's payload and re-encodes it.
func (e *env) mutate(body []byte, change func(p map[string]any)) []byte {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		e.fatalf("captured body: %v", err)
	}
	var p map[string]any
	if err := json.Unmarshal([]byte(form.Get("payload")), &p); err != nil {
		e.fatalf("captured payload: %v", err)
	}
	change(p)
	js, err := json.Marshal(p)
	if err != nil {
		e.fatalf("encode payload: %v", err)
	}
	return []byte(url.Values{"payload": {string(js)}}.Encode())
}

// auditRow is an audit event as stored.
type auditRow struct {
	requestID, actor, event string
	details                 map[string]any
}

func (e *env) auditRows() []auditRow {
	// A decision's own record (decision.slack) is recordedDecisions' to
	// check: these are the refusals.
	rows, err := e.st.DB().Query(`SELECT COALESCE(request_id, ''), actor, event, details FROM audit_events WHERE event <> 'decision.slack' ORDER BY id`)
	if err != nil {
		e.fatalf("read audit: %v", err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		var raw []byte
		if err := rows.Scan(&r.requestID, &r.actor, &r.event, &raw); err != nil {
			e.fatalf("scan audit: %v", err)
		}
		if err := json.Unmarshal(raw, &r.details); err != nil {
			e.fatalf("audit details: %v", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		e.fatalf("read audit: %v", err)
	}
	return out
}

// drain waits for the handler's background work to finish.
func (e *env) drain() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.h.Shutdown(ctx); err != nil {
		e.fatalf("shutdown: %v", err)
	}
}

func (e *env) fatalf(format string, args ...any) {
	e.t.Helper()
	e.t.Fatalf(format, args...)
}

// recordedDecisions lists the decisions recorded for request as "agent
// decision", each by the Slack user mapped to its agent with a click ts
// and audited as decision.slack.
func (e *env) recordedDecisions(request string) []string {
	e.t.Helper()
	rows, err := e.st.DB().Query(`SELECT d.agent_id || ' ' || d.decision FROM decisions d JOIN agents a ON a.id = d.agent_id
		WHERE d.request_id = $1 AND d.slack_user = a.slack_user_id AND d.action_ts <> ''
		  AND EXISTS (SELECT 1 FROM audit_events v WHERE v.event = 'decision.slack' AND v.request_id = d.request_id
		      AND v.actor = 'agent:' || d.agent_id AND (v.details->>'decision_id')::bigint = d.id)
		ORDER BY d.id`, request)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}
