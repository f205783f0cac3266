package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// acts is only used for its method values, which name the activities.
var acts *activities.Activities

// handlerWait bounds how long an Update waits for the main line to act on it.
const handlerWait = 10 * time.Second

// heartbeatTimeout is how soon an attempt of the notice or the executor on a
// worker that stopped heartbeating is given up and retried.
const heartbeatTimeout = 30 * time.Second

// Change ids for workflow.GetVersion. Each names one change to the
// workflow's commands; see the workflow versioning rule in the README.
const (
	// changeCancelStopsNotice (version 1): a cancel stops the notice being
	// retried; the notice and the executor heartbeat.
	changeCancelStopsNotice = "cancel-stops-notice"
	// changeFailOnPermanentError (version 1): an Open, PIN or Record
	// activity that fails for good ends the request failed, with its audit
	// event, an alert and the approval message updated, instead of failing
	// the workflow (or, for the PIN, ending failed unannounced). Asked only
	// on that error path, so histories that never failed carry no marker.
	changeFailOnPermanentError = "fail-on-permanent-error"
	// changePINVerdictBeforeStart (version 1): the web front checks the PIN
	// before the workflow starts, and the input carries none. The PIN gate
	// consumes the verdict the web front recorded (ConsumePINVerdict), and
	// comes first, before Open: a run whose verdict is refused writes
	// nothing of a request whose id it may only borrow. Histories without
	// the marker were started with the PIN in their input and keep VerifyPIN
	// after Open.
	changePINVerdictBeforeStart = "pin-verdict-before-start"
	// changePolicyFromWorker (version 1): the run takes its timings from
	// the worker, never from its input: first thing, a local activity
	// (PolicyFor, recorded in history as a marker) answers the worker's
	// policy for the action; each cooling period is raised to its action's
	// floor unless the worker's development override says otherwise; Open
	// audits the policy the request runs with (request.policy). Asked
	// before the input is checked, since such a run's input needs no
	// policy; histories without the marker keep their input's policy.
	changePolicyFromWorker = "policy-from-worker"
	// changeStandingChecks (version 1): the workflow trusts no caller for
	// who decided. Once a decision was accepted, CheckStanding reads the
	// requester and the approvers in the agents table (enabled, senior,
	// not the requester); just before the action runs it checks them
	// again. A request whose requester or approver is not in good standing
	// ends cancelled by party security, audited, alerted and shown in
	// Slack. Asked where a decision was accepted, so histories that never
	// had one carry no marker.
	changeStandingChecks = "standing-checks"
	// changeNoticeNewlyEstablished (version 1): once the cooling period
	// is over, UnnotifiedEstablished asks which of the customer's addresses
	// are established now but never got the notice (they aged past the
	// established age while the request waited); if any, the notice goes
	// out again to every established address and the cooling period starts
	// again. Asked only where the cooling period ran out uncancelled.
	changeNoticeNewlyEstablished = "notice-newly-established"
)

// request is one run's state. Everything the Updates and the Query touch lives
// here so that the handlers and the main line agree.
type request struct {
	in Input
	st Status
	// side holds fire-and-forget activities (reminders, alerts) that must
	// still finish before the workflow does.
	side []workflow.Future
	msg  *messenger
	// cancelledDuringNotice: some addresses may have the notice, so the
	// outcome email goes out although the notice never completed.
	cancelledDuringNotice bool
	// cancelStopsNotice: this run took version 1 of change
	// cancel-stops-notice, so the notice and the executor heartbeat.
	cancelStopsNotice bool
	// pinVerdict: this run took version 1 of change
	// pin-verdict-before-start: its PIN gate reads the web front's verdict.
	pinVerdict bool
	// workerPolicy: this run took version 1 of change policy-from-worker:
	// in.Policy is the worker's, and policyAudit what Open records of it.
	workerPolicy bool
	policyAudit  map[string]string
	// standingChecks: this run took version 1 of change standing-checks.
	standingChecks bool
	// standing is the failed standing check that ended the request, if
	// any; decisionRefused: it was the decision's own check.
	standing        *activities.StandingResult
	decisionRefused bool
}

// messenger keeps the Slack approval message in step with the request. One
// coroutine applies updates in order and skips to the newest when it falls
// behind, so a slow Slack never delays a gate.
type messenger struct {
	latest *activities.MessageUpdate
	closed bool
	done   bool
	// stopPosting gives up on a post still being retried when the request
	// ends, so a Slack outage cannot keep a finished request open for hours.
	stopPosting workflow.CancelFunc
	posted      bool
	// repost is the last ask to post the message again (repost.go).
	repost *repostJob
}

// SensitiveRequest carries one sensitive request through the five gates and
// executes it only if all of them pass. Every end state is final.
func SensitiveRequest(ctx workflow.Context, in Input) (Result, error) {
	workerPolicy := workflow.GetVersion(ctx, changePolicyFromWorker, workflow.DefaultVersion, 1) >= 1
	if err := validateInput(in, !workerPolicy); err != nil {
		return Result{}, temporal.NewNonRetryableApplicationError(err.Error(), RefusedInvalid, nil)
	}
	r := &request{in: in, workerPolicy: workerPolicy, st: Status{
		RequestID:   in.RequestID,
		Action:      in.Action,
		CustomerID:  in.CustomerID,
		RequesterID: in.RequesterID,
		ServerID:    in.ServerID,
		Email:       in.Email,
		Status:      domain.StatusPINCheck,
		OpenedAt:    workflow.Now(ctx),
	}}
	if err := r.registerHandlers(ctx); err != nil {
		return Result{}, err
	}
	st, err := r.run(ctx)
	// Updates accepted just before the end still get their answer.
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	return st, err
}

