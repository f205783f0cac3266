// Package panelstandin is a stand-in hosting control panel: it implements the
// Panel API (internal/panel/API.md), records every call in Postgres, and can
// inject faults so tests can exercise retries, ambiguous failures and crashes.
package panelstandin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/mail"
	"sync"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

const maxBodyBytes = 64 << 10

// schema is owned by the stand-in: it plays a separate system, so it does not
// use Vigil's migrations.
const schema = `
CREATE TABLE IF NOT EXISTS standin_panel_calls (
	id              bigserial PRIMARY KEY,
	method          text NOT NULL,
	path            text NOT NULL,
	idempotency_key text NOT NULL DEFAULT '',
	action          text NOT NULL DEFAULT '',
	customer_id     text NOT NULL DEFAULT '',
	server_id       text NOT NULL DEFAULT '',
	email           text NOT NULL DEFAULT '',
	status          integer NOT NULL DEFAULT 0,
	replayed        boolean NOT NULL DEFAULT false,
	received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS standin_panel_actions (
	id              bigserial PRIMARY KEY,
	idempotency_key text NOT NULL UNIQUE,
	request_hash    text NOT NULL,
	method          text NOT NULL,
	path            text NOT NULL,
	action          text NOT NULL,
	customer_id     text NOT NULL,
	server_id       text NOT NULL DEFAULT '',
	email           text NOT NULL DEFAULT '',
	status          integer NOT NULL,
	response        text NOT NULL,
	performed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS standin_panel_security_events (
	id          bigserial PRIMARY KEY,
	customer_id text NOT NULL,
	kind        text NOT NULL,
	channel     text NOT NULL DEFAULT '',
	detail      text NOT NULL DEFAULT '',
	at          timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS standin_panel_totp (
	customer_id text PRIMARY KEY,
	secret      text NOT NULL,
	last_step   bigint NOT NULL DEFAULT 0
);`

// schemaLock serialises concurrent CREATE TABLE IF NOT EXISTS, which can
// otherwise fail on the catalog's unique indexes.
const schemaLock = 7_305_012_001

// Call is one request the stand-in received (or, from Performed, one action it performed).
type Call struct {
	ID             int64     `json:"id"`
	Method         string    `json:"method"`
	Path           string    `json:"path"` // escaped
	IdempotencyKey string    `json:"idempotency_key"`
	Action         string    `json:"action"`
	CustomerID     string    `json:"customer_id"`
	ServerID       string    `json:"server_id"`
	Email          string    `json:"email"`
	Status         int       `json:"status"` // 0 while in flight; 499 when the client left while held
	Replayed       bool      `json:"replayed"`
	ReceivedAt     time.Time `json:"received_at"`
}

// Fault makes the stand-in misbehave on purpose. SetFault replaces the whole set.
type Fault struct {
	FailNext         int           // answer the next n API calls with Status before performing
	Status           int           // status for FailNext; 0 means 500
	HangAfterPerform time.Duration // perform and commit, then wait this long (or until the client leaves) before answering
	Hold             bool          // block each call before performing until Release or the client leaves
}

// Server is the stand-in panel.
type Server struct {
	db        *sql.DB
	token     string
	readToken string // accepted by the read-only account calls only; "" for none
	logger    *slog.Logger

	mu          sync.Mutex
	fault       Fault
	release     chan struct{} // closed by Release; nil when not holding
	held        int
	heldChanged chan struct{} // closed and replaced whenever held changes
}

// New creates the stand-in's tables if needed and returns a Server that
// accepts token as its bearer token for everything, and readToken (when not
// empty) for the read-only account calls only, as a real panel would give
// the internet-facing web front a token that cannot act.
func New(ctx context.Context, db *sql.DB, token, readToken string, logger *slog.Logger) (*Server, error) {
	if token == "" {
		return nil, errors.New("panelstandin: token is required")
	}
	if readToken == token {
		return nil, errors.New("panelstandin: the read token must differ from the token that acts")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("panelstandin: begin schema: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, schemaLock); err != nil {
		return nil, fmt.Errorf("panelstandin: lock schema: %w", err)
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return nil, fmt.Errorf("panelstandin: create schema: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("panelstandin: commit schema: %w", err)
	}
	return &Server{db: db, token: token, readToken: readToken, logger: logger, heldChanged: make(chan struct{})}, nil
}

// SetFault replaces the injected faults. Turning Hold off releases held calls.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Status == 0 {
		f.Status = http.StatusInternalServerError
	}
	s.fault = f
	if f.Hold && s.release == nil {
		s.release = make(chan struct{})
	}
	if !f.Hold && s.release != nil {
		close(s.release)
		s.release = nil
	}
}

