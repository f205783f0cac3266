package mail

import (
	"bytes"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

const testCancelURL = "https://vigil.example.com/cancel/AQAAAAB2.c2lnbmF0dXJl"

var (
	runsAt     = time.Date(2026, 11, 26, 14, 5, 0, 0, time.UTC)
	httpURLRe  = regexp.MustCompile(`(?i)https?://[^\s"'<>]+`)
	hostile    = `Ada <script>alert("x")</script> & co`
	hostileEsc = `Ada &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co`
)

func noticeData(a domain.Action) NoticeData {
	return NoticeData{
		CustomerName:   hostile,
		Action:         a,
		ServerID:       "srv-123",
		NewEmail:       "new@example.com",
		AgentFirstName: "Sam",
		AgentTeam:      "Support",
		RunsAt:         runsAt,
		CoolingPeriod:  24 * time.Hour,
		CancelURL:      testCancelURL,
		SupportEmail:   "support@example.com",
		ProductName:    "Acme Hosting",
	}
}

// checkParts asserts what every rendered email must satisfy.
func checkParts(t *testing.T, subject, text, html string) {
	t.Helper()
	if first, _, _ := strings.Cut(text, "\n"); first != subject+"." {
		t.Errorf("text starts with %q, want the subject %q", first, subject+".")
	}
	if !strings.Contains(html, "<h1") || !strings.Contains(html, subject) {
		t.Errorf("HTML lacks the subject as heading")
	}
	if strings.Contains(html, "<script") || strings.Contains(html, "<img") || strings.Contains(html, "<link") {
		t.Errorf("HTML contains a script, image or stylesheet link:\n%s", html)
	}
}

func TestRenderNotice(t *testing.T) {
	tests := []struct {
		action      domain.Action
		wantSubject string
		wantDetail  string
	}{
		{domain.ActionResendCredentials, "Your server credentials will be emailed to you on Thu 26 Nov 2026 14:05 UTC", "login details (username and password) of server srv-123"},
		{domain.ActionReinstallVPS, "Your VPS srv-123 will be erased and reinstalled on Thu 26 Nov 2026 14:05 UTC", "permanently deleted"},
		{domain.ActionAddContactEmail, "new@example.com will be added as a contact email on your account on Thu 26 Nov 2026 14:05 UTC", "The owner of new@example.com"},
		{domain.ActionChangeAccountEmail, "Your account email will be changed to new@example.com on Thu 26 Nov 2026 14:05 UTC", "will go to new@example.com"},
		{domain.ActionDisable2FA, "Two-factor authentication will be turned off on your account on Thu 26 Nov 2026 14:05 UTC", "only your password"},
	}
	for _, tt := range tests {
		t.Run(string(tt.action), func(t *testing.T) {
			subject, text, html, err := RenderNotice(noticeData(tt.action))
			if err != nil {
				t.Fatalf("RenderNotice: %v", err)
			}
			if subject != tt.wantSubject {
				t.Errorf("subject = %q, want %q", subject, tt.wantSubject)
			}
			checkParts(t, subject, text, html)
			for name, part := range map[string]string{"text": text, "html": html} {
				if n := strings.Count(part, testCancelURL); n != 1 {
					t.Errorf("%s part has the cancel URL %d times, want exactly 1", name, n)
				}
				for _, want := range []string{"Sam from our Support team", "in 24 hours", "Thu 26 Nov 2026 14:05 UTC", tt.wantDetail, "cancel it", "change your passwords", "support@example.com"} {
					if !strings.Contains(part, want) {
						t.Errorf("%s part lacks %q", name, want)
					}
				}
			}
			if !strings.Contains(html, `href="`+testCancelURL+`"`) {
				t.Errorf("cancel URL is not the button's link")
			}
			if !strings.Contains(text, "THIS WASN'T ME — CANCEL IT:\n"+testCancelURL) {
				t.Errorf("text part lacks the labelled cancel link:\n%s", text)
			}
			if urls := httpURLRe.FindAllString(html, -1); len(urls) != 1 || urls[0] != testCancelURL {
				t.Errorf("HTML has http(s) URLs %v, want only the cancel URL", urls)
			}
			if !strings.Contains(html, hostileEsc) {
				t.Errorf("HTML does not escape the customer name; want %q in\n%s", hostileEsc, html)
			}
			if !strings.Contains(text, "Hello "+hostile+",") {
				t.Errorf("text part lacks the greeting")
			}
		})
	}
}

func TestRenderNoticeZone(t *testing.T) {
	d := noticeData(domain.ActionDisable2FA)
	loc, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatalf("load zone (Debian's tzdata package provides it): %v", err)
	}
	d.Location = loc
	d.CoolingPeriod = 90 * time.Minute
	d.AgentTeam = ""
	d.CustomerName = ""
	subject, text, _, err := RenderNotice(d)
	if err != nil {
		t.Fatalf("RenderNotice: %v", err)
	}
	if !strings.HasSuffix(subject, "on Thu 26 Nov 2026 15:05 CET") {
		t.Errorf("subject %q does not show the customer's zone", subject)
	}
	for _, want := range []string{"in 1 hour and 30 minutes", "Sam from our support team", "Hello,\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}

func TestRenderNoticeRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*NoticeData)
	}{
		{"unknown action", func(d *NoticeData) { d.Action = "format_disk" }},
		{"reinstall without server", func(d *NoticeData) { d.Action = domain.ActionReinstallVPS; d.ServerID = "" }},
		{"change email without email", func(d *NoticeData) { d.Action = domain.ActionChangeAccountEmail; d.NewEmail = "" }},
		{"named new email", func(d *NoticeData) { d.Action = domain.ActionAddContactEmail; d.NewEmail = "Eve <eve@example.com>" }},
		{"new email with newline", func(d *NoticeData) {
			d.Action = domain.ActionAddContactEmail
			d.NewEmail = "eve@example.com\nBcc: x@y.z"
		}},
		{"server id with newline", func(d *NoticeData) { d.ServerID = "srv\r\nBcc: x@y.z" }},
		{"no cancel URL", func(d *NoticeData) { d.CancelURL = "" }},
		{"javascript cancel URL", func(d *NoticeData) { d.CancelURL = "javascript:alert(1)" }},
		{"relative cancel URL", func(d *NoticeData) { d.CancelURL = "/cancel/abc" }},
		{"no agent", func(d *NoticeData) { d.AgentFirstName = " " }},
		{"no run time", func(d *NoticeData) { d.RunsAt = time.Time{} }},
		{"no cooling period", func(d *NoticeData) { d.CoolingPeriod = 0 }},
		{"bad support email", func(d *NoticeData) { d.SupportEmail = "not an email" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := noticeData(domain.ActionResendCredentials)
			tt.mod(&d)
			if subject, _, _, err := RenderNotice(d); err == nil {
				t.Fatalf("RenderNotice accepted bad input, subject %q", subject)
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{24 * time.Hour, "in 24 hours"},
		{48 * time.Hour, "in 2 days"},
		{72 * time.Hour, "in 3 days"},
		{49 * time.Hour, "in 49 hours"},
		{time.Hour, "in 1 hour"},
		{90 * time.Minute, "in 1 hour and 30 minutes"},
		{61 * time.Minute, "in 1 hour and 1 minute"},
		{5 * time.Minute, "in 5 minutes"},
		{time.Minute, "in 1 minute"},
		{30 * time.Second, "in 30 seconds"},
		{time.Millisecond, "in 1 second"},
	}
	for _, tt := range tests {
		if got := humanDuration(tt.d); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestRenderOutcome(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	tests := []struct {
		name        string
		action      domain.Action
		outcome     domain.Status
		by          domain.CancelParty
		wantSubject string
		wantBody    string
	}{
		{"executed reinstall", domain.ActionReinstallVPS, domain.StatusExecuted, "", "Your VPS srv-123 has been erased and reinstalled", "fresh install"},
		{"executed credentials", domain.ActionResendCredentials, domain.StatusExecuted, "", "Your server credentials for srv-123 have been emailed to you", "separate email"},
		{"executed add contact", domain.ActionAddContactEmail, domain.StatusExecuted, "", "new@example.com has been added as a contact email on your account", "contact us right away"},
		{"executed change email", domain.ActionChangeAccountEmail, domain.StatusExecuted, "", "Your account email has been changed to new@example.com", "new address"},
		{"executed 2fa", domain.ActionDisable2FA, domain.StatusExecuted, "", "Two-factor authentication has been turned off on your account", "turning it back on"},
		{"cancelled by customer", domain.ActionReinstallVPS, domain.StatusCancelled, domain.CancelByCustomer, "Cancelled: your VPS srv-123 will not be erased", "You cancelled this request."},
		{"cancelled by agent", domain.ActionDisable2FA, domain.StatusCancelled, domain.CancelByRequester, "Cancelled: two-factor authentication will not be turned off", "The support agent who asked for it cancelled it."},
		{"cancelled by senior", domain.ActionChangeAccountEmail, domain.StatusCancelled, domain.CancelBySenior, "Cancelled: your account email will not be changed", "A senior colleague"},
		{"stopped by security", domain.ActionResendCredentials, domain.StatusCancelled, domain.CancelBySecurity, "Cancelled: your server credentials for srv-123 will not be emailed", "Our security checks stopped it"},
		{"withdrawn", domain.ActionAddContactEmail, domain.StatusWithdrawn, "", "Cancelled: new@example.com will not be added as a contact email", "The support agent who asked for it cancelled it."},
		{"rejected", domain.ActionResendCredentials, domain.StatusRejected, "", "Not approved: your server credentials for srv-123 will not be emailed", "did not approve"},
		{"expired", domain.ActionReinstallVPS, domain.StatusExpired, "", "Expired: your VPS srv-123 will not be erased", "not approved in time"},
		{"failed", domain.ActionReinstallVPS, domain.StatusFailed, "", "We could not reinstall your VPS srv-123", "Something went wrong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject, text, html, err := RenderOutcome(OutcomeData{
				CustomerName: hostile, Action: tt.action, ServerID: "srv-123", NewEmail: "new@example.com",
				Outcome: tt.outcome, CancelledBy: tt.by, At: at, SupportEmail: "support@example.com", ProductName: "Acme Hosting",
			})
			if err != nil {
				t.Fatalf("RenderOutcome: %v", err)
			}
			if subject != tt.wantSubject {
				t.Errorf("subject = %q, want %q", subject, tt.wantSubject)
			}
			checkParts(t, subject, text, html)
			for name, part := range map[string]string{"text": text, "html": html} {
				for _, want := range []string{tt.wantBody, "Fri 27 Nov 2026 09:30 UTC", "Acme Hosting"} {
					if !strings.Contains(part, want) {
						t.Errorf("%s part lacks %q:\n%s", name, want, part)
					}
				}
			}
			if urls := httpURLRe.FindAllString(html, -1); len(urls) != 0 {
				t.Errorf("outcome HTML has URLs %v", urls)
			}
			if !strings.Contains(html, hostileEsc) {
				t.Errorf("HTML does not escape the customer name")
			}
		})
	}
}

func TestRenderOutcomeRejectsBadInput(t *testing.T) {
	good := OutcomeData{Action: domain.ActionDisable2FA, Outcome: domain.StatusExecuted, At: runsAt}
	tests := []struct {
		name string
		mod  func(*OutcomeData)
	}{
		{"non-final status", func(d *OutcomeData) { d.Outcome = domain.StatusCooling }},
		{"pin rejected has no customer email", func(d *OutcomeData) { d.Outcome = domain.StatusPINRejected }},
		{"cancelled without party", func(d *OutcomeData) { d.Outcome = domain.StatusCancelled }},
		{"unknown party", func(d *OutcomeData) { d.Outcome = domain.StatusCancelled; d.CancelledBy = "martians" }},
		{"no time", func(d *OutcomeData) { d.At = time.Time{} }},
		{"unknown action", func(d *OutcomeData) { d.Action = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := good
			tt.mod(&d)
			if subject, _, _, err := RenderOutcome(d); err == nil {
				t.Fatalf("RenderOutcome accepted bad input, subject %q", subject)
			}
		})
	}
}

func TestRenderCredentials(t *testing.T) {
	d := CredentialsData{CustomerName: hostile, ServerID: "srv-9", Username: "root", Password: "p<a>ss&w0rd", SupportEmail: "support@example.com", ProductName: "Acme Hosting"}
	subject, text, html, err := RenderCredentials(d)
	if err != nil {
		t.Fatalf("RenderCredentials: %v", err)
	}
	if subject != "Your login details for server srv-9" {
		t.Errorf("subject = %q", subject)
	}
	checkParts(t, subject, text, html)
	if !strings.Contains(text, "Username: root\nPassword: p<a>ss&w0rd\n") {
		t.Errorf("text lacks credentials:\n%s", text)
	}
	if !strings.Contains(html, ">root<") || !strings.Contains(html, ">p&lt;a&gt;ss&amp;w0rd<") {
		t.Errorf("html lacks escaped credentials:\n%s", html)
	}
	if _, _, _, err := RenderCredentials(CredentialsData{ServerID: "srv-9", Username: "root"}); err == nil {
		t.Errorf("RenderCredentials without password succeeded")
	}
}

func TestSecretsRedacted(t *testing.T) {
	const secret = "hunter2-secret"
	var logBuf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logBuf, nil))
	cred := CredentialsData{ServerID: "srv-1", Username: "root", Password: secret}
	cfg := SMTPConfig{Addr: "127.0.0.1:25", From: "a@example.com", Username: "u", Password: secret}
	logger.Info("x", "cred", cred, "cfg", cfg)
	outputs := []string{
		fmt.Sprint(cred), fmt.Sprintf("%v %+v %#v %s", cred, cred, cred, cred),
		fmt.Sprint(cfg), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg),
		fmt.Sprintf("%v", &cfg), logBuf.String(),
	}
	for _, out := range outputs {
		if strings.Contains(out, secret) {
			t.Fatalf("secret leaked in %q", out)
		}
	}
	if !strings.Contains(fmt.Sprint(cfg), "127.0.0.1:25") {
		t.Errorf("config String lost the address: %s", cfg)
	}
}