// validateInput checks a run's input; withPolicy: the run takes its policy
// from it (histories from before change policy-from-worker).
func validateInput(in Input, withPolicy bool) error {
	switch {
	case in.RequestID == "":
		return errors.New("request id is empty")
	case in.CustomerID == "":
		return errors.New("customer id is empty")
	case in.RequesterID == "":
		return errors.New("requester id is empty")
	case withPolicy && (in.Policy.ApprovalTimeout <= 0 || in.Policy.CoolingPeriod <= 0 || in.Policy.NoticeTimeout <= 0):
		return errors.New("policy timings must be positive")
	}
	if _, err := domain.ParseAction(string(in.Action)); err != nil {
		return err
	}
	return nil
}

func (r *request) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) {
		return r.st, nil
	}); err != nil {
		return fmt.Errorf("register status query: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDecide,
		func(ctx workflow.Context, d DecideInput) (Status, error) {
			r.st.Decision = &Decision{Decision: d.Decision, ApproverID: d.ApproverID, Reason: d.Reason, At: workflow.Now(ctx),
				BreakGlass: d.BreakGlass, SecondApproverID: d.SecondApproverID}
			// Answer with the request as the decision left it, not as it was.
			_, err := workflow.AwaitWithTimeout(ctx, handlerWait, func() bool { return r.st.Status != domain.StatusAwaitingApproval })
			if err == nil && r.decisionRefused {
				// The decision's own check refused it (change standing-checks).
				return r.st, refuse(RefusedNotInGoodStanding, "the decision was refused and the request stopped: %s", r.standing.Text())
			}
			return r.st, err
		},
		workflow.UpdateHandlerOptions{Validator: r.validateDecide},
	); err != nil {
		return fmt.Errorf("register decide update: %w", err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateCancel,
		func(ctx workflow.Context, c CancelInput) (Status, error) {
			r.st.Cancellation = &Cancellation{By: c.By, ActorID: c.ActorID, Reason: c.Reason, At: workflow.Now(ctx)}
			// The main line ends the request as soon as it sees this, unless
			// it is inside an activity (the notice); then answer in a moment
			// with the cancellation recorded and the end state to follow.
			_, err := workflow.AwaitWithTimeout(ctx, handlerWait, func() bool { return r.st.Status.Final() })
			return r.st, err
		},
		workflow.UpdateHandlerOptions{Validator: r.validateCancel},
	); err != nil {
		return fmt.Errorf("register cancel update: %w", err)
	}
	return r.registerRepost(ctx)
}

func refuse(kind, format string, args ...any) error {
	return temporal.NewApplicationError(fmt.Sprintf(format, args...), kind)
}

// maxUpdateReason bounds the reason of a decision or cancel, in characters:
// a safety net above what the API lets through.
const maxUpdateReason = 2000

// validateDecide runs before a decision is written to history; a refusal
// leaves no trace in the workflow.
func (r *request) validateDecide(ctx workflow.Context, d DecideInput) error {
	if d.Decision != domain.DecisionApprove && d.Decision != domain.DecisionReject {
		return refuse(RefusedInvalid, "decision must be approve or reject, not %q", d.Decision)
	}
	if d.ApproverID == "" {
		return refuse(RefusedInvalid, "approver is missing")
	}
	if d.Decision == domain.DecisionReject && d.Reason == "" {
		return refuse(RefusedInvalid, "a rejection needs a reason")
	}
	if err := textrule.Check("reason", d.Reason, textrule.Options{MaxLen: maxUpdateReason}); err != nil {
		return refuse(RefusedInvalid, "%v", err)
	}
	if r.st.Decision != nil {
		past := "approved"
		if r.st.Decision.Decision == domain.DecisionReject {
			past = "rejected"
		}
		return refuse(RefusedAlreadyDecided, "already %s by %s at %s", past, r.st.Decision.ApproverID, r.st.Decision.At.UTC().Format("15:04 UTC"))
	}
	if r.st.Status != domain.StatusAwaitingApproval || r.st.Cancellation != nil {
		if r.st.Status == domain.StatusExpired {
			return refuse(RefusedNotAwaiting, "expired at %s", r.st.ApprovalDeadline.UTC().Format("15:04 UTC"))
		}
		return refuse(RefusedNotAwaiting, "the request is not waiting for approval (status %s)", r.st.Status)
	}
	if d.ApproverID == r.in.RequesterID {
		return refuse(RefusedSelfApproval, "you opened this request yourself; another senior agent must approve it")
	}
	if d.ApproverRole != domain.RoleSenior {
		return refuse(RefusedNotSenior, "only senior agents can approve or reject")
	}
	if d.BreakGlass {
		switch {
		case d.SecondApproverID == "":
			return refuse(RefusedInvalid, "a break-glass decision needs a second senior")
		case d.SecondApproverID == d.ApproverID:
			return refuse(RefusedInvalid, "a break-glass decision needs two different seniors")
		case d.SecondApproverID == r.in.RequesterID:
			return refuse(RefusedSelfApproval, "the requester cannot be one of the two break-glass approvers")
		case d.SecondApproverRole != domain.RoleSenior:
			return refuse(RefusedNotSenior, "both break-glass approvers must be senior agents")
		}
	} else if d.SecondApproverID != "" {
		return refuse(RefusedInvalid, "a second approver only counts for a break-glass decision")
	}
	return nil
}

func (r *request) validateCancel(ctx workflow.Context, c CancelInput) error {
	if err := textrule.Check("reason", c.Reason, textrule.Options{MaxLen: maxUpdateReason}); err != nil {
		return refuse(RefusedInvalid, "%v", err)
	}
	switch {
	case r.st.Status == domain.StatusExecuted:
		return refuse(RefusedAlreadyEnded, "the request was already executed at %s; it can no longer be cancelled", r.st.ExecutedAt.UTC().Format(time.RFC3339))
	case r.st.Status.Final():
		return refuse(RefusedAlreadyEnded, "the request already ended (%s)", r.st.Status)
	case r.st.Status == domain.StatusExecuting:
		return refuse(RefusedExecuting, "the action is already running; it can no longer be cancelled")
	case r.st.Cancellation != nil:
		return refuse(RefusedAlreadyEnded, "the request was already cancelled by the %s", r.st.Cancellation.By)
	}
	switch c.By {
	case domain.CancelByCustomer:
		if c.ActorID != r.in.CustomerID {
			return refuse(RefusedNotCustomer, "this cancel link belongs to another customer")
		}
	case domain.CancelByRequester:
		if c.ActorID != r.in.RequesterID {
			return refuse(RefusedNotRequester, "only the agent who opened the request can withdraw it")
		}
	case domain.CancelBySenior:
		if c.ActorID == "" || c.ActorRole != domain.RoleSenior {
			return refuse(RefusedNotSenior, "only senior agents can veto a request")
		}
	case domain.CancelBySecurity:
		// Sent when an admin disabled or demoted ActorID, an agent the
		// request depends on. A cancel only ever stops a request.
		if c.ActorID == "" || c.Reason == "" {
			return refuse(RefusedInvalid, "a security stop names the agent who lost standing and why")
		}
	default:
		return refuse(RefusedInvalid, "unknown cancelling party %q", c.By)
	}
	return nil
}

func shortOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    time.Minute,
		},
	})
}

