package cancelpage

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
)

// browser starts headless Chromium (Debian's chromium package).
func browser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (apt-get install chromium): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(390, 844))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 20*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// text returns the visible text of the first element matching sel.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// TestChromiumFormPost drives the page in a real browser: the form POST that
// Chromium sends (Origin: null under Referrer-Policy: no-referrer, with
// Sec-Fetch-Site: same-origin and the SameSite=Strict cookie) passes every
// CSRF check. The request is marked executed between page and click, so the
// POST stops at the final re-check instead of reaching Temporal; a refused
// CSRF check would show "Please open the link again" instead.
func TestChromiumFormPost(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := browser(t)
	tok, id := e.link("req_live", e.now.Add(time.Hour), true)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.srv.URL+"/c/"+tok),
		chromedp.WaitVisible("button[type=submit]"),
	); err != nil {
		t.Fatal(err)
	}
	if heading := text(t, ctx, "h1"); heading != "Cancel this request?" {
		t.Fatalf("heading %q", heading)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("VIGIL_SCREENSHOT_DIR"); dir != "" {
		_ = os.WriteFile(dir+"/cancel-confirm.png", shot, 0o644)
	}
	if err := e.st.UpdateRequest(context.Background(), "req_live", store.RequestUpdate{Status: domain.StatusExecuted}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click("button[type=submit]"),
		chromedp.WaitNotPresent("button[type=submit]"),
	); err != nil {
		t.Fatal(err)
	}
	heading, body := text(t, ctx, "h1"), text(t, ctx, "main")
	if heading != "This request has already ended" || !strings.Contains(body, "already carried out") {
		t.Fatalf("after the click: %q\n%s", heading, body)
	}
	if e.used(id) {
		t.Fatal("link marked used though nothing was cancelled")
	}
}

// TestChromiumCrossSiteForm has a page on another site submit a form, with
// the right CSRF field even, to a live link: it is refused and the link
// stays unused.
func TestChromiumCrossSiteForm(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := browser(t)
	tok, id := e.link("req_live", e.now.Add(time.Hour), true)
	// The victim opened the link before, so the browser holds the cookie.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.srv.URL+"/c/"+tok),
		chromedp.WaitVisible("button[type=submit]"),
	); err != nil {
		t.Fatal(err)
	}
	attr, err := chromedp.Run(ctx, chromedp.AttributeValue(`input[name=csrf]`, "value"))
	if err != nil || attr.Value == "" {
		t.Fatalf("CSRF field: %+v %v", attr, err)
	}
	field := attr.Value
	target := e.srv.URL + "/c/" + tok
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<form method="post" action="%s"><input type="hidden" name="csrf" value="%s"><button id="go">win a prize</button></form>`, target, field)
	}))
	defer evil.Close()
	// "localhost" and "127.0.0.1" are different sites.
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(evilURL),
		chromedp.WaitVisible("#go"),
		chromedp.Click("#go"),
	); err != nil {
		t.Fatal(err)
	}
	// The POST navigates to another site, so the page changes process;
	// poll the document rather than wait on a node of the old one.
	var heading string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		h, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("h1") || {}).textContent || ""`))
		if err == nil && h != "" {
			heading = h
			break
		}
	}
	if heading != "Please open the link again" {
		t.Fatalf("cross-site POST answered %q; server log:\n%s", heading, e.logs.String())
	}
	if !strings.Contains(e.logs.String(), "outcome=csrf_refused status=403") {
		t.Fatalf("server did not refuse the POST:\n%s", e.logs.String())
	}
	if e.used(id) || e.status("req_live") != domain.StatusCooling {
		t.Fatal("cross-site POST changed state")
	}
}
