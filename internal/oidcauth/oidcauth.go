// Package oidcauth verifies the identity provider's tokens a person presents
// to Vigil: signature (the issuer's published keys), issuer, audience, expiry
// and proof of a second factor. It says who signed in, never what they may do:
// roles come from Vigil's agents table.
package oidcauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Config is what a Verifier checks.
type Config struct {
	// Issuer is the provider's issuer URL; its discovery document and keys are
	// fetched from it.
	Issuer string
	// Audience is the client id the tokens must be issued to.
	Audience string
	// AcceptedAMR lists amr values of which the token must carry at least one
	// (default mfa, otp, hwk, swk, fpt: a second factor); AcceptedACR lists acr
	// values that satisfy the requirement instead. Both empty is refused by New.
	AcceptedAMR []string
	AcceptedACR []string
	// AgentClaim names the claim whose string value is the Vigil agent id
	// (default "sub").
	AgentClaim string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// DefaultAMR are the RFC 8176 method values that prove a second factor.
var DefaultAMR = []string{"mfa", "otp", "hwk", "swk", "fpt"}

// ErrInvalidToken is a token that is not a valid, current token of the issuer
// for this audience.
var ErrInvalidToken = errors.New("invalid token")

// ErrNoSecondFactor is a valid token without proof of a second factor.
var ErrNoSecondFactor = errors.New("no second factor")

// Verifier checks tokens of one issuer.
type Verifier struct {
	cfg      Config
	verifier *oidc.IDTokenVerifier
}

// New fetches the issuer's discovery document and returns a Verifier.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("oidcauth: issuer and audience are required")
	}
	if len(cfg.AcceptedAMR) == 0 && len(cfg.AcceptedACR) == 0 {
		return nil, errors.New("oidcauth: no accepted amr or acr: a second factor is always required")
	}
	if cfg.AgentClaim == "" {
		cfg.AgentClaim = "sub"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidcauth: discovery at %s: %w", cfg.Issuer, err)
	}
	return &Verifier{cfg: cfg, verifier: p.Verifier(&oidc.Config{ClientID: cfg.Audience, Now: cfg.Now})}, nil
}

// Issuer is the configured issuer URL.
func (v *Verifier) Issuer() string { return v.cfg.Issuer }

// Audience is the configured client id.
func (v *Verifier) Audience() string { return v.cfg.Audience }

// Verify checks raw and returns the agent id it names. Errors wrap
// ErrInvalidToken or ErrNoSecondFactor; their text names the failed check but
// never the token.
func (v *Verifier) Verify(ctx context.Context, raw string) (string, error) {
	tok, err := v.verifier.Verify(ctx, raw)
	if err != nil {
		return "", fmt.Errorf("%w: %s", ErrInvalidToken, reason(err))
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return "", fmt.Errorf("%w: unreadable claims", ErrInvalidToken)
	}
	var amr []string
	var acr string
	if b, ok := claims["amr"]; ok {
		_ = json.Unmarshal(b, &amr)
	}
	if b, ok := claims["acr"]; ok {
		_ = json.Unmarshal(b, &acr)
	}
	mfa := slices.ContainsFunc(amr, func(m string) bool { return slices.Contains(v.cfg.AcceptedAMR, m) }) ||
		(acr != "" && slices.Contains(v.cfg.AcceptedACR, acr))
	if !mfa {
		return "", ErrNoSecondFactor
	}
	var agent string
	if b, ok := claims[v.cfg.AgentClaim]; ok {
		_ = json.Unmarshal(b, &agent)
	}
	if agent == "" {
		return "", fmt.Errorf("%w: no %s claim", ErrInvalidToken, v.cfg.AgentClaim)
	}
	return agent, nil
}

// reason turns go-oidc's error into a short cause that holds no token text.
func reason(err error) string {
	var exp *oidc.TokenExpiredError
	switch {
	case errors.As(err, &exp):
		return "expired"
	}
	return "not a valid token of the configured issuer for this audience (issuer, audience, signature or format)"
}
