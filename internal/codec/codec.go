// Package codec encrypts Temporal payloads with AES-256-GCM, binds each one
// to the workflow it was written for, and refuses any payload it did not
// seal, so that what is in workflow history is unreadable and nobody who
// can only write to the namespace can feed a workflow a value of their own.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata written on every encrypted payload. The key id, the workflow id
// and the scope are in clear and authenticated: they are the AEAD's
// associated data, so none of them can be changed without the payload
// failing to decrypt.
const (
	EncodingEncrypted  = "binary/encrypted"
	MetadataKeyID      = "encryption-key-id"
	MetadataWorkflowID = "encryption-workflow-id"
	MetadataScope      = "encryption-scope"
	metadataEncoding   = "encoding"
)

// Scopes a payload can be bound to besides an activity's.
const (
	// ScopeWorkflow: a workflow's input and result, its Updates, queries
	// and markers.
	ScopeWorkflow = "workflow"
	// scopeActivityPrefix precedes the activity type: an activity's input,
	// result, heartbeat and failure details.
	scopeActivityPrefix = "activity/"
	// scopeNone: sealed where the SDK had no context to give.
	scopeNone = "none"
	// scopeNexusPrefix precedes a Nexus service and operation (unused by
	// Vigil; bound so that nothing is left unbound by accident).
	scopeNexusPrefix = "nexus/"
)

// aadVersion starts the associated data of a bound payload, so that it can
// never be mistaken for a legacy payload's (the key id alone).
const aadVersion = "vigil-codec/2"

// ErrUnknownKey means a payload was encrypted with a key this process lacks.
var ErrUnknownKey = errors.New("payload encrypted with an unknown key id")

// ErrUndecodable means an encrypted payload cannot be decoded with the key it
// names: it is truncated, forged or corrupt. Unlike ErrUnknownKey, no process
// will ever decode it.
var ErrUndecodable = errors.New("encrypted payload cannot be decoded")

// ErrPlaintext means a payload was not encrypted: it was written by a client
// without the codec, and nothing in it can be trusted.
var ErrPlaintext = errors.New("payload is not encrypted")

// ErrMisbound means a genuine payload was sealed for another workflow or
// another scope: it was copied from elsewhere in history.
var ErrMisbound = errors.New("payload was sealed for another workflow or scope")

// ErrUnbound means a payload was sealed before payloads were bound to their
// workflow, and this codec does not accept such payloads (AcceptUnbound).
var ErrUnbound = errors.New("payload is not bound to a workflow")

// Reasons a Refusal gives, one per refusing error.
const (
	ReasonPlaintext   = "plaintext"
	ReasonMisbound    = "misbound"
	ReasonUnbound     = "unbound"
	ReasonUndecodable = "undecodable"
)

// Refusal describes one payload the codec refused to decode. It carries no
// byte of the payload: only where it was offered, what it claimed, and a
// keyed fingerprint to tell repeats of the same payload apart from others.
type Refusal struct {
	// Reason is one of the Reason* constants.
	Reason string
	// WorkflowID and Scope are where the payload was offered (the
	// decoding context); both empty when decoded without a context.
	WorkflowID string
	Scope      string
	// SealedFor and SealedScope are the binding a misbound payload carries:
	// the workflow it was copied from.
	SealedFor   string
	SealedScope string
	// Encoding is the payload's encoding metadata, when it is one of the
	// SDK's own (anything else is reported as "other").
	Encoding string
	// KeyID is the key id the payload names, if any.
	KeyID string
	// Fingerprint is an HMAC of the payload under a key derived from the
	// active key: equal for the same payload, meaningless without the key.
	Fingerprint string
}

// Option adjusts a Codec.
type Option func(*Codec)

// OnRefusal has report called, synchronously, for every payload the codec
// refuses (not for an unknown key id, which another process may hold).
// report must not block.
func OnRefusal(report func(Refusal)) Option {
	return func(c *Codec) { c.report = report }
}

// AcceptUnbound makes the codec decode payloads sealed before payloads were
// bound to their workflow. It is the migration switch for a deployment whose
// running requests started before the upgrade; while it is on, a payload
// copied from such a history can be replayed into another workflow.
func AcceptUnbound(accept bool) Option {
	return func(c *Codec) { c.acceptUnbound = accept }
}

// Codec is a converter.PayloadCodec that encrypts with the active key and
// decrypts with any known key, so keys can be rotated without losing history.
// The SDK gives it the workflow (and activity) each payload belongs to
// through WithSerializationContext; the codec it returns binds and checks.
type Codec struct {
	active        string
	aeads         map[string]cipher.AEAD
	fingerprint   []byte
	report        func(Refusal)
	acceptUnbound bool
}

