package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// PINVerdict is the web front's PIN check of one request, bound to the
// request as it was opened.
type PINVerdict struct {
	RequestID, WorkflowID                    string
	Action                                   domain.Action
	CustomerID, ServerID, Email, RequesterID string
	Verified, Locked, JustLocked             bool
	LockedUntil                              time.Time
	Failures                                 int
	CheckedAt, ExpiresAt                     time.Time
	VoidedAt, ConsumedAt                     *time.Time
	ConsumedByRun                            string
}

// VerdictClaim is what a workflow run says it is when its PIN gate reads
// the verdict: its own input and its workflow and run id, as Temporal gave
// them to the activity.
type VerdictClaim struct {
	RequestID, WorkflowID, RunID string
	Action                       domain.Action
	CustomerID, RequesterID      string
	ServerID, Email              string
	// PINInInput: the run was started with a PIN in its input, which the
	// web front never does any more; the verdict is refused and voided.
	PINInInput bool
}

// Why a verdict was refused to a workflow.
const (
	VerdictMissing     = "missing"      // no PIN was checked for this request id
	VerdictMismatch    = "mismatch"     // bound to another workflow id, customer, action, target or requester
	VerdictVoided      = "voided"       // its start did not happen, or a PIN came in the input
	VerdictExpired     = "expired"      // not consumed within its lifetime
	VerdictConsumed    = "consumed"     // already consumed by another run
	VerdictNotVerified = "not_verified" // the PIN was wrong or the customer locked
	VerdictPINInInput  = "pin_in_input" // the run carries a PIN in its input
	// VerdictInvalidClaim: the claim holds text the text rule refuses (a
	// NUL byte, a control character), which no verdict can match.
	VerdictInvalidClaim = "invalid_claim"
)

// VerdictRefusedError is a verdict a workflow may not pass its PIN gate on.
// The refusal is already audited (gate.pin.verdict_refused) and queued for
// the security channel; when the claim is the request's own (every bound
// field matches its row), the row is ended failed too.
type VerdictRefusedError struct {
	Reason string
	// Fields names the bound fields that differ, for VerdictMismatch.
	Fields []string
}

func (e *VerdictRefusedError) Error() string {
	if len(e.Fields) > 0 {
		return fmt.Sprintf("PIN verdict refused: %s (%s)", e.Reason, strings.Join(e.Fields, ", "))
	}
	return "PIN verdict refused: " + e.Reason
}

