// Package loadbare is the load command's reference: a bare workflow of the
// SensitiveRequest workflow's shape (the same activities in the same order
// with the same options, one Update, the same timers and search attribute
// upserts) whose activities do nothing, so that the load command can put
// Vigil's throughput next to the floor the same Temporal server allows.
package loadbare

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Names the load command and the bare worker agree on.
const (
	WorkflowName = "BareRequest"
	TaskQueue    = "vigil-load-bare"
	UpdateDecide = "decide"
)

// Search attributes the devserver registers for Vigil; the bare workflow
// upserts them where Vigil does, as ids and status.
var (
	saAction    = temporal.NewSearchAttributeKeyKeyword("VigilAction")
	saCustomer  = temporal.NewSearchAttributeKeyKeyword("VigilCustomer")
	saStatus    = temporal.NewSearchAttributeKeyKeyword("VigilStatus")
	saRequester = temporal.NewSearchAttributeKeyKeyword("VigilRequester")
)

// Policy is the bare run's timings; the load command sets Vigil's to the
// same values through the environment.
type Policy struct {
	ApprovalTimeout    time.Duration
	CoolingPeriod      time.Duration
	NoticeTimeout      time.Duration
	ExecuteMaxAttempts int32
}

// Input starts one bare request.
type Input struct {
	RequestID   string
	Action      string
	CustomerID  string
	RequesterID string
	Policy      Policy
}

// Result is what a bare request ends with.
type Result struct {
	// ExecutedAt is the workflow time the (empty) action completed.
	ExecutedAt time.Time
}

// Decision is the Update's argument.
type Decision struct {
	Approve bool
}

// Notifier tells the driver that a bare request waits for its decision,
// as Vigil's approval message tells a senior.
type Notifier func(requestID string)

// Activities are the bare activities: each does nothing but its name.
type Activities struct {
	// Posted is called by PostApproval.
	Posted Notifier
}

// ConsumePINVerdict stands for Vigil's PIN gate.
func (a *Activities) ConsumePINVerdict(context.Context, Input) error { return nil }

// Open stands for Vigil's Open.
func (a *Activities) Open(context.Context, Input) error { return nil }

// Record stands for Vigil's Record (projection and audit event).
func (a *Activities) Record(context.Context, string) error { return nil }

// PostApproval stands for Vigil's approval message: it tells the driver.
func (a *Activities) PostApproval(ctx context.Context, id string) error {
	if a.Posted != nil {
		a.Posted(id)
	}
	return nil
}

// UpdateApprovalMessage stands for Vigil's message updates.
func (a *Activities) UpdateApprovalMessage(context.Context, string) error { return nil }

// NotifyCustomer stands for Vigil's notice; it heartbeats once, as Vigil's does.
func (a *Activities) NotifyCustomer(ctx context.Context, _ string) error {
	activity.RecordHeartbeat(ctx)
	return nil
}

// Execute stands for Vigil's executor.
func (a *Activities) Execute(ctx context.Context, _ string) error {
	activity.RecordHeartbeat(ctx)
	return nil
}

// NotifyOutcome stands for Vigil's outcome email.
func (a *Activities) NotifyOutcome(context.Context, string) error { return nil }

var acts *Activities

// The activity options below are copies of workflows/request.go's; the load
// command compares the two histories' scheduled activities and says where
// they differ.

func shortOptions(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
}

func slackOptions(ctx workflow.Context, within time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: within,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
			NonRetryableErrorTypes: []string{"Permanent"}},
	})
}

// bare is one run's state.
type bare struct {
	in      Input
	status  string
	decided bool
	// latest is the newest message update not yet applied; closed ends the
	// messenger, done says it ended (Vigil's messenger coroutine).
	latest       string
	closed, done bool
}

// Workflow runs one bare request: the executed path of SensitiveRequest.
func Workflow(ctx workflow.Context, in Input) (Result, error) {
	if in.RequestID == "" || in.Policy.CoolingPeriod <= 0 || in.Policy.ApprovalTimeout <= 0 || in.Policy.NoticeTimeout <= 0 {
		return Result{}, temporal.NewNonRetryableApplicationError("bare: request id and positive timings are required", "InvalidInput", nil)
	}
	b := &bare{in: in, status: "pin_check"}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDecide,
		func(ctx workflow.Context, d Decision) (string, error) {
			b.decided = true
			_, err := workflow.AwaitWithTimeout(ctx, 10*time.Second, func() bool { return b.status != "awaiting_approval" })
			return b.status, err
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, d Decision) error {
			if !d.Approve {
				return errors.New("the bare workflow only approves")
			}
			if b.decided || b.status != "awaiting_approval" {
				return errors.New("not awaiting approval")
			}
			return nil
		}},
	); err != nil {
		return Result{}, err
	}
	res, err := b.run(ctx)
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	return res, err
}

