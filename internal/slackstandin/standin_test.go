package slackstandin

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
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

const (
	testToken  = "xoxb-test-0123456789-abcdef"
	testSecret = "8f742231b10e8888abcd99yyyzzz85a5"
)

// received is one interaction request as Vigil's endpoint saw it.
type received struct {
	verifyErr error
	callback  slack.InteractionCallback
	parseErr  error
	header    http.Header
	body      []byte
}

// fixture is a stand-in served over loopback, a slack-go client pointed at it
// and a receiver playing Vigil's interaction endpoint.
type fixture struct {
	srv     *Server
	http    *httptest.Server
	api     *slack.Client
	clicks  chan received
	vigil   *httptest.Server
	baseURL string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clicks: make(chan received, 10)}
	f.vigil = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := received{header: r.Header.Clone(), body: body}
		sv, err := slack.NewSecretsVerifier(r.Header, testSecret)
		if err == nil {
			_, _ = sv.Write(body)
			err = sv.Ensure()
		}
		rec.verifyErr = err
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec.callback, rec.parseErr = slack.InteractionCallbackParse(r)
		f.clicks <- rec
		if rec.verifyErr != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(f.vigil.Close)
	srv, err := New(Config{
		BotToken: testToken, SigningSecret: testSecret, TeamID: "T0TEST", AppID: "A0TEST",
		InteractionURL: f.vigil.URL + "/slack/interactions",
		Users: []User{
			{ID: "U0ALICE", Name: "alice", RealName: "Alice Moreau"},
			{ID: "U0BOB", Name: "bob", RealName: "Bob Lindqvist"},
		},
		Groups: map[string][]string{"S0SENIORS": {"U0BOB"}},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.srv = srv
	f.http = httptest.NewServer(srv.Handler())
	t.Cleanup(f.http.Close)
	f.baseURL = f.http.URL
	f.api = slack.New(testToken, slack.OptionAPIURL(f.http.URL+"/api/"))
	return f
}

func approvalBlocks(value string) []slack.Block {
	approve := slack.NewButtonBlockElement("approve", value, slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false)).
		WithStyle(slack.StylePrimary).
		WithConfirm(slack.NewConfirmationBlockObject(
			slack.NewTextBlockObject(slack.PlainTextType, "Approve?", false, false),
			slack.NewTextBlockObject(slack.PlainTextType, "Approve request "+value+"?", false, false),
			slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false),
			slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false)))
	reject := slack.NewButtonBlockElement("reject", value, slack.NewTextBlockObject(slack.PlainTextType, "Reject", false, false)).
		WithStyle(slack.StyleDanger)
	return []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "Request by <@U0ALICE> &amp; friends", false, false), nil, nil),
		slack.NewActionBlock("decision", approve, reject),
	}
}

var tsPattern = regexp.MustCompile(`^\d{10}\.\d{6}$`)

