package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// Request is the listing projection of a sensitive request. The workflow is
// the source of truth; activities keep this row in step with it.
type Request struct {
	ID, WorkflowID                                                  string
	Action                                                          domain.Action
	CustomerID, RequesterID, ServerID, Email, Reason                string
	Status                                                          domain.Status
	ApproverID, Decision, DecisionReason                            string
	DecidedAt, NotifiedAt, CoolingEndsAt, EndedAt                   *time.Time
	SlackChannel, SlackTS, CancelledBy, CancelReason, OutcomeDetail string
	CreatedAt, UpdatedAt                                            time.Time
	// What the workflow's status shows besides, so a listing and a status
	// read answer alike. Zero until the workflow recorded it; OpenedAt
	// is CreatedAt for a row the workflow has not yet moved.
	OpenedAt                                                              time.Time
	PINVerifiedAt, LockedUntil, ApprovalDeadline, CancelledAt, ExecutedAt *time.Time
	PINFailures, Recipients                                               int
	BreakGlass                                                            bool
	SecondApproverID, CancelActorID, Reference                            string
}

// RequestUpdate changes a request; nil fields and an empty Status are left
// as they are.
type RequestUpdate struct {
	Status                                                          domain.Status
	ApproverID, Decision, DecisionReason                            *string
	DecidedAt, NotifiedAt, CoolingEndsAt                            *time.Time
	SlackChannel, SlackTS, CancelledBy, CancelReason, OutcomeDetail *string
	// OpenedAt is when the workflow opened the request (kept once set);
	// EndedAt, when it ended, if the workflow says so (else the update's
	// time, on a move to a final status).
	OpenedAt, EndedAt                                                     *time.Time
	PINVerifiedAt, LockedUntil, ApprovalDeadline, CancelledAt, ExecutedAt *time.Time
	PINFailures, Recipients                                               *int
	BreakGlass                                                            *bool
	SecondApproverID, CancelActorID, Reference                            *string
}

// ListFilter narrows ListRequests. Empty fields match everything.
type ListFilter struct {
	RequesterID, CustomerID string
	OpenOnly                bool // only requests not yet in a final status
	Limit                   int  // default 50, at most 500
}

// List limits.
const (
	defaultListLimit = 50
	maxListLimit     = 500
)

// knownStatuses guards against a typo'd status reaching the projection.
var knownStatuses = func() map[domain.Status]bool {
	m := map[domain.Status]bool{}
	for _, s := range domain.Statuses() {
		m[s] = true
	}
	return m
}()

const requestColumns = `id, workflow_id, action, customer_id, requester_id, server_id, email, reason, status,
	COALESCE(approver_id, ''), COALESCE(decision, ''), COALESCE(decision_reason, ''),
	decided_at, notified_at, cooling_ends_at, ended_at,
	COALESCE(slack_channel, ''), COALESCE(slack_ts, ''), COALESCE(cancelled_by, ''),
	COALESCE(cancel_reason, ''), COALESCE(outcome_detail, ''), created_at, updated_at,
	pin_verified_at, locked_until, approval_deadline, cancelled_at, executed_at, pin_failures, recipients,
	break_glass, COALESCE(second_approver_id, ''), COALESCE(cancel_actor_id, ''), COALESCE(reference, ''),
	COALESCE(opened_at, created_at)`

// scanRequest reads requestColumns.
func scanRequest(row interface{ Scan(...any) error }) (Request, error) {
	var r Request
	var action, status string
	var decided, notified, cooling, ended, pinAt, locked, deadline, cancelledAt, executed sql.NullTime
	err := row.Scan(&r.ID, &r.WorkflowID, &action, &r.CustomerID, &r.RequesterID, &r.ServerID, &r.Email,
		&r.Reason, &status, &r.ApproverID, &r.Decision, &r.DecisionReason,
		&decided, &notified, &cooling, &ended,
		&r.SlackChannel, &r.SlackTS, &r.CancelledBy, &r.CancelReason, &r.OutcomeDetail,
		&r.CreatedAt, &r.UpdatedAt,
		&pinAt, &locked, &deadline, &cancelledAt, &executed, &r.PINFailures, &r.Recipients,
		&r.BreakGlass, &r.SecondApproverID, &r.CancelActorID, &r.Reference, &r.OpenedAt)
	if err != nil {
		return Request{}, err
	}
	r.Action, r.Status = domain.Action(action), domain.Status(status)
	r.DecidedAt, r.NotifiedAt, r.CoolingEndsAt, r.EndedAt = timePtr(decided), timePtr(notified), timePtr(cooling), timePtr(ended)
	r.PINVerifiedAt, r.LockedUntil, r.ApprovalDeadline = timePtr(pinAt), timePtr(locked), timePtr(deadline)
	r.CancelledAt, r.ExecutedAt = timePtr(cancelledAt), timePtr(executed)
	return r, nil
}