// TestRenderShowsAddressesSafely: the notice and the outcome show a new
// address as textrule.Address.Display does (an internationalised domain as
// its A-label first), refuse one that could pass for another, and show
// names that never passed the text rule with their hidden characters
// written out.
func TestRenderShowsAddressesSafely(t *testing.T) {
	d := noticeData(domain.ActionAddContactEmail)
	d.NewEmail = "dana@xn--80ak6a.com" // аре.com in Cyrillic, which reads as ape.com
	d.CustomerName = "Dana \u202eenohp\u202c"
	d.AgentFirstName = "Sam\u200b"
	subject, text, html, err := RenderNotice(d)
	if err != nil {
		t.Fatal(err)
	}
	const shown = "dana@xn--80ak6a.com (dana@аре.com)"
	if !strings.HasPrefix(subject, shown+" will be added") {
		t.Fatalf("subject %q does not start with %q", subject, shown)
	}
	// html/template writes + as &#43;.
	for name, part := range map[string]string{"text": text, "html": strings.ReplaceAll(html, "&#43;", "+")} {
		if !strings.Contains(part, "The owner of "+shown) {
			t.Errorf("%s part does not show %q", name, shown)
		}
		if !strings.Contains(part, "Hello Dana [U+202E]enohp[U+202C],") || !strings.Contains(part, "Sam[U+200B] from") {
			t.Errorf("%s part does not write out the hidden characters:\n%s", name, part)
		}
		if strings.ContainsAny(part, "\u202e\u202c\u200b") {
			t.Errorf("%s part carries a bidi or zero-width character", name)
		}
	}
	for _, addr := range []string{"dana@ex\u0430mple.com", "dana\u202e@example.com", "dana@[192.0.2.1]", "Dana <dana@example.com>"} {
		d.NewEmail = addr
		if _, _, _, err := RenderNotice(d); err == nil {
			t.Errorf("RenderNotice accepted %q", addr)
		}
		if _, _, _, err := RenderOutcome(OutcomeData{Action: domain.ActionChangeAccountEmail, NewEmail: addr,
			Outcome: domain.StatusExecuted, At: runsAt}); err == nil {
			t.Errorf("RenderOutcome accepted %q", addr)
		}
	}
	subject, _, _, err = RenderOutcome(OutcomeData{Action: domain.ActionChangeAccountEmail, NewEmail: "dana@münchen.de",
		Outcome: domain.StatusExecuted, At: runsAt})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Your account email has been changed to dana@xn--mnchen-3ya.de (dana@münchen.de)"; subject != want {
		t.Fatalf("outcome subject %q, want %q", subject, want)
	}
}

