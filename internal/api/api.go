// Package api is Vigil's JSON HTTP API: the agent endpoints under /api/v1
// (sign-in or personal bearer tokens) and, on a listener of their own, the
// admin endpoints under /admin/v1 (named admins' own credentials). Errors
// are RFC 9457 problem details with stable codes.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-oss/vigil/internal/agentauth"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/metrics"
	"github.com/vigil-oss/vigil/internal/oidcauth"
	"github.com/vigil-oss/vigil/internal/ratelimit"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/statuswriter"
	"github.com/vigil-oss/vigil/internal/store"
)

// Options tunes the API. Zero values take the defaults.
type Options struct {
	// OpenLimit limits POST /api/v1/requests per agent (default 30 a minute,
	// burst 10).
	OpenLimit ratelimit.Limit
	// GeneralLimit limits every other agent call per agent (default 300 a
	// minute, burst 100).
	GeneralLimit ratelimit.Limit
	// MaxLimiterKeys bounds how many agents each limiter tracks.
	MaxLimiterKeys int
	// CallTimeout bounds each call that goes to Temporal (default 20s), so
	// an unreachable cluster turns into a 503 instead of a hung request.
	CallTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OIDC, when set, signs people in with the identity provider's tokens and
	// refuses personal tokens of agents and seniors (see agentAuth).
	OIDC *oidcauth.Verifier
	// EstablishedAfter and PINPolicy are the worker's settings, which the
	// customer view judges addresses and lockouts by (default 168h and
	// store.DefaultPINPolicy).
	EstablishedAfter time.Duration
	PINPolicy        store.PINPolicy
	// BreakGlassTTL is how long one senior's break-glass consent waits for
	// a second senior's (default DefaultBreakGlassTTL).
	BreakGlassTTL time.Duration
	// AdminFailureLimit bounds failed admin API attempts per client address
	// (default DefaultAdminFailureLimit).
	AdminFailureLimit ratelimit.Limit
}

// Default limits, from the API contract.
var (
	DefaultOpenLimit    = ratelimit.Limit{PerMinute: 30, Burst: 10}
	DefaultGeneralLimit = ratelimit.Limit{PerMinute: 300, Burst: 100}
	// DefaultAdminFailureLimit: ten failed admin attempts at once, then
	// one every ten seconds.
	DefaultAdminFailureLimit = ratelimit.Limit{PerMinute: 6, Burst: 10}
)

// API serves the agent and admin endpoints.
type API struct {
	svc         *requests.Service
	store       *store.Store
	adminToken  string
	logger      *slog.Logger
	now         func() time.Time
	callTimeout time.Duration
	openRate    *ratelimit.Limiter
	otherRate   *ratelimit.Limiter
	oidc        *oidcauth.Verifier
	customers   customerSettings
	// breakGlassTTL is how long a break-glass consent waits for a second.
	breakGlassTTL time.Duration
	// adminFails counts failed admin API attempts per client address.
	adminFails *ratelimit.Limiter
}