// record moves the projection and appends the gate's audit event. Recording
// is retried until it succeeds: an audit trail with holes is not an option.
func (r *request) record(ctx workflow.Context, event, actor string, details map[string]string) error {
	in := activities.RecordInput{
		RequestID:     r.in.RequestID,
		Status:        r.st.Status,
		Event:         event,
		Actor:         actor,
		Details:       details,
		NotifiedAt:    r.st.NotifiedAt,
		CoolingEndsAt: r.st.CoolingEndsAt,
		OutcomeDetail: r.st.Failure,
		// The rest of the status rides along (the activity's input only,
		// not its commands), so the listing answers as a status read does.
		OpenedAt: r.st.OpenedAt, EndedAt: r.st.EndedAt,
		PINVerifiedAt: r.st.PINVerifiedAt, PINFailures: r.st.PINFailures, LockedUntil: r.st.LockedUntil,
		ApprovalDeadline: r.st.ApprovalDeadline, Recipients: r.st.Recipients,
		ExecutedAt: r.st.ExecutedAt, Reference: r.st.Reference,
	}
	if d := r.st.Decision; d != nil {
		in.ApproverID, in.Decision, in.DecisionReason, in.DecidedAt = d.ApproverID, d.Decision, d.Reason, d.At
		in.BreakGlass, in.SecondApproverID = d.BreakGlass, d.SecondApproverID
	}
	if c := r.st.Cancellation; c != nil {
		in.CancelledBy, in.CancelReason = c.By, c.Reason
		in.CancelActorID, in.CancelledAt = c.ActorID, c.At
	}
	if err := workflow.ExecuteActivity(shortOptions(ctx), acts.Record, in).Get(ctx, nil); err != nil {
		return &recordError{event: event, err: err}
	}
	return nil
}

// recordError is a Record activity that failed; it names the event, which
// the failure's own record then mentions.
type recordError struct {
	event string
	err   error
}

func (e *recordError) Error() string { return "record " + e.event + ": " + e.err.Error() }
func (e *recordError) Unwrap() error { return e.err }

func (r *request) setStatus(ctx workflow.Context, s domain.Status) error {
	r.st.Status = s
	return workflow.UpsertTypedSearchAttributes(ctx,
		SAAction.ValueSet(string(r.in.Action)),
		SACustomer.ValueSet(r.in.CustomerID),
		SARequester.ValueSet(r.in.RequesterID),
		SAStatus.ValueSet(string(s)),
	)
}

// ending is how a gate ends the request: the end state it reached and the
// workflow's error, if any. A gate returns nil to let the request go on.
type ending struct {
	st  Status
	err error
}

// end wraps the end state a gate reached, e.g. end(r.finish(...)).
func end(st Status, err error) *ending { return &ending{st: st, err: err} }

// run carries the request through its gates in order; each gate either lets
// it go on or ends it, and the last one always ends it.
func (r *request) run(ctx workflow.Context) (Status, error) {
	gates := []func(workflow.Context) *ending{
		r.open,
		r.pinGate,
		r.approvalGate,
		r.noticeGate,
		r.coolingGate,
	}
	if r.pinVerdict = workflow.GetVersion(ctx, changePINVerdictBeforeStart, workflow.DefaultVersion, 1) >= 1; r.pinVerdict {
		gates[0], gates[1] = r.pinGate, r.open
	}
	if r.workerPolicy {
		if err := r.takeWorkerPolicy(ctx); err != nil {
			return r.st, err
		}
	}
	for _, gate := range gates {
		if e := gate(ctx); e != nil {
			return e.st, e.err
		}
	}
	return r.executeGate(ctx)
}

// enter moves the request into the next gate's status s and records, with
// event, that gate (the one before) let it through: the projection and the
// audit trail move together.
func (r *request) enter(ctx workflow.Context, s domain.Status, gate, event, actor string, details map[string]string) *ending {
	if err := r.setStatus(ctx, s); err != nil {
		return end(r.st, err)
	}
	if err := r.record(ctx, event, actor, details); err != nil {
		return end(r.gateError(ctx, gate, err))
	}
	return nil
}

