package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"
	"unicode/utf8"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/textrule"
)

//go:embed templates
var templateFS embed.FS

// timeLayout reads as "Tue 26 Nov 2026 14:05 UTC".
const timeLayout = "Mon 2 Jan 2006 15:04 MST"

// templates holds one parsed text and HTML template per email kind.
type templates struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

func mustTemplates(kind string) templates {
	return templates{
		text: texttemplate.Must(texttemplate.ParseFS(templateFS, "templates/"+kind+".txt")),
		html: htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/layout.html", "templates/"+kind+".html")),
	}
}

// The templates are parsed lazily but only once; parse errors are programming
// errors caught by the tests, so Must is acceptable here.
var (
	noticeTemplates      = sync.OnceValue(func() templates { return mustTemplates("notice") })
	outcomeTemplates     = sync.OnceValue(func() templates { return mustTemplates("outcome") })
	credentialsTemplates = sync.OnceValue(func() templates { return mustTemplates("credentials") })
)

func (t templates) render(view any) (text, html string, err error) {
	var tb, hb bytes.Buffer
	if err := t.text.Execute(&tb, view); err != nil {
		return "", "", fmt.Errorf("mail: render text: %w", err)
	}
	if err := t.html.ExecuteTemplate(&hb, "layout.html", view); err != nil {
		return "", "", fmt.Errorf("mail: render html: %w", err)
	}
	return tb.String(), hb.String(), nil
}

// common is what every email's templates can use.
type common struct {
	Subject      string
	Greeting     string
	SupportEmail string
	ProductName  string
}

func newCommon(subject, customerName, supportEmail, productName string) (common, error) {
	if supportEmail != "" {
		if _, err := textrule.Email("support email", supportEmail); err != nil {
			return common{}, fmt.Errorf("mail: %w", err)
		}
	}
	greeting := "Hello,"
	if name := strings.TrimSpace(customerName); name != "" {
		greeting = "Hello " + greetingName(name) + ","
	}
	return common{Subject: subject, Greeting: greeting, SupportEmail: supportEmail, ProductName: strings.TrimSpace(productName)}, nil
}

// MaxGreetingName caps the customer's name in a greeting, in runes as
// shown (after textrule.Escape): the name comes from billing, and a
// paragraph of it would push the notice's facts out of sight.
const MaxGreetingName = 60

// greetingName is name as the greeting shows it: each character escaped as
// textrule.Escape does, whole escapes kept or dropped together, and cut with
// an ellipsis to at most MaxGreetingName runes.
func greetingName(name string) string {
	shown := textrule.Escape(name)
	if utf8.RuneCountInString(shown) <= MaxGreetingName {
		return shown
	}
	var b strings.Builder
	used := 0
	for _, r := range name {
		piece := textrule.Escape(string(r))
		n := utf8.RuneCountInString(piece)
		if used+n > MaxGreetingName-1 {
			break
		}
		b.WriteString(piece)
		used += n
	}
	return strings.TrimRight(b.String(), " ") + "…"
}

// NoticeData fills the email that warns the customer before an action runs.
type NoticeData struct {
	CustomerName   string
	Action         domain.Action
	ServerID       string // for resend_credentials and reinstall_vps
	NewEmail       string // for add_contact_email and change_account_email
	AgentFirstName string // who asked
	AgentTeam      string // e.g. "Support"
	RunsAt         time.Time
	Location       *time.Location // zone for RunsAt; nil means UTC
	CoolingPeriod  time.Duration
	CancelURL      string
	SupportEmail   string
	ProductName    string
	// OnFile lists the account's addresses today, primary first, for the
	// actions that name a new address: the customer compares the new one
	// with them, so one that only looks like theirs stands out.
	OnFile []string
	// Recipient is the address this notice goes to: it is the one on the
	// list shown in full; the others are masked (see onFile).
	Recipient string
}

type noticeView struct {
	common
	Headline  string
	WhoAsked  string
	When      string
	In        string
	Detail    string
	OnFile    string
	CancelURL string
}

// RenderNotice renders the cancel-link notice for d.
func RenderNotice(d NoticeData) (subject, text, html string, err error) {
	email, err := checkTarget(d.Action, d.ServerID, d.NewEmail)
	if err != nil {
		return "", "", "", err
	}
	if strings.TrimSpace(d.AgentFirstName) == "" {
		return "", "", "", errors.New("mail: notice needs the requesting agent's first name")
	}
	if d.RunsAt.IsZero() || d.CoolingPeriod <= 0 {
		return "", "", "", errors.New("mail: notice needs RunsAt and a positive CoolingPeriod")
	}
	if err := checkCancelURL(d.CancelURL); err != nil {
		return "", "", "", err
	}
	when := formatTime(d.RunsAt, d.Location)
	headline := d.Action.Spec().WillHappen(d.ServerID, email) + " on " + when
	c, err := newCommon(headline, d.CustomerName, d.SupportEmail, d.ProductName)
	if err != nil {
		return "", "", "", err
	}
	v := noticeView{
		common:    c,
		Headline:  headline,
		WhoAsked:  textrule.Escape(strings.TrimSpace(d.AgentFirstName)) + " from " + teamPhrase(textrule.Escape(d.AgentTeam)),
		When:      when,
		In:        humanDuration(d.CoolingPeriod),
		Detail:    d.Action.Spec().NoticeDetail(d.ServerID, email),
		OnFile:    onFile(d.NewEmail, email, d.Recipient, d.OnFile),
		CancelURL: d.CancelURL,
	}
	text, html, err = noticeTemplates().render(v)
	return headline, text, html, err
}

