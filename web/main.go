// Command web is Vigil's HTTP front: the agents' JSON API, the admin API,
// the customers' cancel pages and health checks. With the worker, it is one
// of the two processes that hold Temporal credentials.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"github.com/slack-go/slack"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/vigil-oss/vigil/internal/api"
	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/cancelpage"
	"github.com/vigil-oss/vigil/internal/clientip"
	"github.com/vigil-oss/vigil/internal/codecaudit"
	"github.com/vigil-oss/vigil/internal/codecserver"
	"github.com/vigil-oss/vigil/internal/config"
	"github.com/vigil-oss/vigil/internal/logging"
	"github.com/vigil-oss/vigil/internal/metrics"
	"github.com/vigil-oss/vigil/internal/oidcauth"
	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/risk"
	"github.com/vigil-oss/vigil/internal/slackapp"
	"github.com/vigil-oss/vigil/internal/statuswriter"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/temporalclient"
	"github.com/vigil-oss/vigil/internal/tokens"
	"github.com/vigil-oss/vigil/workflows"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: web\n\nServes Vigil's agent API, admin API and customer cancel pages. Configured only through the environment.\n\n%s", config.Usage())
	}
	flag.Parse()
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "web: configuration: %v\n", err)
		os.Exit(2)
	}
	logger := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel, "web")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("web stopped", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	if err := cfg.RequireSecrets(); err != nil {
		return err
	}
	if err := cfg.RequireSlack(true); err != nil {
		return err
	}
	if err := cfg.RequirePanelRead(); err != nil {
		return err
	}
	riskChecks, err := newRiskChecks(cfg, logger)
	if err != nil {
		return err
	}
	key, err := cfg.TokenKeyBytes()
	if err != nil {
		return err
	}
	signer, err := tokens.NewSigner(key)
	if err != nil {
		return err
	}
	proxies, err := clientip.New(cfg.TrustedProxies)
	if err != nil {
		return err
	}
	pageOpts := cancelpage.Options{
		PublicURL: cfg.PublicURL, SupportEmail: cfg.SupportEmail, ProductName: cfg.ProductName,
		CSRFKey: csrfKey(key), Location: cfg.Timezone, ClientIP: proxies,
	}
	if err := pageOpts.Validate(); err != nil {
		return err
	}

	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer st.Close()
	// The metrics come first: the Temporal client reports to them.
	var (
		wm *webMetrics
		mh client.MetricsHandler
	)
	if cfg.WebMetricsAddr != "" {
		if wm, err = newWebMetrics(st, logger); err != nil {
			return err
		}
		mh = wm.temporal
	}
	// The web front decodes what the worker wrote (Update and query
	// results); a payload it refuses is logged and audited as the worker's.
	refusals := codecaudit.New(st, logger, "web", codecaudit.TrimPrefix(workflows.WorkflowID("")))
	refusalCtx, stopRefusals := context.WithCancel(context.WithoutCancel(ctx))
	refusalsDone := make(chan struct{})
	go func() { defer close(refusalsDone); refusals.Run(refusalCtx) }()
	defer func() { stopRefusals(); <-refusalsDone }()
	cdc, err := temporalclient.Codec(cfg, refusals.Option())
	if err != nil {
		return err
	}
	tc, err := temporalclient.DialWithCodec(ctx, cfg, cdc, logger, mh)
	if err != nil {
		return err
	}
	defer tc.Close()

	svc, err := requests.New(tc, st, requests.Timings{
		ApprovalTimeout: cfg.ApprovalTimeout, NoticeTimeout: cfg.NoticeTimeout,
		ExecuteMaxAttempts: cfg.ExecuteMaxAttempts, Cooling: cfg.Cooling, PIN: cfg.PINPolicy(),
	}, riskChecks, logger)
	if err != nil {
		return err
	}
	apiOpts := api.Options{EstablishedAfter: cfg.EstablishedAfter, BreakGlassTTL: cfg.BreakGlassConsentTTL,
		PINPolicy: cfg.PINPolicy()}
	if cfg.OIDCIssuer != "" {
		// Discovery at start: a misconfigured issuer stops the web front here
		// instead of refusing every sign-in later.
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		v, err := oidcauth.New(dctx, oidcauth.Config{Issuer: cfg.OIDCIssuer, Audience: cfg.OIDCClientID,
			AcceptedAMR: cfg.OIDCAcceptedAMR, AcceptedACR: cfg.OIDCAcceptedACR, AgentClaim: cfg.OIDCAgentClaim})
		cancel()
		if err != nil {
			return fmt.Errorf("oidc sign-in: %w", err)
		}
		apiOpts.OIDC = v
		logger.Info("oidc sign-in on", "issuer", cfg.OIDCIssuer, "client_id", cfg.OIDCClientID)
	}
	// The codec endpoint for the Temporal Web UI: the security team, signed
	// in with a second factor, reads request histories; nobody else does.
	var codecEndpoint http.Handler
	if cfg.CodecEndpoint {
		var verifier codecserver.TokenVerifier
		if apiOpts.OIDC != nil {
			verifier = apiOpts.OIDC
		}
		cs, err := codecserver.New(codecserver.Config{Codec: cdc, Verifier: verifier, Store: st,
			Origins: cfg.CodecEndpointOrigins, Logger: logger.With("component", "codec-endpoint")})
		if err != nil {
			return err
		}
		codecEndpoint = cs
		logger.Info("codec endpoint on", "path", codecserver.Path, "readers", "the security role", "origins", cfg.CodecEndpointOrigins)
	}
	apiServer := api.New(svc, st, cfg.AdminToken.Reveal(), logger, apiOpts)
	apiHandler, apiAdmin := apiServer.Handler(), apiServer.AdminHandler()
	pages := cancelpage.New(svc, st, signer, pageOpts, logger).Handler()
	slackAPI := slack.New(cfg.SlackBotToken.Reveal(), slack.OptionAPIURL(cfg.SlackAPIURL),
		slack.OptionHTTPClient(&http.Client{Timeout: 10 * time.Second}))
	slackClient := approvals.NewClient(slackAPI, approvals.Config{
		ApprovalsChannel: cfg.SlackApprovalsChannel,
		SecurityChannel:  cfg.SlackSecurityChannel,
		UserGroup:        cfg.SlackUserGroup,
	}, logger)
	interactions, err := slackapp.New(svc, st, slackClient, slackapp.Config{
		SigningSecret: cfg.SlackSigningSecret.Reveal(), TeamID: cfg.SlackTeamID, AppID: cfg.SlackAppID,
	}, logger)
	if err != nil {
		return fmt.Errorf("slack interactions: %w", err)
	}
	defer func() {
		// Clicks already acknowledged still get their decision recorded.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := interactions.Shutdown(ctx); err != nil {
			logger.Warn("slack interactions did not finish", "error", err)
		}
	}()
	ready := func(ctx context.Context) error {
		if err := st.Ping(ctx); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		if _, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			return fmt.Errorf("temporal: %w", err)
		}
		return nil
	}
	switch n := len(cfg.AdminToken.Reveal()); {
	case n == 0:
		logger.Info("admin bootstrap is off: VIGIL_ADMIN_TOKEN is empty; the admin API takes named admins' own credentials")
	default:
		logger.Info("admin bootstrap is on: VIGIL_ADMIN_TOKEN creates the first admin only; unset it once one exists")
	}

	var httpMetrics *metrics.HTTP
	if wm != nil {
		httpMetrics = wm.http
		stopMetrics, err := metrics.Listen(cfg.WebMetricsAddr, wm.reg, logger)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	var admin []listener
	if cfg.AdminAddr == "" {
		logger.Info("admin API is off: VIGIL_ADMIN_ADDR is off")
	} else {
		// The admin API has a socket of its own, loopback by default, so it
		// is never served beside the cancel pages on the public one.
		aln, err := net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("listen on %s (VIGIL_ADMIN_ADDR): %w", cfg.AdminAddr, err)
		}
		admin = append(admin, listener{"admin_addr", newServer(adminRoutes(apiAdmin, logger), logger), aln})
	}
	return serve(ctx, newServer(routes(apiHandler, pages, interactions, codecEndpoint, ready, logger, httpMetrics), logger), ln, os.Stdout, logger, admin...)
}