func TestPostUpdateEphemeral(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	ch, ts, err := f.api.PostMessageContext(ctx, "#vigil-approvals",
		slack.MsgOptionText("approval needed", false), slack.MsgOptionBlocks(approvalBlocks("req-1")...))
	if err != nil {
		t.Fatalf("PostMessage: %v", err)
	}
	if ch != "C0VIGILAPPROVALS" || !tsPattern.MatchString(ts) {
		t.Fatalf("PostMessage returned channel %q ts %q", ch, ts)
	}
	_, ts2, err := f.api.PostMessageContext(ctx, ch, slack.MsgOptionText("still waiting", false), slack.MsgOptionTS(ts))
	if err != nil {
		t.Fatalf("thread reply: %v", err)
	}
	if ts2 <= ts {
		t.Errorf("second ts %s is not after first %s", ts2, ts)
	}

	msgs := f.srv.Messages()
	if len(msgs) != 2 {
		t.Fatalf("got %d messages, want 2", len(msgs))
	}
	if msgs[0].Text != "approval needed" || msgs[0].Channel != ch || msgs[0].TS != ts || msgs[0].Updated != 0 {
		t.Errorf("first message = %+v", msgs[0])
	}
	if msgs[1].ThreadTS != ts {
		t.Errorf("reply thread_ts = %q, want %q", msgs[1].ThreadTS, ts)
	}
	var blocks slack.Blocks
	if err := json.Unmarshal(msgs[0].Blocks, &blocks); err != nil {
		t.Fatalf("stored blocks do not parse: %v", err)
	}
	if len(blocks.BlockSet) != 2 || blocks.BlockSet[0].ID() == "" {
		t.Fatalf("stored blocks = %s (want 2 blocks, each with a block_id)", msgs[0].Blocks)
	}

	// Text-only update keeps the blocks, as Slack does.
	if _, _, _, err := f.api.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText("edited", false)); err != nil {
		t.Fatalf("UpdateMessage (text): %v", err)
	}
	if m := f.srv.Messages()[0]; m.Text != "edited" || len(buttons(m.Blocks)) != 2 || m.Updated != 1 {
		t.Errorf("after text update: text %q, %d buttons, updated %d", m.Text, len(buttons(m.Blocks)), m.Updated)
	}
	done := slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "✅ Approved", false, false), nil, nil)
	if _, _, _, err := f.api.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText("approved", false), slack.MsgOptionBlocks(done)); err != nil {
		t.Fatalf("UpdateMessage (blocks): %v", err)
	}
	m := f.srv.Messages()[0]
	if m.Text != "approved" || m.Updated != 2 || len(buttons(m.Blocks)) != 0 || !strings.Contains(string(m.Blocks), "✅ Approved") {
		t.Errorf("after blocks update: %+v blocks %s", m, m.Blocks)
	}
	_, _, _, err = f.api.UpdateMessageContext(ctx, ch, "1.000001", slack.MsgOptionText("x", false))
	if !isSlackError(err, "message_not_found") {
		t.Errorf("update of unknown ts: err = %v, want message_not_found", err)
	}

	ets, err := f.api.PostEphemeralContext(ctx, ch, "U0ALICE", slack.MsgOptionText("only you", false))
	if err != nil {
		t.Fatalf("PostEphemeral: %v", err)
	}
	eph := f.srv.Ephemerals("U0ALICE")
	if len(eph) != 1 || eph[0].TS != ets || eph[0].Text != "only you" || !eph[0].Ephemeral || eph[0].Channel != ch {
		t.Errorf("ephemerals for alice = %+v (ts %s)", eph, ets)
	}
	if got := f.srv.Ephemerals("U0BOB"); len(got) != 0 {
		t.Errorf("bob sees %d ephemerals, want 0", len(got))
	}
	if len(f.srv.Messages()) != 2 {
		t.Errorf("ephemeral leaked into channel messages")
	}
	if _, err := f.api.PostEphemeralContext(ctx, ch, "U0NOBODY", slack.MsgOptionText("x", false)); !isSlackError(err, "user_not_found") {
		t.Errorf("ephemeral to unknown user: err = %v, want user_not_found", err)
	}
	if got := f.srv.Calls("chat.update"); got != 3 {
		t.Errorf("Calls(chat.update) = %d, want 3", got)
	}
}

func isSlackError(err error, code string) bool {
	var se slack.SlackErrorResponse
	return errors.As(err, &se) && se.Err == code
}

