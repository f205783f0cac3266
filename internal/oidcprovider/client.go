package oidcprovider

import (
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Client is the one public client (the starter CLI): device grant and refresh,
// no secret.
type Client struct {
	id       string
	tokenTTL time.Duration
}

// NewClient returns the public client id whose tokens live for tokenTTL.
func NewClient(id string, tokenTTL time.Duration) *Client { return &Client{id: id, tokenTTL: tokenTTL} }

// GetID is the client id.
func (c *Client) GetID() string { return c.id }

// RedirectURIs is empty: the device flow redirects nowhere.
func (c *Client) RedirectURIs() []string { return nil }

// PostLogoutRedirectURIs is empty.
func (c *Client) PostLogoutRedirectURIs() []string { return nil }

// ApplicationType is native (a CLI).
func (c *Client) ApplicationType() op.ApplicationType { return op.ApplicationTypeNative }

// AuthMethod is none: a public client.
func (c *Client) AuthMethod() oidc.AuthMethod { return oidc.AuthMethodNone }

// ResponseTypes is empty: no authorization endpoint use.
func (c *Client) ResponseTypes() []oidc.ResponseType { return nil }

// GrantTypes are the device grant and refresh.
func (c *Client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeDeviceCode, oidc.GrantTypeRefreshToken}
}

// LoginURL is the device sign-in page.
func (c *Client) LoginURL(string) string { return DevicePath }

// AccessTokenType is opaque bearer.
func (c *Client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }

// IDTokenLifetime is the session length before a quiet refresh.
func (c *Client) IDTokenLifetime() time.Duration { return c.tokenTTL }

// DevMode is off.
func (c *Client) DevMode() bool { return false }

// RestrictAdditionalIdTokenScopes keeps the scopes.
func (c *Client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// RestrictAdditionalAccessTokenScopes keeps the scopes.
func (c *Client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed allows only the standard scopes.
func (c *Client) IsScopeAllowed(scope string) bool {
	switch scope {
	case oidc.ScopeOpenID, oidc.ScopeEmail, oidc.ScopeProfile, oidc.ScopeOfflineAccess:
		return true
	}
	return false
}

// IDTokenUserinfoClaimsAssertion puts email and name in the ID token, which is
// what the CLI presents to Vigil.
func (c *Client) IDTokenUserinfoClaimsAssertion() bool { return true }

// ClockSkew is none.
func (c *Client) ClockSkew() time.Duration { return 0 }