// New builds the API. An empty adminToken turns the admin endpoints off
// (they answer 404).
func New(svc *requests.Service, st *store.Store, adminToken string, logger *slog.Logger, opts Options) *API {
	if logger == nil {
		logger = slog.Default()
	}
	if opts.OpenLimit == (ratelimit.Limit{}) {
		opts.OpenLimit = DefaultOpenLimit
	}
	if opts.GeneralLimit == (ratelimit.Limit{}) {
		opts.GeneralLimit = DefaultGeneralLimit
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AdminFailureLimit == (ratelimit.Limit{}) {
		opts.AdminFailureLimit = DefaultAdminFailureLimit
	}
	if opts.BreakGlassTTL <= 0 {
		opts.BreakGlassTTL = DefaultBreakGlassTTL
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 20 * time.Second
	}
	return &API{
		svc: svc, store: st, adminToken: adminToken, logger: logger.With("component", "api"), now: opts.Now,
		callTimeout:   opts.CallTimeout,
		openRate:      ratelimit.New(opts.OpenLimit, opts.MaxLimiterKeys, opts.Now),
		otherRate:     ratelimit.New(opts.GeneralLimit, opts.MaxLimiterKeys, opts.Now),
		oidc:          opts.OIDC,
		customers:     customerSettingsFrom(opts),
		breakGlassTTL: opts.BreakGlassTTL,
		adminFails:    ratelimit.New(opts.AdminFailureLimit, opts.MaxLimiterKeys, opts.Now),
	}
}

// route is one endpoint: a ServeMux pattern and its handler.
type route struct {
	pattern string
	handler http.HandlerFunc
}

// agentRoutes take an agent's token.
func (a *API) agentRoutes() []route {
	return []route{
		{"GET /api/v1/me", a.me},
		{"POST /api/v1/me/token", a.rotateMyToken},
		{"POST /api/v1/requests", a.openRequest},
		{"GET /api/v1/requests", a.listRequests},
		{"GET /api/v1/requests/{id}", a.getRequest},
		{"POST /api/v1/requests/{id}/withdraw", a.withdraw},
		{"POST /api/v1/requests/{id}/veto", a.veto},
		{"POST /api/v1/requests/{id}/break-glass", a.consentBreakGlass},
		{"POST /api/v1/requests/{id}/repost", a.repost},
		{"GET /api/v1/requests/{id}/audit", a.requestAudit},
		{"GET /api/v1/audit", a.exportAudit},
		{"GET /api/v1/customers/{id}", a.showCustomer},
		{"POST /api/v1/customers/{id}/unlock", a.unlockCustomer},
	}
}

// publicRoutes take no credential.
func (a *API) publicRoutes() []route {
	return []route{{"GET " + signInPath, a.signIn}}
}

// adminRoutes take the admin token.
func (a *API) adminRoutes() []route {
	return []route{
		{"POST /admin/v1/agents", a.createAgent},
		{"GET /admin/v1/agents", a.listAgents},
		{"PATCH /admin/v1/agents/{id}", a.patchAgent},
		{"POST /admin/v1/agents/{id}/disable", a.disableAgent},
		{"POST /admin/v1/agents/{id}/token", a.rotateToken},
		{"PUT /admin/v1/customers/{id}", a.importCustomer},
		{"POST /admin/v1/requests/{id}/break-glass", a.breakGlassByAdmin},
	}
}

// Handler routes /api/, the agent API. The admin API is not here: it has
// a listener of its own (AdminHandler), so the public one answers /admin/
// with not_found.
func (a *API) Handler() http.Handler {
	agentMux, publicMux := http.NewServeMux(), http.NewServeMux()
	for _, rt := range a.publicRoutes() {
		publicMux.HandleFunc(rt.pattern, rt.handler)
	}
	public := routed(publicMux)
	for _, rt := range a.agentRoutes() {
		agentMux.HandleFunc(rt.pattern, rt.handler)
	}
	agents := a.agentAuth(routed(agentMux))
	return a.logRequests(a.recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == signInPath:
			// Public: how to sign in, so the CLI needs only the server's URL.
			public.ServeHTTP(w, r)
		case under(r.URL.Path, "/admin"):
			writeProblem(w, newProblem(codeNotFound, "no such endpoint here: the admin API has its own address (VIGIL_ADMIN_ADDR)"))
		case under(r.URL.Path, "/api"):
			agents.ServeHTTP(w, r)
		default:
			writeProblem(w, newProblem(codeNotFound, "no such endpoint; the API lives under /api/v1"))
		}
	})))
}

// AdminHandler routes /admin/, the admin API, for its own listener.
func (a *API) AdminHandler() http.Handler {
	adminMux := http.NewServeMux()
	for _, rt := range a.adminRoutes() {
		adminMux.HandleFunc(rt.pattern, rt.handler)
	}
	admin := a.adminAuth(routed(adminMux))
	return a.logRequests(a.recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !under(r.URL.Path, "/admin") {
			writeProblem(w, newProblem(codeNotFound, "no such endpoint; the admin API lives under /admin/v1"))
			return
		}
		admin.ServeHTTP(w, r)
	})))
}

// under reports whether path is prefix or below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// routed serves mux, answering unknown paths and wrong methods with problem
// details instead of the mux's plain text.
func routed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		// The web front's metrics label the request with this pattern.
		metrics.NoteRoute(r.Context(), pattern)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// Let the mux's own 404/405 handler say which it is, then speak JSON.
		c := &capture{header: http.Header{}}
		h.ServeHTTP(c, r)
		if c.code == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", c.header.Get("Allow"))
			writeProblem(w, newProblem(codeMethodNotAllowed, fmt.Sprintf("%s is not allowed here; allowed: %s", r.Method, c.header.Get("Allow"))))
			return
		}
		writeProblem(w, newProblem(codeNotFound, "no such endpoint"))
	})
}

