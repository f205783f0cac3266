// Package config reads Vigil's settings from environment variables, with
// defaults that suit the local run and no defaults for secrets.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-oss/vigil/internal/action"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/phone"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// Config is every setting of the worker and the web front. Each main checks
// the part it needs with its Require method.
type Config struct {
	DatabaseURL string

	TemporalAddress   string
	TemporalNamespace string
	TemporalTLS       bool
	TemporalTLSCert   string
	TemporalTLSKey    string
	TemporalAPIKey    Secret

	CodecKeys  Secret // "id:base64key,id2:base64key"
	CodecKeyID string
	// CodecAcceptUnbound is the migration switch for payloads sealed before
	// they were bound to their workflow (see codec.AcceptUnbound).
	CodecAcceptUnbound bool
	TokenKey           Secret // base64, at least 32 bytes: signs cancel links

	LogLevel  slog.Level
	LogFormat string

	// Worker
	SMTPAddr       string
	SMTPUsername   string
	SMTPPassword   Secret
	SMTPRequireTLS bool
	MailFrom       string
	SupportEmail   string
	// SMS is the provider of SMS notices; SMSURL is empty when none is
	// configured.
	SMSURL         string
	SMSAccountSID  string
	SMSAuthToken   Secret
	SMSFrom        string
	ProductName    string
	Timezone       *time.Location
	PublicURL      string
	PanelURL       string
	PanelToken     Secret
	PanelReadToken Secret
	RiskChecks     bool
	RiskPolicyFile string
	PanelTimeout   time.Duration // each control panel call; at most MaxPanelTimeout
	PINMaxFailures int
	PINWindow      time.Duration
	PINLockout     time.Duration
	// The daily budget, the limit per agent across customers and how long
	// a right PIN's verdict waits for its workflow (see store.PINPolicy).
	PINDayMaxFailures   int
	PINDayLockout       time.Duration
	PINAgentMaxFailures int
	PINAgentWindow      time.Duration
	PINVerdictTTL       time.Duration
	// BreakGlassConsentTTL is how long one senior's break-glass consent
	// waits for a second senior's.
	BreakGlassConsentTTL time.Duration
	EstablishedAfter     time.Duration
	Worker               WorkerTuning

	// Slack
	SlackBotToken         Secret
	SlackSigningSecret    Secret
	SlackAPIURL           string
	SlackTeamID           string
	SlackAppID            string
	SlackApprovalsChannel string
	SlackSecurityChannel  string
	SlackUserGroup        string

	// Metrics: where each process serves /metrics; empty is off.
	WebMetricsAddr    string
	WorkerMetricsAddr string

	// Web
	HTTPAddr       string
	TrustedProxies []string // addresses or CIDR ranges whose X-Forwarded-For is believed
	// AdminAddr is the admin API's own listen address; "" is off.
	AdminAddr          string
	AdminToken         Secret
	ApprovalTimeout    time.Duration
	NoticeTimeout      time.Duration
	ExecuteMaxAttempts int
	Cooling            domain.CoolingPeriods
	// DevBelowFloors lets the worker's cooling periods go below each
	// action's floor: for development and test stacks only, and written
	// into every request's request.policy audit event.
	DevBelowFloors bool

	// OIDC sign-in for people (issue 16); off while OIDCIssuer is empty.
	OIDCIssuer      string
	OIDCClientID    string
	OIDCAcceptedAMR []string
	OIDCAcceptedACR []string
	OIDCAgentClaim  string

	// CodecEndpoint turns on the codec endpoint for the Temporal Web UI,
	// open to agents of the security role only.
	CodecEndpoint        bool
	CodecEndpointOrigins []string
}

// WorkerTuning is how much the worker keeps in memory and runs at once.
type WorkerTuning struct {
	// StickyCacheSize is how many workflows the process keeps in memory
	// between their tasks (worker.SetStickyWorkflowCacheSize); a workflow
	// evicted from it replays its history at its next task. 0 turns sticky
	// execution off: every task replays.
	StickyCacheSize int
	// Pollers of each task queue kind; the SDK refuses 1 workflow poller.
	WorkflowTaskPollers int
	ActivityTaskPollers int
	// Task slots: how many workflow tasks and activities run at once.
	MaxConcurrentWorkflowTasks int
	MaxConcurrentActivities    int
}

// Secret is a configuration value that must never be printed.
type Secret string

// String redacts the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// LogValue redacts the secret in slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Reveal returns the secret itself, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }

// Var documents one variable: name, default, meaning.
type Var struct{ Name, Default, Help string }

// Vars documents every variable. The README's table is generated from the
// same words, and `worker -h` prints it. The cooling rows come from the
// action specs.
var Vars = append(fixedVars, coolingVars()...)