// open writes the request's row and its first audit event.
func (r *request) open(ctx workflow.Context) *ending {
	if err := r.setStatus(ctx, domain.StatusPINCheck); err != nil {
		return end(r.st, err)
	}
	open := activities.OpenInput{
		RequestID: r.in.RequestID, WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID,
		Action: r.in.Action, CustomerID: r.in.CustomerID, RequesterID: r.in.RequesterID,
		ServerID: r.in.ServerID, Email: r.in.Email, Reason: r.in.Reason, Policy: r.policyAudit,
	}
	if err := workflow.ExecuteActivity(shortOptions(ctx), acts.Open, open).Get(ctx, nil); err != nil {
		return end(r.gateError(ctx, "open", fmt.Errorf("open request: %w", err)))
	}
	return nil
}

// pinGate is gate 1: the customer's support PIN. A wrong PIN is an answer,
// not an error, so the activity is never retried into a lockout. The PIN
// leaves the workflow's state as soon as it was checked.
func (r *request) pinGate(ctx workflow.Context) *ending {
	if r.pinVerdict {
		return r.pinVerdictGate(ctx)
	}
	var pin activities.VerifyPINResult
	err := workflow.ExecuteActivity(shortOptions(ctx), acts.VerifyPIN, activities.VerifyPINInput{
		RequestID: r.in.RequestID, CustomerID: r.in.CustomerID, PIN: r.in.PIN,
	}).Get(ctx, &pin)
	r.in.PIN = ""
	if err != nil {
		if r.endsFailedOn(ctx, err) {
			return end(r.endFailed(ctx, "pin", err))
		}
		return end(r.fail(ctx, "pin.error", "the PIN could not be checked"))
	}
	r.st.PINFailures = pin.Failures
	if pin.JustLocked {
		r.alert(ctx, fmt.Sprintf("Customer %s is locked until %s after %d wrong support PINs (request %s, opened by %s).",
			r.in.CustomerID, pin.LockedUntil.UTC().Format("2006-01-02 15:04 UTC"), pin.Failures, r.in.RequestID, r.in.RequesterID))
	}
	switch {
	case pin.Locked && !pin.JustLocked:
		r.st.LockedUntil = pin.LockedUntil
		return end(r.finish(ctx, domain.StatusLocked, "request.locked", "system", map[string]string{"locked_until": pin.LockedUntil.UTC().Format(time.RFC3339)}))
	case !pin.Verified:
		r.st.LockedUntil = pin.LockedUntil
		return end(r.finish(ctx, domain.StatusPINRejected, "request.pin_rejected", "system", map[string]string{"failures": fmt.Sprint(pin.Failures)}))
	}
	r.st.PINVerifiedAt = pin.CheckedAt
	return nil
}

// pinVerdictGate is gate 1 of a run started without the PIN (change
// pin-verdict-before-start): it consumes the verdict the web front recorded
// when it checked the PIN, claiming it with this run's own input; the
// activity adds the workflow and run id Temporal gave it. A verdict bound to
// another request, consumed by another run, voided, expired or of a wrong
// PIN, or a PIN in this run's input, is refused: the refusal is audited,
// alerted and, when this run is the request's own, recorded on its row, all
// in Postgres with the refusal, and the run ends failed without writing
// anything itself.
func (r *request) pinVerdictGate(ctx workflow.Context) *ending {
	in := activities.PINVerdictInput{
		RequestID: r.in.RequestID, Action: r.in.Action, CustomerID: r.in.CustomerID, RequesterID: r.in.RequesterID,
		ServerID: r.in.ServerID, Email: r.in.Email, PINInInput: r.in.PIN != "",
	}
	r.in.PIN = ""
	var v activities.PINVerdictResult
	err := workflow.ExecuteActivity(shortOptions(ctx), acts.ConsumePINVerdict, in).Get(ctx, &v)
	switch {
	case err != nil && temporal.IsCanceledError(err):
		return end(r.st, err)
	case err != nil:
		// Unread, this run cannot tell the request's row from one whose id
		// it borrows, so it writes neither.
		r.alert(ctx, fmt.Sprintf("Request %s (%s for %s, opened by %s) stopped at the PIN gate: its PIN verdict could not be read (%s), which retrying cannot fix. The worker's log has the error.",
			r.in.RequestID, r.in.Action, r.in.CustomerID, r.in.RequesterID, causeClass(err)))
		return end(r.endUnwritten(ctx, "stopped at the pin gate: "+causeClass(err)))
	case v.Refused:
		return end(r.endUnwritten(ctx, "stopped at the pin gate: the PIN verdict was refused ("+v.Reason+")"))
	}
	r.st.PINVerifiedAt = v.CheckedAt
	return nil
}

// endUnwritten ends a run that did not pass the PIN gate failed, without
// writing the request's row or trail: the refusal's own transaction did, or
// the run cannot tell whose they are.
func (r *request) endUnwritten(ctx workflow.Context, why string) (Status, error) {
	r.st.Failure = why
	r.st.EndedAt = workflow.Now(ctx)
	if err := r.setStatus(ctx, domain.StatusFailed); err != nil {
		return r.st, err
	}
	return r.wrapUp(ctx, domain.StatusFailed)
}

