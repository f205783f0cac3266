package panelstandin

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/vigil-oss/vigil/internal/domain"
)

// totpPeriod and totpSkew are the authenticator's step and the steps either
// side a code is still accepted at, as most panels configure them.
const (
	totpPeriod = 30
	totpSkew   = 1
)

// authorizedOnly answers 401 unless the call carries the stand-in's token or
// its read token.
func (s *Server) authorizedOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read := s.readToken != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+s.readToken)) == 1
		if !read && !s.authorized(r) {
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// securityEvents answers GET /v1/customers/{customer}/security-events?since=.
func (s *Server) securityEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	since := time.Now().Add(-30 * 24 * time.Hour)
	if v := r.URL.Query().Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "since must be an RFC 3339 time")
			return
		}
		since = t
	}
	// The newest 200, returned oldest first: a real panel caps its answer
	// too, and what it leaves out must be the oldest (Vigil refuses a full
	// page anyway).
	rows, err := s.db.QueryContext(r.Context(), `SELECT kind, channel, detail, at FROM (
		SELECT kind, channel, detail, at, id FROM standin_panel_security_events
		WHERE customer_id = $1 AND at >= $2 ORDER BY at DESC, id DESC LIMIT 200) newest ORDER BY at, id`, r.PathValue("customer"), since)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "could not read events")
		return
	}
	defer rows.Close()
	type event struct {
		Kind    string    `json:"kind"`
		Channel string    `json:"channel,omitempty"`
		Detail  string    `json:"detail,omitempty"`
		At      time.Time `json:"at"`
	}
	events := []event{}
	for rows.Next() {
		var e event
		if err := rows.Scan(&e.Kind, &e.Channel, &e.Detail, &e.At); err != nil {
			writeError(w, http.StatusInternalServerError, "internal", "could not read events")
			return
		}
		events = append(events, e)
	}
	if rows.Err() != nil {
		writeError(w, http.StatusInternalServerError, "internal", "could not read events")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events})
}

// verifyTOTP answers POST /v1/customers/{customer}/2fa/verify {"code":…}:
// valid once per step (a code seen before is invalid), 404 not_enrolled
// without an authenticator. The code is never logged.
func (s *Server) verifyTOTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
		return
	}
	var body struct {
		Code string `json:"code"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Code == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", `body must be {"code":"123456"}`)
		return
	}
	valid, err := s.checkTOTP(r.Context(), r.PathValue("customer"), body.Code, time.Now())
	switch {
	case errors.Is(err, sql.ErrNoRows):
		writeError(w, http.StatusNotFound, "not_enrolled", "the customer has no authenticator enrolled")
		return
	case err != nil:
		s.logger.Error("panel stand-in: verify TOTP", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "could not verify")
		return
	}
	s.logger.Info("panel TOTP verify", "customer", r.PathValue("customer"), "valid", valid)
	writeJSON(w, http.StatusOK, map[string]bool{"valid": valid})
}

// checkTOTP reports whether code matches the customer's authenticator at a
// step after the last one accepted, and records that step.
func (s *Server) checkTOTP(ctx context.Context, customer, code string, now time.Time) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	var secret string
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT secret, last_step FROM standin_panel_totp WHERE customer_id = $1 FOR UPDATE`, customer).Scan(&secret, &last); err != nil {
		return false, err
	}
	step := now.Unix() / totpPeriod
	for off := int64(-totpSkew); off <= totpSkew; off++ {
		at := time.Unix((step+off)*totpPeriod, 0)
		want, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return false, fmt.Errorf("generate: %w", err)
		}
		if want == code && step+off > last {
			if _, err := tx.ExecContext(ctx, `UPDATE standin_panel_totp SET last_step = $2 WHERE customer_id = $1`, customer, step+off); err != nil {
				return false, err
			}
			return true, tx.Commit()
		}
	}
	return false, nil
}

// TOTPCode is the code an authenticator app with the base32 secret shows at
// at, as the stand-in verifies it.
func TOTPCode(secret string, at time.Time) (string, error) {
	code, err := totp.GenerateCodeCustom(strings.ToUpper(strings.TrimSpace(secret)), at,
		totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return "", fmt.Errorf("panelstandin: totp code: %w", err)
	}
	return code, nil
}

// accountEffects records, after the panel performed q, what the customer's
// account history would show: an email change, and for disable_2fa the
// authenticator gone.
func (s *Server) accountEffects(ctx context.Context, q request) error {
	switch q.action {
	case domain.ActionChangeAccountEmail:
		return s.PlantEvent(ctx, q.customer, "email_changed", "", "", time.Time{})
	case domain.ActionDisable2FA:
		if _, err := s.db.ExecContext(ctx, `DELETE FROM standin_panel_totp WHERE customer_id = $1`, q.customer); err != nil {
			return err
		}
		return s.PlantEvent(ctx, q.customer, "2fa_changed", "", "disabled by support", time.Time{})
	}
	return nil
}

// PlantEvent records a security event on the customer's account (at zero:
// now), as the real panel would after a password reset, a login from a new
// country, and so on.
func (s *Server) PlantEvent(ctx context.Context, customer, kind, channel, detail string, at time.Time) error {
	if customer == "" || kind == "" {
		return errors.New("panelstandin: an event needs a customer and a kind")
	}
	if at.IsZero() {
		at = time.Now()
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO standin_panel_security_events (customer_id, kind, channel, detail, at) VALUES ($1, $2, $3, $4, $5)`,
		customer, kind, channel, detail, at)
	if err != nil {
		return fmt.Errorf("panelstandin: plant event: %w", err)
	}
	return nil
}

// EnrollTOTP gives the customer an authenticator with the base32 secret.
func (s *Server) EnrollTOTP(ctx context.Context, customer, secret string) error {
	secret = strings.ToUpper(strings.TrimSpace(secret))
	if customer == "" {
		return errors.New("panelstandin: enroll needs a customer")
	}
	if _, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret); err != nil || len(secret) < 16 {
		return errors.New("panelstandin: the secret must be base32, at least 16 characters")
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO standin_panel_totp (customer_id, secret) VALUES ($1, $2)
		ON CONFLICT (customer_id) DO UPDATE SET secret = EXCLUDED.secret, last_step = 0`, customer, secret)
	if err != nil {
		return fmt.Errorf("panelstandin: enroll: %w", err)
	}
	return nil
}

func (s *Server) adminPlantEvent(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Customer string    `json:"customer"`
		Kind     string    `json:"kind"`
		Channel  string    `json:"channel"`
		Detail   string    `json:"detail"`
		At       time.Time `json:"at"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "body must be {customer,kind,channel,detail,at}")
		return
	}
	if err := s.PlantEvent(r.Context(), req.Customer, req.Kind, req.Channel, req.Detail, req.At); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminEnrollTOTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Customer string `json:"customer"`
		Secret   string `json:"secret"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "body must be {customer,secret}")
		return
	}
	if err := s.EnrollTOTP(r.Context(), req.Customer, req.Secret); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
