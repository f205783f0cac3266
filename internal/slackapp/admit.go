package slackapp

import (
	"context"
	"errors"
	"log/slog"

	"github.com/vigil-oss/vigil/internal/store"
)

// refusal is why a click or a dialog's submission changes nothing: its
// audit code, the request to file it under ("" when unknown), the words
// for the person, and whether the clicked message is a stray copy whose
// buttons should go.
type refusal struct {
	code, requestID, text string
	details               map[string]any
	stray                 bool
}

func agentDetails(a store.Agent) map[string]any {
	return map[string]any{"agent": a.ID, "role": string(a.Role)}
}

// admit runs the checks every decision from Slack passes before it is
// sent on, whether it came as a click or as the reject dialog's
// submission: the Slack user is linked to an active agent, the request
// exists, the decision was made on its recorded approval message, and the
// user is in the approvers' group.
func (h *Handler) admit(ctx context.Context, log *slog.Logger, c click) (store.Agent, store.Request, *refusal) {
	agent, err := h.store.AgentBySlackUser(ctx, c.userID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return agent, store.Request{}, &refusal{code: "not_linked", requestID: h.knownRequest(ctx, c.requestID),
			text: "Your Slack account is not linked to an active Vigil agent; ask an admin."}
	case err != nil:
		log.Error("slack click: agent lookup failed", "err", err)
		return agent, store.Request{}, &refusal{code: "lookup_failed",
			text: "Vigil could not look up your account right now; try again in a minute."}
	}
	details := agentDetails(agent)

	req, err := h.requestWithMessage(ctx, c.requestID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return agent, req, &refusal{code: "unknown_request", details: details,
			text: "This button does not belong to the approval message of " + c.requestID + ": Vigil has no such request."}
	case err != nil:
		log.Error("slack click: request lookup failed", "err", err)
		return agent, req, &refusal{code: "lookup_failed", details: details,
			text: "Vigil could not look up " + c.requestID + " right now; try again in a minute."}
	}
	if c.channelsDisagree || req.SlackChannel == "" || req.SlackTS == "" || c.channel != req.SlackChannel || c.messageTS != req.SlackTS {
		// A consistent click on another message of ours is a stray copy
		// when the request's real message is known, or when the request
		// ended without one (a post that landed after the end is never
		// recorded): take its buttons away so nobody else is misled by it.
		// Never while a live request's message is not recorded yet: the
		// clicked one may be it.
		known := req.SlackChannel != "" && req.SlackTS != ""
		stray := !c.channelsDisagree && (known || req.Status.Final()) && h.strayCopy(ctx, log, c)
		return agent, req, &refusal{code: "wrong_message", requestID: req.ID, details: details, stray: stray,
			text: "This button does not belong to the approval message of " + c.requestID + "."}
	}

	gctx, cancel := context.WithTimeout(ctx, h.cfg.GroupCheckTimeout)
	member, err := h.slack.IsGroupMember(gctx, c.userID)
	cancel()
	switch {
	case err != nil:
		log.Warn("slack click: group membership check failed", "err", err)
		return agent, req, &refusal{code: "group_check_failed", requestID: req.ID, details: details,
			text: "Vigil could not check your Slack group membership; try again in a minute."}
	case !member:
		return agent, req, &refusal{code: "not_in_group", requestID: req.ID, details: details,
			text: "Refused: only members of the seniors group can approve or reject."}
	}
	return agent, req, nil
}