// ErrDuplicateOpen means another request for the same customer, action and
// target (server, or address in any letter case) is still open. It is a kind
// of ErrConflict: retrying cannot help until that request ends. The error
// carries the open request as a *DuplicateOpenError.
var ErrDuplicateOpen = fmt.Errorf("%w: a request for this customer, action and target is already open", ErrConflict)

// DuplicateOpenError names the open request that holds the slot. ID is empty
// in the rare case that request ended between the refusal and the look-up,
// and when OtherCustomer is set.
type DuplicateOpenError struct {
	ID     string
	Status domain.Status
	// OtherCustomer: the holder is a request of another customer on the
	// same server (the server was moved while it was open). It is not
	// named: the caller may not read it.
	OtherCustomer bool
}

func (e *DuplicateOpenError) Error() string {
	if e.OtherCustomer {
		return "a request for this action and server is still open for the server's previous owner"
	}
	if e.ID == "" {
		return ErrDuplicateOpen.Error()
	}
	return fmt.Sprintf("request %s (%s) is already open for this customer, action and target", e.ID, e.Status)
}

// Unwrap makes errors.Is match ErrDuplicateOpen and ErrConflict.
func (e *DuplicateOpenError) Unwrap() error { return ErrDuplicateOpen }

// The unique indexes that hold the open slots: migration 0004's, one open
// request per customer, action and target; and migration 0008's, one open
// request per action and server whoever the customer, since a server can
// move between customers.
const (
	openSlotIndex       = "requests_one_open"
	openServerSlotIndex = "requests_one_open_server"
)

// queryer is what inserting a request needs: the pool or a transaction.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// OpenedDedupe is the AuditOnce key of a request's request.opened event.
const OpenedDedupe = "opened"

// OpenedEvent is the request.opened audit event of r, as the workflow's Open
// activity records it (with OpenedDedupe), so that whichever of the API and
// the activity writes it first, the trail has it once.
func OpenedEvent(r Request) AuditEvent {
	details := map[string]any{"action": string(r.Action), "customer": r.CustomerID, "reason": r.Reason}
	if r.ServerID != "" {
		details["server"] = r.ServerID
	}
	if r.Email != "" {
		details["email"] = r.Email
	}
	return AuditEvent{RequestID: r.ID, Actor: "agent:" + r.RequesterID, Event: "request.opened", Details: details}
}

// errSlotTaken is insertRequest's "the open slot is taken"; callers turn it
// into a *DuplicateOpenError once they can read outside the failed
// transaction.
var errSlotTaken = errors.New("open slot taken")

// CreateRequest records a request. Creating the same request again (same
// id, workflow id, action, customer, requester, server, address and reason)
// changes nothing: the workflow's Open activity retries, and repeats the row
// the API already wrote. The same id with other contents is ErrConflict. An
// empty Status means pin_check; a zero CreatedAt means now. A missing
// customer or requester is ErrNotFound; a workflow id already used by
// another request is ErrConflict; an open request for the same customer,
// action and target is a *DuplicateOpenError (errors.Is ErrDuplicateOpen).
func (s *Store) CreateRequest(ctx context.Context, r Request) error {
	if err := checkNewRequest(&r); err != nil {
		return err
	}
	return s.retryTakenSlot(ctx, "create request", r, func() error { return insertRequest(ctx, s.db, r) })
}