var fixedVars = []Var{
	{"VIGIL_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/vigil?sslmode=disable", "Postgres connection string (lib/pq)"},
	{"VIGIL_TEMPORAL_ADDRESS", "127.0.0.1:7233", "Temporal frontend host:port"},
	{"VIGIL_TEMPORAL_NAMESPACE", "default", "Temporal namespace"},
	{"VIGIL_TEMPORAL_TLS", "false", "use TLS to reach Temporal (true when a cert or API key is set)"},
	{"VIGIL_TEMPORAL_TLS_CERT", "", "client certificate file for mTLS"},
	{"VIGIL_TEMPORAL_TLS_KEY", "", "client key file for mTLS"},
	{"VIGIL_TEMPORAL_API_KEY", "", "Temporal Cloud API key (secret)"},
	{"VIGIL_CODEC_KEYS", "(required)", "payload encryption keys, id:base64(32 bytes),... (secret)"},
	{"VIGIL_CODEC_KEY_ID", "first id in VIGIL_CODEC_KEYS", "key id new payloads are encrypted with"},
	{"VIGIL_CODEC_ACCEPT_UNBOUND", "false", "migration only: also decode payloads sealed before they were bound to their workflow (requests started before the upgrade); turn off once they have ended"},
	{"VIGIL_TOKEN_KEY", "(required)", "base64 key of at least 32 bytes that signs cancel links (secret)"},
	{"VIGIL_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"VIGIL_LOG_FORMAT", "text", "text or json"},
	{"VIGIL_SMTP_ADDR", "127.0.0.1:1025", "SMTP server host:port for customer mail"},
	{"VIGIL_SMTP_USERNAME", "", "SMTP user (AUTH PLAIN when set)"},
	{"VIGIL_SMTP_PASSWORD", "", "SMTP password (secret)"},
	{"VIGIL_SMTP_REQUIRE_TLS", "false", "refuse to send without STARTTLS"},
	{"VIGIL_MAIL_FROM", "Vigil Security <security@vigil.localhost>", "From address of customer mail"},
	{"VIGIL_SUPPORT_EMAIL", "support@vigil.localhost", "address customers are told to write to"},
	{"VIGIL_SMS_URL", "", "base URL of the SMS provider's Twilio-shaped Messages API (https://api.twilio.com, or the local SMS gateway); empty: no SMS provider"},
	{"VIGIL_SMS_ACCOUNT_SID", "", "SMS provider account (path and basic-auth user); required with VIGIL_SMS_URL"},
	{"VIGIL_SMS_AUTH_TOKEN", "", "SMS provider auth token (basic-auth password; secret); required with VIGIL_SMS_URL"},
	{"VIGIL_SMS_FROM", "", "sender number of SMS notices, E.164; required with VIGIL_SMS_URL"},
	{"VIGIL_PRODUCT_NAME", "Vigil", "company or product name shown to customers"},
	{"VIGIL_TIMEZONE", "UTC", "IANA zone for times in customer mail"},
	{"VIGIL_PUBLIC_URL", "http://127.0.0.1:8080", "public base URL of the web front (cancel links)"},
	{"VIGIL_PANEL_URL", "http://127.0.0.1:8091", "hosting control panel API base URL"},
	{"VIGIL_PANEL_TOKEN", "(required by worker)", "bearer token for the control panel (secret)"},
	{"VIGIL_PANEL_READ_TOKEN", "(required by web)", "bearer token the web front reads the account's security events and verifies authenticator codes with; it must not be able to act (secret)"},
	{"VIGIL_RISK_CHECKS", "on", "on: every open asks the panel for the account's recent security events and applies the risk policy; off: no risk check (only for a panel without that API; the web front warns at start)"},
	{"VIGIL_RISK_POLICY_FILE", "", "JSON file of the risk policy (internal/risk; README \"Account risk\"); empty: the built-in policy"},
	{"VIGIL_PANEL_TIMEOUT", "60s", "time limit of each control panel call; at most 110s, so that it stays below the 2 minute limit of the executor activity that makes the call"},
	{"VIGIL_PIN_MAX_FAILURES", "5", "wrong PINs within the window that lock a customer (the web front checks PINs, the worker only those of requests opened before it did)"},
	{"VIGIL_PIN_WINDOW", "15m", "rolling window in which wrong PINs are counted"},
	{"VIGIL_PIN_LOCKOUT", "1h", "how long a customer stays locked"},
	{"VIGIL_PIN_DAY_MAX_FAILURES", "10", "wrong PINs within any 24 hours that lock a customer, however slowly they come; at least VIGIL_PIN_MAX_FAILURES (reaching VIGIL_PIN_MAX_FAILURES in a day warns security first)"},
	{"VIGIL_PIN_DAY_LOCKOUT", "24h", "how long the daily budget locks a customer"},
	{"VIGIL_PIN_AGENT_MAX_FAILURES", "20", "wrong PINs one agent may type within VIGIL_PIN_AGENT_WINDOW across all customers; the next PIN check is refused and security told"},
	{"VIGIL_PIN_AGENT_WINDOW", "24h", "rolling window of the per-agent limit"},
	{"VIGIL_PIN_VERDICT_TTL", "1h", "how long a right PIN's verdict waits for its workflow to consume it; after that the request fails at the PIN gate"},
	{"VIGIL_ESTABLISHED_AFTER", "168h", "age after which a verified contact address gets notices"},
	{"VIGIL_WORKER_STICKY_CACHE_SIZE", "1000", "workflows the worker keeps in memory between their tasks, 0 to 100000 (about 85 KiB each while waiting; an evicted one replays its history at its next task; 0 turns sticky execution off)"},
	{"VIGIL_WORKER_WORKFLOW_POLLERS", "2", "workflow task pollers, 2 to 64 (the SDK refuses 1); at most VIGIL_WORKER_MAX_WORKFLOW_TASKS"},
	{"VIGIL_WORKER_ACTIVITY_POLLERS", "2", "activity task pollers, 1 to 64; at most VIGIL_WORKER_MAX_ACTIVITIES"},
	{"VIGIL_WORKER_MAX_WORKFLOW_TASKS", "100", "workflow tasks the worker runs at once, 2 to 10000"},
	{"VIGIL_WORKER_MAX_ACTIVITIES", "50", "activities the worker runs at once, 1 to 10000 (a PIN check holds about 19 MiB of argon2 memory while it runs)"},
	{"VIGIL_SLACK_BOT_TOKEN", "(required)", "Slack bot token xoxb-… (secret)"},
	{"VIGIL_SLACK_SIGNING_SECRET", "(required by web)", "Slack app signing secret (secret)"},
	{"VIGIL_SLACK_API_URL", "https://slack.com/api/", "Slack Web API base URL (the local stand-in in development)"},
	{"VIGIL_SLACK_TEAM_ID", "(required by web)", "Slack workspace id T…; clicks from other workspaces are refused"},
	{"VIGIL_SLACK_APP_ID", "(required by web)", "Slack app id A…; clicks for other apps are refused"},
	{"VIGIL_SLACK_APPROVALS_CHANNEL", "#vigil-approvals", "channel id or name where approval requests are posted"},
	{"VIGIL_SLACK_SECURITY_CHANNEL", "#vigil-security", "channel for lockouts, customer cancellations and refused approvals"},
	{"VIGIL_SLACK_USERGROUP", "", "optional user group id S…; approvers must also be members"},
	{"VIGIL_HTTP_ADDR", "127.0.0.1:8080", "listen address of the web front"},
	{"VIGIL_TRUSTED_PROXIES", "", "comma-separated addresses or CIDR ranges of the reverse proxies in front of the web front (e.g. 10.0.0.0/8); on a connection from one, the client is the rightmost X-Forwarded-For address that is not one of them; empty: the header is ignored and the client is the connection's peer"},
	{"VIGIL_WEB_METRICS_ADDR", "", "listen address for Prometheus /metrics of the web front (HTTP counts and latencies, requests per status); off when empty; keep it off the public network"},
	{"VIGIL_WORKER_METRICS_ADDR", "", "listen address for Prometheus /metrics of the worker (Temporal SDK: task latencies, failures, polls); off when empty"},
	{"VIGIL_ADMIN_ADDR", "127.0.0.1:8081", "listen address of the admin API (/admin/v1), apart from the public one; keep it on loopback or a private network; off turns the admin API off"},
	{"VIGIL_ADMIN_TOKEN", "", "bootstrap token: creates the first admin (POST /admin/v1/agents with role admin, while no enabled admin exists) and nothing else; at least 32 characters; admins then use their own credentials, so unset it (off when empty) (secret)"},
	{"VIGIL_BREAK_GLASS_CONSENT_TTL", "15m", "how long one senior's break-glass consent waits for a second senior's (at most 24h); a break-glass decision needs two unexpired consents"},
	{"VIGIL_OIDC_ISSUER", "", "identity provider issuer URL; when set, people (agents, seniors) sign in through it with a second factor and their personal tokens are refused; off when empty"},
	{"VIGIL_OIDC_CLIENT_ID", "", "the client id (audience) the identity provider issues the CLI tokens to; required with VIGIL_OIDC_ISSUER"},
	{"VIGIL_OIDC_REQUIRED_AMR", "mfa,otp,hwk,swk,fpt", "amr values of which a token must carry one (proof of a second factor)"},
	{"VIGIL_OIDC_REQUIRED_ACR", "", "acr values that also prove a second factor (for providers that say it with acr)"},
	{"VIGIL_OIDC_AGENT_CLAIM", "sub", "the token claim whose value is the Vigil agent id"},
	{"VIGIL_CODEC_ENDPOINT", "off", "on: serve the codec endpoint (/codec/decode, for the Temporal Web UI and CLI), which decodes request histories for enabled agents of the security role signed in with a second factor, and no one else; needs VIGIL_OIDC_ISSUER"},
	{"VIGIL_CODEC_ENDPOINT_ORIGINS", "", "browser origins (the Temporal Web UI's, e.g. http://127.0.0.1:8233) allowed to call the codec endpoint"},
	{"VIGIL_APPROVAL_TIMEOUT", "4h", "how long a request waits for a senior (the worker's setting: each request takes the worker's timings at its start, never its starter's)"},
	{"VIGIL_NOTICE_TIMEOUT", "24h", "how long mail may fail before a request fails (the worker's)"},
	{"VIGIL_EXECUTE_MAX_ATTEMPTS", "10", "executor attempts before a request fails (the worker's)"},
	{"VIGIL_DEV_BELOW_FLOORS", "false", "development and tests only: let the VIGIL_COOLING_* periods go below each action's floor (in each one's line); without it the worker refuses to start with a shorter one. Every request run so says below_floor in its request.policy audit event"},
}

// coolingVars are the rows of the cooling settings, one per action spec.
func coolingVars() []Var {
	var out []Var
	for _, sp := range action.Specs() {
		out = append(out, Var{sp.CoolingSetting, hours(sp.CoolingDefault),
			sp.CoolingHelp + " (the worker's; floor " + hours(sp.CoolingFloor) + ", which the workflow enforces)"})
	}
	return out
}

// hours writes d as the settings table does: "72h", else Go's form.
func hours(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// MaxPanelTimeout bounds VIGIL_PANEL_TIMEOUT. The executor activity that
// calls the control panel has a 2 minute start-to-close timeout
// (workflows/request.go); a panel call allowed to run that long would be cut
// off by Temporal instead of failing with its own error, and leave no time for
// recording the result. 10 s of headroom covers that.
const MaxPanelTimeout = 110 * time.Second

// panelTimeoutWhy ends the error for a VIGIL_PANEL_TIMEOUT over the bound.
const panelTimeoutWhy = "so that a control panel call ends before the executor activity's 2 minute limit"

// Usage renders Vars as a table for -h output.
func Usage() string {
	var b strings.Builder
	b.WriteString("Environment variables:\n")
	for _, v := range Vars {
		fmt.Fprintf(&b, "  %-36s %s (default: %s)\n", v.Name, v.Help, v.Default)
	}
	return b.String()
}

// Load reads the configuration through getenv (os.Getenv in mains, a map in
// tests). It reports every malformed value at once.
func Load(getenv func(string) string) (Config, error) {
	l := loader{getenv: getenv}
	c := Config{
		DatabaseURL:        l.str("VIGIL_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/vigil?sslmode=disable"),
		TemporalAddress:    l.str("VIGIL_TEMPORAL_ADDRESS", "127.0.0.1:7233"),
		TemporalNamespace:  l.str("VIGIL_TEMPORAL_NAMESPACE", "default"),
		TemporalTLS:        l.boolean("VIGIL_TEMPORAL_TLS", false),
		TemporalTLSCert:    l.str("VIGIL_TEMPORAL_TLS_CERT", ""),
		TemporalTLSKey:     l.str("VIGIL_TEMPORAL_TLS_KEY", ""),
		TemporalAPIKey:     Secret(l.str("VIGIL_TEMPORAL_API_KEY", "")),
		CodecKeys:          Secret(l.str("VIGIL_CODEC_KEYS", "")),
		CodecKeyID:         l.str("VIGIL_CODEC_KEY_ID", ""),
		CodecAcceptUnbound: l.boolean("VIGIL_CODEC_ACCEPT_UNBOUND", false),
		TokenKey:           Secret(l.str("VIGIL_TOKEN_KEY", "")),
		LogLevel:           l.level("VIGIL_LOG_LEVEL"),
		LogFormat:          l.oneOf("VIGIL_LOG_FORMAT", "text", "text", "json"),

		SMTPAddr:         l.str("VIGIL_SMTP_ADDR", "127.0.0.1:1025"),
		SMTPUsername:     l.str("VIGIL_SMTP_USERNAME", ""),
		SMTPPassword:     Secret(l.str("VIGIL_SMTP_PASSWORD", "")),
		SMTPRequireTLS:   l.boolean("VIGIL_SMTP_REQUIRE_TLS", false),
		MailFrom:         l.str("VIGIL_MAIL_FROM", "Vigil Security <security@vigil.localhost>"),
		SupportEmail:     l.email("VIGIL_SUPPORT_EMAIL", "support@vigil.localhost"),
		SMSURL:           l.str("VIGIL_SMS_URL", ""),
		SMSAccountSID:    l.str("VIGIL_SMS_ACCOUNT_SID", ""),
		SMSAuthToken:     Secret(l.str("VIGIL_SMS_AUTH_TOKEN", "")),
		SMSFrom:          l.str("VIGIL_SMS_FROM", ""),
		ProductName:      l.str("VIGIL_PRODUCT_NAME", "Vigil"),
		Timezone:         l.zone("VIGIL_TIMEZONE"),
		PublicURL:        l.url("VIGIL_PUBLIC_URL", "http://127.0.0.1:8080"),
		PanelURL:         l.url("VIGIL_PANEL_URL", "http://127.0.0.1:8091"),
		PanelToken:       Secret(l.str("VIGIL_PANEL_TOKEN", "")),
		PanelReadToken:   Secret(l.str("VIGIL_PANEL_READ_TOKEN", "")),
		RiskChecks:       l.oneOf("VIGIL_RISK_CHECKS", "on", "on", "off") == "on",
		RiskPolicyFile:   l.str("VIGIL_RISK_POLICY_FILE", ""),
		PanelTimeout:     l.durationUpTo("VIGIL_PANEL_TIMEOUT", 60*time.Second, MaxPanelTimeout, panelTimeoutWhy),
		PINMaxFailures:   l.integer("VIGIL_PIN_MAX_FAILURES", 5, 1, 100),
		PINWindow:        l.duration("VIGIL_PIN_WINDOW", 15*time.Minute),
		PINLockout:       l.duration("VIGIL_PIN_LOCKOUT", time.Hour),
		EstablishedAfter: l.duration("VIGIL_ESTABLISHED_AFTER", 7*24*time.Hour),
		Worker:           l.workerTuning(),

		PINDayMaxFailures:   l.integer("VIGIL_PIN_DAY_MAX_FAILURES", 10, 1, 1000),
		PINDayLockout:       l.duration("VIGIL_PIN_DAY_LOCKOUT", 24*time.Hour),
		PINAgentMaxFailures: l.integer("VIGIL_PIN_AGENT_MAX_FAILURES", 20, 1, 10000),
		PINAgentWindow:      l.duration("VIGIL_PIN_AGENT_WINDOW", 24*time.Hour),
		PINVerdictTTL:       l.duration("VIGIL_PIN_VERDICT_TTL", time.Hour),

		SlackBotToken:         Secret(l.str("VIGIL_SLACK_BOT_TOKEN", "")),
		SlackSigningSecret:    Secret(l.str("VIGIL_SLACK_SIGNING_SECRET", "")),
		SlackAPIURL:           l.url("VIGIL_SLACK_API_URL", "https://slack.com/api/") + "/",
		SlackTeamID:           l.str("VIGIL_SLACK_TEAM_ID", ""),
		SlackAppID:            l.str("VIGIL_SLACK_APP_ID", ""),
		SlackApprovalsChannel: l.str("VIGIL_SLACK_APPROVALS_CHANNEL", "#vigil-approvals"),
		SlackSecurityChannel:  l.str("VIGIL_SLACK_SECURITY_CHANNEL", "#vigil-security"),
		SlackUserGroup:        l.str("VIGIL_SLACK_USERGROUP", ""),

		WebMetricsAddr:    l.hostPort("VIGIL_WEB_METRICS_ADDR"),
		WorkerMetricsAddr: l.hostPort("VIGIL_WORKER_METRICS_ADDR"),

		HTTPAddr:             l.str("VIGIL_HTTP_ADDR", "127.0.0.1:8080"),
		AdminToken:           Secret(l.str("VIGIL_ADMIN_TOKEN", "")),
		BreakGlassConsentTTL: l.durationUpTo("VIGIL_BREAK_GLASS_CONSENT_TTL", 15*time.Minute, 24*time.Hour, "so that a consent cannot wait for a second senior for days"),
		ApprovalTimeout:      l.duration("VIGIL_APPROVAL_TIMEOUT", 4*time.Hour),
		NoticeTimeout:        l.duration("VIGIL_NOTICE_TIMEOUT", 24*time.Hour),
		ExecuteMaxAttempts:   l.integer("VIGIL_EXECUTE_MAX_ATTEMPTS", 10, 1, 1000),
		Cooling:              domain.CoolingPeriods{},
		DevBelowFloors:       l.boolean("VIGIL_DEV_BELOW_FLOORS", false),
	}
	c.TrustedProxies = l.cidrs("VIGIL_TRUSTED_PROXIES")
	c.AdminAddr = l.adminAddr()
	if n := len(c.AdminToken.Reveal()); n > 0 && n < MinAdminTokenLen {
		// The length only: the token itself is never in an error.
		l.fail("VIGIL_ADMIN_TOKEN is %d characters long; the bootstrap token must have at least %d (e.g. `openssl rand -base64 32`), or be empty once the first admin exists", n, MinAdminTokenLen)
	}
	if c.SMSURL != "" {
		c.SMSURL = l.url("VIGIL_SMS_URL", "")
		if c.SMSAccountSID == "" || c.SMSAuthToken == "" || c.SMSFrom == "" {
			l.fail("VIGIL_SMS_ACCOUNT_SID, VIGIL_SMS_AUTH_TOKEN and VIGIL_SMS_FROM must be set with VIGIL_SMS_URL")
		}
		if c.SMSFrom != "" {
			if _, err := phone.Parse("VIGIL_SMS_FROM", c.SMSFrom); err != nil {
				l.fail("%v", err)
			}
		}
	} else if c.SMSAccountSID != "" || c.SMSAuthToken != "" || c.SMSFrom != "" {
		l.fail("VIGIL_SMS_ACCOUNT_SID, VIGIL_SMS_AUTH_TOKEN and VIGIL_SMS_FROM are set but VIGIL_SMS_URL is empty: set it, or unset them")
	}
	c.OIDCIssuer = l.str("VIGIL_OIDC_ISSUER", "")
	if c.OIDCIssuer != "" {
		_ = l.url("VIGIL_OIDC_ISSUER", "") // validates; the issuer is kept as written, since it must equal the tokens' iss
	}
	c.OIDCClientID = l.str("VIGIL_OIDC_CLIENT_ID", "")
	c.OIDCAcceptedAMR = list(l.str("VIGIL_OIDC_REQUIRED_AMR", "mfa,otp,hwk,swk,fpt"))
	c.OIDCAcceptedACR = list(l.str("VIGIL_OIDC_REQUIRED_ACR", ""))
	c.OIDCAgentClaim = l.str("VIGIL_OIDC_AGENT_CLAIM", "sub")
	c.CodecEndpoint = l.oneOf("VIGIL_CODEC_ENDPOINT", "off", "on", "off") == "on"
	c.CodecEndpointOrigins = list(l.str("VIGIL_CODEC_ENDPOINT_ORIGINS", ""))
	if c.CodecEndpoint && c.OIDCIssuer == "" {
		l.fail("VIGIL_CODEC_ENDPOINT=on needs VIGIL_OIDC_ISSUER: the codec endpoint only opens to people signed in with a second factor")
	}
	if c.OIDCIssuer != "" && c.OIDCClientID == "" {
		l.fail("VIGIL_OIDC_CLIENT_ID must be set with VIGIL_OIDC_ISSUER")
	}
	if c.OIDCIssuer != "" && len(c.OIDCAcceptedAMR) == 0 && len(c.OIDCAcceptedACR) == 0 {
		l.fail("VIGIL_OIDC_REQUIRED_AMR and VIGIL_OIDC_REQUIRED_ACR are both empty: a second factor is always required")
	}
	for _, sp := range action.Specs() {
		c.Cooling[sp.Name] = l.duration(sp.CoolingSetting, sp.CoolingDefault)
	}
	if c.PINDayMaxFailures < c.PINMaxFailures {
		l.fail("VIGIL_PIN_DAY_MAX_FAILURES (%d) must be at least VIGIL_PIN_MAX_FAILURES (%d)", c.PINDayMaxFailures, c.PINMaxFailures)
	}
	if c.CodecKeyID == "" && c.CodecKeys != "" {
		first, _, _ := strings.Cut(string(c.CodecKeys), ",")
		c.CodecKeyID, _, _ = strings.Cut(strings.TrimSpace(first), ":")
	}
	if c.TemporalTLSCert != "" || c.TemporalAPIKey != "" {
		c.TemporalTLS = true
	}
	if (c.TemporalTLSCert == "") != (c.TemporalTLSKey == "") {
		l.fail("VIGIL_TEMPORAL_TLS_CERT and VIGIL_TEMPORAL_TLS_KEY must be set together")
	}
	return c, errors.Join(l.errs...)
}

// PINPolicy is the PIN guessing bounds the web front checks PINs with (and
// the worker, for requests opened before it did).
func (c Config) PINPolicy() store.PINPolicy {
	return store.PINPolicy{
		MaxFailures: c.PINMaxFailures, Window: c.PINWindow, Lockout: c.PINLockout,
		DayMaxFailures: c.PINDayMaxFailures, DayLockout: c.PINDayLockout,
		AgentMaxFailures: c.PINAgentMaxFailures, AgentWindow: c.PINAgentWindow,
		VerdictTTL: c.PINVerdictTTL,
	}
}

// RequireSecrets checks the secrets every Temporal client needs.
func (c Config) RequireSecrets() error {
	var errs []error
	if c.CodecKeys == "" {
		errs = append(errs, errors.New("VIGIL_CODEC_KEYS is not set: generate a key with `openssl rand -base64 32` and set VIGIL_CODEC_KEYS=k1:<key>"))
	}
	if _, err := c.TokenKeyBytes(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RequirePanelRead checks the web front can ask the panel about accounts:
// its read token is set and is not the token that acts.
func (c Config) RequirePanelRead() error {
	if !c.RiskChecks {
		return nil
	}
	if c.PanelReadToken == "" {
		return errors.New("VIGIL_PANEL_READ_TOKEN is not set: the web front checks each account's recent security events with it (ask the panel for a read-only token), or set VIGIL_RISK_CHECKS=off")
	}
	if c.PanelReadToken == c.PanelToken {
		return errors.New("VIGIL_PANEL_READ_TOKEN must not be VIGIL_PANEL_TOKEN: the internet-facing web front must hold a token that cannot act on the panel")
	}
	return nil
}

// RequireSlack checks the Slack settings; the web front also needs the
// ones that authenticate interaction requests.
func (c Config) RequireSlack(web bool) error {
	var errs []error
	if c.SlackBotToken == "" {
		errs = append(errs, errors.New("VIGIL_SLACK_BOT_TOKEN is not set: create a Slack app (see README, Slack setup) and copy its bot token"))
	}
	if web {
		if c.SlackSigningSecret == "" {
			errs = append(errs, errors.New("VIGIL_SLACK_SIGNING_SECRET is not set: copy it from the Slack app's Basic Information page"))
		}
		if c.SlackTeamID == "" || c.SlackAppID == "" {
			errs = append(errs, errors.New("VIGIL_SLACK_TEAM_ID and VIGIL_SLACK_APP_ID must be set so clicks from other workspaces or apps are refused"))
		}
	}
	return errors.Join(errs...)
}

// TokenKeyBytes decodes VIGIL_TOKEN_KEY.
func (c Config) TokenKeyBytes() ([]byte, error) {
	if c.TokenKey == "" {
		return nil, errors.New("VIGIL_TOKEN_KEY is not set: generate one with `openssl rand -base64 32`")
	}
	k, err := base64.StdEncoding.DecodeString(string(c.TokenKey))
	if err != nil {
		return nil, errors.New("VIGIL_TOKEN_KEY is not valid base64")
	}
	if len(k) < 32 {
		return nil, fmt.Errorf("VIGIL_TOKEN_KEY decodes to %d bytes; it needs at least 32", len(k))
	}
	return k, nil
}

type loader struct {
	getenv func(string) string
	errs   []error
}

func (l *loader) fail(format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf(format, args...))
}

func (l *loader) str(name, def string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	return def
}

func (l *loader) boolean(name string, def bool) bool {
	v := l.getenv(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		l.fail("%s=%q is not a boolean (use true or false)", name, v)
	}
	return b
}

func (l *loader) integer(name string, def, lo, hi int) int {
	v := l.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		l.fail("%s=%q must be a whole number from %d to %d", name, v, lo, hi)
		return def
	}
	return n
}

func (l *loader) duration(name string, def time.Duration) time.Duration {
	v := l.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		l.fail("%s=%q is not a positive duration (examples: 90s, 15m, 24h)", name, v)
		return def
	}
	return d
}

// MinAdminTokenLen is the shortest bootstrap token accepted: 32 characters
// of a random base64 string are about 190 bits.
const MinAdminTokenLen = 32

// adminAddr reads VIGIL_ADMIN_ADDR: loopback by default, "off" for none.
func (l *loader) adminAddr() string {
	v := l.str("VIGIL_ADMIN_ADDR", "127.0.0.1:8081")
	if v == "off" {
		return ""
	}
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		l.fail("VIGIL_ADMIN_ADDR=%q is not a listen address: write host:port, e.g. 127.0.0.1:8081, or off", v)
		return ""
	}
	return v
}

