// Package approvals renders Vigil's approval messages for Slack and talks to
// Slack for them: posting, updating, reminding, and asking who may approve,
// retrying transient failures.
package approvals

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// Action ids of the two buttons; the web front dispatches on them.
const (
	ActionApprove = "approve"
	ActionReject  = "reject"
)

// DecisionBlockID is the block_id of the actions block holding the buttons.
const DecisionBlockID = "decision"

// Caps on user-supplied text, counted after escaping, that keep every
// message inside Slack's Block Kit limits (3000 per section, 2000 per field,
// 300 per confirm dialog text).
const (
	maxReasonRunes = 2500
	maxShortRunes  = 200
	maxConfirmPart = 80
)

// Request is what an approval message shows about a sensitive request.
type Request struct {
	ID               string
	Action           domain.Action
	CustomerID       string
	MaskedEmail      string // the customer's primary email, already masked (see MaskEmail)
	ServerID         string
	NewEmail         string
	RequesterSlackID string
	RequesterName    string
	Reason           string
	PINVerifiedAt    time.Time
	ExpiresAt        time.Time // when the approval window closes
	CoolingPeriod    time.Duration
	// ServerMove is set when the request's server moved to its customer
	// (by an import) within the ageing period before the request opened.
	ServerMove *ServerMove
	// Risk is set when the account's recent security events made the open
	// need more than the PIN (internal/risk): the card says so first.
	Risk *Risk
	// History holds the status lines of the steps before the current one,
	// oldest first (from LineApproved, LineBreakGlass, LineNotified), so
	// that each update adds to the card instead of replacing what it said.
	History []string
}

// Risk is what the risk check at the open found and what it made pass.
type Risk struct {
	Signals string // the assessment's summary: events and dates, plain words
	// FactorVerified: the code from the customer's authenticator was
	// verified besides the PIN.
	FactorVerified bool
}

// ServerMove is a recent move of a request's server to its customer.
type ServerMove struct {
	From string    // the customer it belonged to before
	At   time.Time // when the import moved it
	// EstablishedAt is when the new customer's addresses start counting
	// for requests on the server: At plus the ageing period.
	EstablishedAt time.Time
}

// MaskEmail hides all of an address's local part but its first character,
// and shows the domain as textrule does, A-label first: "dana@example.com"
// -> "d***@example.com", "dana@münchen.de" -> "d***@xn--mnchen-3ya.de
// (münchen.de)". An address that does not pass textrule.Email (one stored
// before the rule) shows as "*** (not a valid address)".
func MaskEmail(e string) string {
	if e = strings.TrimSpace(e); e == "" {
		return ""
	}
	a, err := textrule.Email("email", e)
	if err != nil {
		return "*** (not a valid address)"
	}
	return a.Local()[:1] + "***@" + a.DisplayDomain()
}

// Title names an action for headers: "Resend server credentials".
func Title(a domain.Action) string { return a.Spec().Title }

// doing names the action as the confirm dialogs ask about it. Slack decodes
// &amp; &lt; &gt; in every text object, plain_text too, so the parts are
// escaped; their caps keep the dialog text within Slack's 300 characters.
func doing(r Request) string {
	return r.Action.Spec().Doing(inert(r.CustomerID, maxConfirmPart, "\n"), inert(r.ServerID, maxConfirmPart, "\n"))
}

// ApprovalBlocks is the message seniors act on: the request summary and
// Approve / Reject buttons whose value is the request id and nothing else —
// who clicked comes only from Slack's signed payload.
func ApprovalBlocks(r Request) []slack.Block {
	blocks := summary(r, "🔐 Approval needed: "+Title(r.Action))
	blocks = append(blocks,
		slack.NewContextBlock("", mrkdwn(fmt.Sprintf(
			"A senior other than the requester must decide by %s. After approval the customer is emailed and can cancel during the cooling period.",
			stamp(r.ExpiresAt)))),
		slack.NewActionBlock(DecisionBlockID,
			slack.NewButtonBlockElement(ActionApprove, r.ID, plain("Approve")).
				WithStyle(slack.StylePrimary).
				WithConfirm(slack.NewConfirmationBlockObject(
					plain("Approve this request?"),
					plain("Approve "+doing(r)+"?"),
					plain("Approve"), plain("Cancel")).WithStyle(slack.StylePrimary)),
			// No confirm step: Reject opens a dialog (RejectModal) that
			// asks for the reason and is itself the confirmation.
			slack.NewButtonBlockElement(ActionReject, r.ID, plain("Reject")).
				WithStyle(slack.StyleDanger),
		),
	)
	return blocks
}

