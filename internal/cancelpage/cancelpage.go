// Package cancelpage serves the customer's cancel link: GET /c/{token} shows
// what will happen and one button; POST /c/{token} cancels. Mail scanners
// follow links, so GET never changes anything, and the POST is protected
// against cross-site forgery without any JavaScript.
package cancelpage

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/vigil-oss/vigil/internal/clientip"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/metrics"
	"github.com/vigil-oss/vigil/internal/ratelimit"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/statuswriter"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/textrule"
	"github.com/vigil-oss/vigil/internal/tokens"
	"github.com/vigil-oss/vigil/workflows"
)

//go:embed templates/page.html
var templateFS embed.FS

var pageTemplate = template.Must(template.ParseFS(templateFS, "templates/page.html"))

// CancelReason is what the audit trail and the workflow record for a
// customer's cancellation.
const CancelReason = "cancelled by the customer from the emailed link"

// Options configures the pages.
type Options struct {
	// PublicURL is the base URL customers reach Vigil at (VIGIL_PUBLIC_URL).
	// Its origin is the only one a POST may come from; when it is https the
	// CSRF cookie is a Secure __Host- cookie.
	PublicURL string
	// SupportEmail is the address pages tell customers to write to.
	SupportEmail string
	// ProductName is shown in titles (default "Vigil").
	ProductName string
	// CSRFKey signs the form's CSRF field; at least 32 bytes. Derive it from
	// the token key rather than reusing that key as is.
	CSRFKey []byte
	// RatePerMinute and RateBurst limit requests (defaults 30 and 10): those
	// carrying a correctly signed link per link, every other one per client
	// address, so a flood of junk from one address (behind a proxy, the
	// proxy's) cannot block anyone's real link. MaxClients bounds how many
	// addresses, and how many links, are tracked.
	RatePerMinute int
	RateBurst     int
	MaxClients    int
	// ClientIP finds the client address behind trusted proxies
	// (VIGIL_TRUSTED_PROXIES); nil means the connection's peer.
	ClientIP *clientip.Resolver
	// CancelTimeout bounds the cancel Update (default 15s), so an unreachable
	// Temporal shows "try again" instead of a page that never loads.
	CancelTimeout time.Duration
	// Location is the zone times are shown in (default UTC).
	Location *time.Location
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate reports wiring mistakes New would otherwise panic on.
func (o Options) Validate() error {
	if len(o.CSRFKey) < 32 {
		return fmt.Errorf("cancelpage: CSRF key is %d bytes, need at least 32", len(o.CSRFKey))
	}
	u, err := url.Parse(o.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("cancelpage: public URL %q must be an absolute http(s) URL", o.PublicURL)
	}
	return nil
}

// Pages serves /c/.
type Pages struct {
	svc        *requests.Service
	store      *store.Store
	signer     *tokens.Signer
	opts       Options
	logger     *slog.Logger
	origin     string // scheme://host[:port] of PublicURL, lower case, no default port
	secure     bool
	cookieName string
	limiter    *ratelimit.Limiter // per client address: requests without a valid link
	links      *ratelimit.Limiter // per correctly signed link
}

// New builds the pages. It panics if opts fail Validate: that is a wiring
// error to catch at start, not at the first customer's click.
func New(svc *requests.Service, st *store.Store, signer *tokens.Signer, opts Options, logger *slog.Logger) *Pages {
	if err := opts.Validate(); err != nil {
		panic(err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	if opts.ProductName == "" {
		opts.ProductName = "Vigil"
	}
	if opts.RatePerMinute <= 0 {
		opts.RatePerMinute = 30
	}
	if opts.RateBurst <= 0 {
		opts.RateBurst = 10
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.CancelTimeout <= 0 {
		opts.CancelTimeout = 15 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.CSRFKey = append([]byte(nil), opts.CSRFKey...)
	u, _ := url.Parse(opts.PublicURL)
	p := &Pages{
		svc: svc, store: st, signer: signer, opts: opts, logger: logger.With("component", "cancelpage"),
		origin: originOf(u), secure: u.Scheme == "https",
	}
	limit := ratelimit.Limit{PerMinute: float64(opts.RatePerMinute), Burst: opts.RateBurst}
	p.limiter = ratelimit.New(limit, opts.MaxClients, opts.Now)
	p.links = ratelimit.New(limit, opts.MaxClients, opts.Now)
	// A __Host- cookie must be Secure, so plain-http development (loopback)
	// uses an ordinary name; both are host-only, Path=/ and SameSite=Strict.
	p.cookieName = "vigil_cancel_csrf"
	if p.secure {
		p.cookieName = "__Host-vigil_cancel_csrf"
	}
	return p
}

// originOf serialises u's origin as browsers send it in the Origin header.
func originOf(u *url.URL) string {
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if h, port, err := net.SplitHostPort(host); err == nil &&
		(scheme == "http" && port == "80" || scheme == "https" && port == "443") {
		host = h
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	return scheme + "://" + host
}

// Handler serves GET and POST /c/{token}; mount it on "/c/".
func (p *Pages) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /c/{token}", p.show)
	mux.HandleFunc("POST /c/{token}", p.cancel)
	mux.HandleFunc("/c/", p.other)
	// Routed tells the web front's metrics which of the patterns matched.
	return p.secured(metrics.Routed(mux))
}

// outcome travels from the handlers to the access log line.
type outcome struct {
	what      string
	requestID string
}

type ctxKey struct{}

func note(r *http.Request, what, requestID string) {
	if o, ok := r.Context().Value(ctxKey{}).(*outcome); ok {
		o.what, o.requestID = what, requestID
	}
}

// secured sets the security headers on every response, applies the
// per-address rate limit and logs one line per request. The token is in the
// path, so the log gets a short hash of it, never the path itself.
func (p *Pages) secured(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		sw := statuswriter.New(w)
		o := &outcome{}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, o))
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// Log the panic, never the path: it holds the token.
				p.logger.Error("panic in cancel page", "token", tokenRef(r.URL.Path), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !sw.Written() {
					note(r, "internal", o.requestID)
					p.render(sw, http.StatusInternalServerError, p.errInternal().data)
				}
			}
		}()
		if ok, wait := p.allow(r); !ok {
			sw.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
			note(r, "rate_limited", "")
			p.render(sw, http.StatusTooManyRequests, pageData{
				Heading:    "Too many attempts",
				Paragraphs: []string{"Please wait a minute, then open the link from the email again."},
			})
		} else {
			next.ServeHTTP(sw, r)
		}
		p.logger.Info("cancel page", "method", r.Method, "path", "/c/…", "token", tokenRef(r.URL.Path),
			"request", o.requestID, "outcome", o.what, "status", sw.Status(), "duration_ms", time.Since(start).Milliseconds())
	})
}