// durationUpTo is duration with an upper bound; why says what the bound is
// for.
func (l *loader) durationUpTo(name string, def, hi time.Duration, why string) time.Duration {
	d := l.duration(name, def)
	if d > hi {
		l.fail("%s=%q is too long: it must be at most %.0fs, %s", name, l.getenv(name), hi.Seconds(), why)
		return def
	}
	return d
}

// hostPort reads an optional listen address, host:port.
func (l *loader) hostPort(name string) string {
	v := l.str(name, "")
	if v == "" {
		return ""
	}
	if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
		l.fail("%s=%q is not a listen address: write host:port, e.g. 127.0.0.1:9464", name, v)
		return ""
	}
	return v
}

func (l *loader) url(name, def string) string {
	v := l.str(name, def)
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.fail("%s=%q is not an absolute http(s) URL", name, v)
	}
	return strings.TrimRight(v, "/")
}

// email reads an address every customer mail shows, through the product's one
// rule for addresses: a value the rule refuses would make every notice fail at
// render time, so it is refused at start instead.
func (l *loader) email(name, def string) string {
	v := l.str(name, def)
	a, err := textrule.Email(name, v)
	if err != nil {
		l.fail("%v", err)
		return v
	}
	return a.String()
}

func (l *loader) oneOf(name, def string, allowed ...string) string {
	v := l.str(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	l.fail("%s=%q must be one of %s", name, v, strings.Join(allowed, ", "))
	return def
}

// cidrs reads a comma-separated list of IP addresses and CIDR ranges.
func (l *loader) cidrs(name string) []string {
	var out []string
	for _, v := range list(l.str(name, "")) {
		_, perr := netip.ParsePrefix(v)
		_, aerr := netip.ParseAddr(v)
		if perr != nil && aerr != nil {
			l.fail("%s: %q is neither an IP address nor a CIDR range", name, v)
			continue
		}
		out = append(out, v)
	}
	return out
}

func (l *loader) level(name string) slog.Level {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.str(name, "info"))); err != nil {
		l.fail("%s=%q must be debug, info, warn or error", name, l.getenv(name))
		return slog.LevelInfo
	}
	return lv
}

