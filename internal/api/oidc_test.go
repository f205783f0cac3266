package api

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/vigil-oss/vigil/internal/oidcauth"
)

// testIssuer is an OpenID issuer over real HTTP (discovery and JWKS) whose
// signing key the test holds, so it can mint every kind of bad token. The
// device-flow test against the real local provider is in e2e and
// internal/oidcprovider.
type testIssuer struct {
	url string
	key *rsa.PrivateKey
	kid string
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &testIssuer{key: key, kid: "k1"}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	iss.url = srv.URL
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": iss.url, "jwks_uri": iss.url + "/keys",
			"authorization_endpoint": iss.url + "/auth", "token_endpoint": iss.url + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"}})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: iss.kid, Algorithm: "RS256", Use: "sig"}}})
	})
	return iss
}

// mint signs claims with key (the issuer's unless forged).
func (iss *testIssuer) mint(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", iss.kid))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func (iss *testIssuer) claims(sub string, amr []string, mod func(map[string]any)) map[string]any {
	now := time.Now()
	c := map[string]any{"iss": iss.url, "sub": sub, "aud": "vigil-starter", "iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(), "amr": amr}
	if mod != nil {
		mod(c)
	}
	return c
}

func newOIDCEnv(t *testing.T) (*env, *testIssuer) {
	t.Helper()
	iss := newTestIssuer(t)
	v, err := oidcauth.New(context.Background(), oidcauth.Config{Issuer: iss.url, Audience: "vigil-starter", AcceptedAMR: oidcauth.DefaultAMR})
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, adminToken, Options{OIDC: v}), iss
}

func TestOIDCTokenRefusals(t *testing.T) {
	t.Parallel()
	e, iss := newOIDCEnv(t)
	mfa := []string{"pwd", "otp", "mfa"}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(v any) string {
		j, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(j)
	}
	unsigned := b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64(iss.claims("ag_req", mfa, nil)) + "."
	valid := iss.mint(t, iss.key, iss.claims("ag_req", mfa, nil))
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64(iss.claims("ag_senior", mfa, nil)) + "." + parts[2]

	// The valid token works, so every refusal below is the token's fault.
	if res := e.call("GET", "/api/v1/me", "Bearer "+valid, "", ""); res.status != http.StatusOK || !strings.Contains(string(res.body), `"ag_req"`) {
		t.Fatalf("valid token: %d %s", res.status, res.body)
	}
	tests := []struct {
		name, token, code string
	}{
		{"expired", iss.mint(t, iss.key, iss.claims("ag_req", mfa, func(c map[string]any) {
			c["exp"] = time.Now().Add(-time.Minute).Unix()
			c["iat"] = time.Now().Add(-10 * time.Minute).Unix()
		})), "unauthenticated"},
		{"wrong audience", iss.mint(t, iss.key, iss.claims("ag_req", mfa, func(c map[string]any) { c["aud"] = "another-app" })), "unauthenticated"},
		{"wrong issuer", iss.mint(t, iss.key, iss.claims("ag_req", mfa, func(c map[string]any) { c["iss"] = "https://evil.example" })), "unauthenticated"},
		{"unsigned alg none", unsigned, "unauthenticated"},
		{"forged signature (another key, same kid)", iss.mint(t, other, iss.claims("ag_req", mfa, nil)), "unauthenticated"},
		{"claims swapped under a valid signature", tampered, "unauthenticated"},
		{"no second factor", iss.mint(t, iss.key, iss.claims("ag_req", []string{"pwd"}, nil)), "second_factor_required"},
		{"no amr at all", iss.mint(t, iss.key, iss.claims("ag_req", nil, func(c map[string]any) { delete(c, "amr") })), "second_factor_required"},
		{"unknown agent", iss.mint(t, iss.key, iss.claims("ag_nobody", mfa, nil)), "unauthenticated"},
		{"disabled agent", iss.mint(t, iss.key, iss.claims("ag_off", mfa, nil)), "unauthenticated"},
		{"role claim is ignored: an agent stays an agent", "", ""},
		{"a person's personal token", e.tokens["ag_req"], "sign_in_required"},
		{"a senior's personal token", e.tokens["ag_senior"], "sign_in_required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.token == "" {
				// A role claim the client put in its token changes nothing: the
				// role is the agents table's.
				tok := iss.mint(t, iss.key, iss.claims("ag_req", mfa, func(c map[string]any) { c["role"] = "senior"; c["groups"] = []string{"senior", "admin"} }))
				res := e.call("GET", "/api/v1/me", "Bearer "+tok, "", "")
				if res.status != http.StatusOK || !strings.Contains(string(res.body), `"role":"agent"`) {
					t.Fatalf("me = %d %s, want role agent", res.status, res.body)
				}
				return
			}
			reqs, audits := e.count("requests"), e.count("audit_events")
			for _, c := range []struct{ method, path, body string }{
				{"POST", "/api/v1/requests", validOpen},
				{"GET", "/api/v1/me", ""},
				{"POST", "/api/v1/requests/req_abc/veto", `{"reason":"x"}`},
			} {
				ct := ""
				if c.body != "" {
					ct = "application/json"
				}
				res := e.call(c.method, c.path, "Bearer "+tt.token, ct, c.body)
				if res.status != http.StatusUnauthorized {
					t.Fatalf("%s %s: status %d, want 401: %s", c.method, c.path, res.status, res.body)
				}
				p := res.problem(t)
				if p.Code != tt.code {
					t.Fatalf("code %q (%s), want %s", p.Code, p.Detail, tt.code)
				}
				if strings.Contains(p.Detail, tt.token) {
					t.Fatal("the problem detail repeats the token")
				}
			}
			if n := e.count("requests"); n != reqs {
				t.Fatalf("requests rows %d -> %d", reqs, n)
			}
			if n := e.count("audit_events"); n != audits {
				t.Fatalf("audit rows %d -> %d", audits, n)
			}
			if e.temporal.Writes() != 0 {
				t.Fatal("a refused token reached Temporal")
			}
		})
	}
	e.srv.Close()
	if strings.Contains(e.logs.String(), valid) || strings.Contains(e.logs.String(), parts[2]) {
		t.Fatal("a sign-in token appears in the log")
	}
}