// retryTakenSlot runs insert and, when the open slot is taken, returns the
// request holding it. If that request ended between the INSERT and the
// look-up the slot is free, and insert runs once more.
func (s *Store) retryTakenSlot(ctx context.Context, what string, r Request, insert func() error) error {
	for range 2 {
		err := insert()
		if !errors.Is(err, errSlotTaken) {
			return err
		}
		dup, err := s.slotHolder(ctx, r)
		if err != nil {
			return fmt.Errorf("store: %s %s: %w", what, r.ID, err)
		}
		if dup != nil {
			return fmt.Errorf("store: %s %s: %w", what, r.ID, dup)
		}
	}
	return fmt.Errorf("store: %s %s: %w", what, r.ID, &DuplicateOpenError{})
}

// OpenRequest records a new request and its request.opened audit event (see
// OpenedEvent) and, in the same transaction, calls start (which starts its
// workflow): the row and the event are committed only if start
// returned nil, so a request is never listed without a workflow that was
// asked to start, and a start that failed leaves no row. start runs with
// ctx; its error is returned as is (not wrapped), for the caller to judge.
//
// What happens at each point it can stop:
//   - the INSERT fails (the slot is taken: *DuplicateOpenError; the
//     database is away; ...): start is not called, nothing changed.
//   - start fails: the transaction rolls back, nothing changed here. If the
//     start failed ambiguously (a timeout) and the workflow did start after
//     all, its Open activity writes this same row.
//   - start succeeded but COMMIT failed, or the process died before it: the
//     row is gone with the transaction, and the workflow's Open activity,
//     which makes the same INSERT idempotently, writes it when it runs.
//     OpenRequest returns the commit error; only the caller knows start
//     succeeded.
//
// A concurrent OpenRequest for the same slot waits in its INSERT until this
// transaction ends, then fails (this one committed) or goes ahead (this one
// rolled back). So does the workflow's own Open activity for this id, which
// then finds the committed row and does nothing.
func (s *Store) OpenRequest(ctx context.Context, r Request, start func(context.Context) error) error {
	return s.OpenRequestWith(ctx, r, nil, start)
}

// OpenRequestWith is OpenRequest with more audit events of r written in the
// same transaction, after request.opened (the PIN check's gate.pin.verified),
// each once per request and event name.
func (s *Store) OpenRequestWith(ctx context.Context, r Request, events []AuditEvent, start func(context.Context) error) error {
	if err := checkNewRequest(&r); err != nil {
		return err
	}
	// The transaction must outlive a caller that hangs up once start has
	// succeeded: database/sql rolls a transaction back when its context
	// ends, which would drop the row of a request that exists. Statements
	// still run on ctx, so a caller that gives up while the INSERT waits
	// stops it.
	txCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), openTxTimeout)
	defer cancel()
	return s.retryTakenSlot(ctx, "open request", r, func() error { return s.openOnce(ctx, txCtx, r, events, start) })
}

// OpenSlotHolder returns the open request holding r's slot (same customer,
// action and target), or nil when the slot is free: a read before the PIN
// is checked, so a duplicate is refused without spending a guess.
// OpenRequest still decides, under the unique index.
func (s *Store) OpenSlotHolder(ctx context.Context, r Request) (*DuplicateOpenError, error) {
	dup, err := s.slotHolder(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("store: open slot of %s: %w", r.ID, err)
	}
	return dup, nil
}

// openTxTimeout bounds OpenRequest's transaction: its INSERT may wait for a
// competing open's start, and start itself is bounded by the caller.
const openTxTimeout = time.Minute

func (s *Store) openOnce(ctx, txCtx context.Context, r Request, events []AuditEvent, start func(context.Context) error) error {
	tx, err := s.db.BeginTx(txCtx, nil)
	if err != nil {
		return fmt.Errorf("store: open request %s: begin: %w", r.ID, err)
	}
	defer func() { _ = tx.Rollback() }() // no-op after Commit
	if err := insertRequest(ctx, tx, r); err != nil {
		return err
	}
	if err := auditOnce(ctx, tx, OpenedEvent(r), OpenedDedupe); err != nil {
		return fmt.Errorf("store: open request %s: %w", r.ID, err)
	}
	for _, e := range events {
		e.RequestID = r.ID
		if err := auditOnce(ctx, tx, e, "open/"+e.Event); err != nil {
			return fmt.Errorf("store: open request %s: %w", r.ID, err)
		}
	}
	if err := start(ctx); err != nil {
		return err // start's own error, for the caller to judge
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: open request %s: commit: %w", r.ID, err)
	}
	return nil
}