// webMetrics is what the web front exports: the Go runtime and process,
// HTTP counts and latencies by route pattern, the requests per status read
// from Postgres at each scrape, and the SDK's metrics of its Temporal client.
type webMetrics struct {
	reg      *prometheus.Registry
	http     *metrics.HTTP
	temporal client.MetricsHandler
}

func newWebMetrics(st *store.Store, logger *slog.Logger) (*webMetrics, error) {
	reg := metrics.NewRegistry()
	mh, err := metrics.TemporalHandler(reg, logger)
	if err != nil {
		return nil, err
	}
	reg.MustRegister(metrics.NewRequests(st.RequestsByStatus, 5*time.Second, logger))
	return &webMetrics{reg: reg, http: metrics.NewHTTP(reg), temporal: mh}, nil
}

// csrfKey derives the cancel pages' CSRF key from the token key, so that
// the key signing cancel links never signs anything else.
func csrfKey(tokenKey []byte) []byte {
	m := hmac.New(sha256.New, tokenKey)
	m.Write([]byte("vigil cancel-page csrf key v1"))
	return m.Sum(nil)
}

// newServer sets the timeouts that keep slow or hostile clients from holding
// connections. WriteTimeout leaves room for a call that waits on Temporal
// (opening a request checks the PIN, then starts the workflow).
func newServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(logger.With("component", "http").Handler(), slog.LevelWarn),
	}
}

// listener is one server on its socket; field names it in the ready line.
type listener struct {
	field string
	srv   *http.Server
	ln    net.Listener
}

