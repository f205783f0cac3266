package pinhash

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

func TestHashVerifyRoundTrip(t *testing.T) {
	for _, p := range []Params{TestParams(), DefaultParams(), {Memory: 2048, Time: 3, Threads: 2}} {
		enc, err := Hash("482913", p)
		if err != nil {
			t.Fatalf("Hash(%+v): %v", p, err)
		}
		ok, err := Verify(enc, "482913")
		if err != nil || !ok {
			t.Fatalf("Verify(right PIN) = %v, %v; want true, nil", ok, err)
		}
		ok, err = Verify(enc, "482914")
		if err != nil || ok {
			t.Fatalf("Verify(wrong PIN) = %v, %v; want false, nil", ok, err)
		}
		ok, err = Verify(enc, "")
		if err != nil || ok {
			t.Fatalf("Verify(empty PIN) = %v, %v; want false, nil", ok, err)
		}
	}
}

func TestHashFormatAndParams(t *testing.T) {
	p := Params{Memory: 1536, Time: 2, Threads: 3}
	enc, err := Hash("1234", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=1536,t=2,p=3$") {
		t.Fatalf("encoded hash %q does not start with the PHC prefix for %+v", enc, p)
	}
	got, err := ParamsOf(enc)
	if err != nil || got != p {
		t.Fatalf("ParamsOf = %+v, %v; want %+v", got, err, p)
	}
	// The key must be exactly Argon2id over the encoded salt with the encoded
	// parameters, so other implementations can verify our hashes.
	parts := strings.Split(enc, "$")
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) != saltLen {
		t.Fatalf("salt %q: len %d, err %v", parts[4], len(salt), err)
	}
	want := base64.RawStdEncoding.EncodeToString(argon2.IDKey([]byte("1234"), salt, 2, 1536, 3, keyLen))
	if parts[5] != want {
		t.Fatalf("hash field %q, want %q", parts[5], want)
	}
}

func TestHashSaltsDiffer(t *testing.T) {
	a, err := Hash("0000", TestParams())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Hash("0000", TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two hashes of the same PIN are identical: %q", a)
	}
}

func TestHashRejects(t *testing.T) {
	tests := []struct {
		name string
		pin  string
		p    Params
	}{
		{"empty PIN", "", TestParams()},
		{"zero threads", "1", Params{Memory: 1024, Time: 1, Threads: 0}},
		{"zero time", "1", Params{Memory: 1024, Time: 0, Threads: 1}},
		{"time too high", "1", Params{Memory: 1024, Time: 101, Threads: 1}},
		{"memory below 8*p", "1", Params{Memory: 15, Time: 1, Threads: 2}},
		{"memory above 1GiB", "1", Params{Memory: 1<<20 + 1, Time: 1, Threads: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if enc, err := Hash(tt.pin, tt.p); err == nil {
				t.Fatalf("Hash accepted: %q", enc)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	good, err := Hash("987654", TestParams())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	join := func(fields ...string) string { return strings.Join(fields, "$") }
	tests := []struct {
		name, enc string
	}{
		{"empty", ""},
		{"plain PIN", "987654"},
		{"missing leading $", strings.TrimPrefix(good, "$")},
		{"too few fields", join("", "argon2id", "v=19", "m=1024,t=1,p=1", salt)},
		{"too many fields", good + "$x"},
		{"argon2i", join("", "argon2i", "v=19", "m=1024,t=1,p=1", salt, key)},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"old version", join("", "argon2id", "v=16", "m=1024,t=1,p=1", salt, key)},
		{"params out of order", join("", "argon2id", "v=19", "t=1,m=1024,p=1", salt, key)},
		{"missing param", join("", "argon2id", "v=19", "m=1024,t=1", salt, key)},
		{"non-numeric", join("", "argon2id", "v=19", "m=lots,t=1,p=1", salt, key)},
		{"negative", join("", "argon2id", "v=19", "m=-1,t=1,p=1", salt, key)},
		{"memory 2 GiB", join("", "argon2id", "v=19", "m=2097152,t=1,p=1", salt, key)},
		{"time 1000", join("", "argon2id", "v=19", "m=1024,t=1000,p=1", salt, key)},
		{"threads 0", join("", "argon2id", "v=19", "m=1024,t=1,p=0", salt, key)},
		{"threads 256", join("", "argon2id", "v=19", "m=4096,t=1,p=256", salt, key)},
		{"salt not base64", join("", "argon2id", "v=19", "m=1024,t=1,p=1", "!!!!", key)},
		{"salt padded", join("", "argon2id", "v=19", "m=1024,t=1,p=1", salt+"==", key)},
		{"salt too short", join("", "argon2id", "v=19", "m=1024,t=1,p=1", "AAAA", key)},
		{"hash too short", join("", "argon2id", "v=19", "m=1024,t=1,p=1", salt, "AAAA")},
		{"hash empty", join("", "argon2id", "v=19", "m=1024,t=1,p=1", salt, "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := Verify(tt.enc, "987654")
			if err == nil {
				t.Fatalf("Verify(%q) = %v, nil; want error", tt.enc, ok)
			}
			if ok {
				t.Fatalf("Verify(%q) reported a match alongside error %v", tt.enc, err)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			if strings.Contains(err.Error(), "987654") {
				t.Fatalf("error leaks the PIN: %v", err)
			}
			if _, err := ParamsOf(tt.enc); err == nil {
				t.Fatalf("ParamsOf(%q) accepted a malformed hash", tt.enc)
			}
		})
	}
}

func BenchmarkVerifyDefaultParams(b *testing.B) {
	enc, err := Hash("482913", DefaultParams())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ok, err := Verify(enc, "482913")
		if err != nil || !ok {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}