// New builds a codec from raw 32-byte keys by id; active names the key new
// payloads are encrypted with.
func New(active string, keys map[string][]byte, opts ...Option) (*Codec, error) {
	if active == "" {
		return nil, errors.New("codec: active key id is empty")
	}
	c := &Codec{active: active, aeads: make(map[string]cipher.AEAD, len(keys))}
	for id, k := range keys {
		if id == "" || strings.ContainsAny(id, ":,") {
			return nil, fmt.Errorf("codec: invalid key id %q", id)
		}
		if len(k) != 32 {
			return nil, fmt.Errorf("codec: key %q is %d bytes, want 32 (AES-256)", id, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", id, err)
		}
		c.aeads[id] = aead
	}
	if _, ok := c.aeads[active]; !ok {
		return nil, fmt.Errorf("codec: active key %q is not among the configured keys", active)
	}
	fp, err := hkdf.Key(sha256.New, keys[active], nil, "vigil codec refusal fingerprint", 32)
	if err != nil {
		return nil, fmt.Errorf("codec: derive the fingerprint key: %w", err)
	}
	c.fingerprint = fp
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// ParseKeys reads "id:base64key,id2:base64key" as found in VIGIL_CODEC_KEYS.
// Errors never echo the key material.
func ParseKeys(s string) (map[string][]byte, error) {
	keys := map[string][]byte{}
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, b64, ok := strings.Cut(part, ":")
		if !ok || id == "" {
			return nil, fmt.Errorf("codec keys: entry %d is not id:base64key", i+1)
		}
		k, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("codec keys: key %q is not valid base64", id)
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("codec keys: key id %q appears twice", id)
		}
		keys[id] = k
	}
	if len(keys) == 0 {
		return nil, errors.New("codec keys: none configured")
	}
	return keys, nil
}

// KeyIDs lists the configured key ids, sorted.
func (c *Codec) KeyIDs() []string {
	ids := make([]string, 0, len(c.aeads))
	for id := range c.aeads {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// AcceptsUnbound reports whether the migration switch is on.
func (c *Codec) AcceptsUnbound() bool { return c.acceptUnbound }

// binding is what a payload is sealed for.
type binding struct {
	workflowID string
	scope      string
}

// bindingOf maps the SDK's serialization context to a binding. The
// namespace is left out on purpose: the replayer runs histories in a
// namespace of its own, and a workflow id already names one request.
func bindingOf(sc converter.SerializationContext) binding {
	switch c := sc.(type) {
	case converter.WorkflowSerializationContext:
		return binding{workflowID: c.WorkflowID, scope: ScopeWorkflow}
	case converter.ActivitySerializationContext:
		return binding{workflowID: c.WorkflowID, scope: scopeActivityPrefix + c.ActivityType}
	case converter.NexusSerializationContext:
		return binding{scope: scopeNexusPrefix + c.Service + "/" + c.Operation}
	}
	return binding{scope: scopeNone}
}

// aad is the associated data of a bound payload: every field is
// length-prefixed so no two bindings share one.
func (b binding) aad(keyID string) []byte {
	var sb strings.Builder
	for _, f := range []string{aadVersion, keyID, b.workflowID, b.scope} {
		fmt.Fprintf(&sb, "%d:%s;", len(f), f)
	}
	return []byte(sb.String())
}

// Encode implements converter.PayloadCodec: it seals without a binding,
// which is what the SDK asks for where it has no context.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return c.encode(binding{scope: scopeNone}, payloads)
}

// Decode implements converter.PayloadCodec without a context: it refuses
// plaintext (and unbound payloads unless AcceptUnbound) and reads a bound
// payload whatever it is bound to, since there is nothing to compare with.
// Workers and clients decode through WithSerializationContext, which the SDK
// calls for every workflow and activity payload; this path serves operators
// reading history (the codec endpoint for the Web UI) and the SDK's few
// context-free paths.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return c.decode(nil, payloads)
}

// WithSerializationContext implements converter.PayloadCodecWithSerializationContext:
// the codec it returns seals payloads for the context's workflow and scope,
// and refuses any payload sealed for another.
func (c *Codec) WithSerializationContext(sc converter.SerializationContext) converter.PayloadCodec {
	b := bindingOf(sc)
	return &boundCodec{c: c, b: b}
}

// boundCodec is a Codec for one workflow and scope.
type boundCodec struct {
	c *Codec
	b binding
}

// Encode implements converter.PayloadCodec.
func (bc *boundCodec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return bc.c.encode(bc.b, payloads)
}

// Decode implements converter.PayloadCodec.
func (bc *boundCodec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return bc.c.decode(&bc.b, payloads)
}

func (c *Codec) encode(b binding, payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	aead := c.aeads[c.active]
	aad := b.aad(c.active)
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("codec: marshal payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("codec: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				metadataEncoding:   []byte(EncodingEncrypted),
				MetadataKeyID:      []byte(c.active),
				MetadataWorkflowID: []byte(b.workflowID),
				MetadataScope:      []byte(b.scope),
			},
			Data: aead.Seal(nonce, nonce, plain, aad),
		}
	}
	return out, nil
}

