package codec

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
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

// legacySeal seals p as the codec did before payloads were bound: the key
// id alone as associated data, no binding metadata.
func legacySeal(t *testing.T, c *Codec, p *commonpb.Payload) *commonpb.Payload {
	t.Helper()
	plain, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	aead := c.aeads[c.active]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	return &commonpb.Payload{
		Metadata: map[string][]byte{"encoding": []byte(EncodingEncrypted), MetadataKeyID: []byte(c.active)},
		Data:     aead.Seal(nonce, nonce, plain, []byte(c.active)),
	}
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

func TestRoundTripHidesPlaintextAndBinds(t *testing.T) {
	c, err := New("k1", map[string][]byte{"k1": key(1)})
	if err != nil {
		t.Fatal(err)
	}
	dc := converter.WithDataConverterSerializationContext(c.DataConverter(), wf("vigil-request-r1"))
	p, err := dc.ToPayload(map[string]string{"Decision": "approve"})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(p.GetData(), []byte("approve")) {
		t.Fatal("encrypted payload contains its value in clear")
	}
	for k, want := range map[string]string{MetadataKeyID: "k1", MetadataWorkflowID: "vigil-request-r1", MetadataScope: ScopeWorkflow} {
		if got := string(p.GetMetadata()[k]); got != want {
			t.Fatalf("metadata %s = %q, want %q", k, got, want)
		}
	}
	var back map[string]string
	if err := dc.FromPayload(p, &back); err != nil {
		t.Fatal(err)
	}
	if back["Decision"] != "approve" {
		t.Fatalf("round trip = %v", back)
	}
	// Without a context (an operator reading history, the UI's codec
	// endpoint) a bound payload is read whatever it is bound to.
	back = nil
	if err := c.DataConverter().FromPayload(p, &back); err != nil || back["Decision"] != "approve" {
		t.Fatalf("context-free decode of a bound payload = %v, %v", back, err)
	}
}

// TestDecodeRefuses is every payload the codec must not decode, in a
// context and without one, and what it reports about each.
func TestDecodeRefuses(t *testing.T) {
	var got []Refusal
	c := recorded(t, &got)
	sealIn := func(sc converter.SerializationContext, v any) *commonpb.Payload {
		p, err := converter.WithDataConverterSerializationContext(c.DataConverter(), sc).ToPayload(v)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	decide := map[string]string{"Decision": "approve", "ApproverID": "ag_bob", "ApproverRole": "senior"}
	plainJSON, err := converter.GetDefaultDataConverter().ToPayload(decide)
	if err != nil {
		t.Fatal(err)
	}
	plainNull, err := converter.GetDefaultDataConverter().ToPayload(nil)
	if err != nil {
		t.Fatal(err)
	}
	fromA := sealIn(wf("vigil-request-a"), decide)
	relabelled := proto.Clone(fromA).(*commonpb.Payload)
	relabelled.Metadata[MetadataWorkflowID] = []byte("vigil-request-b")
	stripped := proto.Clone(fromA).(*commonpb.Payload)
	delete(stripped.Metadata, MetadataScope)
	delete(stripped.Metadata, MetadataWorkflowID)
	oddEncoding := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("PIN=482913")}, Data: []byte("482913")}

	tests := []struct {
		name       string
		sc         converter.SerializationContext // nil: context-free
		p          *commonpb.Payload
		want       error
		reason     string
		sealedFor  string
		wantEncode string
	}{
		{"plaintext JSON in a workflow", wf("vigil-request-b"), plainJSON, ErrPlaintext, ReasonPlaintext, "", "json/plain"},
		{"plaintext JSON without a context", nil, plainJSON, ErrPlaintext, ReasonPlaintext, "", "json/plain"},
		{"plaintext null", wf("vigil-request-b"), plainNull, ErrPlaintext, ReasonPlaintext, "", "binary/null"},
		{"plaintext activity result", act("vigil-request-b", "ConsumePINVerdict"), plainJSON, ErrPlaintext, ReasonPlaintext, "", "json/plain"},
		{"encoding the sender chose", wf("vigil-request-b"), oddEncoding, ErrPlaintext, ReasonPlaintext, "", "other"},
		{"copied from another workflow", wf("vigil-request-b"), fromA, ErrMisbound, ReasonMisbound, "vigil-request-a", EncodingEncrypted},
		{"workflow payload offered as an activity's", act("vigil-request-a", "ConsumePINVerdict"), fromA, ErrMisbound, ReasonMisbound, "vigil-request-a", EncodingEncrypted},
		{"another activity's result", act("vigil-request-a", "ConsumePINVerdict"), sealIn(act("vigil-request-a", "Open"), decide), ErrMisbound, ReasonMisbound, "vigil-request-a", EncodingEncrypted},
		{"sealed without a context, offered in one", wf("vigil-request-a"), func() *commonpb.Payload {
			p, err := c.DataConverter().ToPayload(decide)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}(), ErrMisbound, ReasonMisbound, "", EncodingEncrypted},
		{"binding relabelled to the target", wf("vigil-request-b"), relabelled, ErrUndecodable, ReasonUndecodable, "", EncodingEncrypted},
		{"binding stripped to pass as legacy", wf("vigil-request-a"), stripped, ErrUnbound, ReasonUnbound, "", EncodingEncrypted},
		{"legacy payload, switch off", wf("vigil-request-a"), legacySeal(t, c, plainJSON), ErrUnbound, ReasonUnbound, "", EncodingEncrypted},
		{"legacy payload without a context, switch off", nil, legacySeal(t, c, plainJSON), ErrUnbound, ReasonUnbound, "", EncodingEncrypted},
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
			if r.Reason != tt.reason || r.SealedFor != tt.sealedFor || r.Encoding != tt.wantEncode || len(r.Fingerprint) != 32 {
				t.Fatalf("refusal = %+v, want reason %s, sealed for %q, encoding %s", r, tt.reason, tt.sealedFor, tt.wantEncode)
			}
			if want := bindingOf(tt.sc); tt.sc != nil && (r.WorkflowID != want.workflowID || r.Scope != want.scope) {
				t.Fatalf("refusal names %s/%s, want %s/%s", r.WorkflowID, r.Scope, want.workflowID, want.scope)
			}
			if strings.Contains(strings.Join([]string{r.Reason, r.WorkflowID, r.Scope, r.SealedFor, r.SealedScope, r.Encoding, r.KeyID, r.Fingerprint}, " "), "482913") {
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
	if out, err := bc.Decode([]*commonpb.Payload{sealIn(wf("vigil-request-b"), decide), plainJSON}); err == nil || out != nil {
		t.Fatalf("a list with one plaintext payload decoded: %v, %v", out, err)
	}
}

// TestAcceptUnboundIsTheMigrationSwitch: with the switch on, payloads sealed
// before binding are read (running requests of the old release keep
// replaying); a bound payload is still held to its binding.
func TestAcceptUnboundIsTheMigrationSwitch(t *testing.T) {
	var got []Refusal
	c := recorded(t, &got, AcceptUnbound(true))
	plain, err := converter.GetDefaultDataConverter().ToPayload("x")
	if err != nil {
		t.Fatal(err)
	}
	legacy := legacySeal(t, c, plain)
	for _, pc := range []converter.PayloadCodec{c, c.WithSerializationContext(wf("vigil-request-a"))} {
		out, err := pc.Decode([]*commonpb.Payload{legacy})
		if err != nil || !proto.Equal(out[0], plain) {
			t.Fatalf("legacy payload with the switch on = %v, %v", out, err)
		}
	}
	fromA, err := c.WithSerializationContext(wf("vigil-request-a")).Encode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WithSerializationContext(wf("vigil-request-b")).Decode(fromA); !errors.Is(err, ErrMisbound) {
		t.Fatalf("misbound payload with the switch on: err = %v, want ErrMisbound", err)
	}
	stripped := proto.Clone(fromA[0]).(*commonpb.Payload)
	delete(stripped.Metadata, MetadataScope)
	if _, err := c.WithSerializationContext(wf("vigil-request-b")).Decode([]*commonpb.Payload{stripped}); !errors.Is(err, ErrUndecodable) {
		t.Fatalf("bound payload stripped to pass as legacy: err = %v, want ErrUndecodable", err)
	}
	if _, err := c.Decode([]*commonpb.Payload{plain}); !errors.Is(err, ErrPlaintext) {
		t.Fatalf("plaintext with the switch on: err = %v, want ErrPlaintext", err)
	}
	if len(got) != 3 {
		t.Fatalf("%d refusals, want 3 (misbound, undecodable, plaintext)", len(got))
	}
}

// TestFailuresAreBound: failure messages are encrypted and bound like any
// payload, though the SDK's own failure converter takes no context.
func TestFailuresAreBound(t *testing.T) {
	var got []Refusal
	c := recorded(t, &got)
	fc := c.FailureConverter().(converter.FailureConverterWithSerializationContext)
	f := fc.WithSerializationContext(act("vigil-request-a", "Execute")).ErrorToFailure(temporal.NewApplicationError("panel said 422 for srv-7", "Permanent"))
	raw, err := proto.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("srv-7")) {
		t.Fatal("failure message in clear")
	}
	back := fc.WithSerializationContext(act("vigil-request-a", "Execute")).FailureToError(proto.Clone(f).(*failurepb.Failure))
	if !strings.Contains(back.Error(), "srv-7") {
		t.Fatalf("failure decoded in its own context = %v", back)
	}
	got = nil
	other := fc.WithSerializationContext(act("vigil-request-b", "Execute")).FailureToError(proto.Clone(f).(*failurepb.Failure))
	if strings.Contains(other.Error(), "srv-7") || len(got) != 1 || got[0].Reason != ReasonMisbound {
		t.Fatalf("failure copied to another workflow = %v (refusals %+v)", other, got)
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
