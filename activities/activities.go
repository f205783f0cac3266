// Package activities holds the side effects of a sensitive request: the PIN
// check, the audit trail, the customer emails and the executor call.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/mail"
	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/tokens"
)

// Error types the workflow's retry policies look at.
const (
	// ErrTypePermanent marks a failure that retrying cannot fix.
	ErrTypePermanent = "Permanent"
)

// Mailer delivers one message; *mail.Sender is the real one.
type Mailer interface {
	Send(ctx context.Context, m mail.Message) error
}

// Settings are the activities' knobs, fixed when the worker starts.
type Settings struct {
	PINPolicy store.PINPolicy
	// EstablishedAfter is how old a contact address must be to get notices.
	EstablishedAfter time.Duration
	// CancelBaseURL is the public URL of the web front; links are
	// CancelBaseURL + "/c/" + token.
	CancelBaseURL string
	// CancelGrace keeps a link valid a little past the planned run time.
	CancelGrace  time.Duration
	MailFrom     string
	SupportEmail string
	ProductName  string
	Location     *time.Location
	// Policy is the timings new requests run with; zero fields take
	// DefaultPolicySettings' values.
	Policy PolicySettings
}

// Activities holds the dependencies of every activity. Register a pointer to
// it with the worker.
type Activities struct {
	Store    *store.Store
	Executor panel.Executor
	Mailer   Mailer
	Tokens   *tokens.Signer
	// Approvals is Slack; nil only in setups that never reach the approval
	// gate's message (the worker refuses to start without it).
	Approvals Approvals
	Settings  Settings
	Logger    *slog.Logger
	Now       func() time.Time
}

// New checks the dependencies and fills defaults.
func New(st *store.Store, ex panel.Executor, m Mailer, tk *tokens.Signer, s Settings, logger *slog.Logger) (*Activities, error) {
	switch {
	case st == nil:
		return nil, errors.New("activities: store is nil")
	case ex == nil:
		return nil, errors.New("activities: executor is nil")
	case m == nil:
		return nil, errors.New("activities: mailer is nil")
	case tk == nil:
		return nil, errors.New("activities: token signer is nil")
	}
	u, err := url.Parse(s.CancelBaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("activities: cancel base URL %q must be an absolute http(s) URL", s.CancelBaseURL)
	}
	s.CancelBaseURL = strings.TrimRight(s.CancelBaseURL, "/")
	if s.PINPolicy.MaxFailures == 0 {
		s.PINPolicy = store.DefaultPINPolicy()
	}
	if s.EstablishedAfter == 0 {
		s.EstablishedAfter = 7 * 24 * time.Hour
	}
	if s.CancelGrace == 0 {
		s.CancelGrace = time.Hour
	}
	if s.ProductName == "" {
		s.ProductName = "Vigil"
	}
	if s.Location == nil {
		s.Location = time.UTC
	}
	s.Policy = withPolicyDefaults(s.Policy)
	if logger == nil {
		logger = slog.Default()
	}
	return &Activities{Store: st, Executor: ex, Mailer: m, Tokens: tk, Settings: s, Logger: logger, Now: time.Now}, nil
}

// withPolicyDefaults fills the zero fields of p from DefaultPolicySettings,
// on a copy of its cooling periods.
func withPolicyDefaults(p PolicySettings) PolicySettings {
	def := DefaultPolicySettings()
	if p.ApprovalTimeout == 0 {
		p.ApprovalTimeout = def.ApprovalTimeout
	}
	if p.NoticeTimeout == 0 {
		p.NoticeTimeout = def.NoticeTimeout
	}
	if p.ExecuteMaxAttempts == 0 {
		p.ExecuteMaxAttempts = def.ExecuteMaxAttempts
	}
	cooling := domain.CoolingPeriods{}
	for a, d := range def.Cooling {
		cooling[a] = d
		if c, ok := p.Cooling[a]; ok && c != 0 {
			cooling[a] = c
		}
	}
	p.Cooling = cooling
	return p
}

func (a *Activities) now() time.Time { return a.Now().UTC() }

func (a *Activities) log(ctx context.Context) *slog.Logger {
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		return a.Logger.With("activity", info.ActivityType.Name, "workflow_id", info.WorkflowExecution.ID, "attempt", info.Attempt)
	}
	return a.Logger
}

// heartbeat tells Temporal the attempt is alive, so an attempt on a worker
// that died is retried after the heartbeat timeout rather than the whole
// start-to-close timeout. It returns the context's error once the workflow
// cancelled the attempt, so a loop can stop between two side effects.
// Details must never carry a secret or an address: they can reach history.
func heartbeat(ctx context.Context, details ...any) error {
	if activity.IsActivity(ctx) {
		activity.RecordHeartbeat(ctx, details...)
	}
	return ctx.Err()
}