func TestUsersAndGroups(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u, err := f.api.GetUserInfoContext(ctx, "U0ALICE")
	if err != nil {
		t.Fatalf("GetUserInfo: %v", err)
	}
	if u.ID != "U0ALICE" || u.Name != "alice" || u.RealName != "Alice Moreau" || u.TeamID != "T0TEST" || u.Profile.RealName != "Alice Moreau" {
		t.Errorf("user = %+v", u)
	}
	if _, err := f.api.GetUserInfoContext(ctx, "U0NOBODY"); !isSlackError(err, "user_not_found") {
		t.Errorf("unknown user: err = %v, want user_not_found", err)
	}
	members, err := f.api.GetUserGroupMembersContext(ctx, "S0SENIORS")
	if err != nil {
		t.Fatalf("GetUserGroupMembers: %v", err)
	}
	if len(members) != 1 || members[0] != "U0BOB" {
		t.Errorf("members = %v, want [U0BOB]", members)
	}
	if _, err := f.api.GetUserGroupMembersContext(ctx, "S0NOPE"); !isSlackError(err, "no_such_subteam") {
		t.Errorf("unknown group: err = %v, want no_such_subteam", err)
	}
	auth, err := f.api.AuthTestContext(ctx)
	if err != nil || auth.TeamID != "T0TEST" || auth.UserID != botUserID {
		t.Errorf("auth.test = %+v, %v", auth, err)
	}
}

func TestInvalidAuth(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bad := slack.New("xoxb-wrong", slack.OptionAPIURL(f.http.URL+"/api/"))
	calls := map[string]func() error{
		"auth.test": func() error { _, err := bad.AuthTestContext(ctx); return err },
		"chat.postMessage": func() error {
			_, _, err := bad.PostMessageContext(ctx, "#x", slack.MsgOptionText("hi", false))
			return err
		},
		"users.info":            func() error { _, err := bad.GetUserInfoContext(ctx, "U0ALICE"); return err },
		"usergroups.users.list": func() error { _, err := bad.GetUserGroupMembersContext(ctx, "S0SENIORS"); return err },
	}
	for method, call := range calls {
		t.Run(method, func(t *testing.T) {
			if err := call(); !isSlackError(err, "invalid_auth") {
				t.Errorf("err = %v, want invalid_auth", err)
			}
			if f.srv.Calls(method) != 1 {
				t.Errorf("Calls(%s) = %d, want 1", method, f.srv.Calls(method))
			}
		})
	}
	if n := len(f.srv.Messages()); n != 0 {
		t.Errorf("%d messages posted with a wrong token", n)
	}

	// JSON bodies with a Bearer header, as other Slack clients send them.
	for _, tc := range []struct {
		name, auth, want string
	}{
		{"bearer ok", "Bearer " + testToken, `"ok":true`},
		{"bearer wrong", "Bearer xoxb-nope", `"error":"invalid_auth"`},
		{"no token", "", `"error":"not_authed"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/api/chat.postMessage", strings.NewReader(`{"channel":"C0JSON","text":"hello","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"hi"}}]}`))
			req.Header.Set("Content-Type", "application/json; charset=utf-8")
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), tc.want) {
				t.Errorf("body %s does not contain %s", body, tc.want)
			}
		})
	}
	if msgs := f.srv.Messages(); len(msgs) != 1 || msgs[0].Channel != "C0JSON" || !strings.Contains(string(msgs[0].Blocks), `"hi"`) {
		t.Errorf("after JSON posts: %+v", msgs)
	}
}

func TestFailNext(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.srv.FailNext("chat.postMessage", 429, 500)

	_, _, err := f.api.PostMessageContext(ctx, "#ops", slack.MsgOptionText("one", false))
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != time.Second {
		t.Fatalf("first call: err = %#v, want *slack.RateLimitedError with RetryAfter 1s", err)
	}
	_, _, err = f.api.PostMessageContext(ctx, "#ops", slack.MsgOptionText("two", false))
	var sc slack.StatusCodeError
	if !errors.As(err, &sc) || sc.Code != 500 {
		t.Fatalf("second call: err = %#v, want StatusCodeError 500", err)
	}
	if n := len(f.srv.Messages()); n != 0 {
		t.Fatalf("failed calls posted %d messages", n)
	}
	if _, _, err := f.api.PostMessageContext(ctx, "#ops", slack.MsgOptionText("three", false)); err != nil {
		t.Fatalf("third call: %v", err)
	}
	if got := f.srv.Calls("chat.postMessage"); got != 3 {
		t.Errorf("Calls = %d, want 3", got)
	}
	if msgs := f.srv.Messages(); len(msgs) != 1 || msgs[0].Text != "three" {
		t.Errorf("messages = %+v", msgs)
	}
	// Other methods are unaffected.
	if _, err := f.api.GetUserInfoContext(ctx, "U0BOB"); err != nil {
		t.Errorf("users.info: %v", err)
	}
}

