package approvals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/slackstandin"
)

const token = "xoxb-approvals-test"

type env struct {
	standin *slackstandin.Server
	url     string
	client  *Client
}

var fastRetry = RetryPolicy{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Attempts: 6}

// newEnv serves a Slack stand-in over loopback and points a real slack-go
// client at it.
func newEnv(t *testing.T, cfg Config, apiToken string) *env {
	t.Helper()
	srv, err := slackstandin.New(slackstandin.Config{
		BotToken: token, SigningSecret: "approvals-test-secret",
		Users: []slackstandin.User{
			{ID: "U0ALICE", Name: "alice", RealName: "Alice Moreau"},
			{ID: "U0BOB", Name: "bob", RealName: "Bob Lindqvist"},
			{ID: "U0DAVE", Name: "dave", RealName: ""},
		},
		Groups: map[string][]string{"S0SENIORS": {"U0BOB"}},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	api := slack.New(apiToken, slack.OptionAPIURL(hs.URL+"/api/"))
	return &env{standin: srv, url: hs.URL, client: NewClient(api, cfg, slog.New(slog.DiscardHandler), WithRetryPolicy(fastRetry))}
}

var defaultCfg = Config{ApprovalsChannel: "#vigil-approvals", SecurityChannel: "#security", UserGroup: "S0SENIORS"}

func sampleRequest() Request {
	return Request{
		ID:               "req-01HXYZ",
		Action:           domain.ActionResendCredentials,
		CustomerID:       "C-1042",
		MaskedEmail:      MaskEmail("dana@example.com"),
		ServerID:         "srv-77",
		RequesterSlackID: "U0ALICE",
		RequesterName:    "Alice Moreau",
		Reason:           "Customer lost the root password after a laptop theft",
		PINVerifiedAt:    time.Date(2026, 3, 5, 14, 3, 0, 0, time.UTC),
		ExpiresAt:        time.Date(2026, 3, 5, 15, 3, 0, 0, time.UTC),
		CoolingPeriod:    24 * time.Hour,
	}
}

// parsed decodes a stored message's blocks the way slack-go does.
func parsed(t *testing.T, raw json.RawMessage) []slack.Block {
	t.Helper()
	var b slack.Blocks
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("blocks do not parse: %v\n%s", err, raw)
	}
	return b.BlockSet
}

func buttonsOf(blocks []slack.Block) []*slack.ButtonBlockElement {
	var out []*slack.ButtonBlockElement
	for _, b := range blocks {
		if ab, ok := b.(*slack.ActionBlock); ok {
			for _, e := range ab.Elements.ElementSet {
				if btn, ok := e.(*slack.ButtonBlockElement); ok {
					out = append(out, btn)
				}
			}
		}
	}
	return out
}

func TestPostApproval(t *testing.T) {
	e := newEnv(t, defaultCfg, token)
	r := sampleRequest()
	ch, ts, err := e.client.PostApproval(context.Background(), r)
	if err != nil {
		t.Fatalf("PostApproval: %v", err)
	}
	msgs := e.standin.Messages()
	if len(msgs) != 1 || msgs[0].Channel != ch || msgs[0].TS != ts || ch != "C0VIGILAPPROVALS" {
		t.Fatalf("stand-in holds %+v; PostApproval returned %s %s", msgs, ch, ts)
	}
	m := msgs[0]
	if !strings.HasPrefix(m.Text, "<!subteam^S0SENIORS> Approval needed: Resend server credentials for C-1042") {
		t.Errorf("fallback text = %q", m.Text)
	}
	blocks := parsed(t, m.Blocks)
	btns := buttonsOf(blocks)
	if len(btns) != 2 {
		t.Fatalf("got %d buttons, want 2", len(btns))
	}
	want := []struct {
		id, label string
		style     slack.Style
		confirm   string
	}{
		{ActionApprove, "Approve", slack.StylePrimary, "Approve resending credentials for C-1042?"},
		{ActionReject, "Reject", slack.StyleDanger, ""}, // its dialog asks for the reason and confirms
	}
	for i, w := range want {
		b := btns[i]
		if b.ActionID != w.id || b.Text.Text != w.label || b.Style != w.style {
			t.Errorf("button %d = %s %q %s", i, b.ActionID, b.Text.Text, b.Style)
		}
		if b.Value != r.ID {
			t.Errorf("button %s value = %q, want exactly the request id %q", w.id, b.Value, r.ID)
		}
		switch {
		case w.confirm == "" && b.Confirm != nil:
			t.Errorf("button %s has a confirm step %+v; its dialog confirms", w.id, b.Confirm)
		case w.confirm != "" && (b.Confirm == nil || !strings.HasPrefix(b.Confirm.Text.Text, w.confirm) || b.Confirm.Confirm.Text != w.label || b.Confirm.Deny == nil):
			t.Errorf("button %s confirm = %+v", w.id, b.Confirm)
		}
	}
	all := string(m.Blocks)
	for _, want := range []string{
		"Approval needed: Resend server credentials", "C-1042 · `d***@example.com`", "<@U0ALICE>", "req-01HXYZ",
		"2026-03-05 14:03 UTC", "24 hours after approval", "2026-03-05 15:03 UTC",
		"email the login credentials of server srv-77", "laptop theft",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("message lacks %q", want)
		}
	}
	if strings.Contains(all+m.Text, "dana@example.com") {
		t.Errorf("the customer's full email is in the message")
	}
}

