package codecserver_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/internal/codecserver"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/oidcauth"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/testpg"
)

// issuer is an OpenID issuer over real HTTP (discovery and keys) whose
// signing key the test holds.
type issuer struct {
	url string
	key *rsa.PrivateKey
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &issuer{key: key}
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
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	return iss
}

// token signs an ID token for sub with key (nil: the issuer's).
func (iss *issuer) token(t *testing.T, key *rsa.PrivateKey, sub string, amr ...string) string {
	t.Helper()
	if key == nil {
		key = iss.key
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := jwt.Signed(signer).Claims(map[string]any{"iss": iss.url, "sub": sub, "aud": "vigil-starter",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "amr": amr}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

type world struct {
	st     *store.Store
	iss    *issuer
	srv    *httptest.Server
	sealed *commonpb.Payload // bound to a workflow, as the worker writes
	legacy *commonpb.Payload // sealed before binding (may hold a PIN)
	plain  *commonpb.Payload
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	st := store.New(testpg.New(t))
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range []store.Agent{
		{ID: "ag_sec", Name: "Sam Security", Email: "sam@vigil.test", Role: domain.RoleSecurity},
		{ID: "ag_sec_gone", Name: "Gone Security", Email: "gone@vigil.test", Role: domain.RoleSecurity},
		{ID: "ag_admin", Name: "An Admin", Email: "admin@vigil.test", Role: domain.RoleAdmin},
		{ID: "ag_bob", Name: "Bob Senior", Email: "bob@vigil.test", Role: domain.RoleSenior},
	} {
		if err := st.CreateAgent(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DisableAgent(ctx, "ag_sec_gone", time.Now()); err != nil {
		t.Fatal(err)
	}
	keys := map[string][]byte{"k1": bytes.Repeat([]byte{1}, 32)}
	// The worker's codec with the migration switch on: the endpoint still
	// never opens an unbound payload.
	c, err := codec.New("k1", keys, codec.AcceptUnbound(true))
	if err != nil {
		t.Fatal(err)
	}
	iss := newIssuer(t)
	v, err := oidcauth.New(ctx, oidcauth.Config{Issuer: iss.url, Audience: "vigil-starter", AcceptedAMR: oidcauth.DefaultAMR})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := codecserver.New(codecserver.Config{Codec: c, Verifier: v, Store: st,
		Origins: []string{"http://127.0.0.1:8233"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(codecserver.Path, cs)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	w := &world{st: st, iss: iss, srv: srv}
	dc := converter.WithDataConverterSerializationContext(c.DataConverter(), converter.WorkflowSerializationContext{WorkflowID: "vigil-request-r1"})
	if w.sealed, err = dc.ToPayload(map[string]string{"Reason": "customer moved provider"}); err != nil {
		t.Fatal(err)
	}
	if w.plain, err = converter.GetDefaultDataConverter().ToPayload("C-4711"); err != nil {
		t.Fatal(err)
	}
	// A legacy payload, sealed as the codec did before binding (the key id
	// alone as associated data): the codec above, switch on, opens it.
	inner, err := converter.GetDefaultDataConverter().ToPayload(map[string]string{"PIN": "482913"})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := proto.Marshal(inner)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(keys["k1"])
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	w.legacy = &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte(codec.EncodingEncrypted), codec.MetadataKeyID: []byte("k1")},
		Data: gcm.Seal(nonce, nonce, plain, []byte("k1"))}
	if dec, err := c.Decode([]*commonpb.Payload{w.legacy}); err != nil || !proto.Equal(dec[0], inner) {
		t.Fatalf("the legacy payload is not one the switch opens: %v", err)
	}
	return w
}

func (w *world) post(t *testing.T, token string, body []byte, hdr map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, w.srv.URL+codecserver.Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func body(t *testing.T, ps ...*commonpb.Payload) []byte {
	t.Helper()
	var in struct {
		Payloads []json.RawMessage `json:"payloads"`
	}
	for _, p := range ps {
		b, err := protojson.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		in.Payloads = append(in.Payloads, b)
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeAudits(t *testing.T, st *store.Store) []store.AuditEvent {
	t.Helper()
	evs, err := st.AuditExport(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.AuditEvent
	for _, e := range evs {
		if e.Event == codecserver.Event {
			out = append(out, e)
		}
	}
	return out
}

// TestOnlyTheSecurityTeamReads: every caller but an enabled agent of the
// security team, signed in with a second factor, is refused with a
// problem code and decodes nothing; nothing is audited for them.
func TestOnlyTheSecurityTeamReads(t *testing.T) {
	w := newWorld(t)
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		token  string
		status int
		code   string
	}{
		{"no token", "", http.StatusUnauthorized, "unauthenticated"},
		{"not a token", "vgl_personaltoken", http.StatusUnauthorized, "unauthenticated"},
		{"forged signature", w.iss.token(t, forger, "ag_sec", "mfa"), http.StatusUnauthorized, "unauthenticated"},
		{"no second factor", w.iss.token(t, nil, "ag_sec", "pwd"), http.StatusUnauthorized, "second_factor_required"},
		{"a senior, not security", w.iss.token(t, nil, "ag_bob", "mfa"), http.StatusForbidden, "forbidden"},
		{"an admin, not security", w.iss.token(t, nil, "ag_admin", "mfa"), http.StatusForbidden, "forbidden"},
		{"security, but disabled", w.iss.token(t, nil, "ag_sec_gone", "mfa"), http.StatusForbidden, "forbidden"},
		{"no such agent", w.iss.token(t, nil, "ag_nobody", "mfa"), http.StatusForbidden, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, raw := w.post(t, tt.token, body(t, w.sealed), nil)
			var p struct{ Code string }
			_ = json.Unmarshal(raw, &p)
			if status != tt.status || p.Code != tt.code {
				t.Fatalf("answer %d %s, want %d %s", status, raw, tt.status, tt.code)
			}
			if strings.Contains(string(raw), "customer moved provider") || strings.Contains(string(raw), "482913") {
				t.Fatal("a refused caller got the payload decoded")
			}
		})
	}
	if got := decodeAudits(t, w.st); len(got) != 0 {
		t.Fatalf("refused callers audited as decodes: %+v", got)
	}
}

// TestDecodesBoundPayloadsOnly: for the security team, payloads bound to a
// workflow are decoded; plaintext and unbound payloads (requests started
// before the PIN left the input) come back as they were; the call is
// audited naming the reader. The endpoint never encodes.
func TestDecodesBoundPayloadsOnly(t *testing.T) {
	w := newWorld(t)
	status, raw := w.post(t, w.iss.token(t, nil, "ag_sec", "otp"), body(t, w.sealed, w.plain, w.legacy), nil)
	if status != http.StatusOK {
		t.Fatalf("decode: %d %s", status, raw)
	}
	var out struct {
		Payloads []json.RawMessage `json:"payloads"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Payloads) != 3 {
		t.Fatalf("answer %s: %v", raw, err)
	}
	got := make([]*commonpb.Payload, 3)
	for i, b := range out.Payloads {
		got[i] = &commonpb.Payload{}
		if err := protojson.Unmarshal(b, got[i]); err != nil {
			t.Fatal(err)
		}
	}
	var reason map[string]string
	if err := converter.GetDefaultDataConverter().FromPayload(got[0], &reason); err != nil || reason["Reason"] != "customer moved provider" {
		t.Fatalf("bound payload decoded to %v (%v)", reason, err)
	}
	if string(got[1].GetData()) != string(w.plain.GetData()) || string(got[2].GetData()) != string(w.legacy.GetData()) ||
		string(got[2].GetMetadata()["encoding"]) != codec.EncodingEncrypted {
		t.Fatalf("plaintext and unbound payloads did not come back as they were: %v", got[1:])
	}
	audits := decodeAudits(t, w.st)
	if len(audits) != 1 || audits[0].Actor != "ag_sec" || audits[0].Details["decoded"] != float64(1) ||
		audits[0].Details["payloads"] != float64(3) || audits[0].Details["namespace"] != "default" {
		t.Fatalf("decode audited as %+v", audits)
	}

	// Encoding is what a forger needs; it is not offered.
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+"/codec/encode", bytes.NewReader(body(t, w.plain)))
	req.Header.Set("Authorization", "Bearer "+w.iss.token(t, nil, "ag_sec", "otp"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/codec/encode answered %d", resp.StatusCode)
	}
	for _, bad := range []struct {
		name   string
		body   []byte
		status int
	}{
		{"not JSON", []byte("payloads"), http.StatusBadRequest},
		{"not a payload", []byte(`{"payloads":[{"data":7}]}`), http.StatusBadRequest},
		{"too large", bytes.Repeat([]byte(" "), 5<<20), http.StatusRequestEntityTooLarge},
	} {
		if status, raw := w.post(t, w.iss.token(t, nil, "ag_sec", "otp"), bad.body, nil); status != bad.status {
			t.Errorf("%s: %d %s, want %d", bad.name, status, raw, bad.status)
		}
	}
}

// TestCORSOnlyForTheUI: the Web UI's origin may call the endpoint from the
// browser; another origin gets no CORS grant.
func TestCORSOnlyForTheUI(t *testing.T) {
	w := newWorld(t)
	for _, tt := range []struct {
		origin string
		allow  string
	}{
		{"http://127.0.0.1:8233", "http://127.0.0.1:8233"},
		{"https://evil.example", ""},
	} {
		req, _ := http.NewRequest(http.MethodOptions, w.srv.URL+codecserver.Path, nil)
		req.Header.Set("Origin", tt.origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.allow || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("preflight from %s: %d, allow-origin %q, want %q", tt.origin, resp.StatusCode, got, tt.allow)
		}
	}
}