// StatusBlocks is the same summary without buttons, and without the
// approval deadline, which no longer applies: the request's history
// (r.History) line by line, then line (Slack mrkdwn, e.g. from LineApproved)
// saying where it stands now.
func StatusBlocks(r Request, line string) []slack.Block {
	r.ExpiresAt = time.Time{}
	blocks := summary(r, "🔐 "+Title(r.Action))
	for _, h := range r.History {
		blocks = append(blocks, slack.NewContextBlock("", mrkdwn(clip(h, 2900))))
	}
	return append(blocks, slack.NewContextBlock("", mrkdwn(clip(line, 2900))))
}

func summary(r Request, header string) []slack.Block {
	if r.Risk != nil {
		header = "⚠️ Account at risk · " + header
	}
	customer := md(r.CustomerID, maxShortRunes, " ")
	if r.MaskedEmail != "" {
		customer += " · " + md(r.MaskedEmail, maxShortRunes, " ")
	}
	pin := "not recorded"
	if !r.PINVerifiedAt.IsZero() {
		pin = stamp(r.PINVerifiedAt)
	}
	fields := []*slack.TextBlockObject{
		mrkdwn("*Action*\n" + Title(r.Action)),
		mrkdwn("*Customer*\n" + customer),
		mrkdwn("*Requested by*\n" + person(r.RequesterSlackID, r.RequesterName)),
		mrkdwn("*Request*\n" + md(r.ID, maxShortRunes, " ")),
		mrkdwn("*PIN verified*\n" + pin),
		mrkdwn("*Cooling period*\n" + humanDuration(r.CoolingPeriod) + " after approval"),
	}
	if !r.ExpiresAt.IsZero() {
		fields = append(fields, mrkdwn("*Approval expires*\n"+stamp(r.ExpiresAt)))
	}
	server := md(r.ServerID, maxShortRunes, " ")
	newEmail := ""
	if r.NewEmail != "" {
		newEmail = md(textrule.DisplayEmail(r.NewEmail), maxShortRunes, " ")
	}
	what := "*What it does:* " + r.Action.Describe(server, newEmail) + "."
	if r.Action == domain.ActionReinstallVPS {
		what += "\n⚠️ *Every file on VPS " + server + " is erased. This cannot be undone.*"
	}
	if m := r.ServerMove; m != nil && r.ServerID != "" {
		what += "\n⚠️ *Server " + server + " moved to this customer from " + md(m.From, maxShortRunes, " ") + " at " + stamp(m.At) +
			".* No address of this customer counts as established for it before " + stamp(m.EstablishedAt) +
			", so the customer notice cannot go out until then. Check the move with billing before approving."
	}
	if k := r.Risk; k != nil {
		verified := "the PIN only"
		if k.FactorVerified {
			verified = "the PIN and the code from the customer's authenticator app"
		}
		what += "\n⚠️ *Account at risk:* " + md(k.Signals, maxReasonRunes, " ") + ". Verified: " + verified +
			". Someone else may hold this customer's mailbox or PIN: approve only if the request makes sense for the real customer."
	}
	reason := strings.TrimSpace(r.Reason)
	if reason == "" {
		reason = "(none given)"
	}
	quoted := "> " + md(reason, maxReasonRunes, "\n> ")
	return []slack.Block{
		slack.NewHeaderBlock(plain(clip(header, 150))),
		slack.NewSectionBlock(nil, fields, nil),
		slack.NewSectionBlock(mrkdwn(what), nil, nil),
		slack.NewSectionBlock(mrkdwn("*Reason given by the requester:*\n"+quoted), nil, nil),
	}
}

