package oidcprovider_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/vigil-oss/vigil/internal/oidcprovider/oidctest"
)

// deviceLogin runs the device grant: ask a code, sign in on the page, poll.
func deviceLogin(t *testing.T, ctx context.Context, issuer string, signIn func(uri, code string) int) (*oauth2.Token, *oauth2.Config, error) {
	t.Helper()
	prov, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	conf := &oauth2.Config{ClientID: oidctest.ClientID, Endpoint: prov.Endpoint(),
		Scopes: []string{oidc.ScopeOpenID, "email", "profile", oidc.ScopeOfflineAccess}}
	if conf.Endpoint.DeviceAuthURL == "" {
		t.Fatal("discovery has no device_authorization_endpoint")
	}
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device auth: %v", err)
	}
	if st := signIn(da.VerificationURI, da.UserCode); st != http.StatusOK {
		return nil, conf, &httpStatus{st}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tok, err := conf.DeviceAccessToken(pctx, da)
	return tok, conf, err
}

type httpStatus struct{ code int }

func (h *httpStatus) Error() string { return "sign-in page answered " + http.StatusText(h.code) }

func TestDeviceFlowSignsInWithASecondFactor(t *testing.T) {
	ctx := context.Background()
	issuer := oidctest.Start(t, true, oidctest.SeedUsers)
	tok, conf, err := deviceLogin(t, ctx, issuer, func(uri, code string) int {
		return oidctest.SignIn(t, uri, code, "Alice@vigil.localhost", oidctest.Password, oidctest.Code(t, "ag_alice"))
	})
	if err != nil {
		t.Fatalf("device token: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	prov, _ := oidc.NewProvider(ctx, issuer)
	verifier := prov.Verifier(&oidc.Config{ClientID: oidctest.ClientID})
	raw, _ := tok.Extra("id_token").(string)
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify id token: %v", err)
	}
	var claims struct {
		Email string   `json:"email"`
		AMR   []string `json:"amr"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != "ag_alice" || claims.Email != "alice@vigil.localhost" || !slices.Contains(claims.AMR, "mfa") || !slices.Contains(claims.AMR, "otp") {
		t.Fatalf("id token sub=%q claims=%+v", idt.Subject, claims)
	}

	// A refresh keeps the second factor in the new ID token and rotates the refresh token.
	old := tok.RefreshToken
	tok.Expiry = time.Now().Add(-time.Minute)
	fresh, err := conf.TokenSource(ctx, tok).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	raw2, _ := fresh.Extra("id_token").(string)
	idt2, err := verifier.Verify(ctx, raw2)
	if err != nil {
		t.Fatalf("verify refreshed id token: %v", err)
	}
	var claims2 struct {
		AMR []string `json:"amr"`
	}
	_ = idt2.Claims(&claims2)
	if idt2.Subject != "ag_alice" || !slices.Contains(claims2.AMR, "mfa") || fresh.RefreshToken == old {
		t.Fatalf("refreshed: sub=%q amr=%v rotated=%t", idt2.Subject, claims2.AMR, fresh.RefreshToken != old)
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: old, Expiry: time.Now().Add(-time.Minute)}).Token(); err == nil {
		t.Fatal("the rotated-out refresh token still works")
	}

	// Revocation ends the session: the refresh token no longer works.
	var disc struct {
		Revocation string `json:"revocation_endpoint"`
	}
	if err := prov.Claims(&disc); err != nil || disc.Revocation == "" {
		t.Fatalf("revocation endpoint: %q %v", disc.Revocation, err)
	}
	resp, err := http.PostForm(disc.Revocation, url.Values{"token": {fresh.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {oidctest.ClientID}})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	fresh.Expiry = time.Now().Add(-time.Minute)
	if _, err := conf.TokenSource(ctx, fresh).Token(); err == nil {
		t.Fatal("a revoked refresh token still works")
	}
}

func TestSignInRefusals(t *testing.T) {
	ctx := context.Background()
	issuer := oidctest.Start(t, true, oidctest.SeedUsers)
	cases := []struct {
		name, email, password, otp string
	}{
		{"wrong password", "alice@vigil.localhost", "nope", ""},
		{"no second factor", "alice@vigil.localhost", oidctest.Password, ""},
		{"another user's code", "alice@vigil.localhost", oidctest.Password, "BOB"},
		{"unknown user", "mallory@vigil.localhost", oidctest.Password, "X"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			otp := tc.otp
			if otp == "BOB" {
				// Another user's valid code; if it happens to equal Alice's (1 in 10^6), Carol's.
				otp = oidctest.Code(t, "ag_bob")
				if otp == oidctest.Code(t, "ag_alice") {
					otp = oidctest.Code(t, "ag_carol")
				}
			}
			_, _, err := deviceLogin(t, ctx, issuer, func(uri, code string) int {
				return oidctest.SignIn(t, uri, code, tc.email, tc.password, otp)
			})
			if err == nil || !strings.Contains(err.Error(), "Unauthorized") {
				t.Fatalf("sign-in err = %v, want the page to refuse", err)
			}
		})
	}
}

func TestWithoutSecondFactorTheAMRSaysPasswordOnly(t *testing.T) {
	ctx := context.Background()
	issuer := oidctest.Start(t, false, oidctest.SeedUsers)
	tok, _, err := deviceLogin(t, ctx, issuer, func(uri, code string) int {
		return oidctest.SignIn(t, uri, code, "bob@vigil.localhost", oidctest.Password, "")
	})
	if err != nil {
		t.Fatalf("device token: %v", err)
	}
	prov, _ := oidc.NewProvider(ctx, issuer)
	raw, _ := tok.Extra("id_token").(string)
	idt, err := prov.Verifier(&oidc.Config{ClientID: oidctest.ClientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AMR []string `json:"amr"`
	}
	_ = idt.Claims(&c)
	if !slices.Equal(c.AMR, []string{"pwd"}) {
		t.Fatalf("amr = %v, want [pwd]", c.AMR)
	}
}