// recordOpenVerdict writes, in the check's transaction, the verdict of the
// PIN typed for r and what follows from it; see CheckPINForOpen.
func recordOpenVerdict(ctx context.Context, tx *sql.Tx, r Request, out PINOutcome, now time.Time, p PINPolicy) error {
	if out.AgentBlocked {
		// No request: the open is refused before it is one.
		return auditIn(ctx, tx, AuditEvent{Actor: "agent:" + r.RequesterID, Event: "pin.agent_blocked", At: now,
			Details: map[string]any{"customer": r.CustomerID, "action": string(r.Action),
				"blocked_until": out.AgentBlockedUntil.UTC().Format(time.RFC3339)}})
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO pin_verdicts (request_id, workflow_id, customer_id, action, server_id, email, requester_id,
			verified, locked, just_locked, locked_until, failures, checked_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		r.ID, r.WorkflowID, r.CustomerID, string(r.Action), r.ServerID, r.Email, r.RequesterID,
		out.Verified, out.Locked, out.JustLocked, nullTime(out.LockedUntil), out.Failures, now, now.Add(p.verdictTTL())); err != nil {
		if code, _ := pgCode(err); code == codeUniqueViolation {
			return fmt.Errorf("verdict for %s: %w", r.ID, ErrConflict)
		}
		return fmt.Errorf("verdict for %s: %w", r.ID, err)
	}
	base := map[string]any{"customer": r.CustomerID, "agent": r.RequesterID, "request": r.ID, "action": string(r.Action)}
	with := func(kv ...any) map[string]any {
		d := make(map[string]any, len(base)+len(kv)/2)
		for k, v := range base {
			d[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			d[kv[i].(string)] = kv[i+1]
		}
		return d
	}
	until := out.LockedUntil.UTC().Format(time.RFC3339)
	if out.JustLocked {
		if err := queueAlert(ctx, tx, AlertCustomerLocked, "", with("failures", out.Failures, "day_failures", out.DayFailures,
			"locked_until", until, "reason", out.LockReason)); err != nil {
			return err
		}
	}
	if out.SlowGuessing {
		if err := queueAlert(ctx, tx, AlertSlowGuessing, "", with("day_failures", out.DayFailures)); err != nil {
			return err
		}
	}
	if out.AgentJustBlocked {
		if err := queueAlert(ctx, tx, AlertAgentBlocked, "", with("failures", out.AgentFailures,
			"blocked_until", out.AgentBlockedUntil.UTC().Format(time.RFC3339))); err != nil {
			return err
		}
	}
	if out.Verified {
		return nil
	}
	// The request ends here: its row, final, and its whole trail.
	row := r
	row.Status, row.CreatedAt, row.EndedAt = domain.StatusPINRejected, now, &now
	gate := AuditEvent{RequestID: r.ID, Actor: "system", Event: "gate.pin.rejected", At: now,
		Details: map[string]any{"customer": r.CustomerID, "failures": out.Failures}}
	end := AuditEvent{RequestID: r.ID, Actor: "system", Event: "request.pin_rejected", At: now,
		Details: map[string]any{"failures": fmt.Sprint(out.Failures)}}
	if out.Locked && !out.JustLocked {
		row.Status = domain.StatusLocked
		gate.Event, gate.Details = "gate.pin.locked_out", map[string]any{"customer": r.CustomerID, "locked_until": until}
		end.Event, end.Details = "request.locked", map[string]any{"locked_until": until}
	}
	end.Details["status"] = string(row.Status)
	if err := insertRequest(ctx, tx, row); err != nil {
		return err
	}
	opened := OpenedEvent(row)
	opened.At = now
	if err := auditOnce(ctx, tx, opened, OpenedDedupe); err != nil {
		return err
	}
	if err := auditOnce(ctx, tx, gate, "pin"); err != nil {
		return err
	}
	if out.JustLocked {
		lock := AuditEvent{RequestID: r.ID, Actor: "system", Event: "customer.locked", At: now,
			Details: map[string]any{"customer": r.CustomerID, "failures": out.Failures, "locked_until": until, "reason": out.LockReason}}
		if err := auditOnce(ctx, tx, lock, "lock"); err != nil {
			return err
		}
	}
	return auditOnce(ctx, tx, end, end.Event+"/"+string(row.Status))
}

// auditIn appends e through q, inside the caller's transaction.
func auditIn(ctx context.Context, q queryer, e AuditEvent) error {
	details, err := auditDetails(e)
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Event, err)
	}
	_, err = q.ExecContext(ctx, `INSERT INTO audit_events (request_id, actor, event, details, at)
		VALUES ($1, $2, $3, $4, COALESCE($5, now()))`, nullString(e.RequestID), e.Actor, e.Event, string(details), nullTime(e.At))
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Event, err)
	}
	return nil
}