// approvalGate is gate 2: a senior other than the requester approves before
// the deadline. A cancel that came during the PIN check skips the wait.
func (r *request) approvalGate(ctx workflow.Context) *ending {
	if r.st.Cancellation == nil {
		if e := r.awaitApproval(ctx); e != nil {
			return e
		}
	}
	if r.st.Cancellation != nil {
		return end(r.cancelled(ctx))
	}
	if r.standingChecks = workflow.GetVersion(ctx, changeStandingChecks, workflow.DefaultVersion, 1) >= 1; r.standingChecks {
		if e := r.checkStanding(ctx, "approval", activities.StandingAtDecision); e != nil {
			return e
		}
	}
	d := r.st.Decision
	if d.BreakGlass {
		past := "approved"
		if d.Decision == domain.DecisionReject {
			past = "rejected"
		}
		r.alert(ctx, fmt.Sprintf("BREAK-GLASS: request %s (%s for %s) was %s outside Slack by %s and %s.",
			r.in.RequestID, r.in.Action, r.in.CustomerID, past, d.ApproverID, d.SecondApproverID))
	}
	if d.Decision == domain.DecisionReject {
		return end(r.finish(ctx, domain.StatusRejected, "request.rejected", "agent:"+d.ApproverID, map[string]string{"reason": d.Reason}))
	}
	return nil
}

// awaitApproval posts the approval message and waits for a decision or a
// cancel until the deadline; it ends the request expired if neither came.
func (r *request) awaitApproval(ctx workflow.Context) *ending {
	r.st.ApprovalDeadline = workflow.Now(ctx).Add(r.in.Policy.ApprovalTimeout)
	if e := r.enter(ctx, domain.StatusAwaitingApproval, "approval", "gate.approval.waiting", "system",
		map[string]string{"deadline": r.st.ApprovalDeadline.UTC().Format(time.RFC3339)}); e != nil {
		return e
	}
	r.postApproval(ctx)
	decided, err := r.awaitDecision(ctx)
	if err != nil {
		return end(r.st, fmt.Errorf("wait for approval: %w", err))
	}
	if !decided {
		return end(r.finish(ctx, domain.StatusExpired, "request.expired", "system", nil))
	}
	return nil
}

// noticeGate is gate 3: every established address hears about the request.
// Mail keeps being retried; the cooling period starts only once it was
// accepted.
func (r *request) noticeGate(ctx workflow.Context) *ending {
	d := r.st.Decision
	approved := map[string]string(nil)
	if d.BreakGlass {
		approved = map[string]string{"break_glass": "true", "second_approver": d.SecondApproverID}
	}
	if e := r.enter(ctx, domain.StatusNotifying, "approval", "gate.approval.passed", "agent:"+d.ApproverID, approved); e != nil {
		return e
	}
	r.updateMessage(ctx, activities.MessageUpdate{Event: activities.MessageApproved, ActorID: d.ApproverID, At: d.At})
	// Version 1: a cancel accepted while the notice is retried stops the
	// notice, and the request ends cancelled instead of failing later; the
	// notice and the executor heartbeat, so an attempt on a dead worker is
	// retried within seconds. Histories from before took the old path.
	r.cancelStopsNotice = workflow.GetVersion(ctx, changeCancelStopsNotice, workflow.DefaultVersion, 1) >= 1
	opts, in := r.noticeOptions(), r.noticeInput()
	var notice activities.NotifyResult
	var e *ending
	if r.cancelStopsNotice {
		notice, e = r.noticeStoppedByCancel(ctx, opts, in)
	} else {
		notice, e = r.noticeToTheEnd(ctx, opts, in)
	}
	if e != nil {
		return e
	}
	r.st.NotifiedAt = workflow.Now(ctx)
	r.st.Recipients = notice.Recipients
	if r.st.Cancellation != nil {
		return end(r.cancelled(ctx))
	}
	return nil
}

// noticeOptions are the notice's activity options: mail keeps being
// retried until the notice timeout.
func (r *request) noticeOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: r.in.Policy.NoticeTimeout,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    5 * time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Minute,
		},
	}
}

func (r *request) noticeInput() activities.NotifyInput {
	return activities.NotifyInput{
		RequestID: r.in.RequestID, Action: r.in.Action, CustomerID: r.in.CustomerID,
		ServerID: r.in.ServerID, Email: r.in.Email, RequesterID: r.in.RequesterID,
		CoolingPeriod: r.in.Policy.CoolingPeriod,
	}
}

// noticeToTheEnd sends the notice as histories from before change
// cancel-stops-notice did: a cancel waits until the notice is done.
func (r *request) noticeToTheEnd(ctx workflow.Context, opts workflow.ActivityOptions, in activities.NotifyInput) (activities.NotifyResult, *ending) {
	var notice activities.NotifyResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), acts.NotifyCustomer, in).Get(ctx, &notice); err != nil {
		return notice, r.noticeFailed(ctx)
	}
	return notice, nil
}

// noticeStoppedByCancel sends the notice under version 1 of change
// cancel-stops-notice: it heartbeats, and a cancel stops it between
// attempts or messages.
func (r *request) noticeStoppedByCancel(ctx workflow.Context, opts workflow.ActivityOptions, in activities.NotifyInput) (activities.NotifyResult, *ending) {
	var notice activities.NotifyResult
	opts.HeartbeatTimeout = heartbeatTimeout
	// Wait for the attempt to stop, so the outcome email cannot overtake a
	// notice still being written.
	opts.WaitForCancellation = true
	if r.st.Cancellation != nil {
		// Cancelled in the same moment as the approval: no notice at all.
		return notice, end(r.cancelled(ctx))
	}
	noticeCtx, stopNotice := workflow.WithCancel(workflow.WithActivityOptions(ctx, opts))
	sent := workflow.ExecuteActivity(noticeCtx, acts.NotifyCustomer, in)
	if err := workflow.Await(ctx, func() bool { return sent.IsReady() || r.st.Cancellation != nil }); err != nil {
		return notice, end(r.st, fmt.Errorf("wait for the notice: %w", err))
	}
	if !sent.IsReady() {
		stopNotice()
	}
	err := sent.Get(ctx, &notice)
	if err != nil && r.st.Cancellation != nil {
		// Whoever already got a notice hears that it was cancelled.
		r.cancelledDuringNotice = true
		return notice, end(r.cancelled(ctx))
	}
	if err != nil {
		return notice, r.noticeFailed(ctx)
	}
	return notice, nil
}

