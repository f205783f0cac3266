package agentauth

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"regexp"
	"testing"
)

func TestNewToken(t *testing.T) {
	shape := regexp.MustCompile(`^vgl_[a-z2-7]{32}$`)
	seen := map[string]bool{}
	for range 200 {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(tok) {
			t.Fatalf("token %q does not match %v", tok, shape)
		}
		if !WellFormed(tok) {
			t.Fatalf("WellFormed(%q) = false for a fresh token", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q generated twice", tok)
		}
		seen[tok] = true
	}
}

func TestWellFormed(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"vgl_abcdefghijklmnopqrstuvwxyz234567", true},
		{"vgl_abcdefghijklmnopqrstuvwxyz23456", false},   // 31 chars
		{"vgl_abcdefghijklmnopqrstuvwxyz2345678", false}, // 33 chars
		{"vgl_ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", false},  // upper case
		{"vgl_abcdefghijklmnopqrstuvwxyz234561", false},  // '1' is not base32
		{"xyz_abcdefghijklmnopqrstuvwxyz234567", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := WellFormed(tt.in); got != tt.want {
			t.Errorf("WellFormed(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestHash(t *testing.T) {
	want := sha256.Sum256([]byte("vgl_x"))
	if got := Hash("vgl_x"); !bytes.Equal(got, want[:]) {
		t.Fatalf("Hash = %x, want %x", got, want)
	}
	if bytes.Equal(Hash("a"), Hash("b")) {
		t.Fatal("different tokens hash alike")
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"secret", "secret", true},
		{"secret", "secreT", false},
		{"secret", "secret2", false},
		{"", "", true},
		{"", "x", false},
	}
	for _, tt := range tests {
		if got := Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestBearer(t *testing.T) {
	tests := []struct {
		header string
		want   string
		ok     bool
	}{
		{"Bearer vgl_abc", "vgl_abc", true},
		{"bearer vgl_abc", "vgl_abc", true},
		{"BEARER  vgl_abc", "vgl_abc", true},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Bearer a b", "", false},
		{"vgl_abc", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := Bearer(tt.header)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("Bearer(%q) = %q, %v; want %q", tt.header, got, err, tt.want)
		}
		if !tt.ok && !errors.Is(err, ErrNoToken) {
			t.Errorf("Bearer(%q) = %q, %v; want ErrNoToken", tt.header, got, err)
		}
	}
}
