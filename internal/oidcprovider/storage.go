// Package oidcprovider is the local identity provider behind standins/oidc: an
// OpenID provider (zitadel/oidc's op package) that signs the seed agents in with
// the device authorization grant, a password and a TOTP second factor.
package oidcprovider

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is one person the provider can sign in.
type User struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// errUnsupported answers every grant but the device flow and refresh: the
// stand-in serves the CLI only, and an endpoint that half works would mislead.
var errUnsupported = errors.New("this provider serves the device authorization grant only")

type accessToken struct {
	id       string
	clientID string
	subject  string
	audience []string
	scopes   []string
	expires  time.Time
	refresh  string
}

type refreshToken struct {
	token    string
	clientID string
	subject  string
	audience []string
	scopes   []string
	amr      []string
	authTime time.Time
	expires  time.Time
	access   string
}

// refreshRequest is the op.RefreshTokenRequest for one stored refresh token.
type refreshRequest struct {
	rt     refreshToken
	scopes []string
}

func (r *refreshRequest) GetAMR() []string            { return r.rt.amr }
func (r *refreshRequest) GetAudience() []string       { return r.rt.audience }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.rt.authTime }
func (r *refreshRequest) GetClientID() string         { return r.rt.clientID }
func (r *refreshRequest) GetScopes() []string         { return r.scopes }
func (r *refreshRequest) GetSubject() string          { return r.rt.subject }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }

type deviceEntry struct {
	userCode string
	state    op.DeviceAuthorizationState
}

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

// Storage keeps the provider's users, device authorizations and tokens in memory:
// a restart signs everyone out, which is what a local stand-in should do.
type Storage struct {
	client     *Client
	users      map[string]User
	key        signingKey
	now        func() time.Time
	refreshTTL time.Duration

	mu      sync.Mutex
	devices map[string]*deviceEntry // by device code
	codes   map[string]string       // user code -> device code
	access  map[string]accessToken
	refresh map[string]refreshToken
}

// NewStorage returns a Storage for one public client and the given users, with
// a fresh RSA signing key.
func NewStorage(client *Client, users []User, refreshTTL time.Duration, now func() time.Time) (*Storage, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	byID := make(map[string]User, len(users))
	for _, u := range users {
		byID[u.ID] = u
	}
	return &Storage{
		client: client, users: byID, key: signingKey{id: randomID(), key: key}, now: now, refreshTTL: refreshTTL,
		devices: map[string]*deviceEntry{}, codes: map[string]string{},
		access: map[string]accessToken{}, refresh: map[string]refreshToken{},
	}, nil
}

func randomID() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// CreateAuthRequest refuses: no authorization code flow here.
func (s *Storage) CreateAuthRequest(context.Context, *oidc.AuthRequest, string) (op.AuthRequest, error) {
	return nil, errUnsupported
}

// AuthRequestByID refuses: no authorization code flow here.
func (s *Storage) AuthRequestByID(context.Context, string) (op.AuthRequest, error) {
	return nil, errUnsupported
}

// AuthRequestByCode refuses: no authorization code flow here.
func (s *Storage) AuthRequestByCode(context.Context, string) (op.AuthRequest, error) {
	return nil, errUnsupported
}

// SaveAuthCode refuses: no authorization code flow here.
func (s *Storage) SaveAuthCode(context.Context, string, string) error { return errUnsupported }

// DeleteAuthRequest refuses: no authorization code flow here.
func (s *Storage) DeleteAuthRequest(context.Context, string) error { return errUnsupported }