// checkNewRequest validates r and fills in its defaults.
func checkNewRequest(r *Request) error {
	if r.ID == "" || r.WorkflowID == "" {
		return errors.New("store: create request: empty id or workflow id")
	}
	if _, err := domain.ParseAction(string(r.Action)); err != nil {
		return fmt.Errorf("store: create request %s: %w", r.ID, err)
	}
	if r.Status == "" {
		r.Status = domain.StatusPINCheck
	}
	if !knownStatuses[r.Status] {
		return fmt.Errorf("store: create request %s: unknown status %q", r.ID, r.Status)
	}
	return nil
}

// insertRequest inserts r through q. A row with r's id already there is fine
// if it is the same request and ErrConflict otherwise; a taken open slot is
// errSlotTaken.
func insertRequest(ctx context.Context, q queryer, r Request) error {
	var endedAt time.Time // used only for a final status; zero falls back to created_at
	if r.EndedAt != nil {
		endedAt = *r.EndedAt
	}
	// ON CONFLICT (id) covers only the primary key: a clash on the open slot
	// or the workflow id is still an error. An INSERT that meets an
	// uncommitted row with the same id or slot waits for its transaction.
	var inserted bool
	err := q.QueryRowContext(ctx, `
		INSERT INTO requests (id, workflow_id, action, customer_id, requester_id, server_id, email, reason,
			status, approver_id, decision, decision_reason, decided_at, slack_channel, slack_ts,
			notified_at, cooling_ends_at, cancelled_by, cancel_reason, outcome_detail,
			created_at, updated_at, ended_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
			COALESCE($21, now()), COALESCE($21, now()),
			CASE WHEN $22 THEN COALESCE($23, $21, now()) END)
		ON CONFLICT (id) DO NOTHING
		RETURNING true`,
		r.ID, r.WorkflowID, string(r.Action), r.CustomerID, r.RequesterID, r.ServerID, r.Email, r.Reason,
		string(r.Status), nullString(r.ApproverID), nullString(r.Decision), nullString(r.DecisionReason),
		ptrTime(r.DecidedAt), nullString(r.SlackChannel), nullString(r.SlackTS),
		ptrTime(r.NotifiedAt), ptrTime(r.CoolingEndsAt), nullString(r.CancelledBy),
		nullString(r.CancelReason), nullString(r.OutcomeDetail),
		nullTime(r.CreatedAt), r.Status.Final(), nullTime(endedAt)).Scan(&inserted)
	if errors.Is(err, sql.ErrNoRows) {
		return sameRequest(ctx, q, r)
	}
	switch code, constraint := pgCode(err); {
	case code == codeForeignKeyViolation:
		what := "customer " + r.CustomerID
		if strings.Contains(constraint, "requester") {
			what = "requester " + r.RequesterID
		}
		return fmt.Errorf("store: create request %s: %s: %w", r.ID, what, ErrNotFound)
	case code == codeUniqueViolation && (constraint == openSlotIndex || constraint == openServerSlotIndex):
		return errSlotTaken
	case code == codeUniqueViolation:
		return fmt.Errorf("store: create request %s: %w (%s)", r.ID, ErrConflict, constraint)
	case err != nil:
		return fmt.Errorf("store: create request %s: %w", r.ID, err)
	}
	return nil
}

