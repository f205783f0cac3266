package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
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

// AuditFilter narrows AuditExport. Zero fields match everything.
type AuditFilter struct {
	// Since and Until bound the event's time: Since <= at < Until.
	Since, Until time.Time
	// CustomerID keeps the events of the customer's requests and the events
	// about the customer itself (details customer_id or customer).
	CustomerID string
	// AgentID keeps the events the agent did (actor "agent:<id>") and those
	// about them (details agent_id: created, role changed, disabled, ...).
	AgentID string
	// Event is an event name ("gate.pin.rejected"), or a prefix ending in
	// ".*" ("gate.*").
	Event string
	// AfterID is the keyset: only events with a larger id. Paging passes
	// the last id of the previous page.
	AfterID int64
	// Limit is the page size: default 100, at most MaxAuditPage.
	Limit int
}

// Audit export page sizes.
const (
	defaultAuditPage = 100
	// MaxAuditPage is the largest page AuditExport returns.
	MaxAuditPage = 1000
)

// AuditExport returns the events matching f in the order they were
// appended (by id), at most f.Limit of them, starting after f.AfterID. The
// id order is the keyset: a page never skips or repeats an event, even while
// new ones are appended.
func (s *Store) AuditExport(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAuditPage
	}
	limit = min(limit, MaxAuditPage)
	exact, prefix := f.Event, ""
	if p, ok := strings.CutSuffix(f.Event, ".*"); ok {
		exact, prefix = "", p+"."
	}
	// The primary key serves the id order and the keyset; the other
	// conditions are checked on the rows it walks.
	rows, err := s.db.QueryContext(ctx, `
		SELECT e.id, COALESCE(e.request_id, ''), e.actor, e.event, e.details, e.at
		FROM audit_events e
		WHERE e.id > $1
		  AND ($2::timestamptz IS NULL OR e.at >= $2)
		  AND ($3::timestamptz IS NULL OR e.at < $3)
		  AND ($4::text = '' OR e.details->>'customer_id' = $4 OR e.details->>'customer' = $4
		       OR EXISTS (SELECT 1 FROM requests r WHERE r.id = e.request_id AND r.customer_id = $4))
		  AND ($5::text = '' OR e.actor = 'agent:' || $5 OR e.details->>'agent_id' = $5)
		  AND ($6::text = '' OR e.event = $6)
		  AND ($7::text = '' OR starts_with(e.event, $7))
		ORDER BY e.id
		LIMIT $8`,
		f.AfterID, nullTime(f.Since), nullTime(f.Until), f.CustomerID, f.AgentID, exact, prefix, limit)
	if err != nil {
		return nil, fmt.Errorf("store: audit export: %w", err)
	}
	defer rows.Close()
	out := []AuditEvent{}
	for rows.Next() {
		var e AuditEvent
		var raw []byte
		if err := rows.Scan(&e.ID, &e.RequestID, &e.Actor, &e.Event, &raw, &e.At); err != nil {
			return nil, fmt.Errorf("store: audit export: %w", err)
		}
		if err := json.Unmarshal(raw, &e.Details); err != nil {
			return nil, fmt.Errorf("store: audit export: event %d details: %w", e.ID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: audit export: %w", err)
	}
	return out, nil
}
