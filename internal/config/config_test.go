package config

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.TemporalAddress != "127.0.0.1:7233" || c.HTTPAddr != "127.0.0.1:8080" || c.PINMaxFailures != 5 {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.Cooling[domain.ActionReinstallVPS] != 48*time.Hour || c.ApprovalTimeout != 4*time.Hour {
		t.Fatalf("cooling/approval defaults wrong: %v %v", c.Cooling, c.ApprovalTimeout)
	}
	if err := c.RequireSecrets(); err == nil || !strings.Contains(err.Error(), "VIGIL_CODEC_KEYS") {
		t.Fatalf("missing secrets not reported: %v", err)
	}
}

func TestLoadReportsEveryBadValue(t *testing.T) {
	_, err := Load(env(map[string]string{
		"VIGIL_PIN_WINDOW":                 "soon",
		"VIGIL_PIN_MAX_FAILURES":           "0",
		"VIGIL_PUBLIC_URL":                 "ftp://x",
		"VIGIL_TIMEZONE":                   "Mars/Base",
		"VIGIL_COOLING_REINSTALL_VPS":      "-1h",
		"VIGIL_LOG_FORMAT":                 "xml",
		"VIGIL_TEMPORAL_TLS_CERT":          "/c.pem",
		"VIGIL_SMTP_REQUIRE_TLS":           "perhaps",
		"VIGIL_COOLING_RESEND_CREDENTIALS": "2m",
		"VIGIL_SUPPORT_EMAIL":              "help@ex\u0430mple.com",
	}))
	if err == nil {
		t.Fatal("bad values accepted")
	}
	for _, want := range []string{"VIGIL_PIN_WINDOW", "VIGIL_PIN_MAX_FAILURES", "VIGIL_PUBLIC_URL", "VIGIL_TIMEZONE",
		"VIGIL_COOLING_REINSTALL_VPS", "VIGIL_LOG_FORMAT", "VIGIL_TEMPORAL_TLS_KEY", "VIGIL_SMTP_REQUIRE_TLS", "VIGIL_SUPPORT_EMAIL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	c, err := Load(env(map[string]string{
		"VIGIL_CODEC_KEYS":  "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"VIGIL_TOKEN_KEY":   "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTIzNA==",
		"VIGIL_PANEL_TOKEN": "panel-secret-123",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RequireSecrets(); err != nil {
		t.Fatal(err)
	}
	if c.CodecKeyID != "k1" {
		t.Fatalf("CodecKeyID = %q, want k1 (first key)", c.CodecKeyID)
	}
	for _, s := range []string{"%v", "%+v", "%s"} {
		out := fmt.Sprintf(s, c)
		if strings.Contains(out, "panel-secret-123") || strings.Contains(out, "c2VjcmV0") {
			t.Fatalf("secret printed with %s: %s", s, out)
		}
	}
}

func TestTokenKeyTooShort(t *testing.T) {
	c, _ := Load(env(map[string]string{"VIGIL_TOKEN_KEY": "c2hvcnQ="}))
	if _, err := c.TokenKeyBytes(); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("short token key: %v", err)
	}
}

func TestPanelTimeout(t *testing.T) {
	tests := []struct {
		name, value string
		want        time.Duration
		wantErr     string // "" for valid
	}{
		{"unset takes the default", "", 60 * time.Second, ""},
		{"seconds", "30s", 30 * time.Second, ""},
		{"minutes", "1m", time.Minute, ""},
		{"sub-second", "500ms", 500 * time.Millisecond, ""},
		{"the bound itself", "110s", 110 * time.Second, ""},
		{"the bound as minutes", "1m50s", 110 * time.Second, ""},
		{"just over the bound", "110.001s", 0, "at most 110s"},
		{"the activity's own limit", "2m", 0, "executor activity's 2 minute limit"},
		{"an hour", "1h", 0, "at most 110s"},
		{"zero", "0s", 0, "not a positive duration"},
		{"bare zero", "0", 0, "not a positive duration"},
		{"negative", "-5s", 0, "not a positive duration"},
		{"no unit", "60", 0, "not a positive duration"},
		{"words", "a minute", 0, "not a positive duration"},
	}
	// The documented default is the one Load uses.
	for _, v := range Vars {
		if v.Name == "VIGIL_PANEL_TIMEOUT" {
			if d, err := time.ParseDuration(v.Default); err != nil || d != tests[0].want {
				t.Fatalf("Vars documents default %q, Load uses %v", v.Default, tests[0].want)
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(map[string]string{"VIGIL_PANEL_TIMEOUT": tt.value}))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("VIGIL_PANEL_TIMEOUT=%q refused: %v", tt.value, err)
				}
				if c.PanelTimeout != tt.want {
					t.Fatalf("PanelTimeout = %v, want %v", c.PanelTimeout, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("VIGIL_PANEL_TIMEOUT=%q accepted as %v", tt.value, c.PanelTimeout)
			}
			if !strings.Contains(err.Error(), "VIGIL_PANEL_TIMEOUT") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not name VIGIL_PANEL_TIMEOUT and say %q", err, tt.wantErr)
			}
		})
	}
}

