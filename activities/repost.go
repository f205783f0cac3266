package activities

import (
	"context"
	"fmt"

	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/store"
)

// EventApprovalReposted is the audit event of an approval message posted again.
const EventApprovalReposted = "slack.approval_reposted"

// RepostInput asks for the approval message of a request awaiting approval
// to be posted again, replacing the one at OldChannel/OldTS.
type RepostInput struct {
	ApprovalInput
	OldChannel, OldTS string
	ActorID           string // the agent who asked
}

// RepostApproval posts the approval message again, records the new one as
// the request's (so clicks on the old one are refused from now on) with an
// audit event naming who asked, and updates the old one, if Slack still has
// it, to say it was replaced. A retry after a crash finds the new message
// recorded and does not post a third; an old message Slack no longer has
// (deleted: the usual reason to post again) is left as it is.
func (a *Activities) RepostApproval(ctx context.Context, in RepostInput) (ApprovalPosted, error) {
	if a.Approvals == nil {
		return ApprovalPosted{}, permanent(errNoSlack, "cannot post the approval message again")
	}
	req, msg, err := a.slackRequest(ctx, in.RequestID, in.PINVerifiedAt, in.ExpiresAt, in.CoolingPeriod)
	if err != nil {
		return ApprovalPosted{}, err
	}
	posted := ApprovalPosted{Channel: req.SlackChannel, TS: req.SlackTS}
	if req.SlackChannel == in.OldChannel && req.SlackTS == in.OldTS {
		ch, ts, err := a.Approvals.PostApproval(ctx, msg)
		if err != nil {
			if approvals.IsPermanent(err) {
				return ApprovalPosted{}, permanent(err, "Slack refused the new approval message for %s", in.RequestID)
			}
			return ApprovalPosted{}, fmt.Errorf("post approval message of %s again: %w", in.RequestID, err)
		}
		posted = ApprovalPosted{Channel: ch, TS: ts}
		if err := a.Store.UpdateRequest(ctx, in.RequestID, store.RequestUpdate{SlackChannel: &ch, SlackTS: &ts}, a.now()); err != nil {
			return ApprovalPosted{}, fmt.Errorf("store the new approval message of %s: %w", in.RequestID, err)
		}
	}
	if err := a.Store.AuditOnce(ctx, store.AuditEvent{RequestID: in.RequestID, Actor: "agent:" + in.ActorID, Event: EventApprovalReposted,
		Details: map[string]any{"old_channel": in.OldChannel, "old_ts": in.OldTS, "channel": posted.Channel, "ts": posted.TS}},
		"repost/"+in.OldChannel+"/"+in.OldTS); err != nil {
		return ApprovalPosted{}, fmt.Errorf("audit the new approval message of %s: %w", in.RequestID, err)
	}
	if err := a.Approvals.ReplaceApproval(ctx, in.OldChannel, in.OldTS, msg, in.ActorID); err != nil {
		if !approvals.IsPermanent(err) {
			return ApprovalPosted{}, fmt.Errorf("mark the old approval message of %s replaced: %w", in.RequestID, err)
		}
		a.log(ctx).Info("old approval message left as it is (Slack no longer has it, or refuses the update)",
			"request", in.RequestID, "channel", in.OldChannel, "ts", in.OldTS, "err", err)
	}
	return posted, nil
}