func postApproval(t *testing.T, f *fixture, value string) (string, string) {
	t.Helper()
	ch, ts, err := f.api.PostMessageContext(context.Background(), "#approvals",
		slack.MsgOptionText("approval needed", false), slack.MsgOptionBlocks(approvalBlocks(value)...))
	if err != nil {
		t.Fatalf("PostMessage: %v", err)
	}
	return ch, ts
}

func TestClickIsSignedAndParses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ch, ts := postApproval(t, f, "req-42")

	resp, err := f.srv.Click(ctx, ch, ts, "approve", "U0BOB")
	if err != nil {
		t.Fatalf("Click: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("receiver answered %d", resp.StatusCode)
	}
	rec := <-f.clicks
	if rec.verifyErr != nil {
		t.Fatalf("slack.NewSecretsVerifier refused the click: %v", rec.verifyErr)
	}
	if rec.parseErr != nil {
		t.Fatalf("InteractionCallbackParse: %v", rec.parseErr)
	}
	if ct := rec.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", ct)
	}
	if !strings.HasPrefix(string(rec.body), "payload=") {
		t.Errorf("body does not start with payload=: %.40s", rec.body)
	}
	ic := rec.callback
	checks := []struct{ name, got, want string }{
		{"type", string(ic.Type), string(slack.InteractionTypeBlockActions)},
		{"user.id", ic.User.ID, "U0BOB"},
		{"user.name", ic.User.Name, "bob"},
		{"user.team_id", ic.User.TeamID, "T0TEST"},
		{"team.id", ic.Team.ID, "T0TEST"},
		{"api_app_id", ic.APIAppID, "A0TEST"},
		{"channel.id", ic.Channel.ID, ch},
		{"channel.name", ic.Channel.Name, "approvals"},
		{"container.type", ic.Container.Type, "message"},
		{"container.message_ts", ic.Container.MessageTs, ts},
		{"container.channel_id", ic.Container.ChannelID, ch},
		{"message.ts", ic.Message.Timestamp, ts},
		{"message.text", ic.Message.Text, "approval needed"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if len(ic.Message.Blocks.BlockSet) != 2 {
		t.Errorf("message carries %d blocks, want 2", len(ic.Message.Blocks.BlockSet))
	}
	if len(ic.ActionCallback.BlockActions) != 1 {
		t.Fatalf("got %d block actions, want 1", len(ic.ActionCallback.BlockActions))
	}
	a := ic.ActionCallback.BlockActions[0]
	if a.ActionID != "approve" || a.Value != "req-42" || a.BlockID != "decision" || a.Type != "button" || a.ActionTs == "" {
		t.Errorf("action = %+v", a)
	}
	if ic.TriggerID == "" || !strings.HasPrefix(ic.ResponseURL, f.baseURL+"/response/") {
		t.Errorf("trigger_id %q, response_url %q", ic.TriggerID, ic.ResponseURL)
	}

	// Vigil answers through the response_url: an ephemeral reply, then replacing the original.
	if _, _, err := f.api.PostMessageContext(ctx, "", slack.MsgOptionResponseURL(ic.ResponseURL, slack.ResponseTypeEphemeral),
		slack.MsgOptionText("You approved req-42", false)); err != nil {
		t.Fatalf("response_url ephemeral: %v", err)
	}
	if eph := f.srv.Ephemerals("U0BOB"); len(eph) != 1 || eph[0].Text != "You approved req-42" || eph[0].Channel != ch {
		t.Errorf("bob's ephemerals = %+v", eph)
	}
	if _, _, err := f.api.PostMessageContext(ctx, "", slack.MsgOptionReplaceOriginal(ic.ResponseURL),
		slack.MsgOptionText("approved by bob", false)); err != nil {
		t.Fatalf("response_url replace: %v", err)
	}
	if m := f.srv.Messages()[0]; m.Text != "approved by bob" || len(m.Blocks) != 0 || m.Updated != 1 {
		t.Errorf("after replace_original: %+v", m)
	}
	if _, _, err := f.api.PostMessageContext(ctx, "", slack.MsgOptionDeleteOriginal(ic.ResponseURL)); err != nil {
		t.Fatalf("response_url delete: %v", err)
	}
	if n := len(f.srv.Messages()); n != 0 {
		t.Errorf("after delete_original %d messages remain", n)
	}
	if _, _, err := f.api.PostMessageContext(ctx, "", slack.MsgOptionResponseURL(f.baseURL+"/response/nope", slack.ResponseTypeEphemeral),
		slack.MsgOptionText("x", false)); err == nil {
		t.Errorf("unknown response_url accepted")
	}
}

func TestSignedRequestForgeries(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	body := []byte(`payload=%7B%22type%22%3A%22block_actions%22%7D`)
	verify := func(req *http.Request, body []byte, secret string) error {
		sv, err := slack.NewSecretsVerifier(req.Header, secret)
		if err != nil {
			return err
		}
		_, _ = sv.Write(body)
		return sv.Ensure()
	}
	tests := []struct {
		name    string
		at      time.Time
		body    []byte // what the receiver reads, if different from what was signed
		secret  string
		wantErr error
	}{
		{"fresh", time.Now(), nil, testSecret, nil},
		{"stale timestamp", time.Now().Add(-6 * time.Minute), nil, testSecret, slack.ErrExpiredTimestamp},
		{"future timestamp", time.Now().Add(6 * time.Minute), nil, testSecret, slack.ErrExpiredTimestamp},
		{"body altered", time.Now(), []byte(`payload=%7B%22type%22%3A%22block_actionz%22%7D`), testSecret, slack.ErrInvalidSignature},
		{"other secret", time.Now(), nil, "another-secret", slack.ErrInvalidSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := f.srv.SignedRequest(ctx, body, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			if req.URL.String() != f.vigil.URL+"/slack/interactions" || req.Method != http.MethodPost {
				t.Errorf("request %s %s", req.Method, req.URL)
			}
			if got := req.Header.Get("X-Slack-Request-Timestamp"); got != fmt.Sprint(tc.at.Unix()) {
				t.Errorf("timestamp header %q", got)
			}
			read := body
			if tc.body != nil {
				read = tc.body
			}
			if err := verify(req, read, tc.secret); !errors.Is(err, tc.wantErr) {
				t.Errorf("verify = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestClickRefusesUnknownTargets(t *testing.T) {
	f := newFixture(t)
	ch, ts := postApproval(t, f, "req-1")
	tests := []struct{ name, channel, ts, action, user string }{
		{"unknown user", ch, ts, "approve", "U0MALLORY"},
		{"unknown button", ch, ts, "delete_everything", "U0BOB"},
		{"unknown message", ch, "1.000001", "approve", "U0BOB"},
		{"unknown channel", "C0NOPE", ts, "approve", "U0BOB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := f.srv.Click(context.Background(), tc.channel, tc.ts, tc.action, tc.user)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("Click succeeded")
			}
		})
	}
	select {
	case rec := <-f.clicks:
		t.Errorf("a refused click reached Vigil: %s", rec.body)
	default:
	}
}

func TestInvalidBlocks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	long := strings.Repeat("x", 151)
	tests := []struct {
		name   string
		blocks []slack.Block
	}{
		{"header too long", []slack.Block{slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, long, false, false))}},
		{"duplicate action ids", []slack.Block{slack.NewActionBlock("a",
			slack.NewButtonBlockElement("go", "1", slack.NewTextBlockObject(slack.PlainTextType, "Go", false, false)),
			slack.NewButtonBlockElement("go", "2", slack.NewTextBlockObject(slack.PlainTextType, "Go", false, false)))}},
		{"confirm title too long", []slack.Block{slack.NewActionBlock("a",
			slack.NewButtonBlockElement("go", "1", slack.NewTextBlockObject(slack.PlainTextType, "Go", false, false)).
				WithConfirm(slack.NewConfirmationBlockObject(
					slack.NewTextBlockObject(slack.PlainTextType, strings.Repeat("t", 101), false, false),
					slack.NewTextBlockObject(slack.PlainTextType, "sure?", false, false),
					slack.NewTextBlockObject(slack.PlainTextType, "Yes", false, false), nil)))}},
		{"empty section", []slack.Block{slack.NewSectionBlock(nil, nil, nil)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := f.api.PostMessageContext(ctx, "#x", slack.MsgOptionText("fallback", false), slack.MsgOptionBlocks(tc.blocks...))
			if !isSlackError(err, "invalid_blocks") {
				t.Errorf("err = %v, want invalid_blocks", err)
			}
		})
	}
	if n := len(f.srv.Messages()); n != 0 {
		t.Errorf("%d invalid messages stored", n)
	}
	if _, _, err := f.api.PostMessageContext(ctx, "#x"); !isSlackError(err, "no_text") {
		t.Errorf("empty message: err = %v, want no_text", err)
	}
	if _, _, err := f.api.PostMessageContext(ctx, "not a channel!", slack.MsgOptionText("x", false)); !isSlackError(err, "channel_not_found") {
		t.Errorf("bad channel: err = %v, want channel_not_found", err)
	}
}

// noRedirect lets a test look at the redirect itself.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func TestPageAndUIClick(t *testing.T) {
	f := newFixture(t)
	ch, ts := postApproval(t, f, "req-7")
	if _, err := f.api.PostEphemeralContext(context.Background(), ch, "U0ALICE", slack.MsgOptionText("psst <@U0BOB>", false)); err != nil {
		t.Fatal(err)
	}

	resp, err := http.Get(f.baseURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script") {
		t.Errorf("CSP = %q", csp)
	}
	for _, want := range []string{
		"#approvals", `Request by <span class="mention">@alice</span> &amp; friends`, `name="action_id" value="approve"`, `name="action_id" value="reject"`,
		`<option value="U0BOB"`, `class="primary">Approve</button>`, "only visible to @alice", `psst <span class="mention">@bob</span>`, `http-equiv="refresh"`,
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(string(page), "<script") {
		t.Errorf("page has a script")
	}

	form := url.Values{"channel": {ch}, "ts": {ts}, "action_id": {"approve"}, "user": {"U0BOB"}}
	post := func(form url.Values, origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, f.baseURL+"/ui/click", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	// A post from another site is refused.
	r := post(form, "http://evil.example")
	r.Body.Close()
	if r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site click: status %d, want 403", r.StatusCode)
	}
	// A button with a confirm dialog asks first.
	r = post(form, f.baseURL)
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != http.StatusOK || !strings.Contains(string(body), "Approve request req-7?") || !strings.Contains(string(body), `name="confirmed" value="1"`) {
		t.Errorf("confirm step: status %d body %s", r.StatusCode, body)
	}
	select {
	case <-f.clicks:
		t.Fatalf("click sent before confirmation")
	default:
	}
	form.Set("confirmed", "1")
	r = post(form, f.baseURL)
	r.Body.Close()
	loc := r.Header.Get("Location")
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/?as=U0BOB&click=") {
		t.Fatalf("click: status %d location %q", r.StatusCode, loc)
	}
	rec := <-f.clicks
	if rec.verifyErr != nil || rec.callback.User.ID != "U0BOB" || rec.callback.ActionCallback.BlockActions[0].Value != "req-7" {
		t.Errorf("Vigil got verify=%v user=%q", rec.verifyErr, rec.callback.User.ID)
	}
	if _, _, err := f.api.PostMessageContext(context.Background(), "", slack.MsgOptionResponseURL(rec.callback.ResponseURL, slack.ResponseTypeEphemeral),
		slack.MsgOptionText("Thanks, approval recorded", false)); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(f.baseURL + loc)
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"Vigil answered HTTP 200", "Thanks, approval recorded", `<option value="U0BOB" selected>`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page after click lacks %q", want)
		}
	}
	// The banner says when, as a person writes it.
	if !regexp.MustCompile(`on \d+\.\d{6} at \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC:`).Match(page) || strings.Contains(string(page), "+0000") {
		t.Errorf("banner time is not like 2026-12-03 14:05 UTC:\n%s", page)
	}
	// The reject button has no confirm dialog: it goes straight through.
	form = url.Values{"channel": {ch}, "ts": {ts}, "action_id": {"reject"}, "user": {"U0ALICE"}}
	r = post(form, "")
	r.Body.Close()
	if r.StatusCode != http.StatusSeeOther {
		t.Errorf("reject click: status %d", r.StatusCode)
	}
	if rec := <-f.clicks; rec.callback.User.ID != "U0ALICE" || rec.callback.ActionCallback.BlockActions[0].ActionID != "reject" {
		t.Errorf("reject click arrived as %+v", rec.callback.User)
	}
}