func TestMetricsAddrs(t *testing.T) {
	tests := []struct {
		name, value, wantErr string
	}{
		{"unset is off", "", ""},
		{"loopback", "127.0.0.1:9464", ""},
		{"all interfaces", ":9464", ""},
		{"ipv6", "[::1]:9464", ""},
		{"no port", "127.0.0.1", "not a listen address"},
		{"empty port", "127.0.0.1:", "not a listen address"},
		{"a URL", "http://127.0.0.1:9464", "not a listen address"},
	}
	for _, name := range []string{"VIGIL_WEB_METRICS_ADDR", "VIGIL_WORKER_METRICS_ADDR"} {
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				c, err := Load(env(map[string]string{name: tt.value}))
				got := c.WebMetricsAddr
				if name == "VIGIL_WORKER_METRICS_ADDR" {
					got = c.WorkerMetricsAddr
				}
				switch {
				case tt.wantErr == "" && (err != nil || got != tt.value):
					t.Fatalf("%s=%q: %q, %v", name, tt.value, got, err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), name)):
					t.Fatalf("%s=%q: error %v, want one naming the variable and saying %q", name, tt.value, err, tt.wantErr)
				}
			})
		}
	}
}

func TestOIDCSettings(t *testing.T) {
	tests := []struct {
		name    string
		vars    map[string]string
		wantErr string
		check   func(Config) bool
	}{
		{"off by default", nil, "", func(c Config) bool { return c.OIDCIssuer == "" }},
		{"on, with defaults", map[string]string{"VIGIL_OIDC_ISSUER": "https://id.example.com/", "VIGIL_OIDC_CLIENT_ID": "vigil-cli"}, "",
			func(c Config) bool {
				// The issuer is kept as written: it must equal the tokens' iss, trailing slash included.
				return c.OIDCIssuer == "https://id.example.com/" && c.OIDCClientID == "vigil-cli" && c.OIDCAgentClaim == "sub" &&
					strings.Join(c.OIDCAcceptedAMR, ",") == "mfa,otp,hwk,swk,fpt" && len(c.OIDCAcceptedACR) == 0
			}},
		{"acr only", map[string]string{"VIGIL_OIDC_ISSUER": "https://id.example.com", "VIGIL_OIDC_CLIENT_ID": "c",
			"VIGIL_OIDC_REQUIRED_AMR": " , ", "VIGIL_OIDC_REQUIRED_ACR": "phr, phrh"}, "",
			func(c Config) bool {
				return len(c.OIDCAcceptedAMR) == 0 && strings.Join(c.OIDCAcceptedACR, ",") == "phr,phrh"
			}},
		{"no client id", map[string]string{"VIGIL_OIDC_ISSUER": "https://id.example.com"}, "VIGIL_OIDC_CLIENT_ID must be set", nil},
		{"not a URL", map[string]string{"VIGIL_OIDC_ISSUER": "id.example.com", "VIGIL_OIDC_CLIENT_ID": "c"}, "VIGIL_OIDC_ISSUER", nil},
		{"no second factor accepted", map[string]string{"VIGIL_OIDC_ISSUER": "https://id.example.com", "VIGIL_OIDC_CLIENT_ID": "c",
			"VIGIL_OIDC_REQUIRED_AMR": ","}, "a second factor is always required", nil},
		{"codec endpoint on", map[string]string{"VIGIL_OIDC_ISSUER": "https://id.example.com", "VIGIL_OIDC_CLIENT_ID": "c",
			"VIGIL_CODEC_ENDPOINT": "on", "VIGIL_CODEC_ENDPOINT_ORIGINS": "http://127.0.0.1:8233"}, "",
			func(c Config) bool {
				return c.CodecEndpoint && strings.Join(c.CodecEndpointOrigins, ",") == "http://127.0.0.1:8233"
			}},
		{"codec endpoint without sign-in", map[string]string{"VIGIL_CODEC_ENDPOINT": "on"}, "needs VIGIL_OIDC_ISSUER", nil},
		{"codec endpoint neither on nor off", map[string]string{"VIGIL_CODEC_ENDPOINT": "ag_sam"}, "VIGIL_CODEC_ENDPOINT", nil},
		{"codec endpoint off by default", nil, "", func(c Config) bool { return !c.CodecEndpoint && !c.CodecAcceptUnbound }},
		{"migration switch", map[string]string{"VIGIL_CODEC_ACCEPT_UNBOUND": "true"}, "", func(c Config) bool { return c.CodecAcceptUnbound }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.vars))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.check(c) {
				t.Fatalf("Load = %+v, %v", c, err)
			}
		})
	}
}

