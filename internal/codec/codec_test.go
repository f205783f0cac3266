package codec

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestRoundTripHidesPlaintext(t *testing.T) {
	c, err := New("k1", map[string][]byte{"k1": key(1)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.DataConverter().ToPayload(map[string]string{"PIN": "482913"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.GetData(), []byte("482913")) {
		t.Fatal("encrypted payload contains the PIN in clear")
	}
	if got := string(p.GetMetadata()[MetadataKeyID]); got != "k1" {
		t.Fatalf("key id metadata = %q, want k1", got)
	}
	var back map[string]string
	if err := c.DataConverter().FromPayload(p, &back); err != nil {
		t.Fatal(err)
	}
	if back["PIN"] != "482913" {
		t.Fatalf("round trip = %v", back)
	}
}

func TestRotationAndRefusals(t *testing.T) {
	old, _ := New("k1", map[string][]byte{"k1": key(1)})
	enc, err := old.Encode([]*commonpb.Payload{{Data: []byte("secret")}})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := New("k2", map[string][]byte{"k1": key(1), "k2": key(2)})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := rotated.Decode(enc)
	if err != nil || string(dec[0].GetData()) != "secret" {
		t.Fatalf("rotated codec could not read old payload: %v", err)
	}
	newOnly, _ := New("k2", map[string][]byte{"k2": key(2)})
	if _, err := newOnly.Decode(enc); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("decode with unknown key: err = %v, want ErrUnknownKey", err)
	}

	tampered := []*commonpb.Payload{{Metadata: enc[0].Metadata, Data: append([]byte{}, enc[0].Data...)}}
	tampered[0].Data[len(tampered[0].Data)-1] ^= 1
	if _, err := old.Decode(tampered); !errors.Is(err, ErrUndecodable) {
		t.Fatalf("tampered payload: err = %v, want ErrUndecodable", err)
	}
	relabelled := []*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte(EncodingEncrypted), MetadataKeyID: []byte("k2")}, Data: enc[0].Data}}
	if _, err := rotated.Decode(relabelled); !errors.Is(err, ErrUndecodable) {
		t.Fatalf("payload relabelled with another key id: err = %v, want ErrUndecodable", err)
	}
	short := []*commonpb.Payload{{Metadata: enc[0].Metadata, Data: []byte{1, 2}}}
	if _, err := old.Decode(short); !errors.Is(err, ErrUndecodable) {
		t.Fatalf("short payload: err = %v, want ErrUndecodable", err)
	}
	// A key this process lacks may be known to another: not undecodable.
	if _, err := newOnly.Decode(enc); errors.Is(err, ErrUndecodable) {
		t.Fatalf("unknown key reported as undecodable: %v", err)
	}
	plain := []*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"x"`)}}
	if got, err := old.Decode(plain); err != nil || string(got[0].Data) != `"x"` {
		t.Fatalf("unencrypted payload should pass through: %v", err)
	}
}

func TestNewAndParseKeysRefuseBadConfig(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(key(7))
	tests := []struct {
		name string
		keys string
		want string
	}{
		{"empty", "", "none configured"},
		{"no colon", good, "not id:base64key"},
		{"bad base64", "k1:%%%", "not valid base64"},
		{"duplicate", "k1:" + good + ",k1:" + good, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKeys(tt.keys)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseKeys(%q) err = %v, want %q", tt.name, err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), good) {
				t.Fatal("error echoes key material")
			}
		})
	}
	keys, err := ParseKeys("k1:" + good)
	if err != nil || len(keys["k1"]) != 32 {
		t.Fatalf("ParseKeys good = %v, %v", keys, err)
	}
	if _, err := New("k1", map[string][]byte{"k1": key(1)[:16]}); err == nil {
		t.Fatal("16-byte key accepted")
	}
	if _, err := New("k9", map[string][]byte{"k1": key(1)}); err == nil {
		t.Fatal("missing active key accepted")
	}
}
