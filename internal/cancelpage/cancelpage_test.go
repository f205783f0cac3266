package cancelpage

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/syncbuf"
	"github.com/vigil-oss/vigil/internal/temporaltest"
	"github.com/vigil-oss/vigil/internal/testpg"
	"github.com/vigil-oss/vigil/internal/tokens"
)

// env serves the real pages over loopback HTTP on a fresh database. The
// Temporal client is a real SDK client aimed at a closed port, so the cancel
// Update always fails as unavailable: these tests cover every path that ends
// before it, and the outage path. The e2e suite covers the successful cancel
// and the race with execution inside the workflow.
type env struct {
	t      *testing.T
	st     *store.Store
	svc    *requests.Service
	signer *tokens.Signer
	srv    *httptest.Server
	logs   *syncbuf.Buffer
	now    time.Time
	issued []string // every token handed out, to check the log
}

var coolingEnds = time.Date(2031, 3, 4, 15, 30, 0, 0, time.UTC)

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	return newEnvWith(t, opts, nil)
}

// newEnvWith is newEnv with the Temporal client tc; nil means a real client
// aimed at a closed port.
func newEnvWith(t *testing.T, opts Options, tc client.Client) *env {
	t.Helper()
	st := store.New(testpg.New(t))
	ctx := context.Background()
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	signer, err := tokens.NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, signer: signer, logs: &syncbuf.Buffer{}, now: time.Now()}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if tc == nil {
		tc = temporaltest.Unreachable(t, logger)
	}
	svc, err := requests.New(tc, st, requests.Timings{ApprovalTimeout: time.Hour, NoticeTimeout: time.Hour, ExecuteMaxAttempts: 3,
		Cooling: domain.DefaultCoolingPeriods()}, requests.RiskChecks{Off: true}, logger)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc

	var h http.Handler
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	if opts.PublicURL == "" {
		opts.PublicURL = e.srv.URL
	}
	if opts.RatePerMinute == 0 {
		// Generous, so only the rate-limit test meets the limit.
		opts.RatePerMinute, opts.RateBurst = 6000, 1000
	}
	opts.CSRFKey = []byte("csrf-key-for-tests-0123456789abcdef")
	opts.SupportEmail = "help@acme-hosting.test"
	opts.ProductName = "Acme Hosting"
	h = New(svc, st, signer, opts, logger).Handler()

	hash, err := pinhash.Hash("123456", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertCustomer(ctx, store.CustomerImport{ID: "C-1", Name: "Ann", PrimaryEmail: "ann@example.test", PINHash: hash, Servers: []string{"srv-1"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAgent(ctx, store.Agent{ID: "ag_req", Name: "Rita", Role: domain.RoleAgent}, nil); err != nil {
		t.Fatal(err)
	}
	ended := e.now.Add(-time.Hour)
	for _, r := range []store.Request{
		{ID: "req_live", Status: domain.StatusCooling, Action: domain.ActionReinstallVPS, ServerID: "srv-1", CoolingEndsAt: &coolingEnds},
		{ID: "req_notifying", Status: domain.StatusNotifying, Action: domain.ActionDisable2FA},
		{ID: "req_executed", Status: domain.StatusExecuted, Action: domain.ActionReinstallVPS, ServerID: "srv-1", EndedAt: &ended},
		{ID: "req_withdrawn", Status: domain.StatusWithdrawn, Action: domain.ActionDisable2FA, EndedAt: &ended},
		{ID: "req_running", Status: domain.StatusExecuting, Action: domain.ActionAddContactEmail, Email: "new@example.test"},
		{ID: "req_cust_cancelled", Status: domain.StatusCancelled, CancelledBy: string(domain.CancelByCustomer), Action: domain.ActionDisable2FA, EndedAt: &ended},
		{ID: "req_vetoed", Status: domain.StatusCancelled, CancelledBy: string(domain.CancelBySenior), Action: domain.ActionDisable2FA, EndedAt: &ended},
	} {
		r.WorkflowID, r.CustomerID, r.RequesterID, r.Reason = "wf-"+r.ID, "C-1", "ag_req", "because"
		if err := st.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// link stores a token row for requestID (unless stored is false) and signs
// it, returning the token and its id.
func (e *env) link(requestID string, expires time.Time, stored bool) (token, id string) {
	e.t.Helper()
	id, err := tokens.NewID()
	if err != nil {
		e.t.Fatal(err)
	}
	if stored {
		if err := e.st.CreateCancelToken(context.Background(), store.CancelToken{ID: id, RequestID: requestID, Recipient: "ann@example.test", ExpiresAt: expires}); err != nil {
			e.t.Fatal(err)
		}
	}
	token, err = e.signer.Sign(tokens.Claims{ID: id, RequestID: requestID, Expires: expires})
	if err != nil {
		e.t.Fatal(err)
	}
	e.issued = append(e.issued, token)
	return token, id
}

func (e *env) used(id string) bool {
	e.t.Helper()
	row, err := e.st.CancelToken(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return row.UsedAt != nil
}

func (e *env) status(requestID string) domain.Status {
	e.t.Helper()
	r, err := e.st.Request(context.Background(), requestID)
	if err != nil {
		e.t.Fatal(err)
	}
	return r.Status
}

type page struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(client *http.Client, method, path string, header http.Header, form url.Values) page {
	e.t.Helper()
	return e.doAs(e.t, client, method, path, header, form)
}

// doAs is do reporting to t, for subtests.
func (e *env) doAs(t *testing.T, client *http.Client, method, path string, header http.Header, form url.Values) page {
	t.Helper()
	p, err := e.send(client, method, path, header, form)
	if err != nil {
		t.Fatal(err)
	}
	checkHeaders(t, method+" "+path, p)
	return p
}

// send makes one request and reads the answer; it is safe in any goroutine.
func (e *env) send(client *http.Client, method, path string, header http.Header, form url.Values) (page, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		return page{}, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if client == nil {
		client = e.srv.Client()
	}
	res, err := client.Do(req)
	if err != nil {
		return page{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return page{}, err
	}
	return page{status: res.StatusCode, header: res.Header, body: string(b)}, nil
}

// checkHeaders asserts the security headers every /c/ response carries.
func checkHeaders(t *testing.T, what string, p page) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
	}
	for k, v := range want {
		if got := p.header.Get(k); got != v {
			t.Fatalf("%s (status %d): %s = %q, want %q", what, p.status, k, got, v)
		}
	}
	if ct := p.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("%s: Content-Type = %q", what, ct)
	}
	if strings.Contains(p.body, "<script") {
		t.Fatalf("%s: page contains a script", what)
	}
}

// tamper flips one character of the signature.
func tamper(tok string) string {
	b := []byte(tok)
	i := len(b) - 3
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestShowRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	future := e.now.Add(24 * time.Hour)
	live, liveID := e.link("req_live", future, true)
	expired, expiredID := e.link("req_live", e.now.Add(-time.Minute), true)
	unknown, _ := e.link("req_live", future, false)
	usedTok, usedID := e.link("req_live", future, true)
	if err := e.st.UseCancelToken(context.Background(), usedID, e.now); err != nil {
		t.Fatal(err)
	}
	executed, executedID := e.link("req_executed", future, true)
	withdrawn, _ := e.link("req_withdrawn", future, true)
	running, _ := e.link("req_running", future, true)
	custCancelled, _ := e.link("req_cust_cancelled", future, true)
	vetoed, _ := e.link("req_vetoed", future, true)
	// A genuine token id claimed for another request than its row's.
	otherKey := make([]byte, 32)
	otherSigner, _ := tokens.NewSigner(otherKey)
	foreign, _ := otherSigner.Sign(tokens.Claims{ID: liveID, RequestID: "req_live", Expires: future})

	tests := []struct {
		name, token string
		want        int
		heading     string
	}{
		{"tampered signature", tamper(live), 400, "This link is not valid"},
		{"signed with another key", foreign, 400, "This link is not valid"},
		{"malformed", "not-a-token", 400, "This link is not valid"},
		{"truncated", live[:len(live)/2], 400, "This link is not valid"},
		{"expired", expired, 410, "This link has expired"},
		{"unknown id", unknown, 404, "We do not know this link"},
		{"already used", usedTok, 410, "This link was already used"},
		{"request executed", executed, 410, "This request has already ended"},
		{"request withdrawn", withdrawn, 410, "This request has already ended"},
		{"request executing", running, 409, "This request is being carried out"},
		// Opening a link only says it can do nothing more; pressing the
		// button on a request the customer cancelled confirms instead
		// (TestPostPassesCSRFThenStops).
		{"request cancelled by the customer", custCancelled, 410, "It was already cancelled from the link in our email. Nothing will happen."},
		{"request vetoed by a senior", vetoed, 410, "It was already cancelled. Nothing will happen."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := e.do(nil, "GET", "/c/"+tt.token, nil, nil)
			if p.status != tt.want {
				t.Fatalf("status %d, want %d: %s", p.status, tt.want, p.body)
			}
			if !strings.Contains(p.body, tt.heading) {
				t.Fatalf("page lacks %q:\n%s", tt.heading, p.body)
			}
			if !strings.Contains(p.body, "help@acme-hosting.test") {
				t.Fatal("page does not say how to reach support")
			}
			if strings.Contains(p.body, "<form") || p.header.Get("Set-Cookie") != "" {
				t.Fatal("a refusal page offers the form or sets a cookie")
			}
		})
	}
	for _, id := range []string{liveID, expiredID, executedID} {
		if e.used(id) {
			t.Fatalf("token %s marked used by a GET", id)
		}
	}
	if s := e.status("req_live"); s != domain.StatusCooling {
		t.Fatalf("req_live is %s", s)
	}
	exec := e.do(nil, "GET", "/c/"+executed, nil, nil)
	if !strings.Contains(exec.body, "already carried out") {
		t.Fatalf("executed page does not say so:\n%s", exec.body)
	}
}

var csrfField = regexp.MustCompile(`<input type="hidden" name="csrf" value="([A-Za-z0-9_-]+)">`)

// confirm GETs a link and returns the CSRF cookie and field it hands out.
func (e *env) confirm(token string) (cookie *http.Cookie, field string, p page) {
	e.t.Helper()
	return e.confirmAs(e.t, token)
}

// confirmAs is confirm reporting to t.
func (e *env) confirmAs(t *testing.T, token string) (cookie *http.Cookie, field string, p page) {
	t.Helper()
	p = e.doAs(t, nil, "GET", "/c/"+token, nil, nil)
	if p.status != http.StatusOK {
		t.Fatalf("GET: status %d: %s", p.status, p.body)
	}
	m := csrfField.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no CSRF field in:\n%s", p.body)
	}
	res := http.Response{Header: p.header}
	for _, c := range res.Cookies() {
		if c.Name == "vigil_cancel_csrf" || c.Name == "__Host-vigil_cancel_csrf" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatalf("no CSRF cookie; Set-Cookie = %q", p.header.Values("Set-Cookie"))
	}
	return cookie, m[1], p
}

func TestShowConfirm(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	tok, id := e.link("req_live", e.now.Add(24*time.Hour), true)
	cookie, field, p := e.confirm(tok)
	for _, want := range []string{
		"Cancel this request?",
		"erase and reinstall VPS srv-1 (all data on it is wiped)",
		"Tuesday 4 March 2031 at 15:30 UTC",
		`<form method="post">`,
		`<button type="submit">Cancel this request</button>`,
		`name="viewport"`,
		"Acme Hosting",
	} {
		if !strings.Contains(p.body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(p.body, tok) || strings.Contains(p.body, id) {
		t.Fatal("the page repeats the token")
	}
	if n := strings.Count(p.body, "href="); n != 1 || !strings.Contains(p.body, `href="mailto:help@acme-hosting.test"`) {
		t.Fatalf("page links elsewhere (%d links):\n%s", n, p.body)
	}
	if cookie.Name != "vigil_cancel_csrf" || !cookie.HttpOnly || cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" {
		t.Fatalf("cookie = %+v", cookie)
	}
	if field == "" || field == cookie.Value {
		t.Fatal("CSRF field should be an HMAC, not the nonce")
	}
	// A second GET (a mail scanner, a reload) changes nothing either.
	if _, field2, _ := e.confirm(tok); field2 == field {
		t.Fatal("each GET should hand out a fresh nonce")
	}
	if e.used(id) || e.status("req_live") != domain.StatusCooling {
		t.Fatal("GET changed state")
	}
	// Without a known cooling end, the page still says what happens.
	tok2, _ := e.link("req_notifying", e.now.Add(time.Hour), true)
	_, _, p2 := e.confirm(tok2)
	if !strings.Contains(p2.body, "turn off two-factor authentication") || !strings.Contains(p2.body, "after a waiting period, which starts once we have told every address on file") {
		t.Fatalf("notifying page:\n%s", p2.body)
	}
}

// TestShowAddressSafely: the page names a new address as textrule shows it,
// so it cannot pass for the customer's own; one stored before the rule is
// marked as not valid and written in ASCII.
func TestShowAddressSafely(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	for _, tc := range []struct{ id, email, want string }{
		{"req_idn", "dana@xn--80ak6a.com", "add dana@xn--80ak6a.com (dana@аре.com) as a contact email"},
		{"req_mixed", "dana@ex\u0430mple.com", "add (not a valid address: dana@ex[U+0430]mple.com) as a contact email"},
		{"req_bidi", "dana\u202e@example.com", "add (not a valid address: dana[U+202E]@example.com) as a contact email"},
	} {
		r := store.Request{ID: tc.id, WorkflowID: "wf-" + tc.id, CustomerID: "C-1", RequesterID: "ag_req", Reason: "because",
			Status: domain.StatusCooling, Action: domain.ActionAddContactEmail, Email: tc.email, CoolingEndsAt: &coolingEnds}
		if err := e.st.CreateRequest(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		tok, _ := e.link(tc.id, e.now.Add(24*time.Hour), true)
		_, _, p := e.confirm(tok)
		// html/template writes + as &#43;.
		body := strings.ReplaceAll(p.body, "&#43;", "+")
		if !strings.Contains(body, tc.want) {
			t.Errorf("%s: page lacks %q:\n%s", tc.id, tc.want, body)
		}
		if strings.ContainsRune(body, '\u202e') {
			t.Errorf("%s: page carries a bidi override", tc.id)
		}
	}
}

func TestPostRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	tok, id := e.link("req_live", e.now.Add(24*time.Hour), true)
	other, _ := e.link("req_live", e.now.Add(24*time.Hour), true)
	cookie, field, _ := e.confirm(tok)
	_, otherField, _ := e.confirm(other)
	cookieHdr := cookie.Name + "=" + cookie.Value
	origin := e.srv.URL

	tests := []struct {
		name   string
		header http.Header
		form   url.Values
		want   int
	}{
		{"no CSRF field", http.Header{"Cookie": {cookieHdr}, "Origin": {origin}}, url.Values{}, 403},
		{"empty CSRF field", http.Header{"Cookie": {cookieHdr}, "Origin": {origin}}, url.Values{"csrf": {""}}, 403},
		{"wrong CSRF field", http.Header{"Cookie": {cookieHdr}, "Origin": {origin}}, url.Values{"csrf": {strings.Repeat("A", 43)}}, 403},
		{"field of another link", http.Header{"Cookie": {cookieHdr}, "Origin": {origin}}, url.Values{"csrf": {otherField}}, 403},
		{"no cookie", http.Header{"Origin": {origin}}, url.Values{"csrf": {field}}, 403},
		{"another cookie value", http.Header{"Cookie": {cookie.Name + "=forged"}, "Origin": {origin}}, url.Values{"csrf": {field}}, 403},
		{"cross-site Origin", http.Header{"Cookie": {cookieHdr}, "Origin": {"https://evil.example"}}, url.Values{"csrf": {field}}, 403},
		{"Origin on another port", http.Header{"Cookie": {cookieHdr}, "Origin": {"http://127.0.0.1:1"}}, url.Values{"csrf": {field}}, 403},
		{"Sec-Fetch-Site cross-site", http.Header{"Cookie": {cookieHdr}, "Sec-Fetch-Site": {"cross-site"}}, url.Values{"csrf": {field}}, 403},
		{"Sec-Fetch-Site same-site", http.Header{"Cookie": {cookieHdr}, "Sec-Fetch-Site": {"same-site"}}, url.Values{"csrf": {field}}, 403},
		{"null Origin without fetch metadata", http.Header{"Cookie": {cookieHdr}, "Origin": {"null"}}, url.Values{"csrf": {field}}, 403},
		{"null Origin from a cross-site frame", http.Header{"Cookie": {cookieHdr}, "Origin": {"null"}, "Sec-Fetch-Site": {"cross-site"}}, url.Values{"csrf": {field}}, 403},
		{"foreign Referer", http.Header{"Cookie": {cookieHdr}, "Referer": {"https://evil.example/page"}}, url.Values{"csrf": {field}}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := e.do(nil, "POST", "/c/"+tok, tt.header, tt.form)
			if p.status != tt.want {
				t.Fatalf("status %d, want %d: %s", p.status, tt.want, p.body)
			}
			if !strings.Contains(p.body, "Please open the link again") {
				t.Fatalf("page:\n%s", p.body)
			}
			if e.used(id) || e.status("req_live") != domain.StatusCooling {
				t.Fatal("a refused POST changed state")
			}
		})
	}
	// A JSON body is not the form.
	p := e.do(nil, "POST", "/c/"+tok, http.Header{"Cookie": {cookieHdr}, "Origin": {origin}, "Content-Type": {"application/json"}}, url.Values{"csrf": {field}})
	if p.status != http.StatusForbidden || e.used(id) {
		t.Fatalf("JSON POST: %d, used %v", p.status, e.used(id))
	}
}

// TestPostPassesCSRFThenStops takes the real CSRF path to its end for links
// whose request changed between the page and the button (it ran, was
// withdrawn or vetoed, started executing, or was cancelled by the customer,
// from this link in another tab or from another link): the checks pass, the
// link is resolved again and the POST is answered before any cancel Update
// (Temporal is unreachable here), leaving the link as it was. A press on a
// request the customer already cancelled confirms the cancellation.
func TestPostPassesCSRFThenStops(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	ctx := context.Background()
	future := e.now.Add(24 * time.Hour)
	tests := []struct {
		name        string
		headers     func(origin string) http.Header
		becomes     domain.Status // "" keeps the request live
		cancelledBy domain.CancelParty
		useFirst    bool
		want        int
		text        string
	}{
		{"same Origin, executed meanwhile", func(o string) http.Header { return http.Header{"Origin": {o}} },
			domain.StatusExecuted, "", false, 410, "already carried out"},
		{"null Origin with same-origin fetch metadata (Chromium under no-referrer), withdrawn meanwhile",
			func(string) http.Header { return http.Header{"Origin": {"null"}, "Sec-Fetch-Site": {"same-origin"}} },
			domain.StatusWithdrawn, "", false, 410, "withdrew it"},
		{"matching Referer, executing meanwhile", func(o string) http.Header { return http.Header{"Referer": {o + "/c/x"}} },
			domain.StatusExecuting, "", false, 409, "can no longer be cancelled"},
		{"no Origin and no Referer (non-browser), rejected meanwhile", func(string) http.Header { return http.Header{} },
			domain.StatusRejected, "", false, 410, "rejected it"},
		{"vetoed by a senior meanwhile", func(o string) http.Header { return http.Header{"Origin": {o}} },
			domain.StatusCancelled, domain.CancelBySenior, false, 410, "It was already cancelled. Nothing will happen."},
		{"cancelled by the customer meanwhile (a press whose answer was lost, or another recipient's link)",
			func(o string) http.Header { return http.Header{"Origin": {o}} },
			domain.StatusCancelled, domain.CancelByCustomer, false, 200, "Cancelled. Nothing will happen."},
		{"link used in another tab", func(o string) http.Header { return http.Header{"Origin": {o}} },
			"", "", true, 200, "This link was already used on"},
		{"link used, yet the projection says it ran", func(o string) http.Header { return http.Header{"Origin": {o}} },
			domain.StatusExecuted, "", true, 410, "already carried out"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqID := "req_race" + strconv.Itoa(i)
			// A reinstall of a server of its own: one request per target may be open.
			if err := e.st.CreateRequest(ctx, store.Request{ID: reqID, WorkflowID: "wf-" + reqID, Action: domain.ActionReinstallVPS,
				ServerID: "srv-" + reqID, CustomerID: "C-1", RequesterID: "ag_req", Reason: "r", Status: domain.StatusCooling, CoolingEndsAt: &coolingEnds}); err != nil {
				t.Fatal(err)
			}
			tok, id := e.link(reqID, future, true)
			cookie, field, _ := e.confirm(tok)
			if tt.becomes != "" {
				u := store.RequestUpdate{Status: tt.becomes}
				if tt.cancelledBy != "" {
					by := string(tt.cancelledBy)
					u.CancelledBy = &by
				}
				if err := e.st.UpdateRequest(ctx, reqID, u, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.useFirst {
				if err := e.st.UseCancelToken(ctx, id, e.now); err != nil {
					t.Fatal(err)
				}
			}
			h := tt.headers(e.srv.URL)
			h.Set("Cookie", cookie.Name+"="+cookie.Value)
			p := e.do(nil, "POST", "/c/"+tok, h, url.Values{"csrf": {field}})
			if p.status != tt.want || !strings.Contains(p.body, tt.text) {
				t.Fatalf("status %d, want %d with %q:\n%s", p.status, tt.want, tt.text, p.body)
			}
			if confirmed := strings.Contains(p.body, "Cancelled. Nothing will happen."); confirmed != (tt.want == http.StatusOK) {
				t.Fatalf("status %d but confirmation shown = %v:\n%s", p.status, confirmed, p.body)
			}
			if !tt.useFirst && e.used(id) {
				t.Fatal("a refused cancel marked its link used")
			}
			if tt.becomes != "" && e.status(reqID) != tt.becomes {
				t.Fatalf("request is %s, want %s", e.status(reqID), tt.becomes)
			}
		})
	}
}

func TestOtherPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	tok, id := e.link("req_live", e.now.Add(time.Hour), true)
	tests := []struct {
		method, path string
		want         int
	}{
		{"PUT", "/c/" + tok, 405},
		{"DELETE", "/c/" + tok, 405},
		{"GET", "/c/", 404},
		{"GET", "/c/a/b", 404},
	}
	for _, tt := range tests {
		p := e.do(nil, tt.method, tt.path, nil, nil)
		if p.status != tt.want {
			t.Fatalf("%s %s: %d, want %d", tt.method, tt.path, p.status, tt.want)
		}
	}
	if e.used(id) {
		t.Fatal("state changed")
	}
}

// TestRateLimitBudgets: a correctly signed link has a budget of its own;
// junk and forged links count against the client's address. So a flood of
// junk from one address blocks only more junk from there, and a link is
// limited only by its own use.
func TestRateLimitBudgets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{RatePerMinute: 1, RateBurst: 3})
	tok, _ := e.link("req_live", e.now.Add(time.Hour), true)
	for i := range 3 {
		if p := e.do(nil, "GET", "/c/"+tok, nil, nil); p.status != http.StatusOK {
			t.Fatalf("GET %d: %d", i, p.status)
		}
	}
	p := e.do(nil, "GET", "/c/"+tok, nil, nil)
	if p.status != http.StatusTooManyRequests || !strings.Contains(p.body, "Too many attempts") {
		t.Fatalf("fourth GET: %d\n%s", p.status, p.body)
	}
	if s, err := strconv.Atoi(p.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Fatalf("Retry-After = %q", p.header.Get("Retry-After"))
	}
	// POSTs count against the same link.
	if p := e.do(nil, "POST", "/c/"+tok, nil, url.Values{}); p.status != http.StatusTooManyRequests {
		t.Fatalf("POST while limited: %d", p.status)
	}
	// Junk from the same address has the address's budget, untouched so far.
	junk := []string{"/c/not-a-token", "/c/" + tamper(tok), "/c/a/b"}
	for _, path := range junk {
		if p := e.do(nil, "GET", path, nil, nil); p.status == http.StatusTooManyRequests {
			t.Fatalf("GET %s: limited by the link's budget", path)
		}
	}
	if p := e.do(nil, "GET", junk[0], nil, nil); p.status != http.StatusTooManyRequests {
		t.Fatalf("fourth junk GET: %d, want 429", p.status)
	}
	// Another link, from the address that is out of junk budget, works.
	other, _ := e.link("req_live", e.now.Add(time.Hour), true)
	if p := e.do(nil, "GET", "/c/"+other, nil, nil); p.status != http.StatusOK {
		t.Fatalf("another link from the limited address: %d", p.status)
	}
	// An expired link counts as junk: it is limited per address.
	expired, _ := e.link("req_live", e.now.Add(-time.Minute), true)
	if p := e.do(nil, "GET", "/c/"+expired, nil, nil); p.status != http.StatusTooManyRequests {
		t.Fatalf("expired link from the limited address: %d, want 429", p.status)
	}
	// Another client address has its own bucket.
	otherAddr := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	if p := e.do(otherAddr, "GET", junk[0], nil, nil); p.status != http.StatusBadRequest {
		t.Fatalf("junk from 127.0.0.2: %d, want 400 (not a link)", p.status)
	}
	// Without a trusted proxy, X-Forwarded-For cannot buy a fresh budget.
	if p := e.do(nil, "GET", junk[0], http.Header{"X-Forwarded-For": {"198.51.100.7"}}, nil); p.status != http.StatusTooManyRequests {
		t.Fatalf("junk with a forwarded-for header from an untrusted peer: %d, want 429", p.status)
	}
}

func TestTokensNeverLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	tok, _ := e.link("req_executed", e.now.Add(time.Hour), true)
	bad := tamper(tok)
	e.do(nil, "GET", "/c/"+tok, nil, nil)
	e.do(nil, "GET", "/c/"+bad, nil, nil)
	e.do(nil, "POST", "/c/"+tok, http.Header{"Origin": {"https://evil.example"}}, url.Values{"csrf": {"x"}})
	e.srv.Close()
	logs := e.logs.String()
	if !strings.Contains(logs, "cancel page") || !strings.Contains(logs, "token="+tokenRef("/c/"+tok)) {
		t.Fatalf("access log missing or without a token reference:\n%s", logs)
	}
	for _, s := range append(e.issued, bad) {
		payload, _, _ := strings.Cut(s, ".")
		if strings.Contains(logs, payload) {
			t.Fatalf("log contains a token:\n%s", logs)
		}
	}
}

func TestSecureCookieAndOrigin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{PublicURL: "https://Cancel.Example.com:443/"})
	tok, _ := e.link("req_live", e.now.Add(time.Hour), true)
	cookie, _, _ := e.confirm(tok)
	if cookie.Name != "__Host-vigil_cancel_csrf" || !cookie.Secure || cookie.Path != "/" || cookie.Domain != "" {
		t.Fatalf("cookie = %+v", cookie)
	}
}

