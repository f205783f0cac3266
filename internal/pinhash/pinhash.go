// Package pinhash hashes and verifies customer support PINs with Argon2id,
// encoded as self-describing PHC strings.
package pinhash

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// ErrMalformed is wrapped by Verify when the encoded hash cannot be parsed or
// carries parameters outside the accepted bounds.
var ErrMalformed = errors.New("malformed PIN hash")

const (
	algorithm = "argon2id"
	saltLen   = 16
	keyLen    = 32

	// Bounds on parameters read from an encoded hash. A hash comes from an
	// import, so without them one bad row could make every PIN check
	// allocate gigabytes or spin for minutes.
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 100
	minSaltLen   = 8
	minKeyLen    = 16
	maxKeyLen    = 64
)

// Params are the Argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // iterations
	Threads uint8  // lanes
}

// DefaultParams are OWASP's recommended Argon2id settings (19 MiB, t=2, p=1).
func DefaultParams() Params { return Params{Memory: 19456, Time: 2, Threads: 1} }

// TestParams are cheap settings for tests and seed data; never use them for
// real PINs.
func TestParams() Params { return Params{Memory: 1024, Time: 1, Threads: 1} }

// validate rejects parameters Argon2id cannot use or that are absurdly costly.
func (p Params) validate() error {
	switch {
	case p.Threads < 1:
		return fmt.Errorf("threads must be at least 1")
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("time %d outside 1..%d", p.Time, maxTime)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemoryKiB:
		return fmt.Errorf("memory %d KiB outside %d..%d", p.Memory, 8*uint32(p.Threads), maxMemoryKiB)
	}
	return nil
}

// Hash derives an Argon2id hash of pin with a fresh random salt and returns it
// as a PHC string: $argon2id$v=19$m=<KiB>,t=<iters>,p=<threads>$<salt>$<hash>.
func Hash(pin string, p Params) (string, error) {
	if pin == "" {
		return "", errors.New("pinhash: empty PIN")
	}
	if err := p.validate(); err != nil {
		return "", fmt.Errorf("pinhash: %w", err)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("pinhash: read salt: %w", err)
	}
	key := argon2.IDKey([]byte(pin), salt, p.Time, p.Memory, p.Threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s",
		algorithm, argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether pin matches the encoded hash. The comparison is
// constant-time. A hash that cannot be parsed yields an error wrapping
// ErrMalformed; errors never contain the PIN.
func Verify(encoded, pin string) (bool, error) {
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, fmt.Errorf("pinhash: %w: %v", ErrMalformed, err)
	}
	got := argon2.IDKey([]byte(pin), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// ParamsOf returns the parameters an encoded hash was made with, so callers
// can tell when a stored hash should be upgraded to stronger settings.
func ParamsOf(encoded string) (Params, error) {
	p, _, _, err := decode(encoded)
	if err != nil {
		return Params{}, fmt.Errorf("pinhash: %w: %v", ErrMalformed, err)
	}
	return p, nil
}

// decode splits a PHC string into its parameters, salt and key. Its errors
// describe the structure only, never the content.
func decode(encoded string) (Params, []byte, []byte, error) {
	parts := strings.Split(encoded, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 || parts[0] != "" {
		return Params{}, nil, nil, errors.New("want 5 '$'-separated fields")
	}
	if parts[1] != algorithm {
		return Params{}, nil, nil, errors.New("algorithm is not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Params{}, nil, nil, errors.New("unsupported argon2 version")
	}
	p, err := parseParams(parts[3])
	if err != nil {
		return Params{}, nil, nil, err
	}
	b64 := base64.RawStdEncoding.Strict()
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < minSaltLen {
		return Params{}, nil, nil, errors.New("bad salt")
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return Params{}, nil, nil, errors.New("bad hash")
	}
	return p, salt, key, nil
}

// parseParams reads "m=<KiB>,t=<iters>,p=<threads>" in that order.
func parseParams(s string) (Params, error) {
	fields := strings.Split(s, ",")
	if len(fields) != 3 {
		return Params{}, errors.New("want parameters m, t and p")
	}
	var vals [3]uint64
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return Params{}, fmt.Errorf("parameter %d is not %s", i+1, name)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return Params{}, fmt.Errorf("parameter %s is not a number", name)
		}
		vals[i] = n
	}
	if vals[2] > 255 {
		return Params{}, errors.New("parameter p above 255")
	}
	p := Params{Memory: uint32(vals[0]), Time: uint32(vals[1]), Threads: uint8(vals[2])}
	if err := p.validate(); err != nil {
		return Params{}, err
	}
	return p, nil
}