// noticeFailed ends the request failed: the notice was not accepted within
// the notice timeout.
func (r *request) noticeFailed(ctx workflow.Context) *ending {
	r.st.Failure = "the customer could not be notified"
	return end(r.finish(ctx, domain.StatusFailed, "request.failed", "system", map[string]string{"gate": "notice"}))
}

// coolingGate is gate 4: the cooling period, measured from the accepted
// notice, during which the customer or a senior can still cancel.
func (r *request) coolingGate(ctx workflow.Context) *ending {
	r.st.CoolingEndsAt = r.st.NotifiedAt.Add(r.in.Policy.CoolingPeriod)
	if e := r.enter(ctx, domain.StatusCooling, "notice", "gate.notice.sent", "system",
		map[string]string{"recipients": fmt.Sprint(r.st.Recipients)}); e != nil {
		return e
	}
	r.updateMessage(ctx, activities.MessageUpdate{Event: activities.MessageNotified, RunsAt: r.st.CoolingEndsAt})
	if _, err := workflow.AwaitWithTimeout(ctx, r.in.Policy.CoolingPeriod, func() bool {
		return r.st.Cancellation != nil
	}); err != nil {
		return end(r.st, fmt.Errorf("cooling period: %w", err))
	}
	if r.st.Cancellation != nil {
		return end(r.cancelled(ctx))
	}
	if workflow.GetVersion(ctx, changeNoticeNewlyEstablished, workflow.DefaultVersion, 1) >= 1 {
		return r.noticeNewlyEstablished(ctx)
	}
	return nil
}

// executeGate is gate 5: the action runs, exactly once, and the request
// ends executed or failed.
func (r *request) executeGate(ctx workflow.Context) (Status, error) {
	if e := r.enter(ctx, domain.StatusExecuting, "cooling", "gate.cooling.elapsed", "system", nil); e != nil {
		return e.st, e.err
	}
	if r.standingChecks {
		// Requester and approvers must still be in good standing now,
		// whatever happened to their records since the decision.
		if e := r.checkStanding(ctx, "execute", activities.StandingAtExecution); e != nil {
			return e.st, e.err
		}
	}
	opts := workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        5 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        5 * time.Minute,
			MaximumAttempts:        r.in.Policy.ExecuteMaxAttempts,
			NonRetryableErrorTypes: []string{activities.ErrTypePermanent},
		},
	}
	if r.cancelStopsNotice {
		opts.HeartbeatTimeout = heartbeatTimeout
	}
	var out activities.ExecuteResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), acts.Execute, activities.ExecuteInput{
		RequestID: r.in.RequestID, Action: r.in.Action, CustomerID: r.in.CustomerID,
		ServerID: r.in.ServerID, Email: r.in.Email,
	}).Get(ctx, &out); err != nil {
		r.st.Failure = failureText(err)
		return r.finish(ctx, domain.StatusFailed, "request.failed", "system", map[string]string{"gate": "execute"})
	}
	r.st.ExecutedAt = workflow.Now(ctx)
	r.st.Reference = out.Reference
	return r.finish(ctx, domain.StatusExecuted, "request.executed", "system", map[string]string{"reference": out.Reference})
}

// failureText says in words why the executor failed, from its error's class
// alone: error chains may carry URLs or other details nobody needs in
// history, and this text is what Slack, the audit trail and starter status
// show.
func failureText(err error) string {
	if words, ok := failureWords[causeClass(err)]; ok {
		return "the action failed: " + words
	}
	return "the action failed after retries"
}

// failureWords puts each of our error classes into words. Every class has
// an entry (a test checks): a class without one would read as "after
// retries".
var failureWords = map[string]string{
	activities.ErrTypeDataError:   "the database refused the data",
	activities.ErrTypeUndecodable: "a stored value could not be decoded",
	// Histories from before the executor's own types: the panel or the
	// mail relay refused for good.
	activities.ErrTypePermanent:         "the control panel or the mail relay refused the request",
	activities.ErrTypePanelNotFound:     "the control panel refused the request (customer or server not found)",
	activities.ErrTypePanelUnauthorized: "the control panel refused Vigil's access (check the panel token)",
	activities.ErrTypePanelRefused:      "the control panel refused the request",
	activities.ErrTypePanelBadAnswer:    "the control panel answered with something Vigil cannot use",
	activities.ErrTypeInvalidJob:        "the request is not one the control panel accepts (it was not sent)",
	activities.ErrTypeMailRefused:       "the mail relay refused the credentials email",
	activities.ErrTypeTargetChanged:     "what it acts on changed while it waited (a server moved, or the address is no longer one the notice went to); nothing was sent to the control panel",
}

