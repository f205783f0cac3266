package codec

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// wf and act are the contexts the SDK gives the codec for a workflow's own
// payloads and for one of its activities'.
func wf(id string) converter.SerializationContext {
	return converter.WorkflowSerializationContext{Namespace: "default", WorkflowID: id}
}

func act(id, activity string) converter.SerializationContext {
	return converter.ActivitySerializationContext{Namespace: "default", WorkflowID: id, WorkflowType: "SensitiveRequest",
		ActivityType: activity, TaskQueue: "vigil"}
}

// recorded is a codec whose refusals land in *got.
func recorded(t *testing.T, got *[]Refusal, opts ...Option) *Codec {
	t.Helper()
	c, err := New("k1", map[string][]byte{"k1": key(1)}, append([]Option{OnRefusal(func(r Refusal) { *got = append(*got, r) })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoundTripHidesPlaintext(t *testing.T) {
	c, err := New("k1", map[string][]byte{"k1": key(1)})
	if err != nil {
		t.Fatal(err)
	}
	for _, dc := range []converter.DataConverter{c.DataConverter(), converter.WithDataConverterSerializationContext(c.DataConverter(), wf("vigil-request-r1"))} {
		p, err := dc.ToPayload(map[string]string{"Decision": "approve"})
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(p.GetData(), []byte("approve")) {
			t.Fatal("encrypted payload contains its value in clear")
		}
		if got := string(p.GetMetadata()[MetadataKeyID]); got != "k1" {
			t.Fatalf("key id metadata = %q, want k1", got)
		}
		var back map[string]string
		if err := dc.FromPayload(p, &back); err != nil {
			t.Fatal(err)
		}
		if back["Decision"] != "approve" {
			t.Fatalf("round trip = %v", back)
		}
	}
}

// TestDecodeRefuses is every payload the codec must not decode, in a
// context and without one, and what it reports about each.
func TestDecodeRefuses(t *testing.T) {
	var got []Refusal
	c := recorded(t, &got)
	decide := map[string]string{"Decision": "approve", "ApproverID": "ag_bob", "ApproverRole": "senior"}
	plainJSON, err := converter.GetDefaultDataConverter().ToPayload(decide)
	if err != nil {
		t.Fatal(err)
	}
	plainNull, err := converter.GetDefaultDataConverter().ToPayload(nil)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := c.DataConverter().ToPayload(decide)
	if err != nil {
		t.Fatal(err)
	}
	tampered := proto.Clone(sealed).(*commonpb.Payload)
	tampered.Data[len(tampered.Data)-1] ^= 1
	oddEncoding := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("PIN=482913")}, Data: []byte("482913")}

	tests := []struct {
		name       string
		sc         converter.SerializationContext // nil: context-free
		p          *commonpb.Payload
		want       error
		reason     string
		workflowID string
		wantEncode string
	}{
		{"plaintext JSON in a workflow", wf("vigil-request-b"), plainJSON, ErrPlaintext, ReasonPlaintext, "vigil-request-b", "json/plain"},
		{"plaintext JSON without a context", nil, plainJSON, ErrPlaintext, ReasonPlaintext, "", "json/plain"},
		{"plaintext null", wf("vigil-request-b"), plainNull, ErrPlaintext, ReasonPlaintext, "vigil-request-b", "binary/null"},
		{"plaintext activity result", act("vigil-request-b", "ConsumePINVerdict"), plainJSON, ErrPlaintext, ReasonPlaintext, "vigil-request-b", "json/plain"},
		{"encoding the sender chose", wf("vigil-request-b"), oddEncoding, ErrPlaintext, ReasonPlaintext, "vigil-request-b", "other"},
		{"tampered ciphertext", wf("vigil-request-b"), tampered, ErrUndecodable, ReasonUndecodable, "vigil-request-b", EncodingEncrypted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			var pc converter.PayloadCodec = c
			if tt.sc != nil {
				pc = c.WithSerializationContext(tt.sc)
			}
			out, err := pc.Decode([]*commonpb.Payload{tt.p})
			if !errors.Is(err, tt.want) || out != nil {
				t.Fatalf("decode = %v, %v; want %v", out, err, tt.want)
			}
			if strings.Contains(err.Error(), "482913") || strings.Contains(err.Error(), "ag_bob") {
				t.Fatalf("error repeats the payload: %v", err)
			}
			if len(got) != 1 {
				t.Fatalf("%d refusals reported, want 1", len(got))
			}
			r := got[0]
			if r.Reason != tt.reason || r.WorkflowID != tt.workflowID || r.Encoding != tt.wantEncode || len(r.Fingerprint) != 32 {
				t.Fatalf("refusal = %+v, want reason %s, workflow %q, encoding %s", r, tt.reason, tt.workflowID, tt.wantEncode)
			}
			if strings.Contains(strings.Join([]string{r.Reason, r.WorkflowID, r.Encoding, r.KeyID, r.Fingerprint}, " "), "482913") {
				t.Fatalf("refusal repeats the payload: %+v", r)
			}
		})
	}

	// The fingerprint tells repeats apart from other payloads.
	got = nil
	bc := c.WithSerializationContext(wf("vigil-request-b"))
	for _, p := range []*commonpb.Payload{plainJSON, plainJSON, plainNull} {
		_, _ = bc.Decode([]*commonpb.Payload{p})
	}
	if len(got) != 3 || got[0].Fingerprint != got[1].Fingerprint || got[0].Fingerprint == got[2].Fingerprint {
		t.Fatalf("fingerprints of a repeat and another payload: %+v", got)
	}
	// One refused payload refuses the lot: no half-decoded argument list.
	if out, err := bc.Decode([]*commonpb.Payload{sealed, plainJSON}); err == nil || out != nil {
		t.Fatalf("a list with one plaintext payload decoded: %v, %v", out, err)
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

	tampered := []*commonpb.Payload{proto.Clone(enc[0]).(*commonpb.Payload)}
	tampered[0].Data[len(tampered[0].Data)-1] ^= 1
	if _, err := old.Decode(tampered); !errors.Is(err, ErrUndecodable) {
		t.Fatalf("tampered payload: err = %v, want ErrUndecodable", err)
	}
	relabelled := []*commonpb.Payload{proto.Clone(enc[0]).(*commonpb.Payload)}
	relabelled[0].Metadata[MetadataKeyID] = []byte("k2")
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
