package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/slack-go/slack"

	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// maxTriggerIDLen bounds a trigger_id passed back to Slack.
const maxTriggerIDLen = 255

// wantsReason reports whether a Reject click by agent on req opens the
// reason dialog. It does not when the workflow is sure to refuse the
// decision whatever the reason: the agent opened the request or is no
// senior (the workflow is given the same agent record), or the request is
// past approval (the projection follows the workflow and never runs ahead
// of it, and a request's message is recorded only once it awaits
// approval). Such a click goes to the workflow as it is, so the person hears
// its refusal in its own words ("already approved by …") at once, and a
// not-senior attempt is alerted as before.
func wantsReason(req store.Request, agent store.Agent) bool {
	return req.Status == domain.StatusAwaitingApproval && agent.Role == domain.RoleSenior && agent.ID != req.RequesterID
}

// openRejectDialog opens the reject dialog for the clicking senior without
// holding up the ack. Slack honours the click's trigger_id for three
// seconds, so a dialog that cannot be opened in time is reported to them.
func (h *Handler) openRejectDialog(log *slog.Logger, c click, req store.Request) {
	if c.triggerID == "" || len(c.triggerID) > maxTriggerIDLen {
		log.Warn("reject click without a usable trigger id; dialog not opened")
		h.notify(c.channel, c.userID, "Vigil could not open the reject dialog; click Reject again.")
		return
	}
	view := approvals.RejectModal(approvals.Request{ID: req.ID, Action: req.Action, CustomerID: req.CustomerID, ServerID: req.ServerID},
		approvals.RejectMeta{RequestID: req.ID, Channel: c.channel, TS: c.messageTS})
	started := h.background(func() {
		ctx, cancel := context.WithTimeout(h.base, noticeTimeout)
		defer cancel()
		if err := h.slack.OpenView(ctx, c.triggerID, view); err != nil {
			log.Warn("reject dialog not opened", "err", err)
			h.ephemeral(c.channel, c.userID, "Vigil could not open the reject dialog in time; click Reject again.")
		}
	})
	if !started {
		log.Warn("too many Slack calls in flight; reject dialog not opened")
	}
}

// serveSubmission handles the reject dialog's view_submission, already
// verified as Slack's (signature, freshness, replay, workspace and app). The
// dialog's private_metadata names the request and the message whose Reject
// button opened it; the submitting user, from the signed payload, passes
// every check a click passes, on that message, which must still be the
// request's approval message. A missing or invalid reason, or a refusal, is
// answered with an error shown in the dialog (response_action "errors") and
// changes nothing; a good one closes the dialog and goes to the workflow.
func (h *Handler) serveSubmission(w http.ResponseWriter, r *http.Request, log *slog.Logger, ic slack.InteractionCallback) {
	ctx := r.Context()
	c, code, err := submissionFrom(ic)
	if err != nil {
		log.Warn("slack view submission refused", "code", code, "reason", err, "user", clip(c.userID))
		h.auditRefusal(ctx, c, code, "", map[string]any{"type": string(ic.Type)})
		http.Error(w, "not a submission of Vigil's reject dialog", http.StatusBadRequest)
		return
	}
	log = log.With("user", c.userID, "request", c.requestID, "decision", string(c.decision), "via", "reject_dialog")

	agent, req, ref := h.admit(ctx, log, c)
	if ref != nil {
		if ref.code == "wrong_message" {
			// The dialog outlived its message (posted again meanwhile):
			// nothing to retire, the dialog's message is not clicked.
			ref.text = "The approval message of " + c.requestID + " was replaced since this dialog opened; reject from its current message."
		}
		h.refuseView(ctx, w, log, c, ref.code, ref.requestID, ref.text, ref.details)
		return
	}
	log = log.With("agent", agent.ID)

	reason, err := submittedReason(ic)
	if err != nil {
		log.Info("slack reject dialog: reason refused", "reason", err)
		details := agentDetails(agent)
		details["problem"] = clip(err.Error())
		h.refuseView(ctx, w, log, c, "invalid_reason", req.ID, reasonProblem(err), details)
		return
	}
	c.reason = reason

	switch h.enqueue(job{click: c, agent: agent}) {
	case enqueueClosed:
		log.Warn("slack reject dialog refused: shutting down")
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	case enqueueFull:
		log.Warn("slack reject dialog refused: decision queue full", "queue", h.cfg.QueueSize)
		h.refuseView(ctx, w, log, c, "busy", req.ID, "Vigil is busy; submit again in a minute.", agentDetails(agent))
		return
	}
	log.Info("slack reject with reason accepted")
	// An empty 200 closes the dialog. The workflow's answer follows on the
	// message (or, for a refusal, as an ephemeral reply).
	w.WriteHeader(http.StatusOK)
}

// submissionFrom extracts the reject decision a view_submission stands
// for, or says why it is not one of Vigil's reject dialogs. The returned
// click carries the user id even on error, for the audit.
func submissionFrom(ic slack.InteractionCallback) (click, string, error) {
	c := click{userID: ic.User.ID, decision: domain.DecisionReject}
	if err := textrule.Check("user.id", c.userID, textrule.Options{MaxLen: maxRequestIDLen}); err != nil {
		c.userID = ""
		return c, "malformed_submission", err
	}
	if ic.View.CallbackID != approvals.CallbackReject {
		return c, "unknown_view", errors.New("callback_id is not Vigil's reject dialog")
	}
	meta, err := approvals.ParseRejectMeta(ic.View.PrivateMetadata)
	if err != nil {
		return c, "malformed_submission", err
	}
	for _, f := range []struct{ name, v string }{{"channel", meta.Channel}, {"ts", meta.TS}} {
		if err := textrule.Check(f.name, f.v, textrule.Options{MaxLen: maxRequestIDLen}); err != nil {
			return c, "malformed_submission", err
		}
	}
	if len(meta.RequestID) > maxRequestIDLen || !requestIDPattern.MatchString(meta.RequestID) {
		return c, "malformed_request_id", errors.New("private_metadata's request is not a request id")
	}
	c.requestID, c.channel, c.messageTS = meta.RequestID, meta.Channel, meta.TS
	if ic.View.ID != "" {
		c.actionTS = "view:" + ic.View.ID
	}
	return c, "", nil
}

// submittedReason reads the dialog's reason and applies the text rule with
// the limit every reason has.
func submittedReason(ic slack.InteractionCallback) (string, error) {
	var v string
	if ic.View.State != nil {
		v = ic.View.State.Values[approvals.ReasonBlockID][approvals.ReasonActionID].Value
	}
	return textrule.Clean("reason", v, textrule.Options{Required: true, MaxLen: requests.MaxReasonLen})
}

// reasonProblem words a refused reason for the dialog.
func reasonProblem(err error) string {
	var te *textrule.Error
	if errors.As(err, &te) && te.Problem != "" && te.Problem != "is required" {
		return "The reason " + te.Problem + "."
	}
	return "Say in one line why you reject this request."
}

// refuseView records a refused submission and answers with the refusal
// shown under the dialog's reason field: nothing changed, and the senior
// reads why where they typed.
func (h *Handler) refuseView(ctx context.Context, w http.ResponseWriter, log *slog.Logger, c click, code, knownRequestID, text string, details map[string]any) {
	log.Info("slack reject dialog refused", "code", code)
	if details == nil {
		details = map[string]any{}
	}
	details["via"] = "reject_dialog"
	h.auditRefusal(ctx, c, code, knownRequestID, details)
	body, _ := json.Marshal(slack.NewErrorsViewSubmissionResponse(map[string]string{approvals.ReasonBlockID: text}))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