// onFile is the notice's line comparing the new address (raw as stored,
// shown as it is displayed) with the account's, or "" for an action that
// names none.
//
// Each address on the account gets a notice of its own, and its reader is
// shown their own address in full and the others masked (first character
// and domain): whoever reads one mailbox, perhaps a former employee's
// forward, must not learn every other address on the account from it. The
// reader compares the new address with their own letter by letter; Vigil
// has already refused one that looks like any address on file.
func onFile(newRaw, newShown, recipient string, addrs []string) string {
	if newShown == "" || len(addrs) == 0 {
		return ""
	}
	shown := make([]string, len(addrs))
	already, primary := false, strings.EqualFold(strings.TrimSpace(addrs[0]), strings.TrimSpace(newRaw))
	for i, a := range addrs {
		if recipient != "" && strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(recipient)) {
			shown[i] = textrule.DisplayEmail(a) + " (this one)"
		} else {
			shown[i] = maskEmail(a)
		}
		already = already || strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(newRaw))
	}
	line := "The addresses on your account today are " + strings.Join(shown, ", ") + ". The new address " + newShown
	switch {
	case primary:
		// Refused when the request opens; said truly should one get here.
		return line + " is already your account email."
	case already:
		// An account email change to an address that is a contact already.
		return line + " is already on your account as a contact: after the change it becomes the account email."
	}
	return line + " is not one of them: compare it with yours letter by letter."
}

// maskEmail shows an address as its first character and its domain:
// "dana@example.com" -> "d***@example.com", an internationalised domain as
// Display shows it. One that does not pass textrule.Email (stored before
// the rule) shows as "*** (not a valid address)".
func maskEmail(e string) string {
	a, err := textrule.Email("email", strings.TrimSpace(e))
	if err != nil {
		return "*** (not a valid address)"
	}
	first, _ := utf8.DecodeRuneInString(a.Local())
	return string(first) + "***@" + a.DisplayDomain()
}

// OutcomeData fills the email that tells the customer how a request ended.
type OutcomeData struct {
	CustomerName string
	Action       domain.Action
	ServerID     string
	NewEmail     string
	Outcome      domain.Status // executed, cancelled, withdrawn, rejected, expired or failed
	CancelledBy  domain.CancelParty
	At           time.Time
	Location     *time.Location
	SupportEmail string
	ProductName  string
}

type outcomeView struct {
	common
	Headline string
	Lines    []string
	When     string
	Warning  string
}

// RenderOutcome renders the email saying what became of a request.
func RenderOutcome(d OutcomeData) (subject, text, html string, err error) {
	email, err := checkTarget(d.Action, d.ServerID, d.NewEmail)
	if err != nil {
		return "", "", "", err
	}
	if d.At.IsZero() {
		return "", "", "", errors.New("mail: outcome needs the time it happened")
	}
	nothing := "Nothing has changed on your account."
	var headline string
	var lines []string
	warning := ""
	switch d.Outcome {
	case domain.StatusExecuted:
		headline = d.Action.Spec().HasHappened(d.ServerID, email)
		lines = []string{d.Action.Spec().ExecutedDetail}
		warning = "If you did not expect this, contact us right away."
	case domain.StatusCancelled, domain.StatusWithdrawn:
		by := d.CancelledBy
		if d.Outcome == domain.StatusWithdrawn && by == "" {
			by = domain.CancelByRequester
		}
		who, err := cancelledBy(by)
		if err != nil {
			return "", "", "", err
		}
		headline = "Cancelled: " + d.Action.Spec().WontHappen(d.ServerID, email)
		lines = []string{who, nothing}
	case domain.StatusRejected:
		headline = "Not approved: " + d.Action.Spec().WontHappen(d.ServerID, email)
		lines = []string{"A senior member of our support team did not approve this request.", nothing}
		warning = "If you did not ask for this, we recommend securing your email account and changing your passwords."
	case domain.StatusExpired:
		headline = "Expired: " + d.Action.Spec().WontHappen(d.ServerID, email)
		lines = []string{"The request was not approved in time, so it expired.", nothing, "If you still need this, please ask us again."}
	case domain.StatusFailed:
		headline = "We could not " + d.Action.Spec().Infinitive(d.ServerID, email)
		lines = []string{"Something went wrong on our side and the request could not be completed. Our team has been alerted.", "If you still need this, please contact us."}
	default:
		return "", "", "", fmt.Errorf("mail: no outcome email for status %q", d.Outcome)
	}
	c, err := newCommon(headline, d.CustomerName, d.SupportEmail, d.ProductName)
	if err != nil {
		return "", "", "", err
	}
	v := outcomeView{common: c, Headline: headline, Lines: lines, When: formatTime(d.At, d.Location), Warning: warning}
	text, html, err = outcomeTemplates().render(v)
	return headline, text, html, err
}

