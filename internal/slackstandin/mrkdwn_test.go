package slackstandin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/domain"
)

func TestMrkdwn(t *testing.T) {
	s, err := New(Config{BotToken: testToken, SigningSecret: testSecret, Users: []User{{ID: "U0BOB", Name: "bob", RealName: "Bob Lindqvist"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const a = `" rel="noreferrer noopener" target="_blank">`
	tests := []struct{ name, in, want string }{
		{"bold", "*Action*\nResend", "<b>Action</b>\nResend"},
		{"italic strike code", "_soon_ ~old~ `srv-1`", "<i>soon</i> <s>old</s> <code>srv-1</code>"},
		{"nested", "*bold _and italic_*", "<b>bold <i>and italic</i></b>"},
		{"bold after punctuation", "(*yes*).", "(<b>yes</b>)."},
		{"no emphasis inside words", "snake_case_name 2*3*4 a~b~c", "snake_case_name 2*3*4 a~b~c"},
		{"no emphasis with spaces inside", "* not bold * and _ no _", "* not bold * and _ no _"},
		{"unclosed", "*half", "*half"},
		{"quote", "*Reason:*\n> customer asked\n> in chat\nafter", "<b>Reason:</b><blockquote>customer asked\nin chat</blockquote>after"},
		{"escaped quote marker", "&gt; quoted", "<blockquote>quoted</blockquote>"},
		{"quote rest", "intro\n>>> all\nof this", "intro<blockquote>all\nof this</blockquote>"},
		{"preformatted", "see\n```a *b*\n<c>```\nend", "see<pre class=\"code\">a *b*\n&lt;c&gt;</pre>end"},
		{"unclosed fence", "```open", "```open"},
		{"escapes stay escaped", "a &amp; b &lt;i&gt; & c", "a &amp; b &lt;i&gt; &amp; c"},
		{"known user", "by <@U0BOB>", `by <span class="mention">@bob</span>`},
		{"unknown user with label", "<@U0X|xavier>", `<span class="mention">@xavier</span>`},
		{"channel and group", "<#C0A|approvals> <!subteam^S0SENIORS|@seniors> <!here>",
			`<span class="mention">#approvals</span> <span class="mention">@seniors</span> <span class="mention">@here</span>`},
		{"date fallback", "<!date^1700000000^{date_short}|Nov 14, 2023>", "Nov 14, 2023"},
		{"link", "<https://example.com/c?a=1&amp;b=2|cancel page>", `<a href="https://example.com/c?a=1&amp;b=2` + a + `cancel page</a>`},
		{"bare link", "<https://example.com>", `<a href="https://example.com` + a + `https://example.com</a>`},
		{"link with underscore in bold", "*<https://e.com/a_b_|x>*", `<b><a href="https://e.com/a_b_` + a + `x</a></b>`},
		{"mailto", "<mailto:dana@example.com|Dana>", `<a href="mailto:dana@example.com` + a + `Dana</a>`},
		{"raw script tag", "<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
		{"javascript link", "<javascript:alert(1)|click me>", "&lt;javascript:alert(1)|click me&gt;"},
		{"quote in link", `<https://e.com/"onmouseover="x|a>`, `<a href="https://e.com/&#34;onmouseover=&#34;x` + a + `a</a>`},
		{"label with markup", "<https://e.com|<b>hi</b>>", `<a href="https://e.com` + a + `&lt;b</a>hi&lt;/b&gt;&gt;`},
		{"html in bold", "*<img src=x onerror=alert(1)>*", "<b>&lt;img src=x onerror=alert(1)&gt;</b>"},
		{"quotes and apostrophes", `it's "fine"`, "it&#39;s &#34;fine&#34;"},
		{"unicode", "*café* — ✅", "<b>café</b> — ✅"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(s.mrkdwn(tc.in)); got != tc.want {
				t.Errorf("mrkdwn(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestPageRendersApprovalMessage posts the real approval message, with a
// reason that tries to inject HTML and a link, and checks the page formats
// it as Slack would and shows the reason's markup as text.
func TestPageRendersApprovalMessage(t *testing.T) {
	f := newFixture(t)
	r := approvals.Request{
		ID: "req-html", Action: domain.ActionResendCredentials, CustomerID: "C-1042", ServerID: "srv-1042-a",
		RequesterSlackID: "U0ALICE", RequesterName: "Alice Moreau",
		Reason:        "<script>alert(1)</script> & <https://evil.example|click> *urgent*",
		PINVerifiedAt: time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC), ExpiresAt: time.Date(2026, 12, 3, 14, 30, 0, 0, time.UTC),
		CoolingPeriod: 2 * time.Minute,
	}
	if _, _, err := f.api.PostMessageContext(context.Background(), "#vigil-approvals",
		slack.MsgOptionText("approval needed", false), slack.MsgOptionBlocks(approvals.ApprovalBlocks(r)...)); err != nil {
		t.Fatalf("PostMessage: %v", err)
	}
	page := getPage(t, f.baseURL+"/")
	for _, want := range []string{
		"<b>Action</b>\nResend server credentials",
		`<b>Requested by</b>` + "\n" + `<span class="mention">@alice</span>`,
		// The reason is text: Vigil escapes its markup and, as it holds a
		// formatting mark, sends it as inline code; it shows exactly as typed.
		"<b>Reason given by the requester:</b><blockquote><code>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;https://evil.example|click&gt; *urgent*</code></blockquote>",
		"2026-12-03 14:30 UTC",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "*Action*", "&gt; &lt;script", `href="https://evil.example"`, "<b>urgent</b>"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
}
