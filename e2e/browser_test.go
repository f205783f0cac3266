package e2e

import (
	"bytes"
	"context"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// established are the customer's addresses old enough to get notices (see
// seed); new@attacker.example was added an hour ago and must never get one.
var established = map[string]bool{"dana@example.com": true, "ops@whitfield.example": true}

// notice is one cancel-link notice as delivered, read from the raw message.
type notice struct {
	id          int
	envelopeTo  []string
	headerTo    []string
	subject     string
	contentType string
	text, html  string
	textLink    string
	htmlLink    string
}

var hrefLink = regexp.MustCompile(`href="([^"]*/c/[^"]*)"`)

// rawMessage fetches the message exactly as the catcher received it.
func (s *stack) rawMessage(t *testing.T, id int) []byte {
	t.Helper()
	resp, err := http.Get(s.mailURL + "/messages/" + strconv.Itoa(id) + ".eml")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET raw message %d: %d %s", id, resp.StatusCode, raw)
	}
	return raw
}

// kindMails returns the caught mails whose X-Vigil-Kind header is kind
// (notice, outcome, credentials), read from each raw message's header:
// subjects and bodies are the templates' words and change with them.
func (s *stack) kindMails(t *testing.T, kind string) []caughtMail {
	t.Helper()
	var out []caughtMail
	for _, m := range s.mails(t) {
		msg, err := mail.ReadMessage(bytes.NewReader(s.rawMessage(t, m.ID)))
		if err != nil {
			t.Fatalf("message %d does not parse: %v", m.ID, err)
		}
		if msg.Header.Get("X-Vigil-Kind") == kind {
			out = append(out, m)
		}
	}
	return out
}

// parseNotice reads a raw message with net/mail and mime/multipart. It
// returns ok=false for mail that is not a notice for requestID.
func parseNotice(t *testing.T, raw []byte, requestID string) (notice, bool) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("raw message does not parse: %v\n%s", err, raw)
	}
	if m.Header.Get("X-Vigil-Request") != requestID || m.Header.Get("X-Vigil-Kind") != "notice" {
		return notice{}, false
	}
	var n notice
	dec := new(mime.WordDecoder)
	if n.subject, err = dec.DecodeHeader(m.Header.Get("Subject")); err != nil {
		t.Fatalf("subject: %v", err)
	}
	to, err := m.Header.AddressList("To")
	if err != nil {
		t.Fatalf("To header: %v", err)
	}
	for _, a := range to {
		n.headerTo = append(n.headerTo, strings.ToLower(a.Address))
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	n.contentType = mt
	if mt != "multipart/alternative" {
		return n, true
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read MIME part: %v", err)
		}
		// NextPart undoes quoted-printable itself.
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("read MIME part: %v", err)
		}
		pt, _, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil {
			t.Fatalf("part Content-Type %q: %v", p.Header.Get("Content-Type"), err)
		}
		switch pt {
		case "text/plain":
			n.text = string(body)
			n.textLink = cancelLink.FindString(n.text)
		case "text/html":
			n.html = string(body)
			if m := hrefLink.FindStringSubmatch(n.html); m != nil {
				n.htmlLink = html.UnescapeString(m[1])
			}
		default:
			t.Errorf("unexpected part %s in the notice", pt)
		}
	}
	return n, true
}