func (b *bare) setStatus(ctx workflow.Context, s string) error {
	b.status = s
	return workflow.UpsertTypedSearchAttributes(ctx,
		saAction.ValueSet(b.in.Action), saCustomer.ValueSet(b.in.CustomerID),
		saRequester.ValueSet(b.in.RequesterID), saStatus.ValueSet(s))
}

// enter is Vigil's enter: status, then the gate's record.
func (b *bare) enter(ctx workflow.Context, s string) error {
	if err := b.setStatus(ctx, s); err != nil {
		return err
	}
	return workflow.ExecuteActivity(shortOptions(ctx), acts.Record, s).Get(ctx, nil)
}

func (b *bare) run(ctx workflow.Context) (Result, error) {
	id, p := b.in.RequestID, b.in.Policy
	_ = workflow.GetVersion(ctx, "pin-verdict-before-start", workflow.DefaultVersion, 1)
	// Gate 1 and the open, in the order of change pin-verdict-before-start.
	if err := workflow.ExecuteActivity(shortOptions(ctx), acts.ConsumePINVerdict, b.in).Get(ctx, nil); err != nil {
		return Result{}, err
	}
	if err := b.setStatus(ctx, "pin_check"); err != nil {
		return Result{}, err
	}
	if err := workflow.ExecuteActivity(shortOptions(ctx), acts.Open, b.in).Get(ctx, nil); err != nil {
		return Result{}, err
	}
	// Gate 2: the approval message, posted without blocking the gate, and
	// kept up to date by one coroutine.
	if err := b.enter(ctx, "awaiting_approval"); err != nil {
		return Result{}, err
	}
	posted := workflow.ExecuteActivity(slackOptions(ctx, p.ApprovalTimeout), acts.PostApproval, id)
	workflow.Go(ctx, func(ctx workflow.Context) {
		defer func() { b.done = true }()
		if posted.Get(ctx, nil) != nil {
			return
		}
		for {
			if workflow.Await(ctx, func() bool { return b.latest != "" || b.closed }) != nil || b.latest == "" {
				return
			}
			u := b.latest
			b.latest = ""
			_ = workflow.ExecuteActivity(slackOptions(ctx, 15*time.Minute), acts.UpdateApprovalMessage, u).Get(ctx, nil)
		}
	})
	ok, err := workflow.AwaitWithTimeout(ctx, p.ApprovalTimeout/2, func() bool { return b.decided })
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{}, temporal.NewNonRetryableApplicationError("bare: no decision before the reminder", "Expired", nil)
	}
	// Gate 3: the notice.
	if err := b.enter(ctx, "notifying"); err != nil {
		return Result{}, err
	}
	b.latest = "approved"
	_ = workflow.GetVersion(ctx, "cancel-stops-notice", workflow.DefaultVersion, 1)
	noticeCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute, ScheduleToCloseTimeout: p.NoticeTimeout, HeartbeatTimeout: 30 * time.Second,
		WaitForCancellation: true,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute},
	})
	if err := workflow.ExecuteActivity(noticeCtx, acts.NotifyCustomer, id).Get(ctx, nil); err != nil {
		return Result{}, err
	}
	// Gate 4: the cooling period.
	if err := b.enter(ctx, "cooling"); err != nil {
		return Result{}, err
	}
	b.latest = "notified"
	if _, err := workflow.AwaitWithTimeout(ctx, p.CoolingPeriod, func() bool { return false }); err != nil {
		return Result{}, err
	}
	// Gate 5: execute, then the end state, the message and the outcome.
	if err := b.enter(ctx, "executing"); err != nil {
		return Result{}, err
	}
	execCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute, HeartbeatTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
			MaximumAttempts: p.ExecuteMaxAttempts, NonRetryableErrorTypes: []string{"Permanent"}},
	})
	if err := workflow.ExecuteActivity(execCtx, acts.Execute, id).Get(ctx, nil); err != nil {
		return Result{}, err
	}
	res := Result{ExecutedAt: workflow.Now(ctx)}
	if err := b.enter(ctx, "executed"); err != nil {
		return Result{}, err
	}
	b.latest = "executed"
	outcomeCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute, ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute},
	})
	if err := workflow.ExecuteActivity(outcomeCtx, acts.NotifyOutcome, id).Get(ctx, nil); err != nil {
		return Result{}, err
	}
	b.closed = true
	_ = workflow.Await(ctx, func() bool { return b.done })
	return res, nil
}

// Register registers the bare workflow and acts on a worker.
func Register(w interface {
	RegisterWorkflowWithOptions(any, workflow.RegisterOptions)
	RegisterActivity(any)
}, a *Activities) {
	w.RegisterWorkflowWithOptions(Workflow, registerOptions())
	w.RegisterActivity(a)
}

func registerOptions() workflow.RegisterOptions { return workflow.RegisterOptions{Name: WorkflowName} }
