package store

import (
	"context"
	"database/sql"
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

// AuditTrail returns a request's events in the export's order (see
// AuditExport): by writing transaction, then id.
func (s *Store) AuditTrail(ctx context.Context, requestID string) ([]AuditEvent, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT id, COALESCE(request_id, ''), actor, event, details, at
		FROM audit_events WHERE request_id = $1 ORDER BY xid, id`, requestID)
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
	// Since and Until bound the event's time: Since <= at < Until. They
	// filter, they are no cursor: at is taken when the event is written, not
	// when it commits, so a reader following the trail pages by AfterID.
	Since, Until time.Time
	// CustomerID keeps the events of the customer's requests and the events
	// about the customer itself (details customer_id or customer).
	CustomerID string
	// AgentID keeps the events the agent did (actor "agent:<id>") and those
	// about them (details agent_id: created, role changed, disabled, ...;
	// details agent: a Slack click refused on their request).
	AgentID string
	// Event is an event name ("gate.pin.rejected"), or a prefix ending in
	// ".*" ("gate.*").
	Event string
	// AfterID is the cursor: only events after this one in commit order
	// (see AuditExport). Paging passes the last id of the previous page; 0
	// starts at the beginning. An id that is no event is ErrUnknownCursor.
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

// ErrUnknownCursor is AuditExport's answer to an AfterID that is no event.
var ErrUnknownCursor = errors.New("after is not an event id")

// AuditExport returns the events matching f in commit order, at most
// f.Limit of them, starting after the event f.AfterID.
//
// The order is (xid, id): the writing transaction's id, then the event id,
// and only events of transactions older than every transaction still
// running (pg_snapshot_xmin of the current snapshot) are returned. An id
// alone is no cursor: it is taken at insert, and a transaction that inserts
// first and commits last (the open holds its transaction across the
// Temporal start) would land behind a cursor a reader already passed, and
// be skipped for ever. Below the snapshot's xmin every transaction has
// ended, and every transaction that starts later gets a larger xid, so
// nothing can appear behind the cursor: a reader paging with the last id of
// each page sees every committed event exactly once. The price is that a
// transaction left open holds back the events of later ones until it ends.
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
	// The cursor event's place in commit order; audit_events is append-only,
	// so an event handed out once keeps it.
	var afterXid string
	var afterID int64
	if f.AfterID > 0 {
		err := s.db.QueryRowContext(ctx, `SELECT xid::text, id FROM audit_events WHERE id = $1`, f.AfterID).Scan(&afterXid, &afterID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("store: audit export after %d: %w", f.AfterID, ErrUnknownCursor)
		}
		if err != nil {
			return nil, fmt.Errorf("store: audit export: %w", err)
		}
	}
	// The (xid, id) index serves the order and the cursor; the other
	// conditions are checked on the rows it walks.
	rows, err := s.db.QueryContext(ctx, `
		SELECT e.id, COALESCE(e.request_id, ''), e.actor, e.event, e.details, e.at
		FROM audit_events e
		WHERE ($1::text = '' OR (e.xid, e.id) > ($1::text::xid8, $9::bigint))
		  AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
		  AND ($2::timestamptz IS NULL OR e.at >= $2)
		  AND ($3::timestamptz IS NULL OR e.at < $3)
		  AND ($4::text = '' OR e.details->>'customer_id' = $4 OR e.details->>'customer' = $4
		       OR EXISTS (SELECT 1 FROM requests r WHERE r.id = e.request_id AND r.customer_id = $4))
		  AND ($5::text = '' OR e.actor = 'agent:' || $5 OR e.details->>'agent_id' = $5 OR e.details->>'agent' = $5)
		  AND ($6::text = '' OR e.event = $6)
		  AND ($7::text = '' OR starts_with(e.event, $7))
		ORDER BY e.xid, e.id
		LIMIT $8`,
		afterXid, nullTime(f.Since), nullTime(f.Until), f.CustomerID, f.AgentID, exact, prefix, limit, afterID)
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
