package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/workflows"
)

// consentBody is POST /api/v1/requests/{id}/break-glass: one senior's
// consent. Who consents is the caller; there is no approver field.
type consentBody struct {
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
}

// minBreakGlassReason is the shortest accepted break-glass reason: it has to
// say why Slack could not be used, which "n/a" does not.
const minBreakGlassReason = 10

// breakGlassWarning marks every break-glass audit event, so a search of the
// trail for it finds them all.
const breakGlassWarning = "BREAK-GLASS: decided outside Slack by two seniors' consents"

// DefaultBreakGlassTTL is how long a consent waits for the second senior's
// when Options.BreakGlassTTL is zero.
const DefaultBreakGlassTTL = 15 * time.Minute

// Problem codes of the break-glass path.
const (
	codeAlreadyConsented  = "already_consented"
	codeBreakGlassSeniors = "break_glass_needs_seniors"
)

// consentBreakGlass records the calling senior's consent to decide a request
// outside Slack (when Slack cannot be used). The first consent waits, until
// it expires, for a second senior's consent to the same decision; the
// second, in either order, sends the decision naming both. Each consent is
// the caller's own sign-in, so no one person, an admin included, decides
// alone; the worker checks the pair again before an approval passes.
func (a *API) consentBreakGlass(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !requestIDPattern.MatchString(id) {
		writeProblem(w, newProblem(codeRequestNotFound, "there is no request with that id (ids look like req_k3v9q2x7m4p8w1z5)"))
		return
	}
	var body consentBody
	if p := decodeJSON(w, r, &body); p != nil {
		writeProblem(w, *p)
		return
	}
	decision := domain.Decision(body.Decision)
	if decision != domain.DecisionApprove && decision != domain.DecisionReject {
		invalid(w, "decision must be approve or reject")
		return
	}
	reason, err := checkReason(body.Reason)
	if err == nil && utf8.RuneCountInString(reason) < minBreakGlassReason {
		err = fmt.Errorf("reason must have at least %d characters", minBreakGlassReason)
	}
	if err != nil {
		invalid(w, "%v; for a break-glass decision, say why Slack could not be used", err)
		return
	}
	agent := agentFrom(r.Context())
	log := a.logger.With("request", id, "decision", string(decision), "agent", agent.ID)
	if agent.Role != domain.RoleSenior {
		log.Warn("break-glass consent refused", "code", codeNotSenior, "role", string(agent.Role))
		if _, err := a.store.Request(r.Context(), id); err == nil {
			a.auditConsentRefused(r, id, agent.ID, decision, codeNotSenior)
		}
		writeProblem(w, newProblem(codeNotSenior, "only senior agents can consent to a break-glass decision"))
		return
	}
	if err := a.svc.CheckReadable(r.Context(), agent, id); err != nil {
		a.fail(w, r, "break-glass consent", id, err)
		return
	}
	res, err := a.store.ConsentBreakGlass(r.Context(), store.BreakGlassConsent{
		RequestID: id, AgentID: agent.ID, Decision: decision, Reason: reason}, a.breakGlassTTL, a.now(), breakGlassWarning)
	if err != nil {
		a.consentFail(w, r, log, id, decision, err)
		return
	}
	if res.Pair == nil {
		log.Warn("break-glass consent recorded; waiting for a second senior", "expires_at", res.Consent.ExpiresAt)
		writeJSON(w, http.StatusAccepted, consentFromStore(res.Consent))
		return
	}
	first, second := res.Pair[0], res.Pair[1]
	log.Warn(breakGlassWarning, "approver", first.AgentID, "second_approver", second.AgentID)
	ctx, cancel := a.temporalCtx(r)
	defer cancel()
	st, err := a.svc.Decide(ctx, id, workflows.DecideInput{
		Decision: decision, ApproverID: first.AgentID, ApproverRole: domain.RoleSenior, Reason: first.Reason,
		BreakGlass: true, SecondApproverID: second.AgentID, SecondApproverRole: domain.RoleSenior,
	})
	if err != nil {
		a.fail(w, r, "break-glass decide", id, err)
		return
	}
	writeJSON(w, http.StatusOK, RequestFromStatus(st))
}

// consentFail answers a consent the store refused.
func (a *API) consentFail(w http.ResponseWriter, r *http.Request, log interface {
	Warn(string, ...any)
}, id string, decision domain.Decision, err error) {
	var code, detail string
	switch {
	case errors.Is(err, store.ErrNotFound):
		code, detail = codeRequestNotFound, "there is no request "+id
	case errors.Is(err, store.ErrNotConsentingSenior):
		code, detail = codeNotSenior, "only enabled senior agents can consent to a break-glass decision"
	case errors.Is(err, store.ErrOwnRequest):
		code, detail = "self_approval", "you opened this request yourself; two other seniors must consent"
	case errors.Is(err, store.ErrNotAwaiting):
		code, detail = "not_awaiting_approval", "the request is not waiting for approval, so there is nothing to decide"
	case errors.Is(err, store.ErrAlreadyConsented):
		code, detail = codeAlreadyConsented, "your consent to a break-glass decision of this request is already recorded; a second senior must consent"
	default:
		a.internal(w, r, "break-glass consent", err)
		return
	}
	log.Warn("break-glass consent refused", "code", code)
	if code != codeRequestNotFound {
		a.auditConsentRefused(r, id, agentFrom(r.Context()).ID, decision, code)
	}
	p := newProblem(code, detail)
	p.RequestID = id
	writeProblem(w, p)
}

// auditConsentRefused records a refused consent on the request's trail, so
// an attempt to push a break-glass decision through is seen. It is best
// effort: the refusal stands either way, and the log has it.
func (a *API) auditConsentRefused(r *http.Request, id, agentID string, d domain.Decision, code string) {
	details := map[string]any{"code": code}
	if d != "" {
		details["decision"] = string(d)
	}
	if err := a.store.Audit(r.Context(), store.AuditEvent{RequestID: id, Actor: "agent:" + agentID,
		Event: "break_glass.consent_refused", Details: details}); err != nil {
		a.logger.Warn("break-glass consent refusal not audited", "request", id, "agent", agentID, "code", code, "error", err)
	}
}

// breakGlassByAdmin answers the admin API's old break-glass path: an admin
// cannot decide a request, alone or naming two seniors who did not sign in.
// The attempt is audited and refused.
func (a *API) breakGlassByAdmin(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !requestIDPattern.MatchString(id) {
		writeProblem(w, newProblem(codeRequestNotFound, "there is no request with that id (ids look like req_k3v9q2x7m4p8w1z5)"))
		return
	}
	a.logger.Warn("break-glass decision by the admin API refused", "request", id)
	if !a.audit(w, r, store.AuditEvent{RequestID: id, Event: "break_glass.refused", Details: map[string]any{
		"why": "the admin API cannot decide break-glass; two seniors each consent with their own sign-in"}}, false) {
		return
	}
	writeProblem(w, newProblem(codeBreakGlassSeniors, "an admin cannot decide a request: break-glass needs two senior agents, "+
		"each consenting with their own sign-in (`starter break-glass REQUEST_ID --decision approve --reason …`, POST /api/v1/requests/{id}/break-glass)"))
}