func TestScriptAPI(t *testing.T) {
	f := newFixture(t)
	ch, ts := postApproval(t, f, "req-9")
	postJSON := func(path, body string) (int, string) {
		resp, err := http.Post(f.baseURL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := postJSON("/standin/click", fmt.Sprintf(`{"channel":%q,"ts":%q,"action_id":"reject","user":"U0BOB"}`, ch, ts))
	if code != 200 || !strings.Contains(body, `"status":200`) {
		t.Errorf("script click: %d %s", code, body)
	}
	if rec := <-f.clicks; rec.verifyErr != nil || rec.callback.ActionCallback.BlockActions[0].ActionID != "reject" {
		t.Errorf("script click arrived badly: %v", rec.verifyErr)
	}
	if code, body := postJSON("/standin/fail", `{"method":"users.info","statuses":[503]}`); code != 200 {
		t.Errorf("fail: %d %s", code, body)
	}
	if _, err := f.api.GetUserInfoContext(context.Background(), "U0BOB"); err == nil {
		t.Errorf("users.info succeeded after /standin/fail")
	}
	if code, _ := postJSON("/standin/fail", `{"method":"users.info","statuses":[200]}`); code != 400 {
		t.Errorf("fail with status 200 accepted: %d", code)
	}
	resp, err := http.Get(f.baseURL + "/api/messages")
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Messages   []Message `json:"messages"`
		Ephemerals []Message `json:"ephemerals"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil || len(out.Messages) != 1 || out.Messages[0].TS != ts || out.Ephemerals == nil {
		t.Errorf("/api/messages = %+v, %v", out, err)
	}
	resp, err = http.Get(f.baseURL + "/standin/calls")
	if err != nil {
		t.Fatal(err)
	}
	var calls map[string]int
	_ = json.NewDecoder(resp.Body).Decode(&calls)
	resp.Body.Close()
	if calls["chat.postMessage"] != 1 || calls["users.info"] != 1 {
		t.Errorf("calls = %v", calls)
	}
}

func TestParse(t *testing.T) {
	users, err := ParseUsers("U0ALICE:alice:Alice Moreau, U0BOB:bob:Bob: the Builder")
	if err != nil || len(users) != 2 || users[1] != (User{ID: "U0BOB", Name: "bob", RealName: "Bob: the Builder"}) {
		t.Errorf("ParseUsers = %+v, %v", users, err)
	}
	for _, bad := range []string{"alice", "X0ALICE:alice:A", "U0ALICE::A", "U0A:a:A,U0A:b:B"} {
		if _, err := ParseUsers(bad); err == nil {
			t.Errorf("ParseUsers(%q) accepted", bad)
		}
	}
	groups, err := ParseGroups("S0SENIORS:U0BOB+U0CAROL,S0OPS:")
	if err != nil || len(groups) != 2 || strings.Join(groups["S0SENIORS"], " ") != "U0BOB U0CAROL" || len(groups["S0OPS"]) != 0 {
		t.Errorf("ParseGroups = %v, %v", groups, err)
	}
	for _, bad := range []string{"S0SENIORS", "seniors:U0BOB", "S0X:bob", "S0X:U0A,S0X:U0B"} {
		if _, err := ParseGroups(bad); err == nil {
			t.Errorf("ParseGroups(%q) accepted", bad)
		}
	}
}

func TestConfigRedactsSecrets(t *testing.T) {
	cfg := Config{BotToken: testToken, SigningSecret: testSecret, TeamID: "T0X"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "cfg", cfg)
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%v", cfg), buf.String()} {
		if strings.Contains(s, testToken) || strings.Contains(s, testSecret) {
			t.Errorf("secret leaked: %s", s)
		}
		if !strings.Contains(s, "T0X") {
			t.Errorf("config rendering lost the team: %s", s)
		}
	}
	for _, c := range []Config{{SigningSecret: "s"}, {BotToken: "t"}, {BotToken: "t", SigningSecret: "s", InteractionURL: "ftp://x"}} {
		if _, err := New(c, nil); err == nil {
			t.Errorf("New(%v) accepted", c)
		}
	}
}

func TestDirectMessages(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ch, ts, err := f.api.PostMessageContext(ctx, "U0BOB", slack.MsgOptionText("Your request was approved", false))
	if err != nil {
		t.Fatalf("PostMessage to a user id: %v", err)
	}
	if ch != "D0BOB" {
		t.Errorf("a DM went to channel %q, want the DM channel D0BOB", ch)
	}
	conv, noOp, already, err := f.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U0BOB"}})
	if err != nil || conv.ID != ch || !noOp || !already {
		t.Errorf("conversations.open = %+v no_op=%v already_open=%v, %v; want %s, already open", conv, noOp, already, err, ch)
	}
	conv, _, already, err = f.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U0ALICE"}})
	if err != nil || conv.ID != "D0ALICE" || already {
		t.Errorf("conversations.open of a new DM = %+v already_open=%v, %v", conv, already, err)
	}
	if _, _, err := f.api.PostMessageContext(ctx, conv.ID, slack.MsgOptionText("hello alice", false)); err != nil {
		t.Errorf("post to the opened DM: %v", err)
	}
	if _, _, _, err := f.api.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText("Your request was approved by <@U0ALICE>", false)); err != nil {
		t.Errorf("chat.update of a DM: %v", err)
	}
	if m := f.srv.Messages()[0]; m.Channel != "D0BOB" || m.Updated != 1 {
		t.Errorf("DM after update = %+v", m)
	}
	if _, _, err := f.api.PostMessageContext(ctx, "U0MALLORY", slack.MsgOptionText("x", false)); !isSlackError(err, "channel_not_found") {
		t.Errorf("DM to an unknown user: err = %v, want channel_not_found", err)
	}
	if _, _, _, err := f.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U0MALLORY"}}); !isSlackError(err, "user_not_found") {
		t.Errorf("conversations.open of an unknown user: err = %v, want user_not_found", err)
	}
	if _, _, _, err := f.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U0ALICE", "U0BOB"}}); err == nil {
		t.Errorf("a group DM was opened")
	}
	page := getPage(t, f.baseURL+"/")
	for _, want := range []string{"Direct messages with @bob", `Your request was approved by <span class="mention">@alice</span>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// getPage fetches a page of the stand-in and returns its body.
func getPage(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return string(body)
}