// capture records what a handler would answer without sending it.
type capture struct {
	header http.Header
	code   int
}

func (c *capture) Header() http.Header { return c.header }
func (c *capture) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return len(b), nil
}
func (c *capture) WriteHeader(code int) { c.code = code }

// ctxKey keys the context values of this package.
type ctxKey int

const (
	agentKey ctxKey = iota
	adminKey
	logNoteKey
)

// logNote lets inner handlers name the caller in the access log line.
type logNote struct{ actor string }

func noteActor(ctx context.Context, actor string) {
	if n, ok := ctx.Value(logNoteKey).(*logNote); ok {
		n.actor = actor
	}
}

// agentFrom returns the authenticated agent; agentAuth guarantees one.
func agentFrom(ctx context.Context) store.Agent {
	a, _ := ctx.Value(agentKey).(store.Agent)
	return a
}

// logRequests writes one line per request: method, path (ids only, never the
// query or a body), caller, status and duration.
func (a *API) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		note := &logNote{}
		sw := statuswriter.New(w)
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), logNoteKey, note)))
		level := slog.LevelInfo
		if sw.Status() >= 500 {
			level = slog.LevelError
		}
		a.logger.Log(r.Context(), level, "http request", "method", r.Method, "path", r.URL.Path,
			"actor", note.actor, "status", sw.Status(), "duration_ms", time.Since(start).Milliseconds())
	})
}

// recoverPanics turns a panic into a 500 problem. The log gets the stack,
// never the request body.
func (a *API) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				id := errorID()
				a.logger.Error("panic in handler", "error_id", id, "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				writeProblem(w, newProblem(codeInternal, internalDetail(id)))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func internalDetail(id string) string {
	return "Vigil could not complete this because of a fault on its side. Try again in a minute; if it keeps failing, give the Vigil operators error id " + id + "."
}

// agentAuth resolves the bearer token to an enabled agent, then applies
// that agent's rate limit. The token is a personal token (vgl_…) or, when OIDC
// is configured, the identity provider's ID token. Either way the agent row is
// read on every call, so disabling an agent ends its sessions at once, and the
// role is the row's, never anything the client sent.
func (a *API) agentAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		noteActor(r.Context(), agent.ID)
		limiter := a.otherRate
		if r.Method == http.MethodPost && r.URL.Path == "/api/v1/requests" {
			limiter = a.openRate
		}
		if ok, wait := limiter.Allow(agent.ID); !ok {
			w.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
			writeProblem(w, newProblem(codeRateLimited, fmt.Sprintf("too many calls from agent %s; wait %s seconds and try again", agent.ID, ratelimit.RetryAfter(wait))))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), agentKey, agent)))
	})
}

// authenticate answers the refusal itself and reports false when the caller
// is not an enabled agent.
func (a *API) authenticate(w http.ResponseWriter, r *http.Request) (store.Agent, bool) {
	tok, err := agentauth.Bearer(r.Header.Get("Authorization"))
	if err != nil || (!agentauth.WellFormed(tok) && a.oidc == nil) {
		unauthenticated(w, "send your personal token as 'Authorization: Bearer vgl_…'; an admin can issue one")
		return store.Agent{}, false
	}
	if !agentauth.WellFormed(tok) {
		return a.authenticateOIDC(w, r, tok)
	}
	agent, err := a.store.AgentByTokenHash(r.Context(), agentauth.Hash(tok))
	if errors.Is(err, store.ErrNotFound) {
		unauthenticated(w, "this token is not valid: it was rotated, the agent was disabled, or it was never issued; ask an admin for a new one")
		return store.Agent{}, false
	}
	if err != nil {
		a.internal(w, r, "authenticate agent", err)
		return store.Agent{}, false
	}
	if a.oidc != nil && (agent.Role == domain.RoleAgent || agent.Role == domain.RoleSenior || agent.Role == domain.RoleSecurity) {
		// A personal token is one copyable factor; people sign in with the
		// identity provider's second factor. Service accounts keep tokens.
		noteActor(r.Context(), agent.ID)
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
		writeProblem(w, newProblem(codeSignInRequired, "personal tokens are for service accounts; sign in with `starter login` through the identity provider"))
		return store.Agent{}, false
	}
	return agent, true
}

