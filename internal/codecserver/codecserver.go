// Package codecserver is the remote codec endpoint for the Temporal Web UI
// and CLI (Temporal's codec server protocol, decode only): it lets a
// signed-in member of the security team read request histories, and nobody
// else. It never encodes: sealing a payload for a workflow is exactly what a
// forger needs.
package codecserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/oidcauth"
	"github.com/vigil-oss/vigil/internal/store"
)

// Path is where the endpoint listens; the UI and the CLI are given
// Path without its last element (they append /decode).
const Path = "/codec/decode"

// Event is the audit event of one decode call.
const Event = "temporal.codec_decoded"

// maxBody bounds one call: the UI sends a page of payloads at a time.
const maxBody = 4 << 20

// TokenVerifier checks an ID token and names the agent it was issued to
// (oidcauth.Verifier).
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (string, error)
}

// Store is what the endpoint reads and writes: the agent behind a token,
// and the audit trail.
type Store interface {
	Agent(ctx context.Context, id string) (store.Agent, error)
	Audit(ctx context.Context, e store.AuditEvent) error
}

// Config is everything the endpoint needs.
type Config struct {
	Codec    *codec.Codec
	Verifier TokenVerifier
	Store    Store
	// Origins are the browser origins (the Temporal Web UI's) allowed to
	// call the endpoint across origins.
	Origins []string
	Logger  *slog.Logger
}

// Server serves Path.
type Server struct {
	cfg Config
}

// New checks cfg and returns the endpoint.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Codec == nil || cfg.Store == nil || cfg.Logger == nil:
		return nil, errors.New("codecserver: codec, store and logger are required")
	case cfg.Verifier == nil:
		return nil, errors.New("codecserver: the codec endpoint needs OIDC sign-in (VIGIL_OIDC_ISSUER)")
	}
	return &Server{cfg: cfg}, nil
}

// payloadsJSON is the protocol's body, both ways: {"payloads": [...]}, each
// payload in protobuf JSON (metadata and data in base64).
type payloadsJSON struct {
	Payloads []json.RawMessage `json:"payloads"`
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.cors(w, r)
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		problem(w, http.StatusMethodNotAllowed, "method_not_allowed", "the codec endpoint only decodes, with POST")
		return
	}
	agent, status, code, detail := s.authorize(r)
	if status != 0 {
		s.cfg.Logger.Warn("codec endpoint refused", "status", status, "code", code, "agent", agent)
		problem(w, status, code, detail)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		problem(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json")
		return
	}
	var in payloadsJSON
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		problem(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("at most %d bytes", maxBody))
		return
	}
	if err := json.Unmarshal(body, &in); err != nil {
		problem(w, http.StatusBadRequest, "invalid", "the body is not {\"payloads\": [...]}")
		return
	}
	out := payloadsJSON{Payloads: make([]json.RawMessage, 0, len(in.Payloads))}
	decoded := 0
	for i, raw := range in.Payloads {
		var p commonpb.Payload
		if err := protojson.Unmarshal(raw, &p); err != nil {
			problem(w, http.StatusBadRequest, "invalid", fmt.Sprintf("payload %d is not a Temporal payload", i+1))
			return
		}
		res, ok := s.decode(&p)
		if ok {
			decoded++
		}
		b, err := protojson.Marshal(res)
		if err != nil {
			problem(w, http.StatusInternalServerError, "internal", "")
			return
		}
		out.Payloads = append(out.Payloads, b)
	}
	// Who read how much of which namespace: reading a request's history
	// is an act of a person, like any other.
	if err := s.cfg.Store.Audit(r.Context(), store.AuditEvent{Actor: agent, Event: Event, Details: map[string]any{
		"namespace": clip(r.Header.Get("X-Namespace")), "payloads": len(in.Payloads), "decoded": decoded,
	}}); err != nil {
		s.cfg.Logger.Error("audit a codec decode", "error", err, "agent", agent)
		problem(w, http.StatusServiceUnavailable, "database_unavailable", "the decode could not be audited; try again")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}

// decode opens one payload for display. What it does not open goes back
// as it came, so the reader sees it still encoded: plaintext (search
// attributes, the server's own details), a key this process lacks, and any
// payload sealed before payloads were bound to their workflow. Those come
// from requests started before the PIN left the workflow input: their
// input may hold a PIN, so they are never decoded here, whatever the
// migration switch says.
func (s *Server) decode(p *commonpb.Payload) (*commonpb.Payload, bool) {
	md := p.GetMetadata()
	if string(md["encoding"]) != codec.EncodingEncrypted {
		return p, false
	}
	if _, bound := md[codec.MetadataScope]; !bound {
		return p, false
	}
	dec, err := s.cfg.Codec.Decode([]*commonpb.Payload{p})
	if err != nil {
		return p, false
	}
	return dec[0], true
}

// authorize names the agent behind the request's ID token, or says why
// not (status, code, detail). The role is the endpoint's list and the
// agents table's state, never anything the client sends.
func (s *Server) authorize(r *http.Request) (agent string, status int, code, detail string) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return "", http.StatusUnauthorized, "unauthenticated", "sign in: send your ID token as Authorization: Bearer"
	}
	id, err := s.cfg.Verifier.Verify(r.Context(), tok)
	switch {
	case errors.Is(err, oidcauth.ErrNoSecondFactor):
		return "", http.StatusUnauthorized, "second_factor_required", "sign in with a second factor"
	case err != nil:
		return "", http.StatusUnauthorized, "unauthenticated", err.Error()
	}
	a, err := s.cfg.Store.Agent(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return id, http.StatusForbidden, "forbidden", "no such agent"
	case err != nil:
		return id, http.StatusServiceUnavailable, "database_unavailable", "try again"
	case a.Disabled:
		return id, http.StatusForbidden, "forbidden", "this agent is disabled"
	case a.Role != domain.RoleSecurity:
		// The role is the agents table's, never the token's or the caller's word.
		return id, http.StatusForbidden, "forbidden", "only the security role reads request histories"
	}
	return a.ID, 0, "", ""
}

// cors lets the configured UI origins call the endpoint from the browser,
// with the user's token; any other origin gets no CORS headers.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" || !slices.Contains(s.cfg.Origins, origin) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
	h.Add("Vary", "Origin")
}

// namespaceName keeps a client-sent namespace name for the audit trail only
// if it looks like one.
var namespaceName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)

// clip is the namespace as audited: the header's value, or "other".
func clip(s string) string {
	if !namespaceName.MatchString(s) {
		return "other"
	}
	return s
}

func problem(w http.ResponseWriter, status int, code, detail string) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "https://vigil.dev/problems/" + code, "title": http.StatusText(status),
		"status": status, "code": code, "detail": detail})
}
