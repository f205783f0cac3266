package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
)

// Stages at which the workflow checks the standing of the people a request
// depends on.
const (
	// StandingAtDecision: a decision was accepted; its approver is checked
	// in the agents table, not taken from the decision's word.
	StandingAtDecision = "decision"
	// StandingAtExecution: the cooling period is over and the action is
	// about to run; requester and approvers are checked again.
	StandingAtExecution = "execution"
)

// Why an agent is not in good standing.
const (
	StandingUnknown     = "unknown"      // no such agent
	StandingDisabled    = "disabled"     // the agent was disabled
	StandingNotSenior   = "not_senior"   // an approver who is not (or no longer) a senior
	StandingIsRequester = "is_requester" // an approver who opened the request
)

// StandingInput names the people a request depends on.
type StandingInput struct {
	RequestID   string
	Stage       string
	RequesterID string
	// ApproverID and SecondApproverID (break-glass) are the ids the
	// decision names; empty when there is none.
	ApproverID       string
	SecondApproverID string `json:",omitempty"`
}

// StandingProblem is one person of the request who is not in good standing.
type StandingProblem struct {
	AgentID string
	// Part is requester, approver or second approver.
	Part string
	// Why is one of the Standing* reasons.
	Why string
}

// StandingResult is the check's answer: an answer, not an error, so that
// the workflow decides how the request ends.
type StandingResult struct {
	OK       bool
	Problems []StandingProblem `json:",omitempty"`
}

// Text puts the problems into words for the audit trail, Slack and status.
func (r StandingResult) Text() string {
	words := map[string]string{
		StandingUnknown: "is not a Vigil agent", StandingDisabled: "is disabled",
		StandingNotSenior: "is not a senior agent", StandingIsRequester: "opened the request",
	}
	var parts []string
	for _, p := range r.Problems {
		parts = append(parts, fmt.Sprintf("the %s %s %s", p.Part, p.AgentID, words[p.Why]))
	}
	return strings.Join(parts, "; ")
}

// CheckStanding reads the requester and the approvers in the agents table:
// the requester must exist and be enabled; each approver must exist, be
// enabled, be a senior and not be the requester. Nothing a caller of the
// workflow said about them (a role in an Update) counts.
func (a *Activities) CheckStanding(ctx context.Context, in StandingInput) (StandingResult, error) {
	if in.RequesterID == "" || (in.ApproverID == "" && in.Stage == StandingAtExecution) {
		return StandingResult{}, permanent(nil, "standing check of %s names nobody to check", in.RequestID)
	}
	var res StandingResult
	check := func(part, id string, approver bool) error {
		if id == "" {
			return nil
		}
		ag, err := a.Store.Agent(ctx, id)
		var why string
		switch {
		case errors.Is(err, store.ErrNotFound):
			why = StandingUnknown
		case err != nil:
			return fmt.Errorf("read agent %s: %w", id, err)
		case ag.Disabled:
			why = StandingDisabled
		case approver && ag.Role != domain.RoleSenior:
			why = StandingNotSenior
		case approver && id == in.RequesterID:
			why = StandingIsRequester
		}
		if why != "" {
			res.Problems = append(res.Problems, StandingProblem{AgentID: id, Part: part, Why: why})
		}
		return nil
	}
	for _, c := range []struct {
		part, id string
		approver bool
	}{
		{"requester", in.RequesterID, false},
		{"approver", in.ApproverID, true},
		{"second approver", in.SecondApproverID, true},
	} {
		if err := check(c.part, c.id, c.approver); err != nil {
			return StandingResult{}, err
		}
	}
	res.OK = len(res.Problems) == 0
	log := a.log(ctx).With("request", in.RequestID, "stage", in.Stage, "requester", in.RequesterID, "approver", in.ApproverID)
	if res.OK {
		log.Info("standing checked")
	} else {
		log.Warn("standing check failed", "problems", res.Text())
	}
	return res, nil
}
