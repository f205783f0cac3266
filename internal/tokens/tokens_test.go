package tokens

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	testKey  = bytes.Repeat([]byte("k"), 32)
	otherKey = bytes.Repeat([]byte("o"), 32)
	testNow  = time.Date(2026, 11, 25, 14, 5, 0, 0, time.UTC)
)

func mustSigner(t testing.TB, key []byte) *Signer {
	t.Helper()
	s, err := NewSigner(key)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

func validClaims(t testing.TB) Claims {
	t.Helper()
	id, err := NewID()
	if err != nil {
		t.Fatalf("NewID: %v", err)
	}
	return Claims{ID: id, RequestID: "req-7f3c2a9e-0b1d-4c5e-9a8b-123456789abc", Expires: testNow.Add(24 * time.Hour)}
}

func mustSign(t testing.TB, s *Signer, c Claims) string {
	t.Helper()
	tok, err := s.Sign(c)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return tok
}

func TestNewSignerKeyLength(t *testing.T) {
	tests := []struct {
		name    string
		key     []byte
		wantErr bool
	}{
		{"nil", nil, true},
		{"31 bytes", bytes.Repeat([]byte("a"), 31), true},
		{"32 bytes", bytes.Repeat([]byte("a"), 32), false},
		{"64 bytes", bytes.Repeat([]byte("a"), 64), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSigner(tt.key)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewSigner(%d bytes) error = %v, wantErr %v", len(tt.key), err, tt.wantErr)
			}
		})
	}
}