// authenticateOIDC verifies an identity provider token and finds its agent.
func (a *API) authenticateOIDC(w http.ResponseWriter, r *http.Request, tok string) (store.Agent, bool) {
	id, err := a.oidc.Verify(r.Context(), tok)
	switch {
	case errors.Is(err, oidcauth.ErrNoSecondFactor):
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil", error="insufficient_user_authentication"`)
		writeProblem(w, newProblem(codeSecondFactor, "this sign-in has no second factor; sign in again with `starter login` and complete the identity provider's second step"))
		return store.Agent{}, false
	case err != nil:
		// err names the failed check (expired, signature, …), never the token.
		unauthenticated(w, "the sign-in token was refused: "+strings.TrimPrefix(err.Error(), oidcauth.ErrInvalidToken.Error()+": ")+"; sign in again with `starter login`")
		return store.Agent{}, false
	}
	agent, err := a.store.Agent(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && agent.Disabled) {
		unauthenticated(w, "no enabled Vigil agent for this sign-in; ask an admin")
		return store.Agent{}, false
	}
	if err != nil {
		a.internal(w, r, "authenticate agent", err)
		return store.Agent{}, false
	}
	return agent, true
}

// signInPath publishes how people sign in.
const signInPath = "/api/v1/sign-in"

// signInInfo is the answer of GET /api/v1/sign-in.
type signInInfo struct {
	OIDC *signInOIDC `json:"oidc"`
}

