package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/vigil-oss/vigil/internal/credstore"
)

// signInConfig is GET /api/v1/sign-in: where people sign in, if anywhere.
type signInConfig struct {
	OIDC *struct {
		Issuer   string   `json:"issuer"`
		ClientID string   `json:"client_id"`
		Scopes   []string `json:"scopes"`
	} `json:"oidc"`
}

// httpTimeout bounds every call to Vigil's sign-in endpoint and the provider.
const httpTimeout = 30 * time.Second

// fetchSignIn asks Vigil how people sign in. A server without the endpoint
// (an older Vigil) reads as "personal tokens".
func fetchSignIn(ctx context.Context, server string) (signInConfig, error) {
	var cfg signInConfig
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/api/v1/sign-in", nil)
	if err != nil {
		return cfg, err
	}
	res, err := (&http.Client{Timeout: httpTimeout}).Do(req)
	if err != nil {
		return cfg, &connError{server: server, err: err}
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusNotFound {
		return cfg, nil
	}
	if res.StatusCode != http.StatusOK {
		return cfg, fmt.Errorf("GET %s/api/v1/sign-in answered %s", server, res.Status)
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("GET %s/api/v1/sign-in: %w", server, err)
	}
	return cfg, nil
}

// connError is a server that could not be reached.
type connError struct {
	server string
	err    error
}

func (e *connError) Error() string { return fmt.Sprintf("cannot reach %s: %v", e.server, e.err) }
func (e *connError) Unwrap() error { return e.err }

// oauthContext makes oauth2 and go-oidc use a client with a timeout.
func oauthContext(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, &http.Client{Timeout: httpTimeout})
}

// deviceSignIn runs the device authorization grant: it shows the address and
// code to open, waits for the sign-in there and returns the session.
func (a *app) deviceSignIn(ctx context.Context, cfg signInConfig) (string, *credstore.Session, error) {
	ctx = oauthContext(ctx)
	prov, err := oidc.NewProvider(ctx, cfg.OIDC.Issuer)
	if err != nil {
		return "", nil, fmt.Errorf("identity provider %s: %w", cfg.OIDC.Issuer, err)
	}
	var disc struct {
		Revocation string `json:"revocation_endpoint"`
	}
	_ = prov.Claims(&disc)
	conf := &oauth2.Config{ClientID: cfg.OIDC.ClientID, Endpoint: prov.Endpoint(), Scopes: cfg.OIDC.Scopes}
	if conf.Endpoint.DeviceAuthURL == "" {
		return "", nil, fmt.Errorf("identity provider %s offers no device sign-in (device_authorization_endpoint)", cfg.OIDC.Issuer)
	}
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("device sign-in: %w", err)
	}
	fmt.Fprintf(a.stderr, "To sign in, open %s\nand enter the code %s", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(a.stderr, " (or open %s)", da.VerificationURIComplete)
	}
	fmt.Fprintln(a.stderr, "\nWaiting for the sign-in to finish…")
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		return "", nil, fmt.Errorf("device sign-in: %w", err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	if idToken == "" {
		return "", nil, errors.New("the identity provider returned no ID token (scope openid)")
	}
	return idToken, &credstore.Session{Issuer: cfg.OIDC.Issuer, ClientID: cfg.OIDC.ClientID, TokenURL: conf.Endpoint.TokenURL,
		RevocationURL: disc.Revocation, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry}, nil
}

// refreshMargin renews a session this long before it expires.
const refreshMargin = 30 * time.Second

// refreshed renews c's ID token when it is about to expire and saves the new
// session; it returns c unchanged while the token is fresh.
func (a *app) refreshed(ctx context.Context, st *credstore.Store, c credstore.Credentials) (credstore.Credentials, error) {
	s := c.Session
	if s == nil || time.Until(s.Expiry) > refreshMargin {
		return c, nil
	}
	if s.RefreshToken == "" {
		return c, usagef("your sign-in has expired; run `starter login --url %s`", c.Server)
	}
	conf := &oauth2.Config{ClientID: s.ClientID, Endpoint: oauth2.Endpoint{TokenURL: s.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}
	tok, err := conf.TokenSource(oauthContext(ctx), &oauth2.Token{RefreshToken: s.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return c, usagef("your sign-in has ended (%s); run `starter login --url %s`", re.ErrorCode, c.Server)
		}
		return c, fmt.Errorf("renew the sign-in at %s: %w", s.Issuer, err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	if idToken == "" {
		return c, usagef("the identity provider renewed the sign-in without an ID token; run `starter login --url %s`", c.Server)
	}
	ns := *s
	ns.Expiry = tok.Expiry
	if tok.RefreshToken != "" {
		ns.RefreshToken = tok.RefreshToken
	}
	c.Token, c.Session = idToken, &ns
	if err := st.Save(c); err != nil {
		return c, err
	}
	return c, nil
}

// revoke asks the provider to end the session (RFC 7009).
func revoke(ctx context.Context, s *credstore.Session) error {
	if s.RevocationURL == "" {
		return errors.New("the identity provider publishes no revocation endpoint")
	}
	form := url.Values{"token": {s.RefreshToken}, "token_type_hint": {"refresh_token"}, "client_id": {s.ClientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.RevocationURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := (&http.Client{Timeout: httpTimeout}).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("revocation answered %s", res.Status)
	}
	return nil
}
