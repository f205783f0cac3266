package api

import (
	"net/http"
)

// stopForStanding stops the open requests that rest on agentID once it lost
// its standing (disabled, or no longer a senior), and returns their ids for
// the admin action's audit event. What it cannot stop now (Temporal down)
// is logged: the workflow's own check of the agents table just before
// executing stops those.
func (a *API) stopForStanding(r *http.Request, agentID string, disabled bool, why string) []string {
	stopped, err := a.svc.StopForStanding(r.Context(), agentID, disabled, why)
	if err != nil {
		a.logger.Warn("not every request resting on the agent could be stopped now; each is checked again before it executes",
			"agent", agentID, "error", err)
	}
	if stopped == nil {
		stopped = []string{}
	}
	return stopped
}