// waitNotices waits until every established address has its notice for the
// request, and returns all notices for it.
func waitNotices(t *testing.T, s *stack, requestID string) []notice {
	t.Helper()
	var out []notice
	eventually(t, 30*time.Second, "notices for "+requestID+" to both established addresses", func() (bool, string) {
		out = nil
		got := map[string]bool{}
		for _, m := range s.mails(t) {
			n, ok := parseNotice(t, s.rawMessage(t, m.ID), requestID)
			if !ok {
				continue
			}
			n.id, n.envelopeTo = m.ID, m.To
			out = append(out, n)
			for _, to := range m.To {
				got[strings.ToLower(to)] = true
			}
		}
		for addr := range established {
			if !got[addr] {
				return false, "notified so far: " + strings.Join(keys(got), ", ")
			}
		}
		return true, ""
	})
	return out
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// checkNotice asserts what every notice must be: a two-part message with the
// same link in both parts, to one established address.
func checkNotice(t *testing.T, s *stack, n notice) {
	t.Helper()
	if n.contentType != "multipart/alternative" {
		t.Fatalf("notice %d is %s, want multipart/alternative", n.id, n.contentType)
	}
	if n.text == "" || n.html == "" {
		t.Fatalf("notice %d lacks a part: text %d bytes, html %d bytes", n.id, len(n.text), len(n.html))
	}
	if n.textLink == "" || n.textLink != n.htmlLink {
		t.Fatalf("notice %d: text part links %q, HTML part links %q; want the same cancel link in both", n.id, n.textLink, n.htmlLink)
	}
	if !strings.HasPrefix(n.textLink, s.webURL+"/c/") {
		t.Fatalf("notice %d: cancel link %q does not point at the web front %s", n.id, n.textLink, s.webURL)
	}
	for _, list := range [][]string{n.envelopeTo, n.headerTo} {
		if len(list) != 1 || !established[strings.ToLower(list[0])] {
			t.Fatalf("notice %d went to envelope %v, header %v; want exactly one established address", n.id, n.envelopeTo, n.headerTo)
		}
	}
	if !strings.EqualFold(n.envelopeTo[0], n.headerTo[0]) {
		t.Fatalf("notice %d: envelope recipient %v differs from To header %v", n.id, n.envelopeTo, n.headerTo)
	}
}

// noMailToAttacker asserts that the fresh contact got nothing at all.
func noMailToAttacker(t *testing.T, s *stack) {
	t.Helper()
	for _, m := range s.mails(t) {
		for _, to := range m.To {
			if strings.Contains(to, "attacker") {
				t.Errorf("the contact added an hour ago got mail: %q", m.Subject)
			}
		}
		if bytes.Contains(s.rawMessage(t, m.ID), []byte("new@attacker.example")) {
			t.Errorf("message %d (%q) mentions the fresh contact's address", m.ID, m.Subject)
		}
	}
}

func callsFor(calls []panelCall, requestID string) int {
	n := 0
	for _, c := range calls {
		if c.IdempotencyKey == "vigil-"+requestID {
			n++
		}
	}
	return n
}

// chromium finds the browser: VIGIL_CHROMIUM, else chromium on PATH.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VIGIL_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("VIGIL_CHROMIUM=%s: %v; install Debian's chromium: apt-get install -y chromium", p, err)
		}
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium on PATH (%v); install Debian's chromium: apt-get install -y chromium", err)
	}
	return p
}

// phone starts headless Chromium with a fresh profile and makes its tab look
// like a phone: 390×844 CSS pixels, mobile layout, touch, 2× pixels.
func phone(t *testing.T) context.Context {
	t.Helper()
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(390, 844),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	// Registered after TempDir, so the browser is gone before its profile is removed.
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844,
		chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait, chromedp.EmulateScale(2))); err != nil {
		t.Fatalf("start chromium and emulate a phone: %v", err)
	}
	return ctx
}