// sameRequest checks that the row already stored under r.ID is r: the
// fields fixed at opening must match. Status and the later fields may have
// moved on and are not compared.
func sameRequest(ctx context.Context, q queryer, r Request) error {
	var got Request
	var action string
	err := q.QueryRowContext(ctx, `SELECT workflow_id, action, customer_id, requester_id, server_id, email, reason
		FROM requests WHERE id = $1`, r.ID).Scan(&got.WorkflowID, &action, &got.CustomerID, &got.RequesterID,
		&got.ServerID, &got.Email, &got.Reason)
	if err != nil {
		return fmt.Errorf("store: create request %s: read the existing row: %w", r.ID, err)
	}
	got.Action = domain.Action(action)
	var differ []string
	for _, f := range []struct{ name, have, want string }{
		{"workflow id", got.WorkflowID, r.WorkflowID}, {"action", string(got.Action), string(r.Action)},
		{"customer", got.CustomerID, r.CustomerID}, {"requester", got.RequesterID, r.RequesterID},
		{"server", got.ServerID, r.ServerID}, {"email", got.Email, r.Email}, {"reason", got.Reason, r.Reason},
	} {
		if f.have != f.want {
			differ = append(differ, f.name)
		}
	}
	if len(differ) > 0 {
		return fmt.Errorf("store: create request %s: the id is taken by a request with another %s: %w",
			r.ID, strings.Join(differ, ", "), ErrConflict)
	}
	return nil
}

// slotHolder returns the open request holding r's slot, or nil if there is
// none any more.
func (s *Store) slotHolder(ctx context.Context, r Request) (*DuplicateOpenError, error) {
	var id, status, customer string
	// A server's slot is the server's whoever holds it (0008); any other
	// slot is the customer's (0004). A server action also holds a 0004
	// slot, but a holder of that one holds the server's too.
	query, args := `SELECT id, status, customer_id FROM requests
		WHERE customer_id = $1 AND action = $2 AND server_id = $3 AND lower(email) = lower($4)
		  AND ended_at IS NULL AND NOT legacy_duplicate`, []any{r.CustomerID, string(r.Action), r.ServerID, r.Email}
	if r.ServerID != "" {
		query, args = `SELECT id, status, customer_id FROM requests
			WHERE action = $1 AND server_id = $2 AND ended_at IS NULL AND NOT legacy_duplicate`, []any{string(r.Action), r.ServerID}
	}
	err := s.db.QueryRowContext(ctx, query, args...).Scan(&id, &status, &customer)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find the open request: %w", err)
	}
	if customer != r.CustomerID {
		return &DuplicateOpenError{OtherCustomer: true}, nil
	}
	return &DuplicateOpenError{ID: id, Status: domain.Status(status)}, nil
}

// Request returns the request with id.
func (s *Store) Request(ctx context.Context, id string) (Request, error) {
	r, err := scanRequest(s.db.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM requests WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, fmt.Errorf("store: request %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Request{}, fmt.Errorf("store: request %s: %w", id, err)
	}
	return r, nil
}

// RequestIDBySlackMessage returns the id of the request whose recorded
// approval message is at channel/ts, or ErrNotFound when none is. The Slack
// front uses it so a click never touches a message another request owns.
func (s *Store) RequestIDBySlackMessage(ctx context.Context, channel, ts string) (string, error) {
	var id string
	err := s.db.QueryRowContext(ctx,
		`SELECT id FROM requests WHERE slack_channel = $1 AND slack_ts = $2 ORDER BY created_at LIMIT 1`, channel, ts).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("store: request of message %s/%s: %w", channel, ts, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("store: request of message %s/%s: %w", channel, ts, err)
	}
	return id, nil
}

// UpdateRequest applies u at time at (zero: now), setting updated_at, and
// ended_at when the new status is final. A request in a final status is
// frozen: an update with no status or the same status is a no-op returning
// nil (a retried activity), any other status is ErrFinal.
func (s *Store) UpdateRequest(ctx context.Context, id string, u RequestUpdate, at time.Time) error {
	if err := s.inTx(ctx, func(tx *sql.Tx) error { return updateRequest(ctx, tx, id, u, at) }); err != nil {
		return fmt.Errorf("store: update request %s: %w", id, err)
	}
	return nil
}

// MoveRequest is UpdateRequest and AuditOnce(e, dedupeKey) in one
// transaction, so no reader ever sees a request in a status whose audit
// event is not yet written (or the event without the status). A retried
// move is a no-op, as each half is.
func (s *Store) MoveRequest(ctx context.Context, id string, u RequestUpdate, at time.Time, e AuditEvent, dedupeKey string) error {
	if e.RequestID != id {
		return fmt.Errorf("store: move request %s: audit event names request %q", id, e.RequestID)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := updateRequest(ctx, tx, id, u, at); err != nil {
			return err
		}
		return auditOnce(ctx, tx, e, dedupeKey)
	})
	if err != nil {
		return fmt.Errorf("store: move request %s: %w", id, err)
	}
	return nil
}

