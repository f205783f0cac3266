// Package codec encrypts Temporal payloads with AES-256-GCM and refuses any
// payload it did not seal, so that what is in workflow history is unreadable
// and nobody who can only write to the namespace can feed a workflow a value
// of their own.
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

// Metadata values written on every encrypted payload.
const (
	EncodingEncrypted = "binary/encrypted"
	MetadataKeyID     = "encryption-key-id"
	metadataEncoding  = "encoding"
)

// ErrUnknownKey means a payload was encrypted with a key this process lacks.
var ErrUnknownKey = errors.New("payload encrypted with an unknown key id")

// ErrUndecodable means an encrypted payload cannot be decoded with the key it
// names: it is truncated, forged or corrupt. Unlike ErrUnknownKey, no process
// will ever decode it.
var ErrUndecodable = errors.New("encrypted payload cannot be decoded")

// ErrPlaintext means a payload was not encrypted: it was written by a client
// without the codec, and nothing in it can be trusted.
var ErrPlaintext = errors.New("payload is not encrypted")

// Reasons a Refusal gives, one per refusing error.
const (
	ReasonPlaintext   = "plaintext"
	ReasonUndecodable = "undecodable"
)

// Refusal describes one payload the codec refused to decode. It carries no
// byte of the payload: only where it was offered, what it claimed, and a
// keyed fingerprint to tell repeats of the same payload apart from others.
type Refusal struct {
	// Reason is one of the Reason* constants.
	Reason string
	// WorkflowID is the workflow the payload was offered to, when the
	// SDK says (empty without a context).
	WorkflowID string
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

// Codec is a converter.PayloadCodec that encrypts with the active key and
// decrypts with any known key, so keys can be rotated without losing history.
// The SDK gives it the workflow each payload belongs to through
// WithSerializationContext, so that a refusal can name it.
type Codec struct {
	active      string
	aeads       map[string]cipher.AEAD
	fingerprint []byte
	report      func(Refusal)
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

// Encode implements converter.PayloadCodec.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	aead := c.aeads[c.active]
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
				metadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:    []byte(c.active),
			},
			// The key id is authenticated so a payload can't be re-labelled.
			Data: aead.Seal(nonce, nonce, plain, []byte(c.active)),
		}
	}
	return out, nil
}

// Decode implements converter.PayloadCodec: every payload must be one this
// codec sealed. Nothing is let through in clear: the SDK seals everything
// it writes through the codec (nulls included); search attributes never
// pass a codec; the server's own payloads (an unstarted activity's cancel
// details) are never decoded by Vigil's workflow.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return c.decode("", payloads)
}

// WithSerializationContext implements converter.PayloadCodecWithSerializationContext:
// the codec it returns names the context's workflow in its refusals.
func (c *Codec) WithSerializationContext(sc converter.SerializationContext) converter.PayloadCodec {
	switch sc := sc.(type) {
	case converter.WorkflowSerializationContext:
		return &namedCodec{c: c, workflowID: sc.WorkflowID}
	case converter.ActivitySerializationContext:
		return &namedCodec{c: c, workflowID: sc.WorkflowID}
	}
	return c
}

// namedCodec is a Codec decoding for one workflow.
type namedCodec struct {
	c          *Codec
	workflowID string
}

// Encode implements converter.PayloadCodec.
func (n *namedCodec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return n.c.Encode(payloads)
}

// Decode implements converter.PayloadCodec.
func (n *namedCodec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	return n.c.decode(n.workflowID, payloads)
}

// decode opens every payload or refuses the lot.
func (c *Codec) decode(workflowID string, payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		dec, err := c.open(workflowID, p)
		if err != nil {
			return nil, err
		}
		out[i] = dec
	}
	return out, nil
}

func (c *Codec) open(workflowID string, p *commonpb.Payload) (*commonpb.Payload, error) {
	md := p.GetMetadata()
	refused := func(reason string, err error) error {
		c.refuse(workflowID, p, reason)
		return err
	}
	if string(md[metadataEncoding]) != EncodingEncrypted {
		return nil, refused(ReasonPlaintext, fmt.Errorf("codec: payload refused: %w", ErrPlaintext))
	}
	id := string(md[MetadataKeyID])
	aead, ok := c.aeads[id]
	if !ok {
		return nil, fmt.Errorf("codec: key id %q: %w", id, ErrUnknownKey)
	}
	data := p.GetData()
	if len(data) < aead.NonceSize()+aead.Overhead() {
		return nil, refused(ReasonUndecodable, fmt.Errorf("codec: %w: too short", ErrUndecodable))
	}
	plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(id))
	if err != nil {
		return nil, refused(ReasonUndecodable, fmt.Errorf("codec: decrypt with key %q: %w: %w", id, ErrUndecodable, err))
	}
	var dec commonpb.Payload
	if err := proto.Unmarshal(plain, &dec); err != nil {
		return nil, refused(ReasonUndecodable, fmt.Errorf("codec: unmarshal payload: %w: %w", ErrUndecodable, err))
	}
	return &dec, nil
}

// sdkEncodings are the encodings the SDK writes; any other is reported as
// "other", so a refusal never repeats what a sender chose to write there.
var sdkEncodings = map[string]bool{
	"binary/null": true, "binary/plain": true, "json/plain": true, "json/protobuf": true,
	"binary/protobuf": true, EncodingEncrypted: true,
}

func (c *Codec) refuse(workflowID string, p *commonpb.Payload, reason string) {
	if c.report == nil {
		return
	}
	r := Refusal{Reason: reason, WorkflowID: workflowID, Encoding: "other"}
	if enc := string(p.GetMetadata()[metadataEncoding]); sdkEncodings[enc] {
		r.Encoding = enc
	}
	if id := string(p.GetMetadata()[MetadataKeyID]); c.aeads[id] != nil {
		r.KeyID = id
	}
	raw, _ := proto.Marshal(p)
	mac := hmac.New(sha256.New, c.fingerprint)
	fmt.Fprintf(mac, "%d:%s;", len(r.WorkflowID), r.WorkflowID)
	mac.Write(raw)
	r.Fingerprint = hex.EncodeToString(mac.Sum(nil)[:16])
	c.report(r)
}

// DataConverter wraps the SDK's default converter with this codec.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// FailureConverter also encrypts failure messages and stack traces, which
// Temporal otherwise stores in clear text.
func (c *Codec) FailureConverter() converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          c.DataConverter(),
		EncodeCommonAttributes: true,
	})
}