// artifact writes a test artifact under e2e/artifacts and logs its path.
func artifact(t *testing.T, name string, data []byte) {
	t.Helper()
	dir, err := filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// pageLayout is what a phone user sees of the cancel page.
type pageLayout struct {
	Heading     string  `json:"heading"`
	Main        string  `json:"main"`
	Buttons     int     `json:"buttons"`
	ButtonText  string  `json:"buttonText"`
	ButtonW     float64 `json:"buttonW"`
	ButtonH     float64 `json:"buttonH"`
	ButtonFont  float64 `json:"buttonFont"`
	BodyFont    float64 `json:"bodyFont"`
	Viewport    float64 `json:"viewport"`
	ScrollWidth float64 `json:"scrollWidth"`
}

const layoutJS = `(() => {
  const bs = document.querySelectorAll("button, input[type=submit], input[type=button]");
  const b = bs[0], r = b ? b.getBoundingClientRect() : {width: 0, height: 0};
  return {
    heading: ((document.querySelector("h1") || {}).innerText || "").trim(),
    main: ((document.querySelector("main") || document.body).innerText || ""),
    buttons: bs.length,
    buttonText: b ? (b.innerText || b.value || "").trim() : "",
    buttonW: r.width, buttonH: r.height,
    buttonFont: b ? parseFloat(getComputedStyle(b).fontSize) : 0,
    bodyFont: parseFloat(getComputedStyle(document.body).fontSize),
    viewport: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
  };
})()`

// TestCustomerCancelsFromEmailInBrowser is the customer's side end to end:
// the notice as it arrives (raw MIME), the link opened in a phone-sized
// headless Chromium, the one button pressed, and the request never reaching
// the control panel.
func TestCustomerCancelsFromEmailInBrowser(t *testing.T) {
	s := startStack(t, stackOptions{extraEnv: []string{"VIGIL_COOLING_REINSTALL_VPS=30m"}})
	alice, _ := seed(t, s)
	ctx := phone(t) // fail on a missing browser before the slow part

	r := s.open(t, alice, map[string]any{
		"action": "reinstall_vps", "customer_id": customerID, "server_id": "srv-1",
		"reason": "customer says the server is compromised", "pin": customerPIN,
	})
	s.click(t, r.ID, "approve", "U0BOB")
	s.waitStatus(t, alice, r.ID, "cooling", time.Minute)

	// The notice, read from the raw message as a mail client would.
	notices := waitNotices(t, s, r.ID)
	var link string
	for _, n := range notices {
		checkNotice(t, s, n)
		subject := strings.ToLower(n.subject)
		if !strings.Contains(subject, "srv-1") || !strings.Contains(subject, "erased") || !strings.Contains(subject, "reinstalled") {
			t.Fatalf("notice subject %q does not say plainly that srv-1 will be erased and reinstalled", n.subject)
		}
		if strings.EqualFold(n.envelopeTo[0], "dana@example.com") {
			link = n.textLink
		}
	}
	noMailToAttacker(t, s)
	if link == "" {
		t.Fatal("no notice to the primary address dana@example.com")
	}

	// The API reports cooling from the workflow; the page reads the
	// projection, which records the run time a moment later. A customer
	// reading mail is never that quick, so wait for it rather than
	// screenshot a page that cannot say when. GETs change nothing.
	eventually(t, 15*time.Second, "cancel page showing when the reinstall runs", func() (bool, string) {
		p := hit(t, linkRequest{method: "GET", link: link})
		return p.code == 200 && strings.Contains(p.body, "It will happen on "), p.heading + ": " + p.body
	})

	// Open the link on the phone. The page must say what will happen, and
	// when, and offer exactly one button.
	if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible("button[type=submit]")); err != nil {
		t.Fatalf("open the cancel link in Chromium: %v", err)
	}
	before, err := chromedp.Run(ctx, chromedp.Evaluate[pageLayout](layoutJS))
	if err != nil {
		t.Fatal(err)
	}
	if before.Heading != "Cancel this request?" {
		t.Fatalf("page heading %q, want %q", before.Heading, "Cancel this request?")
	}
	if !strings.Contains(before.Main, "erase and reinstall VPS srv-1") || !strings.Contains(before.Main, "It will happen on ") {
		t.Fatalf("page does not say what will happen and when:\n%s", before.Main)
	}
	if before.Buttons != 1 || before.ButtonText != "Cancel this request" {
		t.Fatalf("page has %d buttons (first %q), want one Cancel button", before.Buttons, before.ButtonText)
	}
	// Readable on a phone: no sideways scrolling, text at least 16px, and a
	// button that fills the width and is taller than a 44px touch target.
	if before.ScrollWidth > before.Viewport {
		t.Errorf("page scrolls sideways on a 390px phone: content %vpx wide", before.ScrollWidth)
	}
	if before.BodyFont < 16 || before.ButtonFont < 16 {
		t.Errorf("text too small on a phone: body %vpx, button %vpx", before.BodyFont, before.ButtonFont)
	}
	if before.ButtonH < 44 || before.ButtonW < 0.8*before.Viewport {
		t.Errorf("button %vx%vpx is too small to tap on a %vpx-wide phone", before.ButtonW, before.ButtonH, before.Viewport)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	artifact(t, "cancel-page.png", shot)

	// Opening the page changed nothing.
	if got := s.status(t, alice, r.ID); got.Status != "cooling" {
		t.Fatalf("opening the page moved the request to %s", got.Status)
	}

	// Tap the button as a thumb would. The POST replaces the document, so
	// poll it instead of waiting on a node of the old one.
	if err := chromedp.Do(ctx, chromedp.Tap("button[type=submit]")); err != nil {
		t.Fatalf("tap the button: %v", err)
	}
	var after pageLayout
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		after, err = chromedp.Run(ctx, chromedp.Evaluate[pageLayout](layoutJS))
		if err == nil && after.Heading != "" && after.Heading != before.Heading {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no confirmation 30s after the tap (heading %q, err %v)", after.Heading, err)
		}
	}
	if after.Heading != "Cancelled. Nothing will happen." {
		t.Fatalf("after the tap the page says %q:\n%s", after.Heading, after.Main)
	}
	if !strings.Contains(after.Main, "erase and reinstall VPS srv-1") || after.Buttons != 0 {
		t.Fatalf("confirmation should name the action and offer no button (%d):\n%s", after.Buttons, after.Main)
	}
	if shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	artifact(t, "cancel-confirmed.png", shot)

	s.waitStatus(t, alice, r.ID, "cancelled", 30*time.Second)
	if calls := s.panelCalls(t); len(calls) != 0 {
		t.Fatalf("the cancelled reinstall reached the control panel: %+v", calls)
	}
	// The page promised an email; it comes, to the established addresses only.
	eventually(t, 30*time.Second, "email confirming the cancellation", func() (bool, string) {
		for _, m := range s.mails(t) {
			if strings.Contains(m.Subject, "srv-1") && strings.Contains(strings.ToLower(m.Subject), "will not be erased") {
				return true, ""
			}
		}
		return false, "not sent yet"
	})
	noMailToAttacker(t, s)
}