// Release lets every held call go on and stops holding new ones.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault.Hold = false
	if s.release != nil {
		close(s.release)
		s.release = nil
	}
}

// WaitHeld returns once at least one call is being held, or when ctx ends.
func (s *Server) WaitHeld(ctx context.Context) error {
	for {
		s.mu.Lock()
		held, changed := s.held, s.heldChanged
		s.mu.Unlock()
		if held > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("panelstandin: waiting for a held call: %w", ctx.Err())
		case <-changed:
		}
	}
}

// takeFailure consumes one FailNext and returns its status, or 0.
func (s *Server) takeFailure() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fault.FailNext <= 0 {
		return 0
	}
	s.fault.FailNext--
	return s.fault.Status
}

func (s *Server) hangAfterPerform() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault.HangAfterPerform
}

// hold blocks while Hold is set, until Release or until ctx (the client) ends.
func (s *Server) hold(ctx context.Context) error {
	s.mu.Lock()
	release := s.release
	if release == nil {
		s.mu.Unlock()
		return nil
	}
	s.setHeld(+1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.setHeld(-1)
		s.mu.Unlock()
	}()
	select {
	case <-release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) setHeld(delta int) {
	s.held += delta
	close(s.heldChanged)
	s.heldChanged = make(chan struct{})
}

// Calls returns every call received, in arrival order.
func (s *Server) Calls(ctx context.Context) ([]Call, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, method, path, idempotency_key, action, customer_id, server_id, email, status, replayed, received_at
		FROM standin_panel_calls ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("panelstandin: list calls: %w", err)
	}
	return scanCalls(rows)
}

// Performed returns the actions actually performed, one per idempotency key, in order.
func (s *Server) Performed(ctx context.Context) ([]Call, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, method, path, idempotency_key, action, customer_id, server_id, email, status, false, performed_at
		FROM standin_panel_actions ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("panelstandin: list performed: %w", err)
	}
	return scanCalls(rows)
}

func scanCalls(rows *sql.Rows) ([]Call, error) {
	defer rows.Close()
	calls := []Call{}
	for rows.Next() {
		var c Call
		if err := rows.Scan(&c.ID, &c.Method, &c.Path, &c.IdempotencyKey, &c.Action, &c.CustomerID, &c.ServerID, &c.Email, &c.Status, &c.Replayed, &c.ReceivedAt); err != nil {
			return nil, fmt.Errorf("panelstandin: scan call: %w", err)
		}
		c.ReceivedAt = c.ReceivedAt.UTC()
		calls = append(calls, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("panelstandin: read calls: %w", err)
	}
	return calls, nil
}

// Handler serves the Panel API and, for loopback clients only, the admin
// endpoints under /_standin/:
//
//	GET  /_standin/calls      every call, JSON
//	GET  /_standin/performed  performed actions, JSON
//	POST /_standin/faults     {"fail_next":n,"status":s,"hang_after_perform":"2s","hold":true}
//	POST /_standin/release    release held calls and stop holding
//	GET  /_standin/held?wait=10s  200 once a call is held, 504 if none within wait
//	POST /_standin/security-events {"customer":…,"kind":…,"channel":…,"detail":…,"at":…}  plant an account event
//	POST /_standin/totp  {"customer":…,"secret":…}  enroll an authenticator (base32 secret)
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/customers/{customer}/servers/{server}/credentials", s.api(domain.ActionResendCredentials, http.MethodPost))
	mux.Handle("/v1/customers/{customer}/servers/{server}/reinstall", s.api(domain.ActionReinstallVPS, http.MethodPost))
	mux.Handle("/v1/customers/{customer}/contacts", s.api(domain.ActionAddContactEmail, http.MethodPost))
	mux.Handle("/v1/customers/{customer}/email", s.api(domain.ActionChangeAccountEmail, http.MethodPut))
	mux.Handle("/v1/customers/{customer}/2fa", s.api(domain.ActionDisable2FA, http.MethodDelete))
	mux.Handle("/v1/customers/{customer}/security-events", s.authorizedOnly(http.HandlerFunc(s.securityEvents)))
	mux.Handle("/v1/customers/{customer}/2fa/verify", s.authorizedOnly(http.HandlerFunc(s.verifyTOTP)))
	mux.Handle("/", s.api("", ""))

	admin := http.NewServeMux()
	admin.HandleFunc("GET /_standin/calls", s.adminCalls)
	admin.HandleFunc("GET /_standin/performed", s.adminPerformed)
	admin.HandleFunc("POST /_standin/faults", s.adminFaults)
	admin.HandleFunc("POST /_standin/release", s.adminRelease)
	admin.HandleFunc("GET /_standin/held", s.adminHeld)
	admin.HandleFunc("POST /_standin/security-events", s.adminPlantEvent)
	admin.HandleFunc("POST /_standin/totp", s.adminEnrollTOTP)
	mux.Handle("/_standin/", loopbackOnly(admin))
	return mux
}