func (r *request) cancelled(ctx workflow.Context) (Status, error) {
	c := r.st.Cancellation
	status, event := domain.StatusCancelled, "request.cancelled"
	if c.By == domain.CancelByRequester {
		status, event = domain.StatusWithdrawn, "request.withdrawn"
	}
	actor := "agent:" + c.ActorID
	if c.By == domain.CancelBySecurity {
		actor = "system"
		if r.standing == nil {
			// Stopped from outside: an admin disabled or demoted an agent
			// the request rests on (the workflow's own check alerts itself).
			r.alert(ctx, fmt.Sprintf("SECURITY: request %s (%s for %s, opened by %s) was stopped: %s. Nothing was done.",
				r.in.RequestID, r.in.Action, r.in.CustomerID, r.in.RequesterID, c.Reason))
		}
	}
	if c.By == domain.CancelByCustomer {
		actor = "customer:" + c.ActorID
		r.alert(ctx, fmt.Sprintf("Customer %s cancelled request %s (%s, opened by %s) from the emailed link.",
			r.in.CustomerID, r.in.RequestID, r.in.Action, r.in.RequesterID))
	}
	details := map[string]string{"by": string(c.By), "reason": c.Reason}
	if c.By == domain.CancelBySecurity && c.ActorID != "" {
		details["agent"] = c.ActorID
	}
	if r.standing != nil {
		var ids []string
		for _, p := range r.standing.Problems {
			ids = append(ids, p.AgentID+" ("+p.Part+": "+p.Why+")")
		}
		details["standing"] = strings.Join(ids, ", ")
	}
	return r.finish(ctx, status, event, actor, details)
}

func (r *request) fail(ctx workflow.Context, event, why string) (Status, error) {
	r.st.Failure = why
	return r.finish(ctx, domain.StatusFailed, "request.failed", "system", map[string]string{"cause": event})
}

// finish puts the request in its end state, records it and tells the
// customer where they had been told about it.
func (r *request) finish(ctx workflow.Context, s domain.Status, event, actor string, details map[string]string) (Status, error) {
	r.st.EndedAt = workflow.Now(ctx)
	if err := r.setStatus(ctx, s); err != nil {
		return r.st, err
	}
	if err := r.record(ctx, event, actor, details); err != nil {
		// The end state asked for cannot be recorded. A decision or a
		// cancel already accepted still ends the request final: failed,
		// which tells the reader nothing was done, rather than the end
		// state that was never written.
		return r.gateError(ctx, "end", err)
	}
	return r.wrapUp(ctx, s)
}

// gateError handles an activity of gate that failed. The gates' activities
// are retried for as long as that can help, so an error here is for good:
// the request ends failed. Histories from before the change failed the
// workflow with err instead, and still do.
func (r *request) gateError(ctx workflow.Context, gate string, err error) (Status, error) {
	if !r.endsFailedOn(ctx, err) {
		return r.st, err
	}
	return r.endFailed(ctx, gate, err)
}

// endsFailedOn reports whether this run ends the request failed on an
// activity's error (change fail-on-permanent-error). It asks for the
// version, so call it only on an error path. A cancelled workflow keeps the
// old behaviour: there is nothing left to run activities with.
func (r *request) endsFailedOn(ctx workflow.Context, err error) bool {
	if temporal.IsCanceledError(err) {
		return false
	}
	return workflow.GetVersion(ctx, changeFailOnPermanentError, workflow.DefaultVersion, 1) >= 1
}

// endFailed ends the request failed after an activity of gate failed for
// good: security hears of it, the projection (if the request has a row) and
// the audit trail say so, and the approval message shows it. The failure's
// own record carries no free text of the request (no reason, no decision or
// cancel text): that may be exactly what the database refused. If even that
// record fails, the workflow fails with the error, visibly, rather than
// hanging.
func (r *request) endFailed(ctx workflow.Context, gate string, cause error) (Status, error) {
	class := causeClass(cause)
	var step string
	if re := (*recordError)(nil); errors.As(cause, &re) {
		step = re.event
	}
	r.st.Failure = fmt.Sprintf("stopped at the %s gate: %s", gate, class)
	r.st.EndedAt = workflow.Now(ctx)
	if err := r.setStatus(ctx, domain.StatusFailed); err != nil {
		return r.st, err
	}
	r.alert(ctx, fmt.Sprintf("Request %s (%s for %s, opened by %s) failed at the %s gate: %s, which retrying cannot fix. It was stopped; the worker's log has the error.",
		r.in.RequestID, r.in.Action, r.in.CustomerID, r.in.RequesterID, gate, class))
	err := workflow.ExecuteActivity(shortOptions(ctx), acts.RecordFailure, activities.FailureInput{
		RequestID: r.in.RequestID, Gate: gate, Step: step, Cause: class, OutcomeDetail: r.st.Failure,
	}).Get(ctx, nil)
	if err != nil {
		r.updateMessage(ctx, r.endMessage(domain.StatusFailed))
		r.drain(ctx)
		return r.st, fmt.Errorf("record the failure at the %s gate: %w", gate, err)
	}
	return r.wrapUp(ctx, domain.StatusFailed)
}

// unclassified is the class of an error that is none of our own types.
const unclassified = "Unclassified"

// causeClass names the class of an activity's error for the audit trail
// and the alert: only our own error types (those failureWords knows), never
// the error's text. (The SDK fills Type with the Go type name, e.g.
// "wrapError", for plain errors.)
func causeClass(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		if _, ours := failureWords[app.Type()]; ours {
			return app.Type()
		}
	}
	return unclassified
}

// endMessage is the approval message's last update for end state s.
func (r *request) endMessage(s domain.Status) activities.MessageUpdate {
	u := activities.MessageUpdate{Event: string(s), At: r.st.EndedAt, Reason: r.st.Failure}
	if d := r.st.Decision; d != nil && s == domain.StatusRejected {
		u.ActorID, u.Reason = d.ApproverID, d.Reason
	}
	if c := r.st.Cancellation; c != nil {
		u.ActorID, u.Party = c.ActorID, c.By
	}
	return u
}