// CreateAccessToken issues an access token without a refresh token.
func (s *Storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	clientID, _, _, err := requestInfo(req)
	if err != nil {
		return "", time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.newAccess(clientID, req, "")
	return t.id, t.expires, nil
}

func (s *Storage) newAccess(clientID string, req op.TokenRequest, refresh string) accessToken {
	t := accessToken{id: randomID(), clientID: clientID, subject: req.GetSubject(), audience: req.GetAudience(),
		scopes: req.GetScopes(), expires: s.now().Add(s.client.tokenTTL), refresh: refresh}
	s.access[t.id] = t
	return t
}

// requestInfo reads the client, second-factor methods and sign-in time a
// token request carries; only device authorizations and refreshes reach here.
func requestInfo(req op.TokenRequest) (clientID string, amr []string, authTime time.Time, err error) {
	switch r := req.(type) {
	case *op.DeviceAuthorizationState:
		return r.ClientID, r.AMR, r.AuthTime, nil
	case *refreshRequest:
		return r.rt.clientID, r.rt.amr, r.rt.authTime, nil
	}
	return "", nil, time.Time{}, errUnsupported
}

// CreateAccessAndRefreshTokens issues an access token and a refresh token; a
// refresh rotates the refresh token, so a stolen old one is dead.
func (s *Storage) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	clientID, amr, authTime, err := requestInfo(req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if current != "" {
		old, ok := s.refresh[current]
		if !ok || old.clientID != clientID {
			return "", "", time.Time{}, op.ErrInvalidRefreshToken
		}
		delete(s.refresh, current)
		delete(s.access, old.access)
	}
	rt := refreshToken{token: randomID(), clientID: clientID, subject: req.GetSubject(), audience: req.GetAudience(),
		scopes: req.GetScopes(), amr: amr, authTime: authTime, expires: s.now().Add(s.refreshTTL)}
	at := s.newAccess(clientID, req, rt.token)
	rt.access = at.id
	s.refresh[rt.token] = rt
	return at.id, rt.token, at.expires, nil
}

// TokenRequestByRefreshToken finds a live refresh token.
func (s *Storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[token]
	if !ok || !s.now().Before(rt.expires) {
		return nil, op.ErrInvalidRefreshToken
	}
	if _, ok := s.users[rt.subject]; !ok {
		return nil, op.ErrInvalidRefreshToken
	}
	return &refreshRequest{rt: rt, scopes: rt.scopes}, nil
}

// TerminateSession drops every token of a user for a client.
func (s *Storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, rt := range s.refresh {
		if rt.subject == userID && rt.clientID == clientID {
			delete(s.refresh, k)
		}
	}
	for k, at := range s.access {
		if at.subject == userID && at.clientID == clientID {
			delete(s.access, k)
		}
	}
	return nil
}

// RevokeToken revokes a refresh token (and its access token) or an access token.
func (s *Storage) RevokeToken(_ context.Context, tokenOrID, userID, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt, ok := s.refresh[tokenOrID]; ok {
		if rt.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.refresh, tokenOrID)
		delete(s.access, rt.access)
		return nil
	}
	if at, ok := s.access[tokenOrID]; ok {
		if at.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
		}
		delete(s.access, tokenOrID)
		if at.refresh != "" {
			delete(s.refresh, at.refresh)
		}
	}
	// RFC 7009: an unknown token is not an error.
	return nil
}

// GetRefreshTokenInfo names the user and id of a refresh token.
func (s *Storage) GetRefreshTokenInfo(_ context.Context, clientID, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[token]
	if !ok || rt.clientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.subject, rt.token, nil
}