// updateRequest is UpdateRequest inside tx.
func updateRequest(ctx context.Context, tx *sql.Tx, id string, u RequestUpdate, at time.Time) error {
	if u.Status != "" && !knownStatuses[u.Status] {
		return fmt.Errorf("unknown status %q", u.Status)
	}
	if at.IsZero() {
		at = time.Now()
	}
	var cur string
	err := tx.QueryRowContext(ctx, `SELECT status FROM requests WHERE id = $1 FOR UPDATE`, id).Scan(&cur)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("request %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return err
	}
	if current := domain.Status(cur); current.Final() {
		if u.Status == "" || u.Status == current {
			return nil
		}
		return fmt.Errorf("%s -> %s: %w", current, u.Status, ErrFinal)
	}
	var status sql.NullString
	if u.Status != "" {
		status = sql.NullString{String: string(u.Status), Valid: true}
	}
	_, err = tx.ExecContext(ctx, `
		UPDATE requests SET
			status          = COALESCE($2, status),
			approver_id     = COALESCE($3, approver_id),
			decision        = COALESCE($4, decision),
			decision_reason = COALESCE($5, decision_reason),
			decided_at      = COALESCE($6, decided_at),
			notified_at     = COALESCE($7, notified_at),
			cooling_ends_at = COALESCE($8, cooling_ends_at),
			slack_channel   = COALESCE($9, slack_channel),
			slack_ts        = COALESCE($10, slack_ts),
			cancelled_by    = COALESCE($11, cancelled_by),
			cancel_reason   = COALESCE($12, cancel_reason),
			outcome_detail  = COALESCE($13, outcome_detail),
			updated_at      = $14,
			ended_at        = CASE WHEN $15 THEN COALESCE($28::timestamptz, $14) ELSE ended_at END,
			opened_at          = COALESCE(opened_at, $27),
			pin_verified_at    = COALESCE($16, pin_verified_at),
			locked_until       = COALESCE($17, locked_until),
			approval_deadline  = COALESCE($18, approval_deadline),
			cancelled_at       = COALESCE($19, cancelled_at),
			executed_at        = COALESCE($20, executed_at),
			pin_failures       = COALESCE($21, pin_failures),
			recipients         = COALESCE($22, recipients),
			break_glass        = COALESCE($23, break_glass),
			second_approver_id = COALESCE($24, second_approver_id),
			cancel_actor_id    = COALESCE($25, cancel_actor_id),
			reference          = COALESCE($26, reference)
		WHERE id = $1`,
		id, status, ptrString(u.ApproverID), ptrString(u.Decision), ptrString(u.DecisionReason),
		ptrTime(u.DecidedAt), ptrTime(u.NotifiedAt), ptrTime(u.CoolingEndsAt),
		ptrString(u.SlackChannel), ptrString(u.SlackTS), ptrString(u.CancelledBy),
		ptrString(u.CancelReason), ptrString(u.OutcomeDetail), at, u.Status.Final(),
		ptrTime(u.PINVerifiedAt), ptrTime(u.LockedUntil), ptrTime(u.ApprovalDeadline),
		ptrTime(u.CancelledAt), ptrTime(u.ExecutedAt), ptrInt(u.PINFailures), ptrInt(u.Recipients),
		ptrBool(u.BreakGlass), ptrString(u.SecondApproverID), ptrString(u.CancelActorID), ptrString(u.Reference),
		ptrTime(u.OpenedAt), ptrTime(u.EndedAt))
	return err
}