// serve runs srv on ln, and each of more on its own socket, until ctx ends,
// then shuts them down gracefully: new connections are refused and requests
// in flight get up to 20 s. It prints the ready line scripts wait for once
// every socket is listening.
func serve(ctx context.Context, srv *http.Server, ln net.Listener, out io.Writer, logger *slog.Logger, more ...listener) error {
	all := append([]listener{{"addr", srv, ln}}, more...)
	errc := make(chan error, len(all))
	line := "web ready"
	attrs := []any{}
	for _, l := range all {
		go func() { errc <- l.srv.Serve(l.ln) }()
		line += " " + l.field + "=" + l.ln.Addr().String()
		attrs = append(attrs, l.field, l.ln.Addr().String())
	}
	logger.Info("web ready", attrs...)
	fmt.Fprintln(out, line)
	select {
	case err := <-errc:
		for _, l := range all {
			_ = l.srv.Close()
		}
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("web stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var firstErr error
	for _, l := range all {
		if err := l.srv.Shutdown(shutdownCtx); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("shutdown: %w", err)
		}
	}
	for range all {
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) && firstErr == nil {
			firstErr = fmt.Errorf("serve: %w", err)
		}
	}
	return firstErr
}

// adminRoutes mounts the admin API alone, with a liveness check, for the
// admin listener.
func adminRoutes(admin http.Handler, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/admin/", admin)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		plain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		plain(w, http.StatusNotFound, "not found: this is the admin API (/admin/v1)")
	})
	return logRequests(logger, mux)
}

// routes mounts the API, the cancel pages and the health checks.
// With hm, requests are also counted and timed by route pattern.
func routes(apiHandler, pages, interactions, codecEndpoint http.Handler, ready func(context.Context) error, logger *slog.Logger, hm *metrics.HTTP) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/slack/interactions", interactions)
	if codecEndpoint != nil {
		mux.Handle(codecserver.Path, codecEndpoint)
	}
	mux.Handle("/api/", apiHandler)
	// Not served here: a pointer to the admin API's own address.
	mux.Handle("/admin/", apiHandler)
	mux.Handle("/c/", pages)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		plain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			logger.Warn("not ready", "error", err)
			plain(w, http.StatusServiceUnavailable, "not ready")
			return
		}
		plain(w, http.StatusOK, "ready")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Everything else shares the "unmatched" label, not "/".
		metrics.NoteRoute(r.Context(), "")
		plain(w, http.StatusNotFound, "not found")
	})
	if hm == nil {
		return logRequests(logger, mux)
	}
	// Instrument wraps the mux itself: it reads the pattern the mux matched.
	return logRequests(logger, hm.Instrument(mux))
}

func plain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body+"\n")
}

// logPath is the path as it may be logged: a cancel link's path carries its
// token, so anything that resolves under /c/ is logged as "/c/…". Cleaning
// first catches /x/../c/<token> and //c/<token>, which the mux redirects.
func logPath(p string) string {
	if clean := path.Clean("/" + p); clean == "/c" || strings.HasPrefix(clean, "/c/") {
		return "/c/…"
	}
	return p
}

// delegated reports whether a path belongs to a handler that writes its own
// access log line with more detail (the caller's agent id, a token hash).
func delegated(p string) bool {
	return strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/admin/") || strings.HasPrefix(p, "/c/")
}

// logRequests logs every request: at debug level for the API and cancel
// pages (which log their own line) and health probes, at info otherwise.
// It never logs a query string or a cancel token.
func logRequests(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := statuswriter.New(w)
		next.ServeHTTP(sw, r)
		level := slog.LevelInfo
		if delegated(r.URL.Path) || r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			level = slog.LevelDebug
		}
		logger.Log(r.Context(), level, "http request", "method", r.Method, "path", logPath(r.URL.Path),
			"status", sw.Status(), "duration_ms", time.Since(start).Milliseconds())
	})
}

// newRiskChecks is the account risk check opens make: the panel, through
// the web front's read-only token, and the policy (the built-in one, or
// VIGIL_RISK_POLICY_FILE's).
func newRiskChecks(cfg config.Config, logger *slog.Logger) (requests.RiskChecks, error) {
	if !cfg.RiskChecks {
		logger.Warn("risk checks are OFF (VIGIL_RISK_CHECKS=off): an attacker who owns the customer's mailbox and read the PIN meets only the senior")
		return requests.RiskChecks{Off: true}, nil
	}
	pc, err := panel.NewClient(cfg.PanelURL, cfg.PanelReadToken.Reveal(), &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		return requests.RiskChecks{}, err
	}
	policy := risk.DefaultPolicy()
	if cfg.RiskPolicyFile != "" {
		b, err := os.ReadFile(cfg.RiskPolicyFile)
		if err != nil {
			return requests.RiskChecks{}, fmt.Errorf("VIGIL_RISK_POLICY_FILE: %w", err)
		}
		if policy, err = risk.Parse(b); err != nil {
			return requests.RiskChecks{}, fmt.Errorf("VIGIL_RISK_POLICY_FILE %s: %w", cfg.RiskPolicyFile, err)
		}
	}
	logger.Info("risk checks on", "rules", len(policy.Rules), "policy_file", cfg.RiskPolicyFile)
	return requests.RiskChecks{Accounts: pc, Policy: policy}, nil
}