func TestLoadWorkerTuning(t *testing.T) {
	defaults := WorkerTuning{StickyCacheSize: 1000, WorkflowTaskPollers: 2, ActivityTaskPollers: 2,
		MaxConcurrentWorkflowTasks: 100, MaxConcurrentActivities: 50}
	// The documented defaults are the ones Load uses.
	documented := map[string]int{
		"VIGIL_WORKER_STICKY_CACHE_SIZE":  defaults.StickyCacheSize,
		"VIGIL_WORKER_WORKFLOW_POLLERS":   defaults.WorkflowTaskPollers,
		"VIGIL_WORKER_ACTIVITY_POLLERS":   defaults.ActivityTaskPollers,
		"VIGIL_WORKER_MAX_WORKFLOW_TASKS": defaults.MaxConcurrentWorkflowTasks,
		"VIGIL_WORKER_MAX_ACTIVITIES":     defaults.MaxConcurrentActivities,
	}
	for _, v := range Vars {
		if want, ok := documented[v.Name]; ok {
			if v.Default != fmt.Sprint(want) {
				t.Errorf("Vars documents %s default %q, Load uses %d", v.Name, v.Default, want)
			}
			delete(documented, v.Name)
		}
	}
	if len(documented) != 0 {
		t.Errorf("not documented in Vars: %v", documented)
	}

	tests := []struct {
		name    string
		env     map[string]string
		want    WorkerTuning
		wantErr []string // each must appear in the error; nil for valid
	}{
		{"unset takes the defaults", nil, defaults, nil},
		{"all set", map[string]string{
			"VIGIL_WORKER_STICKY_CACHE_SIZE": "250", "VIGIL_WORKER_WORKFLOW_POLLERS": "4", "VIGIL_WORKER_ACTIVITY_POLLERS": "3",
			"VIGIL_WORKER_MAX_WORKFLOW_TASKS": "20", "VIGIL_WORKER_MAX_ACTIVITIES": "10",
		}, WorkerTuning{250, 4, 3, 20, 10}, nil},
		{"sticky execution off", map[string]string{"VIGIL_WORKER_STICKY_CACHE_SIZE": "0"},
			WorkerTuning{0, 2, 2, 100, 50}, nil},
		{"the bounds themselves", map[string]string{
			"VIGIL_WORKER_STICKY_CACHE_SIZE": "100000", "VIGIL_WORKER_WORKFLOW_POLLERS": "2", "VIGIL_WORKER_ACTIVITY_POLLERS": "1",
			"VIGIL_WORKER_MAX_WORKFLOW_TASKS": "2", "VIGIL_WORKER_MAX_ACTIVITIES": "1",
		}, WorkerTuning{100000, 2, 1, 2, 1}, nil},
		{"negative cache", map[string]string{"VIGIL_WORKER_STICKY_CACHE_SIZE": "-1"}, WorkerTuning{},
			[]string{"VIGIL_WORKER_STICKY_CACHE_SIZE", "from 0 to 100000"}},
		{"cache above the bound", map[string]string{"VIGIL_WORKER_STICKY_CACHE_SIZE": "100001"}, WorkerTuning{},
			[]string{"VIGIL_WORKER_STICKY_CACHE_SIZE"}},
		{"cache not a number", map[string]string{"VIGIL_WORKER_STICKY_CACHE_SIZE": "1k"}, WorkerTuning{},
			[]string{"VIGIL_WORKER_STICKY_CACHE_SIZE", "whole number"}},
		{"one workflow poller, which the SDK refuses", map[string]string{"VIGIL_WORKER_WORKFLOW_POLLERS": "1"}, WorkerTuning{},
			[]string{"VIGIL_WORKER_WORKFLOW_POLLERS", "from 2 to 64"}},
		{"no activity poller", map[string]string{"VIGIL_WORKER_ACTIVITY_POLLERS": "0"}, WorkerTuning{},
			[]string{"VIGIL_WORKER_ACTIVITY_POLLERS", "from 1 to 64"}},
		{"one workflow slot, which the SDK refuses", map[string]string{"VIGIL_WORKER_MAX_WORKFLOW_TASKS": "1"}, WorkerTuning{},
			[]string{"VIGIL_WORKER_MAX_WORKFLOW_TASKS", "from 2 to 10000"}},
		{"no activity slot", map[string]string{"VIGIL_WORKER_MAX_ACTIVITIES": "0"}, WorkerTuning{},
			[]string{"VIGIL_WORKER_MAX_ACTIVITIES", "from 1 to 10000"}},
		{"slots as a fraction", map[string]string{"VIGIL_WORKER_MAX_ACTIVITIES": "2.5"}, WorkerTuning{},
			[]string{"VIGIL_WORKER_MAX_ACTIVITIES"}},
		{"more workflow pollers than slots", map[string]string{"VIGIL_WORKER_WORKFLOW_POLLERS": "8", "VIGIL_WORKER_MAX_WORKFLOW_TASKS": "4"},
			WorkerTuning{}, []string{"VIGIL_WORKER_WORKFLOW_POLLERS=8 exceeds VIGIL_WORKER_MAX_WORKFLOW_TASKS=4"}},
		{"more activity pollers than slots", map[string]string{"VIGIL_WORKER_ACTIVITY_POLLERS": "3", "VIGIL_WORKER_MAX_ACTIVITIES": "2"},
			WorkerTuning{}, []string{"VIGIL_WORKER_ACTIVITY_POLLERS=3 exceeds VIGIL_WORKER_MAX_ACTIVITIES=2"}},
		{"every bad value reported at once", map[string]string{
			"VIGIL_WORKER_STICKY_CACHE_SIZE": "lots", "VIGIL_WORKER_WORKFLOW_POLLERS": "0", "VIGIL_WORKER_ACTIVITY_POLLERS": "65",
			"VIGIL_WORKER_MAX_WORKFLOW_TASKS": "10001", "VIGIL_WORKER_MAX_ACTIVITIES": "-3",
		}, WorkerTuning{}, []string{"VIGIL_WORKER_STICKY_CACHE_SIZE", "VIGIL_WORKER_WORKFLOW_POLLERS", "VIGIL_WORKER_ACTIVITY_POLLERS",
			"VIGIL_WORKER_MAX_WORKFLOW_TASKS", "VIGIL_WORKER_MAX_ACTIVITIES"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.env))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.Worker != tt.want {
					t.Fatalf("Worker = %+v, want %+v", c.Worker, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %+v", c.Worker)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestTrustedProxies(t *testing.T) {
	tests := []struct {
		name, value string
		want        []string
		wantErr     string
	}{
		{"unset trusts none", "", nil, ""},
		{"one range", "10.0.0.0/8", []string{"10.0.0.0/8"}, ""},
		{"addresses and ranges, spaces", " 192.0.2.7 , 2001:db8::/32,10.0.0.0/8", []string{"192.0.2.7", "2001:db8::/32", "10.0.0.0/8"}, ""},
		{"a host name", "proxy.internal", nil, `"proxy.internal" is neither`},
		{"a bad mask", "10.0.0.0/33", nil, `"10.0.0.0/33" is neither`},
		{"with a port", "10.0.0.1:443", nil, "is neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(map[string]string{"VIGIL_TRUSTED_PROXIES": tt.value}))
			switch {
			case tt.wantErr == "" && (err != nil || strings.Join(c.TrustedProxies, "|") != strings.Join(tt.want, "|")):
				t.Fatalf("%q: %q, %v; want %q", tt.value, c.TrustedProxies, err, tt.want)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "VIGIL_TRUSTED_PROXIES")):
				t.Fatalf("%q: error %v, want one naming the variable and saying %q", tt.value, err, tt.wantErr)
			}
		})
	}
}

