// Package oidctest runs the local identity provider inside a test and signs a
// user in through its real sign-in page.
package oidctest

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/vigil-oss/vigil/internal/oidcprovider"
)

// Password and TOTPSeed are the test provider's local credentials.
const (
	Password = "local-test-password"
	TOTPSeed = "local-test-totp-seed"
	ClientID = "vigil-starter"
)

// SeedUsers mirrors deploy/seed/agents.json.
var SeedUsers = []oidcprovider.User{
	{ID: "ag_alice", Name: "Alice Moreau", Email: "alice@vigil.localhost"},
	{ID: "ag_bob", Name: "Bob Lindqvist", Email: "bob@vigil.localhost"},
	{ID: "ag_carol", Name: "Carol Ng", Email: "carol@vigil.localhost"},
	{ID: "ag_admin", Name: "Vigil Admin", Email: "admin@vigil.localhost"},
}

// Start serves a provider on a loopback port until the test ends and returns
// its issuer URL. requireOTP false makes it sign in without a second factor.
func Start(t testing.TB, requireOTP bool, users []oidcprovider.User) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	issuer := "http://" + ln.Addr().String()
	p, err := oidcprovider.New(oidcprovider.Config{
		Issuer: issuer, ClientID: ClientID, Users: users, Password: Password, TOTPSeed: TOTPSeed,
		RequireOTP: requireOTP, TokenTTL: 5 * time.Minute, RefreshTTL: time.Hour, Now: time.Now,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("provider: %v", err)
	}
	srv := httptest.NewUnstartedServer(p.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return issuer
}

// Code is the TOTP code of userID now.
func Code(t testing.TB, userID string) string {
	t.Helper()
	c, err := totp.GenerateCode(oidcprovider.TOTPSecret(TOTPSeed, userID), time.Now())
	if err != nil {
		t.Fatalf("totp: %v", err)
	}
	return c
}

// SignIn posts the sign-in form at verificationURI and returns the status.
func SignIn(t testing.TB, verificationURI, userCode, email, password, otp string) int {
	t.Helper()
	form := url.Values{"user_code": {userCode}, "email": {email}, "password": {password}, "otp": {otp}}
	resp, err := http.Post(verificationURI, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