func TestApprovalBlocksEveryAction(t *testing.T) {
	e := newEnv(t, defaultCfg, token)
	wants := map[domain.Action][]string{
		domain.ActionResendCredentials:  {"srv-77", "Resend server credentials"},
		domain.ActionReinstallVPS:       {"erase and reinstall VPS srv-77", "is erased. This cannot be undone", "reinstalling VPS srv-77 for C-1042 (all its data is wiped)"},
		domain.ActionAddContactEmail:    {"add new@example.org as a contact email", "adding a contact email for C-1042"},
		domain.ActionChangeAccountEmail: {"change the account email to new@example.org", "changing the account email of C-1042"},
		domain.ActionDisable2FA:         {"turn off two-factor authentication", "turning off 2FA for C-1042"},
	}
	for _, a := range domain.Actions {
		t.Run(string(a), func(t *testing.T) {
			r := sampleRequest()
			r.Action, r.NewEmail = a, "new@example.org"
			ch, ts, err := e.client.PostApproval(context.Background(), r)
			if err != nil {
				t.Fatalf("stand-in refused the %s message: %v", a, err)
			}
			var m slackstandin.Message
			for _, x := range e.standin.Messages() {
				if x.Channel == ch && x.TS == ts {
					m = x
				}
			}
			for _, w := range wants[a] {
				if !strings.Contains(string(m.Blocks), w) {
					t.Errorf("%s message lacks %q", a, w)
				}
			}
			if len(buttonsOf(parsed(t, m.Blocks))) != 2 {
				t.Errorf("%s message lacks its buttons", a)
			}
		})
	}
}

func TestUserTextIsInert(t *testing.T) {
	e := newEnv(t, defaultCfg, token)
	r := sampleRequest()
	r.Reason = "<!channel> please <https://evil.example|click here> & <@U0BOB>\n" + strings.Repeat("long ", 2000)
	r.CustomerID = "C-1<!here>"
	r.RequesterSlackID = "not-an-id"
	r.RequesterName = "<!everyone>"
	if _, _, err := e.client.PostApproval(context.Background(), r); err != nil {
		t.Fatalf("stand-in refused a long, hostile message: %v", err)
	}
	m := e.standin.Messages()[0]
	all := string(m.Blocks) + m.Text
	for _, bad := range []string{"<!channel>", "<!here>", "<!everyone>", "<https://evil", "<@U0BOB>"} {
		if strings.Contains(all, bad) {
			t.Errorf("message carries live markup %q", bad)
		}
	}
	if !strings.Contains(all, "&lt;!channel&gt; please") || !strings.Contains(all, "…") {
		t.Errorf("reason not escaped and clipped")
	}

	// Worst cases for length: every character grows fivefold when escaped.
	for _, a := range domain.Actions {
		w := sampleRequest()
		w.Action = a
		w.CustomerID, w.ServerID, w.NewEmail, w.ID = strings.Repeat("<", 500), strings.Repeat("&", 500), strings.Repeat(">", 500), strings.Repeat("&", 300)
		w.RequesterSlackID, w.RequesterName = "", strings.Repeat("<", 500)
		w.Reason = strings.Repeat("&\n", 3000)
		if _, _, err := e.client.PostApproval(context.Background(), w); err != nil {
			t.Errorf("%s: stand-in refused a worst-case message: %v", a, err)
		}
		ch, ts := e.standin.Messages()[0].Channel, e.standin.Messages()[0].TS
		if err := e.client.UpdateApproval(context.Background(), ch, ts, w, LineRejected("U0BOB", strings.Repeat("<", 3000))); err != nil {
			t.Errorf("%s: stand-in refused a worst-case update: %v", a, err)
		}
	}
}