// LineApproved is the status line after a senior approved.
func LineApproved(approverID string, at time.Time) string {
	return fmt.Sprintf("✅ Approved by %s at %s", person(approverID, approverID), at.UTC().Format("15:04 UTC"))
}

// LineBreakGlass is the status line after two seniors decided outside Slack
// (break-glass); decision is "approved" or "rejected".
func LineBreakGlass(decision, firstID, secondID string, at time.Time) string {
	return fmt.Sprintf("🚨 Break-glass: %s outside Slack by %s and %s at %s", decision,
		person(firstID, firstID), person(secondID, secondID), at.UTC().Format("15:04 UTC"))
}

// LineRejected is the status line after a senior rejected, with their reason if any.
func LineRejected(approverID, reason string) string {
	line := "❌ Rejected by " + person(approverID, approverID)
	if reason = strings.TrimSpace(reason); reason != "" {
		line += ": " + md(reason, maxReasonRunes, "\n")
	}
	return line
}

// LineNotified is the status line once the customer was emailed.
func LineNotified(runsAt time.Time) string {
	return "📧 Customer notified — runs at " + stamp(runsAt) + " unless someone cancels"
}

// LineWasNotified is the card's history line for the notice once the
// request has moved on: when the customer was emailed and until when they
// could cancel.
func LineWasNotified(at, coolingEnds time.Time) string {
	return "📧 Customer notified at " + stamp(at) + "; cooling period until " + stamp(coolingEnds)
}

// LineCancelled is the status line after a cancellation; by is the Slack user
// id of the agent who cancelled (ignored for the customer), reason the one
// they gave, escaped like the requester's. A stop by Vigil's standing check
// gives no reason here: the security channel has it.
func LineCancelled(party domain.CancelParty, by, reason string) string {
	var line string
	switch party {
	case domain.CancelByCustomer:
		line = "🛑 Cancelled by the customer"
	case domain.CancelByRequester:
		line = "🛑 Withdrawn by the requester " + person(by, "")
	case domain.CancelBySenior:
		line = "🛑 Cancelled by " + person(by, "a senior")
	case domain.CancelBySecurity:
		return "🛑 Stopped by Vigil: the requester or an approver is no longer in good standing (see the security channel)"
	default:
		line = "🛑 Cancelled"
	}
	return line + quotedReason(reason)
}

// LineBreakGlassRejected is the status line after two seniors rejected
// outside Slack (break-glass), with the reason they gave, if any.
func LineBreakGlassRejected(firstID, secondID, reason string, at time.Time) string {
	return LineBreakGlass("rejected", firstID, secondID, at) + quotedReason(reason)
}

// quotedReason is reason as a quote under a status line, escaped and quoted
// line by line as the requester's reason is, so no line of it can pass for
// a status line of its own; "" for no reason.
func quotedReason(reason string) string {
	if reason = strings.TrimSpace(reason); reason != "" {
		return "\n> " + md(reason, maxReasonRunes, "\n> ")
	}
	return ""
}

// LineExecuted is the status line after the action ran.
func LineExecuted(at time.Time) string { return "✔️ Executed at " + stamp(at) }

// LineFailed is the status line after the action failed for good.
func LineFailed(reason string) string {
	if reason = strings.TrimSpace(reason); reason != "" {
		return "⚠️ Failed: " + md(reason, maxReasonRunes, "\n")
	}
	return "⚠️ Failed"
}

// LineExpired is the status line when no senior decided in time.
func LineExpired() string { return "⌛ Expired: no senior decided in time" }

var slackUserID = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)

// person mentions a Slack user when id is one, else shows name as plain text.
func person(id, name string) string {
	if slackUserID.MatchString(id) {
		return "<@" + id + ">"
	}
	if name = strings.TrimSpace(name); name != "" {
		return md(name, maxShortRunes, " ")
	}
	return "(unknown)"
}