// linkPage is the cancel page's answer to one HTTP request.
type linkPage struct {
	code    int
	heading string
	body    string
	csrf    string
	cookie  *http.Cookie
}

var (
	h1Pattern   = regexp.MustCompile(`(?s)<h1>(.*?)</h1>`)
	csrfPattern = regexp.MustCompile(`name="csrf" value="([^"]*)"`)
	tagPattern  = regexp.MustCompile(`<[^>]+>`)
)

// linkRequest is one request to a cancel link, as a browser or a forger
// would send it.
type linkRequest struct {
	method string
	link   string
	form   url.Values        // POST body; nil for GET
	header map[string]string // extra headers, e.g. Origin
	cookie *http.Cookie
}

// hit sends lr. The pages limit each address to a burst of 10, and this
// test sends more than that from 127.0.0.1, so a 429 is waited out and
// retried: the limiter answers before any handler, so nothing changed.
func hit(t *testing.T, lr linkRequest) linkPage {
	t.Helper()
	for attempt := 0; ; attempt++ {
		var body io.Reader
		if lr.form != nil {
			body = strings.NewReader(lr.form.Encode())
		}
		req, err := http.NewRequest(lr.method, lr.link, body)
		if err != nil {
			t.Fatal(err)
		}
		if lr.form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for k, v := range lr.header {
			req.Header.Set(k, v)
		}
		if lr.cookie != nil {
			req.AddCookie(lr.cookie)
		}
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%s cancel link: %v", lr.method, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests && attempt < 20 {
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			time.Sleep(time.Duration(max(wait, 1)) * time.Second)
			continue
		}
		p := linkPage{code: resp.StatusCode, body: html.UnescapeString(tagPattern.ReplaceAllString(string(raw), " "))}
		p.body = strings.Join(strings.Fields(p.body), " ")
		if m := h1Pattern.FindStringSubmatch(string(raw)); m != nil {
			p.heading = html.UnescapeString(strings.TrimSpace(m[1]))
		}
		if m := csrfPattern.FindStringSubmatch(string(raw)); m != nil {
			p.csrf = html.UnescapeString(m[1])
		}
		for _, c := range resp.Cookies() {
			if c.Value != "" {
				p.cookie = c
			}
		}
		return p
	}
}

// expectPage asserts the status, the heading and a phrase of the page.
func expectPage(t *testing.T, what string, p linkPage, code int, heading, phrase string) {
	t.Helper()
	if p.code != code || p.heading != heading || !strings.Contains(p.body, phrase) {
		t.Fatalf("%s: got %d %q, want %d %q saying %q; page:\n%s", what, p.code, p.heading, code, heading, phrase, p.body)
	}
}