// keepAlive heartbeats in the background while a single blocking call (the
// control panel) runs, since that call cannot heartbeat itself. stop must be
// called when the call returns.
func keepAlive(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) || activity.GetInfo(ctx).HeartbeatTimeout <= 0 {
		return func() {}
	}
	every := activity.GetInfo(ctx).HeartbeatTimeout / 3
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func permanent(err error, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ErrTypePermanent, err)
}

// Open records a new request in the projection and the audit trail.
func (a *Activities) Open(ctx context.Context, in OpenInput) error {
	err := a.Store.CreateRequest(ctx, store.Request{
		ID: in.RequestID, WorkflowID: in.WorkflowID, Action: in.Action,
		CustomerID: in.CustomerID, RequesterID: in.RequesterID,
		ServerID: in.ServerID, Email: in.Email, Reason: in.Reason,
		Status: domain.StatusPINCheck,
	})
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		// An unknown customer or agent, or a reused id, will not heal by retrying.
		return permanent(err, "cannot open request %s", in.RequestID)
	}
	if err != nil {
		return fmt.Errorf("create request %s: %w", in.RequestID, err)
	}
	details := map[string]any{"action": string(in.Action), "customer": in.CustomerID, "reason": in.Reason}
	if in.ServerID != "" {
		details["server"] = in.ServerID
	}
	if in.Email != "" {
		details["email"] = in.Email
	}
	if err := a.Store.AuditOnce(ctx, store.AuditEvent{
		RequestID: in.RequestID, Actor: "agent:" + in.RequesterID, Event: "request.opened", Details: details,
	}, "opened"); err != nil {
		return err
	}
	if len(in.Policy) == 0 {
		return nil
	}
	policy := make(map[string]any, len(in.Policy))
	for k, v := range in.Policy {
		policy[k] = v
	}
	return a.Store.AuditOnce(ctx, store.AuditEvent{
		RequestID: in.RequestID, Actor: "system", Event: "request.policy", Details: policy,
	}, "policy")
}

// VerifyPIN checks the PIN against its slow hash. A wrong PIN is a result,
// not an error; five wrong PINs lock the customer and alert security.
func (a *Activities) VerifyPIN(ctx context.Context, in VerifyPINInput) (VerifyPINResult, error) {
	now := a.now()
	out, err := a.Store.CheckPINForRequest(ctx, in.RequestID, in.CustomerID, in.PIN, now, a.Settings.PINPolicy, pinhash.Verify)
	if errors.Is(err, store.ErrNotFound) {
		return VerifyPINResult{}, permanent(err, "customer %s does not exist", in.CustomerID)
	}
	if err != nil {
		return VerifyPINResult{}, fmt.Errorf("check PIN for customer %s: %w", in.CustomerID, err)
	}
	res := VerifyPINResult{
		Verified: out.Verified, Locked: out.Locked, JustLocked: out.JustLocked,
		LockedUntil: out.LockedUntil, Failures: out.Failures, CheckedAt: now,
	}
	ev := store.AuditEvent{RequestID: in.RequestID, Actor: "system", Details: map[string]any{"customer": in.CustomerID}}
	switch {
	case out.Verified:
		ev.Event = "gate.pin.verified"
	case out.Locked && !out.JustLocked:
		ev.Event = "gate.pin.locked_out"
		ev.Details["locked_until"] = out.LockedUntil.Format(time.RFC3339)
	default:
		ev.Event = "gate.pin.rejected"
		ev.Details["failures"] = out.Failures
	}
	if err := a.Store.AuditOnce(ctx, ev, "pin"); err != nil {
		return VerifyPINResult{}, fmt.Errorf("audit PIN check: %w", err)
	}
	if out.JustLocked {
		lock := store.AuditEvent{RequestID: in.RequestID, Actor: "system", Event: "customer.locked",
			Details: map[string]any{"customer": in.CustomerID, "failures": out.Failures, "locked_until": out.LockedUntil.Format(time.RFC3339)}}
		if err := a.Store.AuditOnce(ctx, lock, "lock"); err != nil {
			return VerifyPINResult{}, fmt.Errorf("audit lockout: %w", err)
		}
	}
	a.log(ctx).Info("PIN checked", "request", in.RequestID, "customer", in.CustomerID,
		"verified", out.Verified, "locked", out.Locked, "failures", out.Failures)
	return res, nil
}