func TestFromOurPage(t *testing.T) {
	p := &Pages{origin: "https://cancel.example.com"}
	tests := []struct {
		name   string
		header http.Header
		want   bool
	}{
		{"same origin", http.Header{"Origin": {"https://cancel.example.com"}}, true},
		{"same origin, explicit default port", http.Header{"Origin": {"https://cancel.example.com:443"}}, true},
		{"same origin in capitals", http.Header{"Origin": {"https://CANCEL.example.com"}}, true},
		{"plain http", http.Header{"Origin": {"http://cancel.example.com"}}, false},
		{"subdomain", http.Header{"Origin": {"https://evil.cancel.example.com"}}, false},
		{"null alone", http.Header{"Origin": {"null"}}, false},
		{"null, same-origin", http.Header{"Origin": {"null"}, "Sec-Fetch-Site": {"same-origin"}}, true},
		{"same origin but cross-site metadata", http.Header{"Origin": {"https://cancel.example.com"}, "Sec-Fetch-Site": {"cross-site"}}, false},
		{"user-initiated", http.Header{"Sec-Fetch-Site": {"none"}}, true},
		{"Referer ours", http.Header{"Referer": {"https://cancel.example.com/c/abc"}}, true},
		{"Referer foreign", http.Header{"Referer": {"https://evil.example/c/abc"}}, false},
		{"Referer not a URL", http.Header{"Referer": {"::"}}, false},
		{"nothing", http.Header{}, true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("POST", "https://cancel.example.com/c/x", nil)
		r.Header = tt.header
		if got := p.fromOurPage(r); got != tt.want {
			t.Errorf("%s: fromOurPage = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	key := make([]byte, 32)
	tests := []struct {
		name string
		o    Options
		ok   bool
	}{
		{"fine", Options{PublicURL: "http://127.0.0.1:8080", CSRFKey: key}, true},
		{"short key", Options{PublicURL: "http://127.0.0.1:8080", CSRFKey: key[:31]}, false},
		{"relative URL", Options{PublicURL: "/c", CSRFKey: key}, false},
		{"ftp URL", Options{PublicURL: "ftp://x", CSRFKey: key}, false},
	}
	for _, tt := range tests {
		if err := tt.o.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate = %v", tt.name, err)
		}
	}
}

// TestPostWhileTemporalIsDown passes every check, then meets an unreachable
// Temporal: the customer is told to try again and the link stays usable.
func TestPostWhileTemporalIsDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, Options{})
	tok, id := e.link("req_live", e.now.Add(time.Hour), true)
	cookie, field, _ := e.confirm(tok)
	p := e.do(nil, "POST", "/c/"+tok, http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}, "Origin": {e.srv.URL}}, url.Values{"csrf": {field}})
	if p.status != http.StatusServiceUnavailable || !strings.Contains(p.body, "Your link still works") ||
		!strings.Contains(p.body, "We could not confirm the cancellation yet") {
		t.Fatalf("status %d:\n%s", p.status, p.body)
	}
	// Whether the cancel reached the workflow is unknown, so the page must
	// not claim that nothing changed.
	if strings.Contains(strings.ToLower(p.body), "nothing was changed") {
		t.Fatalf("the outage page claims nothing changed:\n%s", p.body)
	}
	if e.used(id) || e.status("req_live") != domain.StatusCooling {
		t.Fatal("an unreachable Temporal burned the link or changed the request")
	}
	if again := e.do(nil, "GET", "/c/"+tok, nil, nil); again.status != http.StatusOK {
		t.Fatalf("link after the outage: %d", again.status)
	}
}