// VoidPINVerdict makes request id's verdict unusable: the start it was made
// for did not happen. A verdict already consumed stays as it is.
func (s *Store) VoidPINVerdict(ctx context.Context, requestID string, now time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE pin_verdicts SET voided_at = $2
		WHERE request_id = $1 AND voided_at IS NULL AND consumed_at IS NULL`, requestID, now); err != nil {
		return fmt.Errorf("store: void PIN verdict of %s: %w", requestID, err)
	}
	return nil
}

const verdictColumns = `request_id, workflow_id, action, customer_id, server_id, email, requester_id,
	verified, locked, just_locked, locked_until, failures, checked_at, expires_at, voided_at, consumed_at,
	COALESCE(consumed_by_run, '')`

func scanVerdict(row interface{ Scan(...any) error }) (PINVerdict, error) {
	var v PINVerdict
	var action string
	var until, voided, consumed sql.NullTime
	err := row.Scan(&v.RequestID, &v.WorkflowID, &action, &v.CustomerID, &v.ServerID, &v.Email, &v.RequesterID,
		&v.Verified, &v.Locked, &v.JustLocked, &until, &v.Failures, &v.CheckedAt, &v.ExpiresAt, &voided, &consumed,
		&v.ConsumedByRun)
	if err != nil {
		return PINVerdict{}, err
	}
	v.Action, v.LockedUntil, v.VoidedAt, v.ConsumedAt = domain.Action(action), until.Time, timePtr(voided), timePtr(consumed)
	return v, nil
}

// PINVerdictOf returns the verdict recorded for request id, or ErrNotFound.
func (s *Store) PINVerdictOf(ctx context.Context, requestID string) (PINVerdict, error) {
	v, err := scanVerdict(s.db.QueryRowContext(ctx, `SELECT `+verdictColumns+` FROM pin_verdicts WHERE request_id = $1`, requestID))
	if errors.Is(err, sql.ErrNoRows) {
		return PINVerdict{}, fmt.Errorf("store: PIN verdict of %s: %w", requestID, ErrNotFound)
	}
	if err != nil {
		return PINVerdict{}, fmt.Errorf("store: PIN verdict of %s: %w", requestID, err)
	}
	return v, nil
}

// differingFields names the bound fields of v that c does not match.
func differingFields(v PINVerdict, c VerdictClaim) []string {
	var out []string
	for _, f := range []struct{ name, have, want string }{
		{"workflow id", v.WorkflowID, c.WorkflowID}, {"customer", v.CustomerID, c.CustomerID},
		{"action", string(v.Action), string(c.Action)}, {"server", v.ServerID, c.ServerID},
		{"email", v.Email, c.Email}, {"requester", v.RequesterID, c.RequesterID},
	} {
		if f.have != f.want {
			out = append(out, f.name)
		}
	}
	return out
}

// ConsumePINVerdict is the workflow's PIN gate: it reads the verdict of
// c.RequestID and consumes it for run c.RunID, once. The run gets the
// verdict only if it was verified, every bound field matches c, it was
// neither voided nor expired and no other run consumed it; the same run
// asking again (a retried activity) gets it again. Anything else is a
// *VerdictRefusedError, and in the same transaction the refusal is audited
// on c.RequestID's trail (gate.pin.verdict_refused, naming the run and what
// differs), queued for the security channel, and, when c is the request's
// own claim (every bound field matches its row), the request is ended
// failed; the row of a request c only borrows the id of is never touched.
// A consumption is audited as gate.pin.verdict_consumed.
func (s *Store) ConsumePINVerdict(ctx context.Context, c VerdictClaim, now time.Time) (PINVerdict, error) {
	if c.RequestID == "" || c.WorkflowID == "" || c.RunID == "" {
		return PINVerdict{}, errors.New("store: consume PIN verdict: empty request, workflow or run id")
	}
	now = now.Truncate(time.Microsecond)
	var (
		v       PINVerdict
		refused *VerdictRefusedError
	)
	// A run started by hand can claim anything; text Postgres would refuse
	// (a NUL byte) must not turn the refusal into an error that hides it.
	clean := claimIsClean(c)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if !clean {
			refused = &VerdictRefusedError{Reason: VerdictInvalidClaim}
			return recordRefusal(ctx, tx, c, refused, now)
		}
		v, err = scanVerdict(tx.QueryRowContext(ctx, `SELECT `+verdictColumns+` FROM pin_verdicts WHERE request_id = $1 FOR UPDATE`, c.RequestID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			refused = &VerdictRefusedError{Reason: VerdictMissing}
		case err != nil:
			return err
		}
		if refused == nil {
			refused = judgeVerdict(v, c, now)
		}
		if refused == nil {
			if v.ConsumedByRun == c.RunID {
				return nil // a retry of the run that consumed it
			}
			if _, err := tx.ExecContext(ctx, `UPDATE pin_verdicts SET consumed_at = $2, consumed_by_run = $3 WHERE request_id = $1`,
				c.RequestID, now, c.RunID); err != nil {
				return err
			}
			v.ConsumedAt, v.ConsumedByRun = &now, c.RunID
			return auditOnce(ctx, tx, AuditEvent{RequestID: c.RequestID, Actor: "system", Event: "gate.pin.verdict_consumed", At: now,
				Details: map[string]any{"customer": c.CustomerID, "workflow_id": c.WorkflowID, "run_id": c.RunID,
					"checked_at": v.CheckedAt.UTC().Format(time.RFC3339Nano)}}, "verdict")
		}
		return recordRefusal(ctx, tx, c, refused, now)
	})
	if err != nil {
		return PINVerdict{}, fmt.Errorf("store: consume PIN verdict of %s: %w", c.RequestID, err)
	}
	if refused != nil {
		return PINVerdict{}, refused
	}
	return v, nil
}

// claimIsClean reports whether every field of c passes the text rule, so
// that it can be used in a query as it is.
func claimIsClean(c VerdictClaim) bool {
	for _, f := range []string{c.RequestID, c.WorkflowID, c.RunID, string(c.Action), c.CustomerID, c.RequesterID, c.ServerID, c.Email} {
		if textrule.Check("claim", f, textrule.Options{MaxLen: 1000}) != nil {
			return false
		}
	}
	return true
}

// judgeVerdict says why run c may not pass on v, or nil if it may.
func judgeVerdict(v PINVerdict, c VerdictClaim, now time.Time) *VerdictRefusedError {
	if fields := differingFields(v, c); len(fields) > 0 {
		return &VerdictRefusedError{Reason: VerdictMismatch, Fields: fields}
	}
	switch {
	case c.PINInInput:
		return &VerdictRefusedError{Reason: VerdictPINInInput}
	case v.ConsumedAt != nil && v.ConsumedByRun == c.RunID:
		return nil
	case v.ConsumedAt != nil:
		return &VerdictRefusedError{Reason: VerdictConsumed}
	case !v.Verified:
		return &VerdictRefusedError{Reason: VerdictNotVerified}
	case v.VoidedAt != nil:
		return &VerdictRefusedError{Reason: VerdictVoided}
	case !now.Before(v.ExpiresAt):
		return &VerdictRefusedError{Reason: VerdictExpired}
	}
	return nil
}

// recordRefusal audits and alerts a refused claim and, when the claim is
// the request's own, ends the request failed; all in tx.
func recordRefusal(ctx context.Context, tx *sql.Tx, c VerdictClaim, refused *VerdictRefusedError, now time.Time) error {
	if refused.Reason == VerdictPINInInput {
		// The verdict must not serve any run now: it was made for a start
		// without a PIN, and this one came with one.
		if _, err := tx.ExecContext(ctx, `UPDATE pin_verdicts SET voided_at = $2
			WHERE request_id = $1 AND voided_at IS NULL AND consumed_at IS NULL`, c.RequestID, now); err != nil {
			return err
		}
	}
	// What the run claimed is kept as written, escaped where the text rule
	// refuses it (a forged claim may carry anything).
	esc := textrule.Escape
	details := map[string]any{"reason": refused.Reason, "workflow_id": esc(c.WorkflowID), "run_id": esc(c.RunID),
		"customer": esc(c.CustomerID), "action": esc(string(c.Action)), "requester": esc(c.RequesterID)}
	if c.ServerID != "" {
		details["server"] = esc(c.ServerID)
	}
	if c.Email != "" {
		details["email"] = esc(c.Email)
	}
	if len(refused.Fields) > 0 {
		details["fields"] = slices.Clone(refused.Fields)
	}
	requestID := c.RequestID
	if textrule.Check("request id", c.RequestID, textrule.Options{MaxLen: 1000}) != nil {
		// Not even the request id can be used as a key: the event goes on
		// no request's trail, and says which id was claimed.
		details["request"], requestID = esc(c.RequestID), ""
	}
	dedupe := "verdict-refused/" + esc(c.RunID)
	if err := auditOnce(ctx, tx, AuditEvent{RequestID: requestID, Actor: "system", Event: "gate.pin.verdict_refused", At: now,
		Details: details}, dedupe); err != nil {
		return err
	}
	alert := map[string]any{"request": esc(c.RequestID)}
	for k, v := range details {
		alert[k] = v
	}
	if err := queueAlert(ctx, tx, AlertVerdictRefused, dedupe, alert); err != nil {
		return err
	}
	if !claimIsClean(c) {
		return nil // a claim Postgres could not even compare is no row's own
	}
	// The request's own row, if this claim is the request (not a run that
	// borrows its id), and still open, ends failed with it.
	var ownRow bool
	err := tx.QueryRowContext(ctx, `
		SELECT EXISTS (SELECT 1 FROM requests WHERE id = $1 AND workflow_id = $2 AND customer_id = $3 AND action = $4
			AND server_id = $5 AND email = $6 AND requester_id = $7 AND ended_at IS NULL)`,
		c.RequestID, c.WorkflowID, c.CustomerID, string(c.Action), c.ServerID, c.Email, c.RequesterID).Scan(&ownRow)
	if err != nil || !ownRow {
		return err
	}
	detail := "stopped at the pin gate: the PIN verdict was refused (" + refused.Reason + ")"
	if _, err := tx.ExecContext(ctx, `UPDATE requests SET status = $2, outcome_detail = $3, updated_at = $4, ended_at = $4
		WHERE id = $1`, c.RequestID, string(domain.StatusFailed), detail, now); err != nil {
		return err
	}
	return auditOnce(ctx, tx, AuditEvent{RequestID: c.RequestID, Actor: "system", Event: "request.failed", At: now,
		Details: map[string]any{"status": string(domain.StatusFailed), "gate": "pin", "cause": refused.Reason, "projection": "updated"}},
		"request.failed/"+string(domain.StatusFailed))
}