func TestAdminSettings(t *testing.T) {
	const short = "only-31-characters-long-token12"
	tests := []struct {
		name    string
		vars    map[string]string
		wantErr string
		check   func(Config) bool
	}{
		{"defaults: loopback, no bootstrap", nil, "", func(c Config) bool { return c.AdminAddr == "127.0.0.1:8081" && c.AdminToken == "" }},
		{"off", map[string]string{"VIGIL_ADMIN_ADDR": "off"}, "", func(c Config) bool { return c.AdminAddr == "" }},
		{"a private address", map[string]string{"VIGIL_ADMIN_ADDR": "10.0.0.5:8081"}, "", func(c Config) bool { return c.AdminAddr == "10.0.0.5:8081" }},
		{"not an address", map[string]string{"VIGIL_ADMIN_ADDR": "8081"}, "VIGIL_ADMIN_ADDR=\"8081\" is not a listen address", nil},
		{"a bootstrap token of 32", map[string]string{"VIGIL_ADMIN_TOKEN": short + "x"}, "", func(c Config) bool { return len(c.AdminToken.Reveal()) == 32 }},
		{"a bootstrap token of 31", map[string]string{"VIGIL_ADMIN_TOKEN": short}, "VIGIL_ADMIN_TOKEN is 31 characters long; the bootstrap token must have at least 32", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.vars))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), short) {
					t.Fatal("the error quotes the token")
				}
				return
			}
			if err != nil || !tt.check(c) {
				t.Fatalf("Load = %+v, %v", c, err)
			}
		})
	}
}