// ConsumePINVerdict is the PIN gate of a workflow started without the PIN:
// it consumes the verdict the web front recorded when it checked the PIN,
// for this workflow run, once. The claim is the workflow's input with the
// workflow and run id Temporal gave this activity, so a run started by hand
// cannot name another's. A verdict bound to another customer, action,
// target, requester or workflow id, already consumed by another run,
// voided, expired or not verified is refused (store.ConsumePINVerdict
// audits it, queues the alert and ends the request's own row).
func (a *Activities) ConsumePINVerdict(ctx context.Context, in PINVerdictInput) (PINVerdictResult, error) {
	if !activity.IsActivity(ctx) {
		return PINVerdictResult{}, permanent(nil, "ConsumePINVerdict runs only as an activity: it needs the run's identity")
	}
	run := activity.GetInfo(ctx).WorkflowExecution
	v, err := a.Store.ConsumePINVerdict(ctx, store.VerdictClaim{
		RequestID: in.RequestID, WorkflowID: run.ID, RunID: run.RunID, Action: in.Action,
		CustomerID: in.CustomerID, RequesterID: in.RequesterID, ServerID: in.ServerID, Email: in.Email,
		PINInInput: in.PINInInput,
	}, a.now())
	var refused *store.VerdictRefusedError
	if errors.As(err, &refused) {
		a.log(ctx).Warn("PIN verdict refused", "request", in.RequestID, "customer", in.CustomerID,
			"reason", refused.Reason, "fields", refused.Fields)
		return PINVerdictResult{Refused: true, Reason: refused.Reason, Fields: refused.Fields}, nil
	}
	if err != nil {
		return PINVerdictResult{}, fmt.Errorf("consume PIN verdict of %s: %w", in.RequestID, err)
	}
	a.log(ctx).Info("PIN verdict consumed", "request", in.RequestID, "customer", in.CustomerID, "checked_at", v.CheckedAt)
	return PINVerdictResult{CheckedAt: v.CheckedAt}, nil
}

// Record moves the request projection and appends the gate's audit event.
func (a *Activities) Record(ctx context.Context, in RecordInput) error {
	if err := a.checkBreakGlass(ctx, in); err != nil {
		return err
	}
	if err := a.checkDecision(ctx, in); err != nil {
		return err
	}
	u := store.RequestUpdate{Status: in.Status}
	if in.ApproverID != "" {
		dec := string(in.Decision)
		u.ApproverID, u.Decision, u.DecisionReason, u.DecidedAt = &in.ApproverID, &dec, &in.DecisionReason, &in.DecidedAt
	}
	if !in.NotifiedAt.IsZero() {
		u.NotifiedAt = &in.NotifiedAt
	}
	if !in.CoolingEndsAt.IsZero() {
		u.CoolingEndsAt = &in.CoolingEndsAt
	}
	if in.CancelledBy != "" {
		by := string(in.CancelledBy)
		u.CancelledBy, u.CancelReason = &by, &in.CancelReason
	}
	if in.OutcomeDetail != "" {
		u.OutcomeDetail = &in.OutcomeDetail
	}
	statusFields(&u, in)
	details := make(map[string]any, len(in.Details)+1)
	for k, v := range in.Details {
		details[k] = v
	}
	details["status"] = string(in.Status)
	actor := in.Actor
	if actor == "" {
		actor = "system"
	}
	event := store.AuditEvent{RequestID: in.RequestID, Actor: actor, Event: in.Event, Details: details}
	if err := a.Store.MoveRequest(ctx, in.RequestID, u, a.now(), event, in.Event+"/"+string(in.Status)); err != nil {
		if errors.Is(err, store.ErrFinal) {
			return permanent(err, "request %s already ended", in.RequestID)
		}
		return fmt.Errorf("record %s: %w", in.Event, err)
	}
	a.log(ctx).Info("request moved", "request", in.RequestID, "status", in.Status, "event", in.Event, "actor", actor)
	return nil
}

// statusFields adds to u the rest of the workflow's status that in carries,
// leaving unknown (zero) fields as the row has them.
func statusFields(u *store.RequestUpdate, in RecordInput) {
	setTime := func(dst **time.Time, t time.Time) {
		if !t.IsZero() {
			*dst = &t
		}
	}
	setTime(&u.OpenedAt, in.OpenedAt)
	setTime(&u.EndedAt, in.EndedAt)
	setTime(&u.PINVerifiedAt, in.PINVerifiedAt)
	setTime(&u.LockedUntil, in.LockedUntil)
	setTime(&u.ApprovalDeadline, in.ApprovalDeadline)
	setTime(&u.CancelledAt, in.CancelledAt)
	setTime(&u.ExecutedAt, in.ExecutedAt)
	if in.PINFailures > 0 {
		u.PINFailures = &in.PINFailures
	}
	if in.Recipients > 0 {
		u.Recipients = &in.Recipients
	}
	if in.BreakGlass {
		u.BreakGlass, u.SecondApproverID = &in.BreakGlass, &in.SecondApproverID
	}
	if in.CancelActorID != "" {
		u.CancelActorID = &in.CancelActorID
	}
	if in.Reference != "" {
		u.Reference = &in.Reference
	}
}

// approvalPassed is the event with which the workflow lets an approved
// request through the approval gate.
const approvalPassed = "gate.approval.passed"