func TestNewIDUniqueAndHex(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id, err := NewID()
		if err != nil {
			t.Fatalf("NewID: %v", err)
		}
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("NewID = %q, want 32 lowercase hex characters", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
}

func TestRoundTrip(t *testing.T) {
	s := mustSigner(t, testKey)
	c := validClaims(t)
	c.Expires = c.Expires.Add(750 * time.Millisecond) // sub-second part is dropped
	tok := mustSign(t, s, c)
	if len(tok) > 200 {
		t.Errorf("token is %d characters, want <= 200", len(tok))
	}
	if strings.ContainsAny(tok, "+/=") {
		t.Errorf("token %q is not URL-safe unpadded base64", tok)
	}
	got, err := s.Parse(tok, testNow)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := c
	want.Expires = c.Expires.Truncate(time.Second)
	if got.ID != want.ID || got.RequestID != want.RequestID || !got.Expires.Equal(want.Expires) {
		t.Fatalf("Parse = %+v, want %+v", got, want)
	}
}

func TestSignRejectsBadClaims(t *testing.T) {
	s := mustSigner(t, testKey)
	good := validClaims(t)
	tests := []struct {
		name string
		mod  func(*Claims)
	}{
		{"empty id", func(c *Claims) { c.ID = "" }},
		{"empty request", func(c *Claims) { c.RequestID = "" }},
		{"long id", func(c *Claims) { c.ID = strings.Repeat("a", 65) }},
		{"long request", func(c *Claims) { c.RequestID = strings.Repeat("a", 129) }},
		{"space in request", func(c *Claims) { c.RequestID = "a b" }},
		{"newline in id", func(c *Claims) { c.ID = "a\nb" }},
		{"zero expiry", func(c *Claims) { c.Expires = time.Time{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			if tok, err := s.Sign(c); err == nil {
				t.Fatalf("Sign(%+v) = %q, want error", c, tok)
			}
		})
	}
}

// flip replaces the character at i with a different base64url character that
// keeps the encoding valid (i must not be the last character of a part).
func flip(tok string, i int) string {
	b := []byte(tok)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestParseErrors(t *testing.T) {
	s := mustSigner(t, testKey)
	other := mustSigner(t, otherKey)
	c := validClaims(t)
	tok := mustSign(t, s, c)
	dot := strings.IndexByte(tok, '.')
	expired := c
	expired.Expires = testNow.Add(-time.Second)

	tests := []struct {
		name  string
		token string
		now   time.Time
		want  error
	}{
		{"tampered payload", flip(tok, 3), testNow, ErrBadSignature},
		{"tampered signature", flip(tok, dot+3), testNow, ErrBadSignature},
		{"signed with other key", mustSign(t, other, c), testNow, ErrBadSignature},
		{"swapped signature", tok[:dot] + mustSign(t, other, c)[strings.IndexByte(mustSign(t, other, c), '.'):], testNow, ErrBadSignature},
		{"expired", mustSign(t, s, expired), testNow, ErrExpired},
		{"expires exactly now", tok, c.Expires, ErrExpired},
		{"empty", "", testNow, ErrMalformed},
		{"garbage", "not a token at all", testNow, ErrMalformed},
		{"no dot", strings.ReplaceAll(tok, ".", ""), testNow, ErrMalformed},
		{"two dots", tok + ".AAAA", testNow, ErrMalformed},
		{"empty payload", tok[dot:], testNow, ErrMalformed},
		{"empty signature", tok[:dot+1], testNow, ErrMalformed},
		{"padding", tok + "=", testNow, ErrMalformed},
		{"standard base64 chars", "ab+/" + tok[4:], testNow, ErrMalformed},
		{"embedded newline", tok[:5] + "\n" + tok[5:], testNow, ErrMalformed},
		{"short signature", tok[:dot+1] + "AAAA", testNow, ErrMalformed},
		{"huge", strings.Repeat("A", 513) + "." + "AAAA", testNow, ErrMalformed},
		{"huge valid alphabet", strings.Repeat(tok, 10), testNow, ErrMalformed},
		{"non-canonical trailing bits", tok[:dot-1] + "_" + tok[dot:], testNow, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Parse(tt.token, tt.now)
			if tt.want == nil {
				// Either the encoding is rejected or the signature is: never accepted.
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, want an error", tt.token, got)
				}
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
					t.Fatalf("Parse(%q) error = %v, want ErrMalformed or ErrBadSignature", tt.token, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%q) error = %v, want %v", tt.token, err, tt.want)
			}
			if got != (Claims{}) {
				t.Fatalf("Parse returned claims %+v alongside error", got)
			}
		})
	}
}

func TestSignerStringRedactsKey(t *testing.T) {
	s := mustSigner(t, []byte("super-secret-key-material-0123456789"))
	for _, out := range []string{s.String(), s.GoString()} {
		if strings.Contains(out, "super-secret") {
			t.Fatalf("signer formatting leaks key: %q", out)
		}
	}
}

func FuzzParse(f *testing.F) {
	s := mustSigner(f, testKey)
	c := validClaims(f)
	tok := mustSign(f, s, c)
	dot := strings.IndexByte(tok, '.')
	f.Add(tok)
	f.Add(flip(tok, 2))
	f.Add(flip(tok, dot+2))
	f.Add("")
	f.Add(".")
	f.Add(strings.Repeat("A", 4096))
	f.Add(strings.Repeat(tok, 3))
	f.Add("AQAAAAAAAAAAAQABYQFi.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("\x00\xff\xfe.\x80")
	f.Add(mustSign(f, mustSigner(f, otherKey), c))
	f.Fuzz(func(t *testing.T, token string) {
		got, err := s.Parse(token, testNow)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrExpired) {
				t.Fatalf("Parse error %v wraps no sentinel", err)
			}
			return
		}
		again, err := s.Sign(got)
		if err != nil {
			t.Fatalf("claims %+v parsed but do not re-sign: %v", got, err)
		}
		back, err := s.Parse(again, testNow)
		if err != nil {
			t.Fatalf("re-signed token does not parse: %v", err)
		}
		if back != got {
			t.Fatalf("re-signed claims %+v differ from %+v", back, got)
		}
		if again != token {
			t.Fatalf("accepted token %q is not canonical (re-signs to %q)", token, again)
		}
	})
}
