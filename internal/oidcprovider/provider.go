package oidcprovider

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// DevicePath is where a person types the code the CLI shows.
const DevicePath = "/device"

// Config is what a Provider needs.
type Config struct {
	Issuer     string
	ClientID   string
	Users      []User
	Password   string        // the one local password every seed user signs in with
	TOTPSeed   string        // per-user TOTP secrets derive from it (TOTPSecret)
	RequireOTP bool          // false: the page asks no second factor and amr is ["pwd"]
	TokenTTL   time.Duration // ID and access token lifetime
	RefreshTTL time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
}

// TOTPSecret is the base32 TOTP secret of a user, derived from the seed so the
// local run can print it and tests can compute codes.
func TOTPSecret(seed, userID string) string {
	m := hmac.New(sha256.New, []byte(seed))
	m.Write([]byte("vigil-oidc-totp\x00" + userID))
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(m.Sum(nil)[:20])
}

// Provider is the OpenID provider plus its sign-in page.
type Provider struct {
	cfg     Config
	storage *Storage
	op      *op.Provider
}

// New builds a Provider with a fresh signing key.
func New(cfg Config) (*Provider, error) {
	if cfg.Password == "" || (cfg.RequireOTP && cfg.TOTPSeed == "") {
		return nil, fmt.Errorf("oidc provider: a password and (with the second factor) a TOTP seed are required")
	}
	st, err := NewStorage(NewClient(cfg.ClientID, cfg.TokenTTL), cfg.Users, cfg.RefreshTTL, cfg.Now)
	if err != nil {
		return nil, err
	}
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, fmt.Errorf("crypto key: %w", err)
	}
	opts := []op.Option{op.WithLogger(cfg.Logger)}
	if strings.HasPrefix(cfg.Issuer, "http://") {
		opts = append(opts, op.WithAllowInsecure())
	}
	p, err := op.NewProvider(&op.Config{
		CryptoKey:             cryptoKey,
		GrantTypeRefreshToken: true,
		SupportedUILocales:    []language.Tag{language.English},
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     5 * time.Minute,
			PollInterval: time.Second,
			UserFormPath: DevicePath,
			UserCode:     op.UserCodeBase20,
		},
	}, st, op.StaticIssuer(cfg.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("oidc provider: %w", err)
	}
	return &Provider{cfg: cfg, storage: st, op: p}, nil
}

// Handler serves the provider's endpoints and the sign-in page.
func (p *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(DevicePath, p.device)
	mux.Handle("/", p.op)
	return mux
}

var page = template.Must(template.New("device").Parse(`<!doctype html>
<html><head><title>Vigil local sign-in</title></head><body>
<h1>Sign in to Vigil (local identity provider)</h1>
{{if .Done}}<p id="done">Signed in. You can return to your terminal.</p>{{else}}
{{if .Error}}<p id="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/device">
<label>Code <input name="user_code" value="{{.UserCode}}" autocomplete="off"></label><br>
<label>Email <input name="email" value="{{.Email}}"></label><br>
<label>Password <input name="password" type="password"></label><br>
{{if .OTP}}<label>Authenticator code <input name="otp" inputmode="numeric" autocomplete="one-time-code"></label><br>{{end}}
<button type="submit">Sign in</button>
</form>{{end}}
</body></html>`))

type pageData struct {
	UserCode, Email, Error string
	OTP, Done              bool
}

// device is the sign-in page: code, email, password and (unless turned off)
// a TOTP code. Every failure reads the same so the page tells nobody which part
// was wrong.
func (p *Provider) device(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	data := pageData{UserCode: r.FormValue("user_code"), Email: r.FormValue("email"), OTP: p.cfg.RequireOTP}
	if r.Method != http.MethodPost {
		_ = page.Execute(w, data)
		return
	}
	amr, subject, ok := p.check(r)
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		data.Error = "That did not work: check the code, email, password and authenticator code."
		_ = page.Execute(w, data)
		return
	}
	if err := p.storage.complete(strings.ToUpper(strings.TrimSpace(data.UserCode)), subject, amr); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		data.Error = "That did not work: check the code, email, password and authenticator code."
		_ = page.Execute(w, data)
		return
	}
	p.cfg.Logger.Info("device sign-in", "subject", subject, "amr", amr)
	data.Done = true
	_ = page.Execute(w, data)
}

func (p *Provider) check(r *http.Request) (amr []string, subject string, ok bool) {
	code := strings.ToUpper(strings.TrimSpace(r.FormValue("user_code")))
	if !p.storage.pending(code) {
		return nil, "", false
	}
	email := strings.ToLower(strings.TrimSpace(r.FormValue("email")))
	var user *User
	for i := range p.cfg.Users {
		if strings.EqualFold(p.cfg.Users[i].Email, email) {
			user = &p.cfg.Users[i]
		}
	}
	pwOK := hmac.Equal([]byte(r.FormValue("password")), []byte(p.cfg.Password))
	if user == nil || !pwOK {
		return nil, "", false
	}
	if !p.cfg.RequireOTP {
		return []string{"pwd"}, user.ID, true
	}
	if !totp.Validate(strings.TrimSpace(r.FormValue("otp")), TOTPSecret(p.cfg.TOTPSeed, user.ID)) {
		return nil, "", false
	}
	return []string{"pwd", "otp", "mfa"}, user.ID, true
}