// ptrInt maps nil to NULL.
func ptrInt(p *int) sql.NullInt64 {
	if p == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: int64(*p), Valid: true}
}

// ptrBool maps nil to NULL.
func ptrBool(p *bool) sql.NullBool {
	if p == nil {
		return sql.NullBool{}
	}
	return sql.NullBool{Bool: *p, Valid: true}
}

// ptrString maps nil to NULL; a non-nil empty string is stored as is.
func ptrString(p *string) sql.NullString {
	if p == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: *p, Valid: true}
}

// readRule is the one rule of who may read which request through the agent
// API, as an SQL condition over requests: a senior reads every request (they
// approve others' requests and need the reason), and so does the security
// role (it may export every request's events anyway, see the audit export),
// any other agent only the requests they opened, a disabled or unnamed agent
// none. $role and $id are the placeholders readerArgs fills. ListReadable
// and ReadableRequest both use it, so the list and the single read cannot
// disagree.
func readRule(role, id int) string {
	return fmt.Sprintf(`($%[2]d <> '' AND ($%[1]d IN ('%[3]s', '%[4]s') OR requester_id = $%[2]d))`,
		role, id, domain.RoleSenior, domain.RoleSecurity)
}

// readerArgs are the arguments of readRule for reader.
func readerArgs(reader Agent) (role, id string) {
	if reader.Disabled || reader.ID == "" {
		return "", ""
	}
	return string(reader.Role), reader.ID
}

// ReadableRequest returns request id if reader may read it, and ErrNotFound
// both when it does not exist and when reader may not read it, so a caller
// cannot tell the two apart.
func (s *Store) ReadableRequest(ctx context.Context, reader Agent, id string) (Request, error) {
	role, agentID := readerArgs(reader)
	r, err := scanRequest(s.db.QueryRowContext(ctx, `SELECT `+requestColumns+` FROM requests WHERE id = $1 AND `+readRule(2, 3), id, role, agentID))
	if errors.Is(err, sql.ErrNoRows) {
		return Request{}, fmt.Errorf("store: request %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Request{}, fmt.Errorf("store: request %s: %w", id, err)
	}
	return r, nil
}

// ListReadable returns the requests matching f that reader may read (see
// readRule), newest first; the rule is applied in the query.
func (s *Store) ListReadable(ctx context.Context, reader Agent, f ListFilter) ([]Request, error) {
	role, id := readerArgs(reader)
	return s.listRequests(ctx, f, " AND "+readRule(4, 5), role, id)
}

// ListRequests returns requests matching f, newest first, whoever opened
// them: for Vigil's own use. The agent API lists with ListReadable.
func (s *Store) ListRequests(ctx context.Context, f ListFilter) ([]Request, error) {
	return s.listRequests(ctx, f, "")
}

// listQuery is the list query over $1 requester, $2 customer, $3 limit, then
// extra. Open is ended_at IS NULL (the store sets it with every final
// status), written as a literal condition rather than over a parameter so
// that the planner can prove the partial index requests_open_created_idx
// serves it, whatever the plan cache does with parameters.
func listQuery(openOnly bool, extra string) string {
	open := ""
	if openOnly {
		open = " AND ended_at IS NULL"
	}
	return `SELECT ` + requestColumns + ` FROM requests
		WHERE ($1 = '' OR requester_id = $1)
		  AND ($2 = '' OR customer_id = $2)` + open + extra + `
		ORDER BY created_at DESC, id DESC
		LIMIT $3`
}

// listRequests runs the list query with an extra condition over $4 on.
func (s *Store) listRequests(ctx context.Context, f ListFilter, extra string, extraArgs ...any) ([]Request, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	limit = min(limit, maxListLimit)
	args := append([]any{f.RequesterID, f.CustomerID, limit}, extraArgs...)
	rows, err := s.db.QueryContext(ctx, listQuery(f.OpenOnly, extra), args...)
	if err != nil {
		return nil, fmt.Errorf("store: list requests: %w", err)
	}
	defer rows.Close()
	var out []Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("store: list requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list requests: %w", err)
	}
	return out, nil
}