// tamper flips one character in the middle of the token's signature part.
func tamper(t *testing.T, link string) string {
	t.Helper()
	dot := strings.LastIndex(link, ".")
	if dot < 0 || len(link)-dot < 20 {
		t.Fatalf("cancel link %q has no signature part", link)
	}
	i := dot + 10
	c := byte('A')
	if link[i] == 'A' {
		c = 'B'
	}
	return link[:i] + string(c) + link[i+1:]
}

// TestCancelLinkRefusals attacks the cancel link on real processes: each
// refusal has its status code and plain words, and changes nothing, neither
// the request's status nor what reached the control panel. An expired link
// is not tried here: links stay valid past the notice gate's deadline plus
// the cooling period plus an hour (the worker's CancelGrace, which the
// environment does not set), so it would take hours; internal/cancelpage's
// unit tests cover that page (410 "This link has expired") with a fake clock.
func TestCancelLinkRefusals(t *testing.T) {
	s := startStack(t, stackOptions{extraEnv: []string{
		"VIGIL_COOLING_REINSTALL_VPS=30m",
		// Long enough to open the page while the request is still cooling.
		"VIGIL_COOLING_RESEND_CREDENTIALS=8s",
	}})
	alice, _ := seed(t, s)
	unchanged := func(what, id, status string, panelCalls int) {
		t.Helper()
		if got := s.status(t, alice, id); got.Status != status {
			t.Fatalf("%s: request is %s, want it still %s", what, got.Status, status)
		}
		if calls := s.panelCalls(t); len(calls) != panelCalls {
			t.Fatalf("%s: the panel has %d calls, want %d: %+v", what, len(calls), panelCalls, calls)
		}
	}

	r := s.open(t, alice, map[string]any{
		"action": "reinstall_vps", "customer_id": customerID, "server_id": "srv-1",
		"reason": "customer says the server is compromised", "pin": customerPIN,
	})
	s.click(t, r.ID, "approve", "U0BOB")
	s.waitStatus(t, alice, r.ID, "cooling", time.Minute)
	notices := waitNotices(t, s, r.ID)
	for _, n := range notices {
		checkNotice(t, s, n)
	}
	link, other := notices[0].textLink, notices[1].textLink
	if link == other {
		t.Fatal("both recipients got the same cancel link; each needs its own single-use token")
	}

	// GET alone never cancels: mail scanners follow links.
	var page linkPage
	for i := 1; i <= 3; i++ {
		page = hit(t, linkRequest{method: "GET", link: link})
		expectPage(t, "GET #"+strconv.Itoa(i), page, 200, "Cancel this request?", "Opening this page changed nothing")
		unchanged("after GET #"+strconv.Itoa(i), r.ID, "cooling", 0)
	}
	if page.csrf == "" || page.cookie == nil {
		t.Fatalf("the page set no CSRF field (%q) or cookie (%v)", page.csrf, page.cookie)
	}
	good := url.Values{"csrf": {page.csrf}}
	sameOrigin := map[string]string{"Origin": s.webURL}

	// A tampered token is not valid. Its POST fails earlier, at the CSRF
	// check, because the form field is bound to the untampered token.
	bad := tamper(t, link)
	expectPage(t, "GET tampered link", hit(t, linkRequest{method: "GET", link: bad}), 400, "This link is not valid", "Nothing was changed")
	expectPage(t, "POST tampered link", hit(t, linkRequest{method: "POST", link: bad, form: good, header: sameOrigin, cookie: page.cookie}),
		403, "Please open the link again", "Nothing was changed")
	unchanged("after the tampered link", r.ID, "cooling", 0)

	// Forged POSTs: each lacks one thing a POST from our page has.
	forged := []struct {
		name   string
		form   url.Values
		header map[string]string
		cookie *http.Cookie
	}{
		{"no CSRF field", url.Values{}, sameOrigin, page.cookie},
		{"wrong CSRF field", url.Values{"csrf": {strings.Repeat("A", 43)}}, sameOrigin, page.cookie},
		{"no CSRF cookie", good, sameOrigin, nil},
		{"cross-site Origin", good, map[string]string{"Origin": "https://evil.example"}, page.cookie},
		{"cross-site fetch", good, map[string]string{"Sec-Fetch-Site": "cross-site"}, page.cookie},
	}
	for _, f := range forged {
		p := hit(t, linkRequest{method: "POST", link: link, form: f.form, header: f.header, cookie: f.cookie})
		expectPage(t, "POST with "+f.name, p, 403, "Please open the link again", "Nothing was changed")
		unchanged("after a POST with "+f.name, r.ID, "cooling", 0)
	}
	// None of that used the link up.
	expectPage(t, "GET after the refusals", hit(t, linkRequest{method: "GET", link: link}), 200, "Cancel this request?", "unless you cancel it")

	// The real POST cancels.
	expectPage(t, "POST from the page", hit(t, linkRequest{method: "POST", link: link, form: good, header: sameOrigin, cookie: page.cookie}),
		200, "Cancelled. Nothing will happen.", "We stopped the request to erase and reinstall VPS srv-1")
	s.waitStatus(t, alice, r.ID, "cancelled", 30*time.Second)

	// Pressed again (a double click, or a retry after a lost answer): the
	// same answer, and still one cancellation. Opened again: the link says
	// it was used.
	again := hit(t, linkRequest{method: "POST", link: link, form: good, header: sameOrigin, cookie: page.cookie})
	expectPage(t, "second POST", again, 200, "Cancelled. Nothing will happen.", "We stopped the request to erase and reinstall VPS srv-1")
	expectPage(t, "GET after use", hit(t, linkRequest{method: "GET", link: link}), 410, "This link was already used", "Nothing will happen")
	// The other recipient's link belongs to a request that has ended, once
	// the projection has caught up with the workflow (until then the page
	// still offers the button, and the workflow would refuse a second cancel).
	var ended linkPage
	eventually(t, 15*time.Second, "the other recipient's link showing the request ended", func() (bool, string) {
		ended = hit(t, linkRequest{method: "GET", link: other})
		return ended.code != http.StatusOK, ended.heading
	})
	expectPage(t, "the other recipient's link", ended, 410, "This request has already ended", "It was already cancelled")
	unchanged("after the used link", r.ID, "cancelled", 0)

	// A link for a request that already ran. The page is opened while it
	// cools, so the POST after the run carries a valid CSRF field and
	// cookie and reaches the link check.
	r2 := s.open(t, alice, map[string]any{
		"action": "resend_credentials", "customer_id": customerID, "server_id": "srv-2",
		"reason": "customer asked in live chat", "pin": customerPIN,
	})
	s.click(t, r2.ID, "approve", "U0BOB")
	s.waitStatus(t, alice, r2.ID, "cooling", time.Minute)
	link2 := waitNotices(t, s, r2.ID)[0].textLink
	open := hit(t, linkRequest{method: "GET", link: link2})
	expectPage(t, "GET while cooling", open, 200, "Cancel this request?", "email the login credentials of server srv-2")
	s.waitStatus(t, alice, r2.ID, "executed", time.Minute)
	if n := callsFor(s.panelCalls(t), r2.ID); n != 1 {
		t.Fatalf("the executed request reached the panel %d times, want 1", n)
	}
	// The API answers from the workflow; the page reads the projection,
	// which may say "executing" (409, "being carried out") a moment longer.
	var ran linkPage
	eventually(t, 15*time.Second, "cancel page knowing the request ran", func() (bool, string) {
		ran = hit(t, linkRequest{method: "GET", link: link2})
		return ran.code != http.StatusConflict, ran.heading
	})
	expectPage(t, "GET after the run", ran, 410, "This request has already ended", "already carried out")
	expectPage(t, "POST after the run", hit(t, linkRequest{method: "POST", link: link2, form: url.Values{"csrf": {open.csrf}}, header: sameOrigin, cookie: open.cookie}),
		410, "This request has already ended", "already carried out")
	unchanged("after the executed request's link", r2.ID, "executed", 1)
	if n := callsFor(s.panelCalls(t), r.ID); n != 0 {
		t.Fatalf("the cancelled request reached the panel %d times", n)
	}
	noMailToAttacker(t, s)
}
