package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"
)

// AuditEvent is one entry of the append-only audit trail. RequestID is empty
// for events about agents rather than requests.
type AuditEvent struct {
	ID        int64
	RequestID string
	Actor     string
	Event     string
	Details   map[string]any
	At        time.Time
}

// dedupeField is the details key AuditOnce stores its key under.
const dedupeField = "dedupe"

// Audit appends e. A zero At means now.
func (s *Store) Audit(ctx context.Context, e AuditEvent) error {
	details, err := auditDetails(e)
	if err != nil {
		return fmt.Errorf("store: audit %s: %w", e.Event, err)
	}
	if _, err := s.db.ExecContext(ctx, `
		INSERT INTO audit_events (request_id, actor, event, details, at)
		VALUES ($1, $2, $3, $4, COALESCE($5, now()))`,
		nullString(e.RequestID), e.Actor, e.Event, string(details), nullTime(e.At)); err != nil {
		return fmt.Errorf("store: audit %s: %w", e.Event, err)
	}
	return nil
}

// AuditOnce appends e unless an event with the same request, event name and
// dedupeKey exists, so a retried activity records its event once. The key is
// kept in details under "dedupe".
func (s *Store) AuditOnce(ctx context.Context, e AuditEvent, dedupeKey string) error {
	return auditOnce(ctx, s.db, e, dedupeKey)
}

// auditOnce is AuditOnce through q: the pool or a transaction.
func auditOnce(ctx context.Context, q queryer, e AuditEvent, dedupeKey string) error {
	if dedupeKey == "" {
		return fmt.Errorf("store: audit %s: empty dedupe key", e.Event)
	}
	d := make(map[string]any, len(e.Details)+1)
	maps.Copy(d, e.Details)
	d[dedupeField] = dedupeKey
	e.Details = d
	details, err := auditDetails(e)
	if err != nil {
		return fmt.Errorf("store: audit %s: %w", e.Event, err)
	}
	if _, err := q.ExecContext(ctx, `
		INSERT INTO audit_events (request_id, actor, event, details, at)
		VALUES ($1, $2, $3, $4, COALESCE($5, now()))
		ON CONFLICT (request_id, event, (details->>'dedupe')) WHERE details ? 'dedupe' DO NOTHING`,
		nullString(e.RequestID), e.Actor, e.Event, string(details), nullTime(e.At)); err != nil {
		return fmt.Errorf("store: audit %s: %w", e.Event, err)
	}
	return nil
}

// auditDetails validates e and encodes its details as a JSON object.
func auditDetails(e AuditEvent) ([]byte, error) {
	if e.Actor == "" || e.Event == "" {
		return nil, errors.New("empty actor or event")
	}
	if e.Details == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(e.Details)
	if err != nil {
		return nil, fmt.Errorf("encode details: %w", err)
	}
	return b, nil
}

// AuditTrail returns a request's events in the order they were appended.
func (s *Store) AuditTrail(ctx context.Context, requestID string) ([]AuditEvent, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT id, COALESCE(request_id, ''), actor, event, details, at
		FROM audit_events WHERE request_id = $1 ORDER BY id`, requestID)
	if err != nil {
		return nil, fmt.Errorf("store: audit trail of %s: %w", requestID, err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var raw []byte
		if err := rows.Scan(&e.ID, &e.RequestID, &e.Actor, &e.Event, &raw, &e.At); err != nil {
			return nil, fmt.Errorf("store: audit trail of %s: %w", requestID, err)
		}
		if err := json.Unmarshal(raw, &e.Details); err != nil {
			return nil, fmt.Errorf("store: audit trail of %s: event %d details: %w", requestID, e.ID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: audit trail of %s: %w", requestID, err)
	}
	return out, nil
}