// TestNoticeListsTheAddressesOnFile: a notice about a new address shows the
// account's addresses beside it, so the customer can compare them: the
// recipient's own in full, the others masked (each mailbox on the account
// gets its own notice, and none of them is told the others'), and says
// truly whether the new address is one of them; a notice about a server
// shows none.
func TestNoticeListsTheAddressesOnFile(t *testing.T) {
	tests := []struct {
		name      string
		action    domain.Action
		newEmail  string
		recipient string
		onFile    []string
		want      []string
		wantNot   []string
	}{
		{"a new contact, told to the primary", domain.ActionAddContactEmail, "dana@exarnple.com", "dana@example.com",
			[]string{"dana@example.com", "ops\u202e@example.com", "billing@example.org"},
			[]string{"The addresses on your account today are dana@example.com (this one), *** (not a valid address), b***@example.org. The new address dana@exarnple.com is not one of them"},
			[]string{"billing@", "ops"}},
		{"a new contact, told to a contact", domain.ActionChangeAccountEmail, "new@example.net", "Billing@example.org",
			[]string{"dana@example.com", "billing@example.org"},
			[]string{"d***@example.com, billing@example.org (this one). The new address new@example.net is not one of them"},
			[]string{"dana@"}},
		{"the account email changed to a contact already on file", domain.ActionChangeAccountEmail, "Billing@example.org", "dana@example.com",
			[]string{"dana@example.com", "billing@example.org"},
			[]string{"dana@example.com (this one), b***@example.org. The new address Billing@example.org is already on your account as a contact: after the change it becomes the account email"},
			[]string{"is not one of them"}},
		{"the new address is the account email already", domain.ActionChangeAccountEmail, "DANA@example.com", "dana@example.com",
			[]string{"dana@example.com", "billing@example.org"},
			[]string{"The new address DANA@example.com is already your account email"},
			[]string{"is not one of them", "as a contact"}},
		{"no recipient named: every address masked", domain.ActionAddContactEmail, "new@example.net", "",
			[]string{"dana@example.com"},
			[]string{"today are d***@example.com. The new address"},
			[]string{"dana@"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := noticeData(tt.action)
			d.NewEmail, d.Recipient, d.OnFile = tt.newEmail, tt.recipient, tt.onFile
			_, text, html, err := RenderNotice(d)
			if err != nil {
				t.Fatal(err)
			}
			// html/template writes + as &#43;.
			for name, part := range map[string]string{"text": text, "html": strings.ReplaceAll(html, "&#43;", "+")} {
				for _, w := range tt.want {
					if !strings.Contains(part, w) {
						t.Errorf("%s part lacks %q:\n%s", name, w, part)
					}
				}
				for _, w := range tt.wantNot {
					if strings.Contains(part, w) {
						t.Errorf("%s part shows %q:\n%s", name, w, part)
					}
				}
			}
		})
	}
	d := noticeData(domain.ActionReinstallVPS)
	d.OnFile = []string{"dana@example.com"}
	_, text, _, err := RenderNotice(d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, "addresses on your account") {
		t.Errorf("a server notice lists addresses:\n%s", text)
	}
}