// SigningKey is the key generated at start.
func (s *Storage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

// SignatureAlgorithms is RS256 only.
func (s *Storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

// KeySet publishes the public half of the signing key.
func (s *Storage) KeySet(context.Context) ([]op.Key, error) { return []op.Key{publicKey{s.key}}, nil }

// GetClientByClientID knows the one configured client.
func (s *Storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id != s.client.id {
		return nil, fmt.Errorf("unknown client %q", id)
	}
	return s.client, nil
}

// AuthorizeClientIDSecret refuses: the CLI is a public client with no secret.
func (s *Storage) AuthorizeClientIDSecret(context.Context, string, string) error {
	return errors.New("no confidential clients")
}

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest does the work.
func (s *Storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's user claims.
func (s *Storage) SetUserinfoFromRequest(_ context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	return s.userinfo(ui, req.GetSubject(), scopes)
}

func (s *Storage) userinfo(ui *oidc.UserInfo, subject string, scopes []string) error {
	u, ok := s.users[subject]
	if !ok {
		return fmt.Errorf("unknown user")
	}
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeOpenID:
			ui.Subject = u.ID
		case oidc.ScopeEmail:
			ui.Email = u.Email
			ui.EmailVerified = true
		case oidc.ScopeProfile:
			ui.Name = u.Name
		}
	}
	return nil
}

// SetUserinfoFromToken answers the userinfo endpoint for a live access token.
func (s *Storage) SetUserinfoFromToken(_ context.Context, ui *oidc.UserInfo, tokenID, _, _ string) error {
	s.mu.Lock()
	t, ok := s.access[tokenID]
	s.mu.Unlock()
	if !ok || !s.now().Before(t.expires) {
		return errors.New("token is invalid or has expired")
	}
	return s.userinfo(ui, t.subject, t.scopes)
}

// SetIntrospectionFromToken answers introspection for a live access token.
func (s *Storage) SetIntrospectionFromToken(_ context.Context, in *oidc.IntrospectionResponse, tokenID, _, clientID string) error {
	s.mu.Lock()
	t, ok := s.access[tokenID]
	s.mu.Unlock()
	if !ok || !s.now().Before(t.expires) || !slices.Contains(t.audience, clientID) {
		return errors.New("token is invalid or has expired")
	}
	in.Active = true
	in.Subject = t.subject
	in.ClientID = t.clientID
	in.Scope = t.scopes
	in.Audience = t.audience
	in.Expiration = oidc.FromTime(t.expires)
	return nil
}

// GetPrivateClaimsFromScopes adds nothing: roles live in Vigil's agents table.
func (s *Storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID refuses: no JWT profile grant here.
func (s *Storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errUnsupported
}

// ValidateJWTProfileScopes refuses: no JWT profile grant here.
func (s *Storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errUnsupported
}

// Health answers ok while the process runs.
func (s *Storage) Health(context.Context) error { return nil }

// StoreDeviceAuthorization keeps a new device authorization.
func (s *Storage) StoreDeviceAuthorization(_ context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	if clientID != s.client.id {
		return fmt.Errorf("unknown client %q", clientID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, d := range s.devices { // purge expired flows so user codes stay unique
		if !s.now().Before(d.state.Expires) {
			delete(s.codes, d.userCode)
			delete(s.devices, k)
		}
	}
	if _, ok := s.codes[userCode]; ok {
		return op.ErrDuplicateUserCode
	}
	s.devices[deviceCode] = &deviceEntry{userCode: userCode, state: op.DeviceAuthorizationState{
		ClientID: clientID, Audience: []string{clientID}, Scopes: scopes, Expires: expires}}
	s.codes[userCode] = deviceCode
	return nil
}

// GetDeviceAuthorizatonState returns a copy of the flow's state (op polls it
// while the sign-in page writes it).
func (s *Storage) GetDeviceAuthorizatonState(_ context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[deviceCode]
	if !ok || d.state.ClientID != clientID {
		return nil, errors.New("device code not found for client")
	}
	st := d.state
	if st.Done || st.Denied { // a device code yields tokens once
		delete(s.codes, d.userCode)
		delete(s.devices, deviceCode)
	}
	return &st, nil
}

// pending reports whether a user code names a flow still waiting for sign-in.
func (s *Storage) pending(userCode string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[s.codes[userCode]]
	return ok && !d.state.Done && !d.state.Denied && s.now().Before(d.state.Expires)
}

// complete marks a flow signed in by subject with the given methods.
func (s *Storage) complete(userCode, subject string, amr []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[s.codes[userCode]]
	if !ok || d.state.Done || d.state.Denied || !s.now().Before(d.state.Expires) {
		return errors.New("unknown or expired code")
	}
	d.state.Subject, d.state.AMR, d.state.AuthTime, d.state.Done = subject, amr, s.now(), true
	return nil
}