// checkBreakGlass refuses, for good, to let a break-glass approval through
// the approval gate unless the two seniors it names consented and were
// paired in Postgres while both consents were valid. The workflow's Update
// validator can only check what the Update says; this is where a decision
// sent around the API (an admin's or a Temporal operator's) stops. The
// refusal is audited and alerted before the request ends failed.
func (a *Activities) checkBreakGlass(ctx context.Context, in RecordInput) error {
	if in.Event != approvalPassed || in.Details["break_glass"] != "true" {
		return nil
	}
	second := in.Details["second_approver"]
	ok, err := a.Store.BreakGlassPaired(ctx, in.RequestID, in.ApproverID, second, in.Decision, in.DecidedAt)
	if err != nil {
		return fmt.Errorf("check break-glass consents: %w", err)
	}
	if ok {
		return nil
	}
	if err := a.Store.RefuseBreakGlass(ctx, in.RequestID, in.ApproverID, second, in.Decision); err != nil {
		return fmt.Errorf("refuse break-glass: %w", err)
	}
	a.log(ctx).Warn("break-glass decision without two consents refused", "request", in.RequestID,
		"approver", in.ApproverID, "second_approver", second)
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
		"request %s: the break-glass decision by %s and %s has no two paired consents; it does not pass the approval gate",
		in.RequestID, in.ApproverID, second), ErrTypePermanent, nil)
}

// requestRejected is the event with which the workflow ends a rejected
// request at the approval gate.
const requestRejected = "request.rejected"

// checkDecision refuses, for good, to let an approval or a rejection
// through the approval gate unless the web front recorded it: the named
// senior's verified Slack click (or, for a rejection, a break-glass pair
// including them). The workflow's validator trusts the role and identity the
// Update names; whoever holds the codec key can send one with a raw client,
// and this is where it stops. Break-glass approvals are checkBreakGlass's.
// The refusal is audited and alerted before the request ends failed.
func (a *Activities) checkDecision(ctx context.Context, in RecordInput) error {
	switch {
	case in.Event == approvalPassed && in.Details["break_glass"] != "true":
	case in.Event == requestRejected && in.Status == domain.StatusRejected:
	default:
		return nil
	}
	ok, err := a.Store.DecisionRecorded(ctx, in.RequestID, in.ApproverID, in.Decision, in.DecidedAt)
	if err != nil {
		return fmt.Errorf("check decision record: %w", err)
	}
	if ok {
		return nil
	}
	if err := a.Store.RefuseDecision(ctx, in.RequestID, in.ApproverID, in.Decision, in.DecidedAt); err != nil {
		return fmt.Errorf("refuse decision: %w", err)
	}
	a.log(ctx).Warn("decision the web front never recorded refused", "request", in.RequestID,
		"approver", in.ApproverID, "decision", in.Decision)
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
		"request %s: the %s by %s was never recorded from a Slack click; it does not pass the approval gate",
		in.RequestID, in.Decision, in.ApproverID), ErrTypePermanent, nil)
}

// RecordFailure moves the request's projection to failed, if the request has
// a row (an Open that failed may have left none), and appends request.failed
// naming the gate and the class of the cause. It writes no free text of the
// request, so it succeeds where the Record that carried it did not. Unlike
// Record its two writes are separate on purpose: it is the last resort, and
// a listing that shows the end state is worth more than the pairing when the
// audit table refuses the row (the workflow then fails visibly and alerts).
func (a *Activities) RecordFailure(ctx context.Context, in FailureInput) error {
	detail := in.OutcomeDetail
	projection := "updated"
	err := a.Store.UpdateRequest(ctx, in.RequestID, store.RequestUpdate{Status: domain.StatusFailed, OutcomeDetail: &detail}, a.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		projection = "missing"
	case errors.Is(err, store.ErrFinal):
		// The projection already shows another end state; the trail
		// must not contradict it silently. The workflow fails visibly.
		return permanent(err, "request %s already ended", in.RequestID)
	case err != nil:
		return fmt.Errorf("update request %s: %w", in.RequestID, err)
	}
	details := map[string]any{"status": string(domain.StatusFailed), "gate": in.Gate, "cause": in.Cause, "projection": projection}
	if in.Step != "" {
		details["step"] = in.Step
	}
	ev := store.AuditEvent{RequestID: in.RequestID, Actor: "system", Event: "request.failed", Details: details}
	// The same key as Record's for this event: the request fails once.
	if err := a.Store.AuditOnce(ctx, ev, ev.Event+"/"+string(domain.StatusFailed)); err != nil {
		return fmt.Errorf("audit request.failed: %w", err)
	}
	a.log(ctx).Warn("request failed for good", "request", in.RequestID, "gate", in.Gate, "step", in.Step, "cause", in.Cause, "projection", projection)
	return nil
}