func TestOIDCDisabledAgentStopsAtOnce(t *testing.T) {
	t.Parallel()
	e, iss := newOIDCEnv(t)
	tok := iss.mint(t, iss.key, iss.claims("ag_req", []string{"otp", "mfa"}, nil))
	if res := e.call("GET", "/api/v1/me", "Bearer "+tok, "", ""); res.status != http.StatusOK {
		t.Fatalf("before disable: %d %s", res.status, res.body)
	}
	if res := e.admin("POST", "/admin/v1/agents/ag_req/disable", ""); res.status != http.StatusOK {
		t.Fatalf("disable: %d %s", res.status, res.body)
	}
	// The same, still unexpired token is refused on the very next call.
	res := e.call("GET", "/api/v1/me", "Bearer "+tok, "", "")
	if res.status != http.StatusUnauthorized || res.problem(t).Code != "unauthenticated" {
		t.Fatalf("after disable: %d %s", res.status, res.body)
	}
}

func TestSignInDiscovery(t *testing.T) {
	t.Parallel()
	e, iss := newOIDCEnv(t)
	res := e.call("GET", "/api/v1/sign-in", "", "", "")
	var got signInInfo
	if err := json.Unmarshal(res.body, &got); err != nil || res.status != 200 || got.OIDC == nil ||
		got.OIDC.Issuer != iss.url || got.OIDC.ClientID != "vigil-starter" {
		t.Fatalf("sign-in = %d %s", res.status, res.body)
	}
	if res := e.call("POST", "/api/v1/sign-in", "", "", ""); res.status != http.StatusMethodNotAllowed || res.problem(t).Code != "method_not_allowed" {
		t.Fatalf("POST sign-in = %d %s", res.status, res.body)
	}
	off := newEnv(t, "", Options{})
	res = off.call("GET", "/api/v1/sign-in", "", "", "")
	if res.status != 200 || strings.TrimSpace(string(res.body)) != `{"oidc":null}` {
		t.Fatalf("sign-in without OIDC = %d %s", res.status, res.body)
	}
	// Without OIDC, personal tokens of people work as before.
	if res := off.as("ag_req", "GET", "/api/v1/me", ""); res.status != 200 {
		t.Fatalf("personal token without OIDC: %d %s", res.status, res.body)
	}
}