// CredentialsData fills the email that carries a server's login details.
type CredentialsData struct {
	CustomerName string
	ServerID     string
	Username     string
	Password     string
	SupportEmail string
	ProductName  string
}

// String describes the data without the password.
func (d CredentialsData) String() string {
	return fmt.Sprintf("CredentialsData{CustomerName:%s ServerID:%s Username:%s Password:[redacted]}", d.CustomerName, d.ServerID, d.Username)
}

// GoString keeps the password out of %#v output.
func (d CredentialsData) GoString() string { return d.String() }

// LogValue keeps the password out of slog output.
func (d CredentialsData) LogValue() slog.Value {
	return slog.GroupValue(slog.String("server_id", d.ServerID), slog.String("username", d.Username), slog.String("password", "[redacted]"))
}

type credentialsView struct {
	common
	ServerID string
	Username string
	Password string
}

// RenderCredentials renders the email carrying a server's login details.
func RenderCredentials(d CredentialsData) (subject, text, html string, err error) {
	if strings.TrimSpace(d.ServerID) == "" || d.Username == "" || d.Password == "" {
		return "", "", "", errors.New("mail: credentials email needs a server, username and password")
	}
	subject = "Your login details for server " + d.ServerID
	c, err := newCommon(subject, d.CustomerName, d.SupportEmail, d.ProductName)
	if err != nil {
		return "", "", "", err
	}
	text, html, err = credentialsTemplates().render(credentialsView{common: c, ServerID: d.ServerID, Username: d.Username, Password: d.Password})
	if err != nil {
		return "", "", "", err
	}
	return subject, text, html, nil
}

// checkTarget checks what a request acts on and returns the new address as
// the customer is to read it (Address.Display: an internationalised domain
// shows its A-label first, so the address cannot pass for another).
func checkTarget(a domain.Action, serverID, email string) (string, error) {
	if _, err := domain.ParseAction(string(a)); err != nil {
		return "", fmt.Errorf("mail: %w", err)
	}
	if a.NeedsServer() && strings.TrimSpace(serverID) == "" {
		return "", fmt.Errorf("mail: %s needs a server id", a)
	}
	if err := textrule.Check("server id", serverID, textrule.Options{MaxLen: 64}); err != nil {
		return "", fmt.Errorf("mail: %w", err)
	}
	if !a.NeedsEmail() {
		return "", nil
	}
	addr, err := textrule.Email("new email", email)
	if err != nil {
		return "", fmt.Errorf("mail: %w", err)
	}
	return addr.Display(), nil
}

func checkCancelURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return errors.New("mail: cancel URL must be an absolute http(s) URL")
	}
	return headerValue("cancel URL", s)
}

func formatTime(t time.Time, loc *time.Location) string {
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format(timeLayout)
}

func teamPhrase(team string) string {
	team = strings.TrimSpace(team)
	switch {
	case team == "":
		return "our support team"
	case strings.HasSuffix(strings.ToLower(team), " team"):
		return "our " + team
	default:
		return "our " + team + " team"
	}
}

// humanDuration says how far away something is, as "in 24 hours" or "in 3 days".
func humanDuration(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return fmt.Sprintf("1 %s", unit)
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return "in " + plural(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour:
		h, m := int64(d/time.Hour), int64(d%time.Hour/time.Minute)
		if m == 0 {
			return "in " + plural(h, "hour")
		}
		return "in " + plural(h, "hour") + " and " + plural(m, "minute")
	case d >= time.Minute:
		return "in " + plural(int64(d/time.Minute), "minute")
	default:
		return "in " + plural(max(int64(d/time.Second), 1), "second")
	}
}

func cancelledBy(p domain.CancelParty) (string, error) {
	switch p {
	case domain.CancelByCustomer:
		return "You cancelled this request.", nil
	case domain.CancelByRequester:
		return "The support agent who asked for it cancelled it.", nil
	case domain.CancelBySenior:
		return "A senior colleague of the agent who asked for it cancelled it.", nil
	case domain.CancelBySecurity:
		return "Our security checks stopped it: a staff member involved is no longer authorised to take part in it.", nil
	}
	return "", fmt.Errorf("mail: unknown cancelling party %q", p)
}