// inert makes user-supplied text inert in mrkdwn — no mentions, @channel
// pings or disguised links — by escaping &, < and >, turning each newline
// into newline, and cutting the result to at most n runes (marked with …)
// without splitting an escape. Characters the text rule refuses other than
// newlines (text stored before the rule, a failure message) are written out
// as [U+202E] first, so nothing hidden reaches the senior.
func inert(s string, n int, newline string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = textrule.Escape(l)
	}
	s = strings.Join(lines, "\n")
	var pieces []string
	total := 0
	for _, r := range s {
		p := string(r)
		switch r {
		case '&':
			p = "&amp;"
		case '<':
			p = "&lt;"
		case '>':
			p = "&gt;"
		case '\n':
			p = newline
		}
		pieces = append(pieces, p)
		total += utf8.RuneCountInString(p)
	}
	if total <= n {
		return strings.Join(pieces, "")
	}
	var b strings.Builder
	used := 0
	for _, p := range pieces {
		l := utf8.RuneCountInString(p)
		if used+l > n-1 {
			break
		}
		b.WriteString(p)
		used += l
	}
	return b.String() + "…"
}

// md is inert for mrkdwn: it also keeps the requester's text from being
// formatted. Slack's mrkdwn has no escape for *bold*, _italic_, ~strike~,
// `code` or :emoji: codes, so a reason such as "*approved by security*" or
// ":white_check_mark: verified" would render as Vigil's own emphasis or
// icons, and a leading > as a quote. Each line that holds one of those marks
// is shown as inline code,
// which Slack draws verbatim; a backquote inside is written out as [U+0060],
// the way refused characters are.
func md(s string, n int, newline string) string {
	var b strings.Builder
	used := 0
	for i, line := range strings.Split(s, "\n") {
		if i > 0 {
			sep := utf8.RuneCountInString(newline)
			if used+sep+1 > n {
				return b.String() + "…"
			}
			b.WriteString(newline)
			used += sep
		}
		wrap := formats(textrule.Escape(line))
		room := n - used
		if wrap {
			// the two backquotes, and seven more runes for each one written out
			room -= 2 + 7*strings.Count(line, "`")
		}
		if room < 2 {
			return b.String() + "…"
		}
		l := inert(line, room, " ")
		if wrap {
			l = "`" + strings.ReplaceAll(l, "`", "[U+0060]") + "`"
		}
		b.WriteString(l)
		used += utf8.RuneCountInString(l)
		if strings.HasSuffix(l, "…") || strings.HasSuffix(l, "…`") {
			return b.String()
		}
	}
	return b.String()
}

// emojiCode is a Slack emoji code such as :white_check_mark:.
var emojiCode = regexp.MustCompile(`:[a-z0-9_+'-]+:`)

// formats reports whether mrkdwn could render part of l as something other
// than its characters: a pair of *, _ or ~ (one alone formats nothing, so
// "req_abc" stays as it is), any backquote, an emoji code, or a > that
// starts the line (after spaces), which Slack draws as a quote even when it
// is sent escaped as &gt;: the card's fields put a name or an id at the start
// of a line, where "> Approved by security" would read as a quoted message.
func formats(l string) bool {
	if strings.HasPrefix(strings.TrimLeft(l, " "), ">") {
		return true
	}
	for _, m := range []string{"*", "_", "~"} {
		if strings.Count(l, m) >= 2 {
			return true
		}
	}
	return strings.Contains(l, "`") || emojiCode.MatchString(l)
}

// clip cuts s to at most n runes, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "(not set)"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// humanDuration writes d in the largest whole unit: "48 hours", "90 minutes".
func humanDuration(d time.Duration) string {
	unit := func(n int64, name string) string {
		if n == 1 {
			return "1 " + name
		}
		return fmt.Sprintf("%d %ss", n, name)
	}
	switch {
	case d <= 0:
		return "no wait"
	case d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute")
	case d%time.Second == 0:
		return unit(int64(d/time.Second), "second")
	}
	return d.String()
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, true, false)
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}