// allow takes a token from the request's budget. A correctly signed link
// that has not expired has a budget of its own, so that nobody else can
// exhaust it (only Vigil can sign one, so there are no more of them than
// links mailed); anything else, junk, forged and expired links, counts
// against its client address. The signature check is one HMAC, cheaper than anything
// behind it.
func (p *Pages) allow(r *http.Request) (bool, time.Duration) {
	if tok, ok := strings.CutPrefix(r.URL.Path, "/c/"); ok && tok != "" && !strings.Contains(tok, "/") {
		claims, err := p.signer.Parse(tok, p.opts.Now())
		if err == nil {
			return p.links.Allow(claims.ID)
		}
	}
	return p.limiter.Allow(clientip.Bucket(p.opts.ClientIP.IP(r)))
}

// tokenRef names a token in logs: the first 12 hex digits of its SHA-256,
// enough to correlate lines, useless to cancel anything.
func tokenRef(path string) string {
	tok := strings.TrimPrefix(path, "/c/")
	if tok == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:6])
}

// pageData fills the one template.
type pageData struct {
	Heading    string
	What       string
	Done       bool
	Paragraphs []string
	CSRF       string
	Product    string
	Support    string
}

func (p *Pages) render(w http.ResponseWriter, status int, d pageData) {
	d.Product, d.Support = p.opts.ProductName, p.opts.SupportEmail
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, d); err != nil {
		p.logger.Error("render cancel page", "error", err)
		http.Error(w, "Something went wrong on our side. Nothing was changed.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pageErr is a friendly refusal: a status and a page saying what happened.
type pageErr struct {
	status  int
	outcome string
	data    pageData
}

func (p *Pages) fail(w http.ResponseWriter, r *http.Request, e *pageErr, requestID string) {
	note(r, e.outcome, requestID)
	p.render(w, e.status, e.data)
}

func (p *Pages) when(t time.Time) string {
	return t.In(p.opts.Location).Format("Monday 2 January 2006 at 15:04 MST")
}

// Pages for each way a link can fail.
func (p *Pages) errInvalid() *pageErr {
	return &pageErr{http.StatusBadRequest, "invalid_token", pageData{Heading: "This link is not valid",
		Paragraphs: []string{"The link looks damaged or incomplete. Copy the whole link from the email into your browser and try again. Nothing was changed."}}}
}

func (p *Pages) errUnknown() *pageErr {
	return &pageErr{http.StatusNotFound, "unknown_token", pageData{Heading: "We do not know this link",
		Paragraphs: []string{"This cancel link is not in our records. Nothing was changed."}}}
}

func (p *Pages) errExpired() *pageErr {
	return &pageErr{http.StatusGone, "expired_token", pageData{Heading: "This link has expired",
		Paragraphs: []string{"Cancel links work only until the request they belong to has run. Nothing was changed."}}}
}

func (p *Pages) errUsed(t store.CancelToken) *pageErr {
	msg := "This link was already used to cancel the request. Nothing will happen."
	if t.UsedAt != nil {
		msg = "This link was already used on " + p.when(*t.UsedAt) + " to cancel the request. Nothing will happen."
	}
	return &pageErr{http.StatusGone, "used_token", pageData{Heading: "This link was already used",
		Paragraphs: []string{msg}}}
}

// describe says what req does in the customer's words, with the new address
// as textrule shows it (an internationalised domain by its A-label first) and
// anything the text rule refuses written out, so the page cannot pass one
// address for another.
func describe(req store.Request) string {
	email := ""
	if req.Email != "" {
		email = textrule.DisplayEmail(req.Email)
	}
	return req.Action.Describe(textrule.Escape(req.ServerID), email)
}

func (p *Pages) errEnded(req store.Request) *pageErr {
	what := describe(req)
	e := &pageErr{http.StatusGone, "request_ended", pageData{Heading: "This request has already ended", What: capitalize(what) + "."}}
	switch req.Status {
	case domain.StatusExecuted:
		at := ""
		if req.EndedAt != nil {
			at = " on " + p.when(*req.EndedAt)
		}
		e.data.Paragraphs = []string{"It was already carried out" + at + " and can no longer be cancelled.",
			"If you did not ask for this, contact us right away."}
	case domain.StatusExecuting:
		e.status, e.outcome = http.StatusConflict, "already_executing"
		e.data.Heading = "This request is being carried out"
		e.data.Paragraphs = []string{"It is running right now and can no longer be cancelled.",
			"If you did not ask for this, contact us right away."}
	case domain.StatusFailed:
		e.data.Paragraphs = []string{"It could not be carried out, so nothing happened. There is nothing to cancel."}
	case domain.StatusCancelled:
		if cancelledByCustomer(req) {
			e.data.Paragraphs = []string{"It was already cancelled from the link in our email. Nothing will happen."}
			break
		}
		e.data.Paragraphs = []string{"It was already cancelled. Nothing will happen."}
	default:
		e.data.Paragraphs = []string{"It was stopped before anything happened (" + statusWords(req.Status) + "). There is nothing to cancel."}
	}
	return e
}

func cancelledByCustomer(req store.Request) bool {
	return req.Status == domain.StatusCancelled && domain.CancelParty(req.CancelledBy) == domain.CancelByCustomer
}

// alreadyCancelled answers a press of the button on a request the customer
// already cancelled from an emailed link: what they asked for has happened,
// so it is a confirmation, not an error. It is what a press repeated after a
// timeout sees once the first one went through. It does not claim that this
// very link did it: with several recipients, another link may have.
func (p *Pages) alreadyCancelled(req store.Request) *pageErr {
	return &pageErr{http.StatusOK, "already_cancelled", pageData{
		Heading: "Cancelled. Nothing will happen.",
		What:    "The request to " + describe(req) + " was cancelled from the link in our email.",
		Done:    true,
		Paragraphs: []string{"You do not need to do anything else.",
			"If you did not ask for this, someone may be trying to get into your account: please tell us."}}}
}

// usedByThisLink answers a second press of the button on a link that
// already cancelled its request (a double click, a reload, a retry after a
// slow answer). The link is only marked used after the workflow accepted its
// cancellation, so the request will not run.
func (p *Pages) usedByThisLink(req store.Request, t store.CancelToken) *pageErr {
	used := "This link was already used to cancel it."
	if t.UsedAt != nil {
		used = "This link was already used on " + p.when(*t.UsedAt) + " to cancel it."
	}
	return &pageErr{http.StatusOK, "already_cancelled", pageData{
		Heading: "Cancelled. Nothing will happen.",
		What:    "We stopped the request to " + describe(req) + ".",
		Done:    true,
		Paragraphs: []string{used + " You do not need to do anything else.",
			"If you did not ask for this, someone may be trying to get into your account: please tell us."}}}
}

func (p *Pages) errInternal() *pageErr {
	return &pageErr{http.StatusInternalServerError, "internal", pageData{Heading: "Something went wrong on our side",
		Paragraphs: []string{"We could not complete this, and nothing was changed. Please try again in a few minutes."}}}
}

// errUnavailable answers a cancel whose outcome is unknown: Temporal did not
// answer, or not in time. The cancellation may already be recorded, so the
// page does not say that nothing changed; pressing the button again is safe
// because the retry joins the first attempt.
func (p *Pages) errUnavailable() *pageErr {
	return &pageErr{http.StatusServiceUnavailable, "unavailable", pageData{Heading: "Please try again in a minute",
		Paragraphs: []string{"We could not confirm the cancellation yet: the system that holds your request did not answer in time. It may already be recorded.",
			"Your link still works: open it again in a minute and press the button. Pressing it again is safe.",
			"If the request is about to run, write to us now."}}}
}

// errUnconfirmed is errInternal for a cancel that failed in a way that does
// not say whether the workflow recorded it.
func (p *Pages) errUnconfirmed() *pageErr {
	return &pageErr{http.StatusInternalServerError, "internal", pageData{Heading: "Something went wrong on our side",
		Paragraphs: []string{"We could not confirm the cancellation. Your link still works: open it again in a few minutes and press the button. Pressing it again is safe.",
			"If the request is about to run, write to us now."}}}
}

func (p *Pages) errForgery() *pageErr {
	return &pageErr{http.StatusForbidden, "csrf_refused", pageData{Heading: "Please open the link again",
		Paragraphs: []string{"For your safety we only accept the button on the page the email link opens. Nothing was changed. Open the link from the email again and press the button there."}}}
}

// statusWords says how a request stopped, for customers.
func statusWords(s domain.Status) string {
	switch s {
	case domain.StatusWithdrawn:
		return "our support agent withdrew it"
	case domain.StatusRejected:
		return "a senior member of our team rejected it"
	case domain.StatusExpired:
		return "nobody approved it in time"
	case domain.StatusPINRejected, domain.StatusLocked:
		return "the identity check failed"
	}
	return string(s)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// resolved is a link that checks out: genuine, known, unused, and for a
// request that has not ended.
type resolved struct {
	token   string
	claims  tokens.Claims
	row     store.CancelToken
	request store.Request
}

// resolve checks a link end to end without changing anything. Once the
// signature checks out, the result carries the claims even on refusal, so
// the log can name the request (its id is signed, so it is not made up);
// it also carries the token row and the request once loaded, so a POST can
// tell a repeated press on a used link or a cancelled request.
func (p *Pages) resolve(ctx context.Context, token string) (resolved, *pageErr) {
	now := p.opts.Now()
	claims, err := p.signer.Parse(token, now)
	switch {
	case errors.Is(err, tokens.ErrExpired):
		return resolved{}, p.errExpired()
	case err != nil:
		return resolved{}, p.errInvalid()
	}
	res := resolved{token: token, claims: claims}
	row, err := p.store.CancelToken(ctx, claims.ID)
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && row.RequestID != claims.RequestID:
		return res, p.errUnknown()
	case err != nil:
		p.logger.Error("load cancel token", "request", claims.RequestID, "error", err)
		return res, p.errInternal()
	}
	res.row = row
	switch {
	case row.UsedAt != nil:
		return res, p.errUsed(row)
	case !now.Before(row.ExpiresAt):
		return res, p.errExpired()
	}
	req, err := p.store.Request(ctx, claims.RequestID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return res, p.errUnknown()
	case err != nil:
		p.logger.Error("load request", "request", claims.RequestID, "error", err)
		return res, p.errInternal()
	}
	res.request = req
	if req.Status.Final() || req.Status == domain.StatusExecuting {
		return res, p.errEnded(req)
	}
	return res, nil
}

// show is GET: it explains and offers the button. It changes nothing on the
// server; it only sets the CSRF cookie the form needs.
func (p *Pages) show(w http.ResponseWriter, r *http.Request) {
	res, perr := p.resolve(r.Context(), r.PathValue("token"))
	if perr != nil {
		p.fail(w, r, perr, res.claims.RequestID)
		return
	}
	nonce, err := newNonce()
	if err != nil {
		p.logger.Error("csrf nonce", "error", err)
		p.fail(w, r, p.errInternal(), res.request.ID)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: p.cookieName, Value: nonce, Path: "/", MaxAge: 3600,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteStrictMode,
	})
	req := res.request
	note(r, "shown", req.ID)
	p.render(w, http.StatusOK, pageData{
		Heading: "Cancel this request?",
		What:    "A member of our support team asked to " + describe(req) + ".",
		Paragraphs: []string{p.runsWhen(r.Context(), req),
			"If you asked for this, you do not need to do anything.",
			"If you did not ask for it, press the button below and tell us."},
		CSRF: p.csrfField(res.token, nonce),
	})
}

// runsWhen says when the action will run. The stored request learns the
// time a moment after the notice went out; a customer quick enough to open
// the link before that gets the time from the workflow itself, and only if
// neither knows it (the notice is still going out to other addresses) a
// sentence without one.
func (p *Pages) runsWhen(ctx context.Context, req store.Request) string {
	if req.CoolingEndsAt != nil {
		return "It will happen on " + p.when(*req.CoolingEndsAt) + " unless you cancel it."
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if st, err := p.svc.Status(ctx, req.ID); err == nil && !st.CoolingEndsAt.IsZero() {
		return "It will happen on " + p.when(st.CoolingEndsAt) + " unless you cancel it."
	}
	return "It will happen after a waiting period, which starts once we have told every address on file about it, unless you cancel it."
}

// cancel is POST: CSRF checks first, then the link again, then the cancel
// Update.
func (p *Pages) cancel(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if !p.fromOurPage(r) {
		p.fail(w, r, p.errForgery(), "")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		p.fail(w, r, p.errForgery(), "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		p.fail(w, r, p.errForgery(), "")
		return
	}
	cookie, err := r.Cookie(p.cookieName)
	if err != nil || cookie.Value == "" || !p.csrfValid(token, cookie.Value, r.PostForm.Get("csrf")) {
		p.fail(w, r, p.errForgery(), "")
		return
	}
	res, perr := p.resolve(r.Context(), token)
	if perr != nil {
		perr = p.pressedAgain(r.Context(), res, perr)
	}
	if perr != nil {
		p.fail(w, r, perr, res.claims.RequestID)
		return
	}
	req := res.request
	// The cancel Update runs before the token is marked used. The other way
	// round, a brief Temporal outage would burn the customer's only link
	// while the action still goes ahead. The Update's id comes from the link,
	// so a press repeated after a timeout or a double click joins the first
	// Update instead of being refused as already cancelled; once the link is
	// marked, a press answers from the database without Temporal.
	ctx, cancel := context.WithTimeout(r.Context(), p.opts.CancelTimeout)
	defer cancel()
	err = p.svc.CancelByLink(ctx, req.ID, res.claims.ID, workflows.CancelInput{
		By: domain.CancelByCustomer, ActorID: req.CustomerID, Reason: CancelReason,
	})
	if err != nil {
		p.cancelFailed(w, r, req, err)
		return
	}
	if err := p.store.UseCancelToken(r.Context(), res.claims.ID, p.opts.Now()); err != nil {
		// The request is cancelled whatever happens here; a racing POST may
		// have marked the token first. Say so in the log, not to the customer.
		p.logger.Warn("mark cancel token used", "request", req.ID, "error", err)
	}
	http.SetCookie(w, &http.Cookie{Name: p.cookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteStrictMode})
	note(r, "cancelled", req.ID)
	p.render(w, http.StatusOK, pageData{
		Heading: "Cancelled. Nothing will happen.",
		What:    "We stopped the request to " + describe(req) + ".",
		Done:    true,
		Paragraphs: []string{"You do not need to do anything else. We will confirm this by email.",
			"If you did not ask for this, someone may be trying to get into your account: please tell us."},
	})
}

// pressedAgain turns the refusal resolve gave a POST into a confirmation when
// the button was pressed on a request that is already cancelled the way the
// customer wants: a double click, a reload, or a press repeated after a slow
// or failed answer whose cancel went through anyway. Pressing "cancel" on
// something cancelled is not an error. GET keeps resolve's pages: opening
// the link again only says the link can do nothing more.
func (p *Pages) pressedAgain(ctx context.Context, res resolved, perr *pageErr) *pageErr {
	switch {
	case res.row.UsedAt != nil:
		return p.usedAgain(ctx, res)
	case cancelledByCustomer(res.request):
		return p.alreadyCancelled(res.request)
	}
	return perr
}

// usedAgain answers a POST on a link already marked used. Marking happens
// only after the workflow accepted this link's cancellation, so it is a
// repeat of a cancel that worked, unless the projection says the action ran
// (which would mean the mark is wrong; the projection is then what the
// customer must hear).
func (p *Pages) usedAgain(ctx context.Context, res resolved) *pageErr {
	req, err := p.store.Request(ctx, res.row.RequestID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return p.errUnknown()
	case err != nil:
		p.logger.Error("load request", "request", res.row.RequestID, "error", err)
		return p.errInternal()
	case req.Status == domain.StatusExecuted, req.Status == domain.StatusExecuting:
		p.logger.Error("cancel link marked used but the request ran", "request", req.ID, "status", req.Status)
		return p.errEnded(req)
	}
	return p.usedByThisLink(req, res.row)
}

// cancelFailed explains a refused or failed cancel Update. A refusal for an
// ended request leaves the link unused: nothing was cancelled, and the link
// can do nothing more anyway since the request never runs again.
func (p *Pages) cancelFailed(w http.ResponseWriter, r *http.Request, req store.Request, err error) {
	ref, ok := requests.AsRefusal(err)
	if !ok {
		p.logger.Error("cancel by customer", "request", req.ID, "error", err)
		p.fail(w, r, p.errUnconfirmed(), req.ID)
		return
	}
	switch ref.Code {
	case requests.CodeEnded:
		// The projection said the request was live; ask the workflow how it
		// ended so the page can say whether the action ran. A cancellation
		// by the customer (this press's first attempt, whose answer was
		// lost, or another recipient's link) is what the customer wants:
		// confirm it even if the end state is not recorded yet.
		ctx, cancel := context.WithTimeout(r.Context(), p.opts.CancelTimeout)
		defer cancel()
		st, serr := p.svc.Status(ctx, req.ID)
		if serr == nil && st.Cancellation != nil && st.Cancellation.By == domain.CancelByCustomer {
			p.fail(w, r, p.alreadyCancelled(req), req.ID)
			return
		}
		if serr != nil || !st.Status.Final() {
			p.fail(w, r, &pageErr{http.StatusGone, "request_ended", pageData{Heading: "This request has already ended",
				What:       capitalize(describe(req)) + ".",
				Paragraphs: []string{"It can no longer be cancelled. If you did not ask for this, contact us right away."}}}, req.ID)
			return
		}
		ended := req
		ended.Status = st.Status
		if !st.EndedAt.IsZero() {
			ended.EndedAt = &st.EndedAt
		}
		if st.Cancellation != nil {
			ended.CancelledBy = string(st.Cancellation.By)
		}
		p.fail(w, r, p.errEnded(ended), req.ID)
	case requests.CodeExecuting:
		ended := req
		ended.Status = domain.StatusExecuting
		p.fail(w, r, p.errEnded(ended), req.ID)
	case requests.CodeUnavailable:
		p.fail(w, r, p.errUnavailable(), req.ID)
	case requests.CodeNotFound:
		p.fail(w, r, p.errUnknown(), req.ID)
	default:
		p.logger.Error("cancel by customer refused", "request", req.ID, "code", ref.Code, "error", err)
		p.fail(w, r, p.errInternal(), req.ID)
	}
}

// other answers every /c/ request no route took: a wrong method on a link,
// or a path that is not a link.
func (p *Pages) other(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/c/")
	if rest != "" && !strings.Contains(rest, "/") {
		w.Header().Set("Allow", "GET, HEAD, POST")
		p.fail(w, r, &pageErr{http.StatusMethodNotAllowed, "method_not_allowed", pageData{Heading: "Please open the link from the email",
			Paragraphs: []string{"Open the link in your browser, then use the button on the page."}}}, "")
		return
	}
	p.fail(w, r, p.errUnknown(), "")
}

// fromOurPage checks where a POST comes from. Fetch metadata first: a
// cross-site or same-site (sibling subdomain) request is refused. Then the
// Origin: our pages send Referrer-Policy: no-referrer, which makes browsers
// send "Origin: null" on the form POST, so "null" is accepted only when the
// browser also says the request is same-origin. Without Origin, a Referer
// must match. A client that sends none of these (an old browser, curl)
// still needs the SameSite=Strict cookie and its HMAC.
func (p *Pages) fromOurPage(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	switch site {
	case "", "same-origin", "none":
	default:
		return false
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		if origin == "null" {
			return site == "same-origin"
		}
		u, err := url.Parse(origin)
		return err == nil && originOf(u) == p.origin
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		return err == nil && u.Host != "" && originOf(u) == p.origin
	}
	return true
}

// newNonce returns 32 random bytes, base64url encoded.
func newNonce() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// csrfField binds the form to this link and to this browser's cookie: it is
// HMAC(key, token, nonce), so it is useless with another link, and a forger
// who cannot read the victim's cookie cannot compute it.
func (p *Pages) csrfField(token, nonce string) string {
	m := hmac.New(sha256.New, p.opts.CSRFKey)
	m.Write([]byte("vigil-cancel-csrf-v1\x00"))
	m.Write([]byte(token))
	m.Write([]byte{0})
	m.Write([]byte(nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (p *Pages) csrfValid(token, nonce, field string) bool {
	got, err := base64.RawURLEncoding.DecodeString(field)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	want, _ := base64.RawURLEncoding.DecodeString(p.csrfField(token, nonce))
	return hmac.Equal(got, want)
}
