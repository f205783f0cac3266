package api

import (
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
)

// AuditEvent is one entry of the audit trail in JSON. Details are as they
// were recorded (an "dedupe" key is the writer's once-only key).
type AuditEvent struct {
	ID        int64          `json:"id"`
	RequestID string         `json:"request_id,omitempty"`
	At        time.Time      `json:"at"`
	Actor     string         `json:"actor"`
	Event     string         `json:"event"`
	Details   map[string]any `json:"details"`
}

// AuditTrail is the answer of GET /api/v1/requests/{id}/audit: the
// request's events in the order they were appended.
type AuditTrail struct {
	RequestID string       `json:"request_id"`
	Events    []AuditEvent `json:"events"`
}

// AuditPage is one page of GET /api/v1/audit. NextAfter is set when the page
// is full: more events may follow, and the next page is asked for with
// after=NextAfter.
type AuditPage struct {
	Events    []AuditEvent `json:"events"`
	NextAfter *int64       `json:"next_after,omitempty"`
}

// mayExportAudit is the one rule of who may export the whole audit trail:
// seniors and the security team.
func mayExportAudit(a store.Agent) bool {
	return a.Role == domain.RoleSenior || a.Role == domain.RoleSecurity
}

// requestAudit answers one request's trail to whoever may read the request
// (the read rule of GET /api/v1/requests/{id}); to anyone else it does not
// exist.
func (a *API) requestAudit(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !requestIDPattern.MatchString(id) {
		writeProblem(w, newProblem(codeRequestNotFound, "there is no request with that id (ids look like req_k3v9q2x7m4p8w1z5)"))
		return
	}
	if err := a.svc.CheckReadable(r.Context(), agentFrom(r.Context()), id); err != nil {
		a.fail(w, r, "audit trail", id, err)
		return
	}
	events, err := a.store.AuditTrail(r.Context(), id)
	if err != nil {
		a.internal(w, r, "audit trail", err)
		return
	}
	out := AuditTrail{RequestID: id, Events: make([]AuditEvent, 0, len(events))}
	for _, e := range events {
		out.Events = append(out.Events, auditEventFromStore(e))
	}
	writeJSON(w, http.StatusOK, out)
}

// auditParams are the accepted query parameters of GET /api/v1/audit.
var auditParams = map[string]bool{"since": true, "until": true, "customer": true, "agent": true, "event": true, "after": true, "limit": true}

// eventPattern is an event name, or a prefix of whole parts ending in ".*".
var eventPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?$`)

// Audit export page sizes.
const (
	defaultAuditLimit = 100
	maxEventLen       = 100
)

// exportAudit answers a page of the whole trail, filtered, for a SIEM.
func (a *API) exportAudit(w http.ResponseWriter, r *http.Request) {
	if !mayExportAudit(agentFrom(r.Context())) {
		writeProblem(w, newProblem(codeForbidden, "only senior agents and the security role may export the audit trail; `starter audit REQUEST_ID` shows the trail of a request you may read"))
		return
	}
	q := r.URL.Query()
	for k, v := range q {
		if !auditParams[k] {
			invalid(w, "unknown query parameter %q (accepted: since, until, customer, agent, event, after, limit)", k)
			return
		}
		if len(v) != 1 {
			invalid(w, "query parameter %q given %d times", k, len(v))
			return
		}
	}
	f := store.AuditFilter{Limit: defaultAuditLimit}
	for _, p := range []struct {
		name string
		to   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			invalid(w, "%s must be an RFC 3339 time such as 2026-03-01T00:00:00Z", p.name)
			return
		}
		*p.to = t
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		invalid(w, "since must be before until")
		return
	}
	if f.CustomerID = q.Get("customer"); f.CustomerID != "" && !idPattern.MatchString(f.CustomerID) {
		invalid(w, "customer must be a customer id such as C-1042")
		return
	}
	if f.AgentID = q.Get("agent"); f.AgentID != "" && !idPattern.MatchString(f.AgentID) {
		invalid(w, "agent must be an agent id such as ag_jane")
		return
	}
	if f.Event = q.Get("event"); f.Event != "" && (len(f.Event) > maxEventLen || !eventPattern.MatchString(f.Event)) {
		invalid(w, "event must be an event name such as gate.pin.rejected, or a prefix such as gate.*")
		return
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			invalid(w, "after must be an event id (a whole number, 0 or more): the next_after of the previous page")
			return
		}
		f.AfterID = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxAuditPage {
			invalid(w, "limit must be a whole number from 1 to %d", store.MaxAuditPage)
			return
		}
		f.Limit = n
	}
	events, err := a.store.AuditExport(r.Context(), f)
	if errors.Is(err, store.ErrUnknownCursor) {
		invalid(w, "after must be the id of an event: the next_after of the previous page")
		return
	}
	if err != nil {
		a.internal(w, r, "audit export", err)
		return
	}
	out := AuditPage{Events: make([]AuditEvent, 0, len(events))}
	for _, e := range events {
		out.Events = append(out.Events, auditEventFromStore(e))
	}
	if len(events) == f.Limit {
		next := events[len(events)-1].ID
		out.NextAfter = &next
	}
	writeJSON(w, http.StatusOK, out)
}

func auditEventFromStore(e store.AuditEvent) AuditEvent {
	d := e.Details
	if d == nil {
		d = map[string]any{}
	}
	return AuditEvent{ID: e.ID, RequestID: e.RequestID, At: e.At.UTC(), Actor: e.Actor, Event: e.Event, Details: d}
}
