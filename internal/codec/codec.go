// Package codec encrypts Temporal payloads with AES-256-GCM so that PINs and
// other request details are unreadable in workflow history.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
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

// Codec is a converter.PayloadCodec that encrypts with the active key and
// decrypts with any known key, so keys can be rotated without losing history.
type Codec struct {
	active string
	aeads  map[string]cipher.AEAD
}

// New builds a codec from raw 32-byte keys by id; active names the key new
// payloads are encrypted with.
func New(active string, keys map[string][]byte) (*Codec, error) {
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

// Decode implements converter.PayloadCodec. Payloads that are not encrypted
// pass through, so history written before encryption stays readable.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[metadataEncoding]) != EncodingEncrypted {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			return nil, fmt.Errorf("codec: key id %q: %w", id, ErrUnknownKey)
		}
		data := p.GetData()
		if len(data) < aead.NonceSize()+aead.Overhead() {
			return nil, fmt.Errorf("codec: %w: too short", ErrUndecodable)
		}
		plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(id))
		if err != nil {
			return nil, fmt.Errorf("codec: decrypt with key %q: %w: %w", id, ErrUndecodable, err)
		}
		var dec commonpb.Payload
		if err := proto.Unmarshal(plain, &dec); err != nil {
			return nil, fmt.Errorf("codec: unmarshal payload: %w: %w", ErrUndecodable, err)
		}
		out[i] = &dec
	}
	return out, nil
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
