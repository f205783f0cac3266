// Package tokens signs and checks the expiring tokens carried by cancel links.
//
// A token is base64url(payload) "." base64url(HMAC-SHA256(key, "vigil-cancel-v1." + payload)).
// The payload is binary: a version byte, the expiry in Unix seconds, then the
// length-prefixed token ID and request ID. Tokens only prove that Vigil issued
// them and that they have not expired; single use is enforced by the store.
package tokens

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors returned (wrapped) by Parse; match them with errors.Is.
var (
	// ErrMalformed means the token is not something Sign could have produced.
	ErrMalformed = errors.New("tokens: malformed token")
	// ErrBadSignature means the token was not signed with this key or was altered.
	ErrBadSignature = errors.New("tokens: bad signature")
	// ErrExpired means the token was genuine but its expiry has passed.
	ErrExpired = errors.New("tokens: token expired")
)

const (
	version        = 1
	macContext     = "vigil-cancel-v1."
	minKeyLen      = 32
	maxTokenLen    = 512
	maxIDLen       = 64
	maxRequestLen  = 128
	macLen         = sha256.Size
	fixedHeaderLen = 1 + 8 // version + expiry seconds
)

var b64 = base64.RawURLEncoding.Strict()

// Claims is what a cancel token asserts. Expires is carried with one-second precision.
type Claims struct {
	ID        string    // unique per token (see NewID); the store marks it used
	RequestID string    // the request the link cancels
	Expires   time.Time // the token is refused at and after this instant
}

// Signer signs and verifies tokens with one HMAC key.
type Signer struct {
	key []byte
}

// NewSigner returns a Signer for key, which must be at least 32 bytes.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < minKeyLen {
		return nil, fmt.Errorf("tokens: key is %d bytes, need at least %d", len(key), minKeyLen)
	}
	return &Signer{key: append([]byte(nil), key...)}, nil
}

// String keeps the key out of logs.
func (s *Signer) String() string { return "tokens.Signer{key:[redacted]}" }

// GoString keeps the key out of %#v output.
func (s *Signer) GoString() string { return s.String() }

// NewID returns a fresh random token ID: 16 bytes from crypto/rand, hex encoded.
func NewID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("tokens: random id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Sign returns the URL-safe token for c. Expires is truncated to whole seconds.
func (s *Signer) Sign(c Claims) (string, error) {
	if err := checkField("id", c.ID, maxIDLen); err != nil {
		return "", err
	}
	if err := checkField("request id", c.RequestID, maxRequestLen); err != nil {
		return "", err
	}
	if c.Expires.IsZero() {
		return "", errors.New("tokens: expiry is required")
	}
	payload := make([]byte, 0, fixedHeaderLen+2+len(c.ID)+len(c.RequestID))
	payload = append(payload, version)
	payload = binary.BigEndian.AppendUint64(payload, uint64(c.Expires.Unix()))
	payload = append(payload, byte(len(c.ID)))
	payload = append(payload, c.ID...)
	payload = append(payload, byte(len(c.RequestID)))
	payload = append(payload, c.RequestID...)
	return b64.EncodeToString(payload) + "." + b64.EncodeToString(s.mac(payload)), nil
}

// Parse verifies token and returns its claims if it is genuine and not expired at now.
// Errors wrap ErrMalformed, ErrBadSignature or ErrExpired. It never panics.
func (s *Signer) Parse(token string, now time.Time) (Claims, error) {
	if len(token) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxTokenLen)
	}
	// The decoder skips CR and LF; checking the alphabet first keeps tokens canonical.
	for i := 0; i < len(token); i++ {
		if !tokenByte(token[i]) {
			return Claims{}, fmt.Errorf("%w: unexpected character", ErrMalformed)
		}
	}
	encPayload, encMAC, ok := strings.Cut(token, ".")
	if !ok || encPayload == "" || encMAC == "" || strings.Contains(encMAC, ".") {
		return Claims{}, fmt.Errorf("%w: want two dot-separated parts", ErrMalformed)
	}
	payload, err := b64.DecodeString(encPayload)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: payload encoding", ErrMalformed)
	}
	mac, err := b64.DecodeString(encMAC)
	if err != nil || len(mac) != macLen {
		return Claims{}, fmt.Errorf("%w: signature encoding", ErrMalformed)
	}
	if !hmac.Equal(mac, s.mac(payload)) {
		return Claims{}, ErrBadSignature
	}
	c, err := decodePayload(payload)
	if err != nil {
		return Claims{}, err
	}
	if !now.Before(c.Expires) {
		return Claims{}, fmt.Errorf("%w: expired at %s", ErrExpired, c.Expires.Format(time.RFC3339))
	}
	return c, nil
}

func (s *Signer) mac(payload []byte) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(macContext))
	h.Write(payload)
	return h.Sum(nil)
}

func decodePayload(p []byte) (Claims, error) {
	if len(p) < fixedHeaderLen+2 {
		return Claims{}, fmt.Errorf("%w: payload too short", ErrMalformed)
	}
	if p[0] != version {
		return Claims{}, fmt.Errorf("%w: unknown version %d", ErrMalformed, p[0])
	}
	secs := int64(binary.BigEndian.Uint64(p[1:9]))
	rest := p[fixedHeaderLen:]
	id, rest, ok := lengthPrefixed(rest)
	if !ok {
		return Claims{}, fmt.Errorf("%w: id", ErrMalformed)
	}
	req, rest, ok := lengthPrefixed(rest)
	if !ok || len(rest) != 0 {
		return Claims{}, fmt.Errorf("%w: request id", ErrMalformed)
	}
	c := Claims{ID: string(id), RequestID: string(req), Expires: time.Unix(secs, 0).UTC()}
	if checkField("id", c.ID, maxIDLen) != nil || checkField("request id", c.RequestID, maxRequestLen) != nil {
		return Claims{}, fmt.Errorf("%w: invalid field", ErrMalformed)
	}
	return c, nil
}

func lengthPrefixed(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 1 {
		return nil, nil, false
	}
	n := int(b[0])
	if len(b) < 1+n {
		return nil, nil, false
	}
	return b[1 : 1+n], b[1+n:], true
}

// checkField accepts 1..max printable ASCII characters without spaces, so IDs
// can appear in logs and URLs unchanged.
func checkField(name, v string, max int) error {
	if v == "" || len(v) > max {
		return fmt.Errorf("tokens: %s must be 1..%d characters", name, max)
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return fmt.Errorf("tokens: %s has a character outside printable ASCII", name)
		}
	}
	return nil
}

func tokenByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}