// request is what one API call asks for, after routing.
type request struct {
	method, path, key string
	action            domain.Action
	customer, server  string
	email             string
}

func (q request) hash() string {
	h := sha256.New()
	for _, part := range []string{q.method, q.path, q.email} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// api handles one endpoint; action "" is the catch-all that answers 404.
func (s *Server) api(action domain.Action, method string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := request{
			method: r.Method, path: r.URL.EscapedPath(), key: r.Header.Get("Idempotency-Key"),
			action: action, customer: r.PathValue("customer"), server: r.PathValue("server"),
		}
		bodyErr := error(nil)
		if action.NeedsEmail() {
			q.email, bodyErr = readEmail(w, r)
		}
		// Recording and answering must finish even if the client has gone.
		ctx := context.WithoutCancel(r.Context())
		callID, err := s.recordCall(ctx, q)
		if err != nil {
			s.logger.Error("panel stand-in: record call", "err", err)
			writeError(w, http.StatusInternalServerError, "internal", "could not record the call")
			return
		}
		status, replayed := s.serveAPI(w, r, q, method, bodyErr)
		if _, err := s.db.ExecContext(ctx, `UPDATE standin_panel_calls SET status = $2, replayed = $3 WHERE id = $1`, callID, status, replayed); err != nil {
			s.logger.Error("panel stand-in: record status", "err", err)
		}
		s.logger.Info("panel call", "method", q.method, "path", q.path, "idempotency_key", q.key, "status", status, "replayed", replayed)
	})
}

// serveAPI answers one call and returns the status sent (499 if none was).
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, q request, method string, bodyErr error) (status int, replayed bool) {
	fail := func(status int, code, msg string) (int, bool) {
		writeError(w, status, code, msg)
		return status, false
	}
	if !s.authorized(r) {
		return fail(http.StatusUnauthorized, "unauthorized", "missing or invalid bearer token")
	}
	if q.action == "" {
		return fail(http.StatusNotFound, "not_found", "no such endpoint")
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		return fail(http.StatusMethodNotAllowed, "method_not_allowed", "use "+method)
	}
	if q.key == "" {
		return fail(http.StatusBadRequest, "idempotency_key_required", "the Idempotency-Key header is required")
	}
	if len(q.key) > 255 {
		return fail(http.StatusBadRequest, "invalid_idempotency_key", "the Idempotency-Key header is longer than 255 characters")
	}
	if bodyErr != nil {
		return fail(http.StatusBadRequest, "invalid_request", bodyErr.Error())
	}
	if st := s.takeFailure(); st != 0 {
		return fail(st, "injected_fault", "stand-in fault injected before performing")
	}
	if err := s.hold(r.Context()); err != nil {
		return 499, false // the client left while held: nothing performed, nobody to answer
	}

	ctx := context.WithoutCancel(r.Context())
	st, body, replayed, err := s.performOnce(ctx, q)
	if errors.Is(err, errKeyReused) {
		return fail(http.StatusUnprocessableEntity, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
	}
	if err != nil {
		s.logger.Error("panel stand-in: perform", "err", err)
		return fail(http.StatusInternalServerError, "internal", "could not perform the action")
	}
	if !replayed {
		if d := s.hangAfterPerform(); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return 499, false // performed, but the client gave up waiting: the ambiguous failure
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(st)
	_, _ = io.WriteString(w, body)
	return st, replayed
}

var errKeyReused = errors.New("idempotency key reused for a different request")

// performOnce performs q unless its key was seen; the INSERT that records the
// key is the action, so a key can never be performed twice, even concurrently:
// a second INSERT with the same key waits for the first to commit, then does nothing.
func (s *Server) performOnce(ctx context.Context, q request) (status int, body string, replayed bool, err error) {
	status, resp, err := newResponse(q)
	if err != nil {
		return 0, "", false, err
	}
	var id int64
	err = s.db.QueryRowContext(ctx, `INSERT INTO standin_panel_actions
		(idempotency_key, request_hash, method, path, action, customer_id, server_id, email, status, response)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (idempotency_key) DO NOTHING RETURNING id`,
		q.key, q.hash(), q.method, q.path, string(q.action), q.customer, q.server, q.email, status, resp).Scan(&id)
	if err == nil {
		if err := s.accountEffects(ctx, q); err != nil {
			s.logger.Error("panel stand-in: record the account's history", "err", err)
		}
		return status, resp, false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, "", false, fmt.Errorf("record action: %w", err)
	}
	var hash string
	err = s.db.QueryRowContext(ctx, `SELECT request_hash, status, response FROM standin_panel_actions WHERE idempotency_key = $1`, q.key).
		Scan(&hash, &status, &body)
	if err != nil {
		return 0, "", false, fmt.Errorf("load replay: %w", err)
	}
	if hash != q.hash() {
		return 0, "", false, errKeyReused
	}
	return status, body, true, nil
}

// newResponse makes the success answer for q, with fresh credentials when asked.
func newResponse(q request) (int, string, error) {
	ref, err := randomString(12)
	if err != nil {
		return 0, "", err
	}
	out := map[string]string{"reference": "ref-" + ref}
	status := http.StatusOK
	switch q.action {
	case domain.ActionResendCredentials:
		pw, err := randomString(20)
		if err != nil {
			return 0, "", err
		}
		out["username"] = "root"
		out["password"] = pw
	case domain.ActionReinstallVPS:
		out["reference"] = "job-" + ref
		status = http.StatusAccepted
	case domain.ActionAddContactEmail:
		status = http.StatusCreated
	case domain.ActionChangeAccountEmail, domain.ActionDisable2FA:
	default:
		return 0, "", fmt.Errorf("stand-in panel: no answer for action %q", q.action)
	}
	b, err := json.Marshal(out)
	return status, string(b), err
}

const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)] // slight bias is fine for a stand-in
	}
	return string(b), nil
}

