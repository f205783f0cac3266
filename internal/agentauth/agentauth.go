// Package agentauth makes and checks agents' personal API tokens: "vgl_"
// followed by 32 lowercase base32 characters (160 random bits), stored only
// as a SHA-256 hash.
package agentauth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every agent token, so a leaked one is easy to recognise
// (secret scanners, log filters).
const Prefix = "vgl_"

// randomBytes is the entropy of a token: 20 bytes encode to exactly 32
// base32 characters without padding.
const randomBytes = 20

// TokenLen is the length of a well-formed token.
const TokenLen = len(Prefix) + 32

// ErrNoToken means the request carried no usable bearer token.
var ErrNoToken = errors.New("agentauth: no bearer token")

var encoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewToken returns a fresh token from crypto/rand.
func NewToken() (string, error) {
	b := make([]byte, randomBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("agentauth: random token: %w", err)
	}
	return Prefix + strings.ToLower(encoding.EncodeToString(b)), nil
}

// WellFormed reports whether s has the shape of a token. It lets callers
// refuse garbage without a database lookup.
func WellFormed(s string) bool {
	if len(s) != TokenLen || !strings.HasPrefix(s, Prefix) {
		return false
	}
	for i := len(Prefix); i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// Hash returns the SHA-256 of token, the form kept in agents.token_hash. A
// fast hash is enough: tokens carry 160 random bits, so there is nothing to
// brute-force.
func Hash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Equal compares two secrets in constant time. Both are hashed first so
// that neither their contents nor their lengths leak through timing.
func Equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// Bearer extracts the token of an "Authorization: Bearer <token>" header
// value. The scheme is case-insensitive (RFC 9110); anything else, including
// an empty token or one with spaces, is ErrNoToken. Errors never contain the
// header.
func Bearer(header string) (string, error) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken
	}
	token = strings.TrimLeft(token, " ")
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return "", ErrNoToken
	}
	return token, nil
}