func (l *loader) zone(name string) *time.Location {
	v := l.str(name, "UTC")
	loc, err := time.LoadLocation(v)
	if err != nil {
		l.fail("%s=%q is not an IANA time zone (example: Europe/Berlin)", name, v)
		return time.UTC
	}
	return loc
}

// list splits a comma-separated value, dropping empty items.
func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// workerTuning reads the worker's cache and concurrency settings. The
// defaults bound memory rather than follow the SDK's (10,000 cached
// workflows, about 0.9 GB at 85 KiB per waiting request, and 1,000 activity
// slots, which 1,000 concurrent PIN checks would fill with 19 GB of argon2
// memory): 1,000 cached workflows hold about 85 MiB, and a request waiting
// out a cooling period that falls out of the cache costs one replay of a
// short history when its timer fires. 50 activity slots keep the 20
// database connections busy while slow panel and mail calls wait; 100
// workflow slots are far more than two cores run at once. Two pollers of
// each kind are the SDK's defaults.
func (l *loader) workerTuning() WorkerTuning {
	t := WorkerTuning{
		StickyCacheSize:            l.integer("VIGIL_WORKER_STICKY_CACHE_SIZE", 1000, 0, 100_000),
		WorkflowTaskPollers:        l.integer("VIGIL_WORKER_WORKFLOW_POLLERS", 2, 2, 64),
		ActivityTaskPollers:        l.integer("VIGIL_WORKER_ACTIVITY_POLLERS", 2, 1, 64),
		MaxConcurrentWorkflowTasks: l.integer("VIGIL_WORKER_MAX_WORKFLOW_TASKS", 100, 2, 10_000),
		MaxConcurrentActivities:    l.integer("VIGIL_WORKER_MAX_ACTIVITIES", 50, 1, 10_000),
	}
	// A poller beyond the slots only waits for one to free.
	if t.WorkflowTaskPollers > t.MaxConcurrentWorkflowTasks {
		l.fail("VIGIL_WORKER_WORKFLOW_POLLERS=%d exceeds VIGIL_WORKER_MAX_WORKFLOW_TASKS=%d", t.WorkflowTaskPollers, t.MaxConcurrentWorkflowTasks)
	}
	if t.ActivityTaskPollers > t.MaxConcurrentActivities {
		l.fail("VIGIL_WORKER_ACTIVITY_POLLERS=%d exceeds VIGIL_WORKER_MAX_ACTIVITIES=%d", t.ActivityTaskPollers, t.MaxConcurrentActivities)
	}
	return t
}
