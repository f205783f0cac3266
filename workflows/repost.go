package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
)

// repostWithin bounds how long posting the message again may take, retries
// included: the caller is waiting.
const repostWithin = 2 * time.Minute

// repostJob is one ask, through the repost Update, to post the approval
// message again. The message's coroutine carries it out between its
// updates, so the new message never misses one.
type repostJob struct {
	by   string
	done bool
	err  error
}

// pending reports whether j still waits for the message's coroutine.
func (j *repostJob) pending() bool { return j != nil && !j.done }

// registerRepost registers the repost Update. It adds commands only to a
// run that receives one, so histories without it replay unchanged.
func (r *request) registerRepost(ctx workflow.Context) error {
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateRepost,
		func(ctx workflow.Context, in RepostInput) (Status, error) {
			m := r.msg
			job := &repostJob{by: in.ActorID}
			m.repost = job
			// The coroutine ends (m.done) with the request: a job it never
			// took is answered then, so no Update waits for ever.
			if err := workflow.Await(ctx, func() bool { return job.done || m.done }); err != nil {
				return r.st, err
			}
			if !job.done {
				return r.st, refuse(RefusedNotAwaiting, "the request ended before its approval message could be posted again (status %s)", r.st.Status)
			}
			return r.st, job.err
		},
		workflow.UpdateHandlerOptions{Validator: r.validateRepost},
	)
	if err != nil {
		return fmt.Errorf("register repost update: %w", err)
	}
	return nil
}

// validateRepost admits an ask to post the approval message again from the
// requester or a senior while the request waits for approval and its
// message was posted; a refusal leaves no trace in the workflow.
func (r *request) validateRepost(ctx workflow.Context, in RepostInput) error {
	switch {
	case in.ActorID == "":
		return refuse(RefusedInvalid, "who asks is missing")
	case in.ActorID != r.in.RequesterID && in.ActorRole != domain.RoleSenior:
		return refuse(RefusedNotRequester, "only the agent who opened the request or a senior agent can have its approval message posted again")
	case r.st.Status != domain.StatusAwaitingApproval || r.st.Decision != nil || r.st.Cancellation != nil:
		return refuse(RefusedNotAwaiting, "the request is not waiting for approval (status %s), so its approval message is not needed any more", r.st.Status)
	case r.msg == nil || (!r.msg.posted && !r.msg.done):
		return refuse(RefusedNotAwaiting, "the approval message is still being posted; try again in a minute")
	case !r.msg.posted:
		return refuse(RefusedSlack, "the approval message could not be posted (Slack refused it for good); a senior can decide with break-glass")
	case r.msg.repost.pending():
		return refuse(RefusedNotAwaiting, "the approval message is being posted again already")
	}
	return nil
}

// repostMessage carries out the pending repost on the message's coroutine:
// the new message is posted and recorded (projection and audit trail) and
// the old one, if Slack still has it, says it was replaced; from then on
// where, the workflow's state and every update name the new one.
func (r *request) repostMessage(ctx workflow.Context, where *activities.ApprovalPosted) {
	job := r.msg.repost
	defer func() { job.done = true }()
	if r.st.Status != domain.StatusAwaitingApproval || r.st.Decision != nil || r.st.Cancellation != nil {
		job.err = refuse(RefusedNotAwaiting, "the request is not waiting for approval any more (status %s)", r.st.Status)
		return
	}
	in := activities.RepostInput{ApprovalInput: r.approvalInput(), OldChannel: where.Channel, OldTS: where.TS, ActorID: job.by}
	var posted activities.ApprovalPosted
	if err := workflow.ExecuteActivity(slackOptions(ctx, repostWithin), acts.RepostApproval, in).Get(ctx, &posted); err != nil {
		workflow.GetLogger(ctx).Warn("approval message not posted again", "request", r.in.RequestID, "error", err)
		job.err = refuse(RefusedSlack, "Slack did not take the new approval message; the old one is still the request's. Try again in a minute")
		return
	}
	*where = posted
	r.st.SlackChannel, r.st.SlackTS = posted.Channel, posted.TS
}