// decode opens every payload or refuses the lot. want is the binding the
// context requires, nil for none.
func (c *Codec) decode(want *binding, payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		dec, err := c.open(want, p)
		if err != nil {
			return nil, err
		}
		out[i] = dec
	}
	return out, nil
}

func (c *Codec) open(want *binding, p *commonpb.Payload) (*commonpb.Payload, error) {
	md := p.GetMetadata()
	refused := func(reason string, err error, sealed binding) error {
		c.refuse(want, p, reason, sealed)
		return err
	}
	if string(md[metadataEncoding]) != EncodingEncrypted {
		// Nothing the SDK writes through this codec is left in clear (search
		// attributes never pass a codec; the server's own payloads, such as
		// an activity's cancel details, are never decoded by Vigil).
		return nil, refused(ReasonPlaintext, fmt.Errorf("codec: payload refused: %w", ErrPlaintext), binding{})
	}
	id := string(md[MetadataKeyID])
	aead, ok := c.aeads[id]
	if !ok {
		return nil, fmt.Errorf("codec: key id %q: %w", id, ErrUnknownKey)
	}
	data := p.GetData()
	if len(data) < aead.NonceSize()+aead.Overhead() {
		return nil, refused(ReasonUndecodable, fmt.Errorf("codec: %w: too short", ErrUndecodable), binding{})
	}
	scope, bound := md[MetadataScope]
	sealed := binding{workflowID: string(md[MetadataWorkflowID]), scope: string(scope)}
	aad := []byte(id)
	if bound {
		aad = sealed.aad(id)
	} else if !c.acceptUnbound {
		return nil, refused(ReasonUnbound, fmt.Errorf("codec: payload refused: %w (see VIGIL_CODEC_ACCEPT_UNBOUND)", ErrUnbound), binding{})
	}
	plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], aad)
	if err != nil {
		return nil, refused(ReasonUndecodable, fmt.Errorf("codec: decrypt with key %q: %w: %w", id, ErrUndecodable, err), binding{})
	}
	// A genuine payload, but sealed for somewhere else: copied from
	// another workflow's history, or from another activity's.
	if bound && want != nil && sealed != *want {
		return nil, refused(ReasonMisbound, fmt.Errorf("codec: payload refused: %w", ErrMisbound), sealed)
	}
	var dec commonpb.Payload
	if err := proto.Unmarshal(plain, &dec); err != nil {
		return nil, refused(ReasonUndecodable, fmt.Errorf("codec: unmarshal payload: %w: %w", ErrUndecodable, err), binding{})
	}
	return &dec, nil
}

// sdkEncodings are the encodings the SDK writes; any other is reported as
// "other", so a refusal never repeats what a sender chose to write there.
var sdkEncodings = map[string]bool{
	"binary/null": true, "binary/plain": true, "json/plain": true, "json/protobuf": true,
	"binary/protobuf": true, EncodingEncrypted: true,
}

func (c *Codec) refuse(want *binding, p *commonpb.Payload, reason string, sealed binding) {
	if c.report == nil {
		return
	}
	r := Refusal{Reason: reason, SealedFor: sealed.workflowID, SealedScope: sealed.scope, Encoding: "other"}
	if want != nil {
		r.WorkflowID, r.Scope = want.workflowID, want.scope
	}
	if enc := string(p.GetMetadata()[metadataEncoding]); sdkEncodings[enc] {
		r.Encoding = enc
	}
	if id := string(p.GetMetadata()[MetadataKeyID]); c.aeads[id] != nil {
		r.KeyID = id
	}
	raw, _ := proto.Marshal(p)
	mac := hmac.New(sha256.New, c.fingerprint)
	fmt.Fprintf(mac, "%d:%s;%d:%s;", len(r.WorkflowID), r.WorkflowID, len(r.Scope), r.Scope)
	mac.Write(raw)
	r.Fingerprint = hex.EncodeToString(mac.Sum(nil)[:16])
	c.report(r)
}

// DataConverter wraps the SDK's default converter with this codec.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter also encrypts failure messages and stack traces, which
// Temporal otherwise stores in clear text, and binds them like any payload:
// the SDK's default failure converter takes no serialization context, so
// this one builds a default converter over the bound data converter for
// each context it is given.
func (c *Codec) FailureConverter() converter.FailureConverter {
	return newFailureConverter(c.DataConverter())
}

type failureConverter struct {
	dc converter.DataConverter
	converter.FailureConverter
}

func newFailureConverter(dc converter.DataConverter) failureConverter {
	return failureConverter{dc: dc, FailureConverter: temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          dc,
		EncodeCommonAttributes: true,
	})}
}

// WithSerializationContext implements converter.FailureConverterWithSerializationContext.
func (f failureConverter) WithSerializationContext(sc converter.SerializationContext) converter.FailureConverter {
	return newFailureConverter(converter.WithDataConverterSerializationContext(f.dc, sc))
}