func (s *Server) recordCall(ctx context.Context, q request) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, `INSERT INTO standin_panel_calls (method, path, idempotency_key, action, customer_id, server_id, email)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		q.method, q.path, q.key, string(q.action), q.customer, q.server, q.email).Scan(&id)
	return id, err
}

func (s *Server) authorized(r *http.Request) bool {
	want := "Bearer " + s.token
	return subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) == 1
}

func readEmail(w http.ResponseWriter, r *http.Request) (string, error) {
	var body struct {
		Email string `json:"email"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return "", errors.New(`body must be {"email":"…"}`)
	}
	a, err := mail.ParseAddress(body.Email)
	if err != nil || a.Address != body.Email {
		return body.Email, errors.New("email must be a plain address")
	}
	return body.Email, nil
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = code, msg
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			writeError(w, http.StatusForbidden, "forbidden", "admin endpoints answer loopback clients only")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) adminCalls(w http.ResponseWriter, r *http.Request) {
	calls, err := s.Calls(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, calls)
}

func (s *Server) adminPerformed(w http.ResponseWriter, r *http.Request) {
	calls, err := s.Performed(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, calls)
}

func (s *Server) adminFaults(w http.ResponseWriter, r *http.Request) {
	var req struct {
		FailNext         int    `json:"fail_next"`
		Status           int    `json:"status"`
		HangAfterPerform string `json:"hang_after_perform"`
		Hold             bool   `json:"hold"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "body must be {fail_next,status,hang_after_perform,hold}")
		return
	}
	f := Fault{FailNext: req.FailNext, Status: req.Status, Hold: req.Hold}
	if req.HangAfterPerform != "" {
		d, err := time.ParseDuration(req.HangAfterPerform)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, "invalid_request", "hang_after_perform must be a duration like 2s")
			return
		}
		f.HangAfterPerform = d
	}
	if f.FailNext < 0 || (f.Status != 0 && (f.Status < 400 || f.Status > 599)) {
		writeError(w, http.StatusBadRequest, "invalid_request", "fail_next must be >= 0 and status 400..599")
		return
	}
	s.SetFault(f)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminRelease(w http.ResponseWriter, _ *http.Request) {
	s.Release()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminHeld(w http.ResponseWriter, r *http.Request) {
	wait := 10 * time.Second
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 5*time.Minute {
			writeError(w, http.StatusBadRequest, "invalid_request", "wait must be a duration up to 5m")
			return
		}
		wait = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	if err := s.WaitHeld(ctx); err != nil {
		writeError(w, http.StatusGatewayTimeout, "not_held", "no call was held in time")
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"held": true})
}
