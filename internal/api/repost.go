package api

import (
	"net/http"

	"github.com/vigil-oss/vigil/workflows"
)

// RepostResult is the answer of POST /api/v1/requests/{id}/repost: where
// the request's approval message is now.
type RepostResult struct {
	RequestID string `json:"request_id"`
	Channel   string `json:"channel"`
	TS        string `json:"ts"`
}

// repost has a request's approval message posted again (after it was
// deleted in Slack, say), for the requester or a senior while the request
// waits for approval: the workflow's validator decides, the caller's
// identity comes from the session. The body is empty or {}.
func (a *API) repost(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !requestIDPattern.MatchString(id) {
		writeProblem(w, newProblem(codeRequestNotFound, "there is no request with that id (ids look like req_k3v9q2x7m4p8w1z5)"))
		return
	}
	if r.ContentLength != 0 {
		var none struct{}
		if p := decodeJSON(w, r, &none); p != nil {
			writeProblem(w, *p)
			return
		}
	}
	agent := agentFrom(r.Context())
	// Another agent's request answers as one that does not exist, before
	// the workflow could say whose it is.
	if err := a.svc.CheckReadable(r.Context(), agent, id); err != nil {
		a.fail(w, r, "repost approval message", id, err)
		return
	}
	ctx, cancel := a.temporalCtx(r)
	defer cancel()
	st, err := a.svc.Repost(ctx, id, workflows.RepostInput{ActorID: agent.ID, ActorRole: agent.Role})
	if err != nil {
		a.fail(w, r, "repost approval message", id, err)
		return
	}
	writeJSON(w, http.StatusOK, RepostResult{RequestID: st.RequestID, Channel: st.SlackChannel, TS: st.SlackTS})
}