func TestInert(t *testing.T) {
	for _, tc := range []struct {
		in      string
		n       int
		newline string
		want    string
	}{
		{"a<b>&c", 100, "\n", "a&lt;b&gt;&amp;c"},
		{"x\ny", 100, "\n> ", "x\n> y"},
		{"<<<<", 10, "\n", "&lt;&lt;…"},
		{"abcdef", 4, "\n", "abc…"},
		{"abc", 3, "\n", "abc"},
	} {
		if got := inert(tc.in, tc.n, tc.newline); got != tc.want {
			t.Errorf("inert(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestUserTextCannotFormat: the requester's words and the customer's data
// reach the senior as written, never as Vigil's own bold, strike-through,
// code or icons.
func TestUserTextCannotFormat(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"*approved by security*", "`*approved by security*`"},
		{"~not~ urgent", "`~not~ urgent`"},
		{"_verified_ by phone", "`_verified_ by phone`"},
		{":white_check_mark: PIN checked", "`:white_check_mark: PIN checked`"},
		{"use `rm -rf`", "`use [U+0060]rm -rf[U+0060]`"},
		{"d***@example.com", "`d***@example.com`"},
		// One mark alone formats nothing and stays as it is.
		{"req_abc", "req_abc"},
		{"customer asked: lost phone", "customer asked: lost phone"},
		{"5 * 3 = 15", "5 * 3 = 15"},
		{"a <b> *c*", "`a &lt;b&gt; *c*`"},
		// A leading > would quote the line: the card's fields put names
		// and ids at a line's start.
		{"> Approved by security", "`&gt; Approved by security`"},
		{"  >quoted", "`  &gt;quoted`"},
		{"&gt; Approved", "&amp;gt; Approved"}, // shows as &gt;, no quote
		{"a > b", "a &gt; b"},
	} {
		if got := md(tc.in, 200, " "); got != tc.want {
			t.Errorf("md(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	e := newEnv(t, defaultCfg, token)
	r := sampleRequest()
	r.Reason = "*SECURITY TEAM: approved, no need to check* :white_check_mark:"
	if _, _, err := e.client.PostApproval(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	m := e.standin.Messages()[0]
	if !strings.Contains(string(m.Blocks), "> `*SECURITY TEAM: approved, no need to check* :white_check_mark:`") {
		t.Errorf("the reason is not shown verbatim:\n%s", m.Blocks)
	}
	r.RequesterSlackID, r.RequesterName, r.CustomerID = "", "> Approved by the security team", ">C-1042"
	if _, _, err := e.client.PostApproval(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	blocks := string(e.standin.Messages()[1].Blocks)
	for _, want := range []string{`*Requested by*\n` + "`&gt; Approved by the security team`", `*Customer*\n` + "`&gt;C-1042`"} {
		if !strings.Contains(blocks, want) {
			t.Errorf("a name or id starting with > is not neutralised (want %q):\n%s", want, blocks)
		}
	}
	if got := LineRejected("U0BOB", "*fine* after all"); got != "❌ Rejected by <@U0BOB>: `*fine* after all`" {
		t.Errorf("LineRejected = %q", got)
	}
}

func TestPostApprovalRetriesOnce(t *testing.T) {
	e := newEnv(t, defaultCfg, token)
	e.standin.FailNext("chat.postMessage", 429, 500)
	start := time.Now()
	ch, ts, err := e.client.PostApproval(context.Background(), sampleRequest())
	if err != nil {
		t.Fatalf("PostApproval: %v", err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("took %s: Retry-After: 1 was not honoured", took)
	}
	if got := e.standin.Calls("chat.postMessage"); got != 3 {
		t.Errorf("Calls = %d, want 3", got)
	}
	if msgs := e.standin.Messages(); len(msgs) != 1 || msgs[0].TS != ts || msgs[0].Channel != ch {
		t.Errorf("stand-in holds %d messages, want exactly one", len(msgs))
	}
}

func TestRetryLimits(t *testing.T) {
	t.Run("gives up after max attempts", func(t *testing.T) {
		e := newEnv(t, defaultCfg, token)
		e.standin.FailNext("chat.postMessage", 500, 502, 503, 500, 500, 500, 500)
		_, _, err := e.client.PostApproval(context.Background(), sampleRequest())
		if err == nil || IsPermanent(err) {
			t.Fatalf("err = %v, want a transient error", err)
		}
		if got := e.standin.Calls("chat.postMessage"); got != fastRetry.Attempts {
			t.Errorf("Calls = %d, want %d", got, fastRetry.Attempts)
		}
		if n := len(e.standin.Messages()); n != 0 {
			t.Errorf("%d messages posted", n)
		}
	})
	t.Run("stops at the deadline", func(t *testing.T) {
		e := newEnv(t, defaultCfg, token)
		e.standin.FailNext("chat.postMessage", 429)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, _, err := e.client.PostApproval(ctx, sampleRequest())
		if err == nil || IsPermanent(err) {
			t.Fatalf("err = %v, want a transient error", err)
		}
		if took := time.Since(start); took > 250*time.Millisecond {
			t.Errorf("took %s: slept past what the deadline allowed", took)
		}
		var rl *slack.RateLimitedError
		if !errors.As(err, &rl) {
			t.Errorf("err = %v, want it to wrap the rate limit", err)
		}
	})
}

func TestPermanentErrors(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		apiToken string
		code     string
	}{
		{"wrong token", defaultCfg, "xoxb-wrong", "invalid_auth"},
		{"bad channel", Config{ApprovalsChannel: "no such channel!"}, token, "channel_not_found"},
		{"no channel", Config{}, token, "no_approvals_channel_configured"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.cfg, tc.apiToken)
			_, _, err := e.client.PostApproval(context.Background(), sampleRequest())
			if !IsPermanent(err) {
				t.Fatalf("err = %v, want permanent", err)
			}
			var pe *PermanentError
			if !errors.As(err, &pe) || pe.Code != tc.code {
				t.Errorf("err = %v, want code %s", err, tc.code)
			}
			if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "xoxb-wrong") {
				t.Errorf("error shows a token: %v", err)
			}
			if got := e.standin.Calls("chat.postMessage"); got > 1 {
				t.Errorf("a permanent error was retried: %d calls", got)
			}
		})
	}
}

func TestUpdateApprovalRemovesButtons(t *testing.T) {
	e := newEnv(t, defaultCfg, token)
	ctx := context.Background()
	r := sampleRequest()
	ch, ts, err := e.client.PostApproval(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	e.standin.FailNext("chat.update", 503)
	line := LineApproved("U0BOB", time.Date(2026, 3, 5, 14, 5, 0, 0, time.UTC))
	if err := e.client.UpdateApproval(ctx, ch, ts, r, line); err != nil {
		t.Fatalf("UpdateApproval: %v", err)
	}
	m := e.standin.Messages()[0]
	if m.Updated != 1 {
		t.Errorf("Updated = %d, want 1", m.Updated)
	}
	blocks := parsed(t, m.Blocks)
	for _, b := range blocks {
		if b.BlockType() == slack.MBTAction {
			t.Errorf("updated message still has an actions block")
		}
	}
	if !strings.Contains(string(m.Blocks), "✅ Approved by <@U0BOB> at 14:05 UTC") || !strings.Contains(string(m.Blocks), "C-1042") {
		t.Errorf("updated blocks = %s", m.Blocks)
	}
	if !strings.Contains(m.Text, "Approved by <@U0BOB>") {
		t.Errorf("updated text = %q", m.Text)
	}
	err = e.client.UpdateApproval(ctx, ch, "1.000001", r, LineExpired())
	var pe *PermanentError
	if !errors.As(err, &pe) || pe.Code != "message_not_found" {
		t.Errorf("update of unknown message: %v", err)
	}
}

func TestRemindSecurityEphemeral(t *testing.T) {
	e := newEnv(t, defaultCfg, token)
	ctx := context.Background()
	r := sampleRequest()
	ch, ts, err := e.client.PostApproval(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.Remind(ctx, ch, ts, r); err != nil {
		t.Fatalf("Remind: %v", err)
	}
	if err := e.client.Security(ctx, "🚨 3 wrong PINs for C-1042"); err != nil {
		t.Fatalf("Security: %v", err)
	}
	if err := e.client.Ephemeral(ctx, ch, "U0ALICE", "You cannot approve your own request"); err != nil {
		t.Fatalf("Ephemeral: %v", err)
	}
	msgs := e.standin.Messages()
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want 3", len(msgs))
	}
	if msgs[1].ThreadTS != ts || msgs[1].Channel != ch || !strings.Contains(msgs[1].Text, "Still waiting for a senior: expires at 2026-03-05 15:03 UTC") {
		t.Errorf("reminder = %+v", msgs[1])
	}
	if msgs[2].Channel != "C0SECURITY" || msgs[2].Text != "🚨 3 wrong PINs for C-1042" {
		t.Errorf("security alert = %+v", msgs[2])
	}
	if eph := e.standin.Ephemerals("U0ALICE"); len(eph) != 1 || eph[0].Text != "You cannot approve your own request" {
		t.Errorf("ephemerals = %+v", eph)
	}

	quiet := newEnv(t, Config{ApprovalsChannel: "#a"}, token)
	if err := quiet.client.Security(ctx, "alert"); err != nil || quiet.standin.Calls("chat.postMessage") != 0 {
		t.Errorf("Security without a channel: err %v, %d calls", err, quiet.standin.Calls("chat.postMessage"))
	}
}

func TestIsGroupMember(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, defaultCfg, token)
	for _, tc := range []struct {
		user string
		want bool
	}{{"U0BOB", true}, {"U0ALICE", false}, {"U0NOBODY", false}} {
		got, err := e.client.IsGroupMember(ctx, tc.user)
		if err != nil || got != tc.want {
			t.Errorf("IsGroupMember(%s) = %v, %v; want %v", tc.user, got, err, tc.want)
		}
	}

	open := newEnv(t, Config{ApprovalsChannel: "#a"}, token)
	if ok, err := open.client.IsGroupMember(ctx, "U0ALICE"); !ok || err != nil || open.standin.Calls("usergroups.users.list") != 0 {
		t.Errorf("without a group: %v, %v", ok, err)
	}

	down := newEnv(t, defaultCfg, token)
	down.standin.FailNext("usergroups.users.list", 500, 500, 500, 500, 500, 500)
	if ok, err := down.client.IsGroupMember(ctx, "U0BOB"); ok || err == nil {
		t.Errorf("Slack down: IsGroupMember = %v, %v; want false and an error", ok, err)
	}
	flaky := newEnv(t, defaultCfg, token)
	flaky.standin.FailNext("usergroups.users.list", 500, 500)
	if ok, err := flaky.client.IsGroupMember(ctx, "U0BOB"); !ok || err != nil {
		t.Errorf("Slack flaky: IsGroupMember = %v, %v; want true", ok, err)
	}

	gone := newEnv(t, Config{ApprovalsChannel: "#a", UserGroup: "S0GONE"}, token)
	if ok, err := gone.client.IsGroupMember(ctx, "U0BOB"); ok || !IsPermanent(err) {
		t.Errorf("unknown group: IsGroupMember = %v, %v; want false and a permanent error", ok, err)
	}
}

func TestUserName(t *testing.T) {
	e := newEnv(t, defaultCfg, token)
	ctx := context.Background()
	for _, tc := range []struct{ id, want string }{{"U0ALICE", "Alice Moreau"}, {"U0DAVE", "dave"}} {
		if got, err := e.client.UserName(ctx, tc.id); err != nil || got != tc.want {
			t.Errorf("UserName(%s) = %q, %v; want %q", tc.id, got, err, tc.want)
		}
	}
	if _, err := e.client.UserName(ctx, "U0NOBODY"); !IsPermanent(err) {
		t.Errorf("unknown user: err = %v, want permanent", err)
	}
}

func TestMaskEmail(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"dana@example.com", "d***@example.com"},
		{"a@b.co", "a***@b.co"},
		{"  Dana.Smith+vps@Example.COM ", "D***@example.com"},
		{"dana@münchen.de", "d***@xn--mnchen-3ya.de (münchen.de)"},
		{"dana@xn--80ak6a.com", "d***@xn--80ak6a.com (аре.com)"},
		// Stored before the text rule: shown as not valid, never as it is.
		{"dana@ex\u0430mple.com", "*** (not a valid address)"},
		{"dana\u202e@example.com", "*** (not a valid address)"},
		{"émile@exemple.fr", "*** (not a valid address)"},
		{`"odd@local"@example.com`, "*** (not a valid address)"},
		{"@example.com", "*** (not a valid address)"},
		{"not-an-email", "*** (not a valid address)"},
		{"", ""},
	} {
		if got := MaskEmail(tc.in); got != tc.want {
			t.Errorf("MaskEmail(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLines(t *testing.T) {
	at := time.Date(2026, 3, 5, 14, 5, 0, 0, time.FixedZone("CET", 3600))
	for _, tc := range []struct{ got, want string }{
		{LineApproved("U0BOB", at), "✅ Approved by <@U0BOB> at 13:05 UTC"},
		{LineRejected("U0BOB", "no <!channel> ticket"), "❌ Rejected by <@U0BOB>: no &lt;!channel&gt; ticket"},
		{LineRejected("U0BOB", " "), "❌ Rejected by <@U0BOB>"},
		{LineNotified(at), "📧 Customer notified — runs at 2026-03-05 13:05 UTC unless someone cancels"},
		{LineCancelled(domain.CancelByCustomer, "", ""), "🛑 Cancelled by the customer"},
		{LineCancelled(domain.CancelByRequester, "U0ALICE", ""), "🛑 Withdrawn by the requester <@U0ALICE>"},
		{LineCancelled(domain.CancelBySenior, "U0BOB", " "), "🛑 Cancelled by <@U0BOB>"},
		{LineCancelled(domain.CancelBySecurity, "", ""), "🛑 Stopped by Vigil: the requester or an approver is no longer in good standing (see the security channel)"},
		// The reason is escaped as the requester's is: a customer or a
		// senior cannot ping the channel or fake a line through it.
		{LineCancelled(domain.CancelByCustomer, "", "I did not ask <!channel>"), "🛑 Cancelled by the customer\n> I did not ask &lt;!channel&gt;"},
		{LineCancelled(domain.CancelBySenior, "U0BOB", "*approved* by <@U0CAROL>\n✅ Approved"), "🛑 Cancelled by <@U0BOB>\n> `*approved* by &lt;@U0CAROL&gt;`\n> ✅ Approved"},
		{LineCancelled(domain.CancelByRequester, "U0ALICE", "typo in the server"), "🛑 Withdrawn by the requester <@U0ALICE>\n> typo in the server"},
		{LineCancelled(domain.CancelBySecurity, "", "standing lost"), "🛑 Stopped by Vigil: the requester or an approver is no longer in good standing (see the security channel)"},
		{LineBreakGlassRejected("U0BOB", "U0CAROL", "caller failed the <!here> callback", at), "🚨 Break-glass: rejected outside Slack by <@U0BOB> and <@U0CAROL> at 13:05 UTC\n> caller failed the &lt;!here&gt; callback"},
		{LineBreakGlassRejected("U0BOB", "U0CAROL", "", at), "🚨 Break-glass: rejected outside Slack by <@U0BOB> and <@U0CAROL> at 13:05 UTC"},
		{LineExecuted(at), "✔️ Executed at 2026-03-05 13:05 UTC"},
		{LineFailed("panel said <no>"), "⚠️ Failed: panel said &lt;no&gt;"},
		{LineExpired(), "⌛ Expired: no senior decided in time"},
		{humanDuration(48 * time.Hour), "48 hours"},
		{humanDuration(time.Hour), "1 hour"},
		{humanDuration(90 * time.Minute), "90 minutes"},
		{humanDuration(30 * time.Second), "30 seconds"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestApprovalShowsNothingHidden: a reason or address that never passed the
// text rule (stored before it existed) reaches the senior with its hidden
// characters written out, and a new address shows its A-label first.
func TestApprovalShowsNothingHidden(t *testing.T) {
	e := newEnv(t, defaultCfg, token)
	for _, tc := range []struct {
		name, reason, email string
		want                []string
	}{
		{"bidi override in the reason", "verified \u202eenohp yb\u202c", "new@example.org",
			[]string{"verified [U+202E]enohp yb[U+202C]"}},
		{"zero-width and NUL in the reason", "pay\u200bpal\x00", "new@example.org",
			[]string{"pay[U+200B]pal[U+0000]"}},
		{"internationalised address", "new address", "dana@xn--80ak6a.com",
			[]string{"add dana@xn--80ak6a.com (dana@аре.com) as a contact email"}},
		{"mixed-script address stored before the rule", "new address", "dana@ex\u0430mple.com",
			[]string{"(not a valid address: dana@ex[U+0430]mple.com)"}},
		{"bidi in a stored address", "new address", "dana\u202e@example.com",
			[]string{"(not a valid address: dana[U+202E]@example.com)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sampleRequest()
			r.Action, r.Reason, r.NewEmail = domain.ActionAddContactEmail, tc.reason, tc.email
			ch, ts, err := e.client.PostApproval(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			var m slackstandin.Message
			for _, x := range e.standin.Messages() {
				if x.Channel == ch && x.TS == ts {
					m = x
				}
			}
			var blocks any
			if err := json.Unmarshal(m.Blocks, &blocks); err != nil {
				t.Fatal(err)
			}
			all := fmt.Sprint(blocks)
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("message lacks %q:\n%s", w, all)
				}
			}
			if strings.ContainsAny(all, "\u202e\u202c\u200b\x00") {
				t.Errorf("message carries a hidden character")
			}
		})
	}
}

// TestStatusBlocksKeepTheHistory: an update shows every step the request
// passed, then where it stands, and no longer shows the approval deadline.
func TestStatusBlocksKeepTheHistory(t *testing.T) {
	at := time.Date(2026, 3, 5, 14, 5, 0, 0, time.UTC)
	r := sampleRequest()
	r.History = []string{LineBreakGlass("approved", "U0BOB", "U0CAROL", at), LineWasNotified(at.Add(time.Minute), at.Add(24*time.Hour))}
	raw, err := json.Marshal(StatusBlocks(r, LineExecuted(at.Add(25*time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	all := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(string(raw))
	want := []string{
		"🚨 Break-glass: approved outside Slack by <@U0BOB> and <@U0CAROL> at 14:05 UTC",
		"📧 Customer notified at 2026-03-05 14:06 UTC; cooling period until 2026-03-06 14:05 UTC",
		"✔️ Executed at 2026-03-06 15:05 UTC",
	}
	last := -1
	for _, w := range want {
		i := strings.Index(all, w)
		if i < 0 {
			t.Fatalf("card lacks %q:\n%s", w, all)
		}
		if i < last {
			t.Errorf("%q is out of order", w)
		}
		last = i
	}
	if strings.Contains(all, "Approval expires") {
		t.Errorf("a decided card still shows the approval deadline")
	}
	raw, _ = json.Marshal(ApprovalBlocks(r))
	if !strings.Contains(string(raw), "Approval expires") {
		t.Errorf("the approval card lost its deadline")
	}
}

// TestApprovalShowsTheRisk: a request the risk check flagged says so in its
// header, names the account's events and what was verified; the panel's
// words cannot format the card; a quiet request shows none of it.
func TestApprovalShowsTheRisk(t *testing.T) {
	e := newEnv(t, defaultCfg, token)
	post := func(r Request) string {
		t.Helper()
		ch, ts, err := e.client.PostApproval(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range e.standin.Messages() {
			if x.Channel == ch && x.TS == ts {
				return string(x.Blocks)
			}
		}
		t.Fatal("message not found")
		return ""
	}
	quiet := post(sampleRequest())
	if strings.Contains(quiet, "Account at risk") {
		t.Fatalf("a quiet request shows a risk:\n%s", quiet)
	}
	for _, tc := range []struct {
		factor bool
		want   string
	}{
		{true, "Verified: the PIN and the code from the customer's authenticator app"},
		{false, "Verified: the PIN only"},
	} {
		r := sampleRequest()
		r.Risk = &Risk{Signals: "password reset (email) on 2026-12-08; pin viewed on 2026-12-08 <!channel> *x*", FactorVerified: tc.factor}
		got := post(r)
		var header string
		for _, b := range parsed(t, []byte(got)) {
			if h, ok := b.(*slack.HeaderBlock); ok {
				header = h.Text.Text
			}
		}
		if !strings.HasPrefix(header, "⚠️ Account at risk · ") {
			t.Errorf("header %q does not start with the risk", header)
		}
		for _, w := range []string{"Account at risk:", "password reset (email) on 2026-12-08", tc.want} {
			if !strings.Contains(got, w) {
				t.Errorf("card lacks %q:\n%s", w, got)
			}
		}
		if strings.Contains(got, "<!channel>") {
			t.Errorf("the panel's words reach Slack as a mention:\n%s", got)
		}
	}
}