// TestSMSProvider: the SMS settings come all together or not at all, the
// sender is E.164, and no refusal quotes the auth token.
func TestSMSProvider(t *testing.T) {
	full := map[string]string{"VIGIL_SMS_URL": "http://127.0.0.1:8035/", "VIGIL_SMS_ACCOUNT_SID": "AC1",
		"VIGIL_SMS_AUTH_TOKEN": "sms-s3cr3t", "VIGIL_SMS_FROM": "+447911123456"}
	c, err := Load(env(full))
	if err != nil || c.SMSURL != "http://127.0.0.1:8035" || c.SMSAccountSID != "AC1" || c.SMSAuthToken != "sms-s3cr3t" || c.SMSFrom != "+447911123456" {
		t.Fatalf("full SMS settings: %+v, %v", c, err)
	}
	if c, err := Load(env(nil)); err != nil || c.SMSURL != "" {
		t.Fatalf("no SMS settings: %q, %v", c.SMSURL, err)
	}
	for _, tc := range []struct {
		name string
		drop string
		set  map[string]string
		want string
	}{
		{"no token", "VIGIL_SMS_AUTH_TOKEN", nil, "must be set with VIGIL_SMS_URL"},
		{"no account", "VIGIL_SMS_ACCOUNT_SID", nil, "must be set with VIGIL_SMS_URL"},
		{"no url", "VIGIL_SMS_URL", nil, "VIGIL_SMS_URL is empty"},
		{"national sender", "", map[string]string{"VIGIL_SMS_FROM": "07911123456"}, "VIGIL_SMS_FROM: not a valid phone number"},
		{"not a url", "", map[string]string{"VIGIL_SMS_URL": "api.twilio.com"}, "VIGIL_SMS_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]string{}
			for k, v := range full {
				m[k] = v
			}
			delete(m, tc.drop)
			for k, v := range tc.set {
				m[k] = v
			}
			_, err := Load(env(m))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "sms-s3cr3t") {
				t.Errorf("error quotes the token: %v", err)
			}
		})
	}
}