// TestGreetingCapsTheName: a customer name of any length greets in at most
// MaxGreetingName runes, cut on a whole character (an escape such as
// [U+202E] is never split) and marked with an ellipsis; a short one is
// shown whole.
func TestGreetingCapsTheName(t *testing.T) {
	tests := []struct {
		name, customer, want string
	}{
		{"short", "Dana Whitfield", "Hello Dana Whitfield,"},
		{"exactly the cap", strings.Repeat("a", MaxGreetingName), "Hello " + strings.Repeat("a", MaxGreetingName) + ","},
		{"long", strings.Repeat("Dana ", 400), "Hello " + strings.TrimSpace(strings.Repeat("Dana ", 12)) + "…,"},
		{"escapes are not split", strings.Repeat("\u202e", 100), "Hello " + strings.Repeat("[U+202E]", 7) + "…,"},
		{"wide characters", strings.Repeat("名", 300), "Hello " + strings.Repeat("名", MaxGreetingName-1) + "…,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := noticeData(domain.ActionDisable2FA)
			d.CustomerName = tt.customer
			_, text, html, err := RenderNotice(d)
			if err != nil {
				t.Fatal(err)
			}
			// html/template writes + as &#43;.
			for name, part := range map[string]string{"text": text, "html": strings.ReplaceAll(html, "&#43;", "+")} {
				if !strings.Contains(part, tt.want) {
					t.Errorf("%s part does not greet %q:\n%.400s", name, tt.want, part)
				}
			}
		})
	}
}