// wrapUp tells Slack and the customer (where they had been told about the
// request) how it ended, once its end state s is recorded.
func (r *request) wrapUp(ctx workflow.Context, s domain.Status) (Status, error) {
	r.updateMessage(ctx, r.endMessage(s))
	if !r.st.NotifiedAt.IsZero() || r.cancelledDuringNotice {
		in := activities.OutcomeInput{
			RequestID: r.in.RequestID, Action: r.in.Action, CustomerID: r.in.CustomerID,
			ServerID: r.in.ServerID, Email: r.in.Email, Outcome: s,
		}
		if r.st.Cancellation != nil {
			in.CancelledBy = r.st.Cancellation.By
		}
		outcomeCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout:    time.Minute,
			ScheduleToCloseTimeout: 24 * time.Hour,
			RetryPolicy:            &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute},
		})
		// The outcome mail is a courtesy: the end state is already final.
		if err := workflow.ExecuteActivity(outcomeCtx, acts.NotifyOutcome, in).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("outcome email not sent", "request", r.in.RequestID, "error", err)
		}
	}
	// Drained before the result is taken, so that it carries where a message
	// that landed late is.
	r.drain(ctx)
	return r.st, nil
}

func slackOptions(ctx workflow.Context, within time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: within,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        2 * time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			NonRetryableErrorTypes: []string{activities.ErrTypePermanent},
		},
	})
}

func (r *request) approvalInput() activities.ApprovalInput {
	return activities.ApprovalInput{
		RequestID: r.in.RequestID, PINVerifiedAt: r.st.PINVerifiedAt,
		ExpiresAt: r.st.ApprovalDeadline, CoolingPeriod: r.in.Policy.CoolingPeriod,
	}
}

// postApproval posts the approval message and starts the coroutine that
// keeps it up to date. Posting does not block the gate: a senior can only
// click once it is there, and the break-glass path does not need it.
func (r *request) postApproval(ctx workflow.Context) {
	postCtx, stop := workflow.WithCancel(ctx)
	posted := workflow.ExecuteActivity(slackOptions(postCtx, r.in.Policy.ApprovalTimeout), acts.PostApproval, r.approvalInput())
	m := &messenger{stopPosting: stop}
	r.msg = m
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { m.done = true }()
		var where activities.ApprovalPosted
		if err := posted.Get(ctx, &where); err != nil {
			workflow.GetLogger(ctx).Warn("approval message not posted", "request", r.in.RequestID, "error", err)
			return
		}
		m.posted = true
		r.st.SlackChannel, r.st.SlackTS = where.Channel, where.TS
		for {
			if err := workflow.Await(ctx, func() bool { return m.latest != nil || m.closed || m.repost.pending() }); err != nil {
				return
			}
			if m.repost.pending() {
				r.repostMessage(ctx, &where)
				continue
			}
			if m.latest == nil {
				return
			}
			u := *m.latest
			m.latest = nil
			u.Channel, u.TS = where.Channel, where.TS
			if err := workflow.ExecuteActivity(slackOptions(ctx, 15*time.Minute), acts.UpdateApprovalMessage, u).Get(ctx, nil); err != nil {
				workflow.GetLogger(ctx).Warn("approval message not updated", "request", r.in.RequestID, "event", u.Event, "error", err)
			}
		}
	})
}

// updateMessage queues the newest state of the approval message.
func (r *request) updateMessage(ctx workflow.Context, u activities.MessageUpdate) {
	if r.msg == nil {
		return
	}
	u.RequestID = r.in.RequestID
	u.PINVerifiedAt = r.st.PINVerifiedAt
	u.ApprovalExpiresAt = r.st.ApprovalDeadline
	u.CoolingPeriod = r.in.Policy.CoolingPeriod
	r.msg.latest = &u
}

// awaitDecision waits for a decision or a cancel until the approval
// deadline, reminding the approvers once halfway through.
func (r *request) awaitDecision(ctx workflow.Context) (bool, error) {
	cond := func() bool { return r.st.Decision != nil || r.st.Cancellation != nil }
	remind := r.in.Policy.ReminderAfter
	if remind <= 0 || remind >= r.in.Policy.ApprovalTimeout {
		remind = r.in.Policy.ApprovalTimeout / 2
	}
	ok, err := workflow.AwaitWithTimeout(ctx, remind, cond)
	if ok || err != nil {
		return ok, err
	}
	r.side = append(r.side, workflow.ExecuteActivity(slackOptions(ctx, r.in.Policy.ApprovalTimeout-remind), acts.RemindApprovers, r.approvalInput()))
	return workflow.AwaitWithTimeout(ctx, r.in.Policy.ApprovalTimeout-remind, cond)
}

// alert posts to the security channel without holding up the request.
func (r *request) alert(ctx workflow.Context, text string) {
	r.side = append(r.side, workflow.ExecuteActivity(slackOptions(ctx, time.Hour), acts.AlertSecurity,
		activities.AlertInput{RequestID: r.in.RequestID, Text: text}))
}

// drain lets the side activities and the message coroutine finish, so the
// final message state and every alert are delivered before completion.
func (r *request) drain(ctx workflow.Context) {
	if r.msg != nil {
		r.msg.closed = true
		if !r.msg.posted {
			r.msg.stopPosting()
		}
		_ = workflow.Await(ctx, func() bool { return r.msg.done })
	}
	for _, f := range r.side {
		if err := f.Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("side activity failed", "request", r.in.RequestID, "error", err)
		}
	}
}