type signInOIDC struct {
	Issuer   string   `json:"issuer"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
}

func (a *API) signIn(w http.ResponseWriter, r *http.Request) {
	var info signInInfo
	if a.oidc != nil {
		info.OIDC = &signInOIDC{Issuer: a.oidc.Issuer(), ClientID: a.oidc.Audience(),
			Scopes: []string{"openid", "email", "profile", "offline_access"}}
	}
	writeJSON(w, http.StatusOK, info)
}

// adminCaller is who called the admin API: a named admin, or the bootstrap
// token, which only creates the first admin.
type adminCaller struct {
	agent     store.Agent
	bootstrap bool
}

// actor is the audit actor of the caller: the admin's own id.
func (c adminCaller) actor() string {
	if c.bootstrap {
		return bootstrapActor
	}
	return "admin:" + c.agent.ID
}

// bootstrapActor is the audit actor of the bootstrap token.
const bootstrapActor = "bootstrap"

// adminFrom returns the admin API's caller; adminAuth guarantees one.
func adminFrom(ctx context.Context) adminCaller {
	c, _ := ctx.Value(adminKey).(adminCaller)
	return c
}

// bootstrapRoute is the one call the bootstrap token may make.
const bootstrapRoute = "/admin/v1/agents"

// adminAuth admits named admins, enabled agents of role admin with their own
// credentials (a personal token, or the identity provider's sign-in), so
// every admin action names a person. The bootstrap token (VIGIL_ADMIN_TOKEN),
// when set, is admitted to create the first admin only.
func (a *API) adminAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Failed attempts are throttled per client address: once its
		// budget is spent, no credential is even judged until it refills,
		// so guessing the bootstrap token or an admin's token is bounded.
		client := remoteHost(r)
		if blocked, wait := a.adminFails.Exhausted(client); blocked {
			a.logger.Warn("admin API: too many failed attempts; refused unjudged", "client", client)
			w.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
			writeProblem(w, newProblem(codeRateLimited, fmt.Sprintf("too many failed admin attempts from this address; wait %s seconds and try again", ratelimit.RetryAfter(wait))))
			return
		}
		failed := func(why string) {
			a.adminFails.Allow(client)
			a.logger.Warn("admin API: failed attempt", "client", client, "why", why)
		}
		tok, err := agentauth.Bearer(r.Header.Get("Authorization"))
		if err != nil {
			failed("no bearer credential")
			unauthenticated(w, "send your own admin credential as 'Authorization: Bearer …' (`starter login` as an admin, or your personal vgl_… token)")
			return
		}
		if a.adminToken != "" && agentauth.Equal(tok, a.adminToken) {
			noteActor(r.Context(), bootstrapActor)
			if r.Method != http.MethodPost || r.URL.Path != bootstrapRoute {
				writeProblem(w, newProblem(codeBootstrapOnly, "the bootstrap token (VIGIL_ADMIN_TOKEN) only creates the first admin (POST "+bootstrapRoute+" with role admin); admins then use their own credentials"))
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey, adminCaller{bootstrap: true})))
			return
		}
		if !agentauth.WellFormed(tok) && a.oidc == nil {
			failed("not a credential")
			unauthenticated(w, "this is not a valid admin credential")
			return
		}
		sw := statuswriter.New(w)
		agent, ok := a.authenticate(sw, r)
		if !ok {
			if st := sw.Status(); st == http.StatusUnauthorized || st == http.StatusForbidden {
				failed("credential refused")
			}
			return
		}
		noteActor(r.Context(), agent.ID)
		if agent.Role != domain.RoleAdmin {
			failed("not an admin")
			writeProblem(w, newProblem(codeForbidden, "only admins (agents of role admin) can use the admin API; "+agent.ID+" is "+string(agent.Role)))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminKey, adminCaller{agent: agent})))
	})
}

// remoteHost is the address of the connection's peer, without its port: the
// admin listener is meant for loopback or a private network, never behind
// the public proxy, so forwarded headers are not read.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func unauthenticated(w http.ResponseWriter, detail string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
	writeProblem(w, newProblem(codeUnauthenticated, detail))
}

// internal answers an unexpected err. A database outage is a 503 the caller
// can retry; anything else is logged under a fresh error id and answered 500
// with that id only.
func (a *API) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	if store.IsUnavailable(err) {
		a.databaseUnavailable(w, r, what, err)
		return
	}
	id := errorID()
	a.logger.Error(what+" failed", "error_id", id, "method", r.Method, "path", r.URL.Path, "error", err)
	writeProblem(w, newProblem(codeInternal, internalDetail(id)))
}

// dbRetryAfter is the Retry-After of a database_unavailable answer: about
// how long a Postgres restart or failover keeps it away.
const dbRetryAfter = 10 * time.Second

// databaseUnavailable logs that the database could not serve what and answers
// 503 database_unavailable. There is no error id: the outage is the whole story,
// and the operators see it in their database's health, not in one request.
func (a *API) databaseUnavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.logger.Warn("database unavailable", "during", what, "method", r.Method, "path", r.URL.Path, "error", err)
	writeDBUnavailable(w)
}

// writeDBUnavailable answers 503 database_unavailable with Retry-After.
func writeDBUnavailable(w http.ResponseWriter) {
	secs := strconv.Itoa(int(dbRetryAfter / time.Second))
	w.Header().Set("Retry-After", secs)
	writeProblem(w, newProblem(codeDBUnavailable, "Vigil's database is not reachable right now. Try again in "+
		secs+" seconds; if it keeps failing, tell the Vigil operators."))
}

// fail answers err from the requests service: a refusal as its problem,
// anything else as a logged 500.
func (a *API) fail(w http.ResponseWriter, r *http.Request, what, requestID string, err error) {
	if ref, ok := requests.AsRefusal(err); ok {
		if _, known := problemKinds[string(ref.Code)]; !known {
			a.internal(w, r, what, err)
			return
		}
		if ref.Code == requests.CodeUnavailable {
			// Temporal restarts and failovers pass in seconds.
			w.Header().Set("Retry-After", strconv.Itoa(int(temporalRetryAfter/time.Second)))
		}
		writeProblem(w, problemFromRefusal(ref, requestID))
		return
	}
	a.internal(w, r, what, err)
}

// temporalRetryAfter is the Retry-After of a temporal_unavailable answer.
const temporalRetryAfter = 5 * time.Second

// temporalCtx bounds a call that reaches Temporal.
func (a *API) temporalCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.callTimeout)
}

// writeJSON sends v with status. API answers are never cached: some carry
// tokens.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func invalid(w http.ResponseWriter, format string, args ...any) {
	writeProblem(w, newProblem(codeInvalid, fmt.Sprintf(format, args...)))
}
