package api

import (
	"errors"
	"fmt"
	"github.com/vigil-oss/vigil/internal/agentauth"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/textrule"
	"github.com/vigil-oss/vigil/workflows"
)

// idPattern is the shape of customer, server, agent and Slack ids; it
// matches the one requests.OpenParams.Validate uses.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// requestIDPattern is the shape of requests.NewID's ids.
var requestIDPattern = regexp.MustCompile(`^req_[a-z0-9]{1,60}$`)

// openBody is POST /api/v1/requests. There is no requester field: the
// requester is whoever the token belongs to, and sending one is an error.
type openBody struct {
	Action     string `json:"action"`
	CustomerID string `json:"customer_id"`
	ServerID   string `json:"server_id"`
	Email      string `json:"email"`
	Reason     string `json:"reason"`
	PIN        string `json:"pin"`
	// FactorCode is the code from the customer's authenticator, when the
	// first answer was factor_required.
	FactorCode string `json:"factor_code"`
}

// String keeps the PIN and the code out of any accidental %v.
func (b openBody) String() string {
	return fmt.Sprintf("openBody{Action:%s CustomerID:%s ServerID:%s Email:%s PIN:[redacted] FactorCode:[redacted]}", b.Action, b.CustomerID, b.ServerID, b.Email)
}

// reasonBody is the body of withdraw and veto.
type reasonBody struct {
	Reason string `json:"reason"`
}

func (a *API) me(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, meFromAgent(agentFrom(r.Context())))
}

// rotateMyToken issues the calling agent a new personal token and answers
// with it; the old one stops working. Audited and announced, named as the
// agent's own.
func (a *API) rotateMyToken(w http.ResponseWriter, r *http.Request) {
	if p := decodeEmpty(w, r); p != nil {
		writeProblem(w, *p)
		return
	}
	a.issueOwnToken(w, r, agentFrom(r.Context()), "agent:")
}

// issueOwnToken gives ag, the caller, a new token and answers with it: the
// one case an answer carries an existing agent's token. actorPrefix says
// which API the caller used ("agent:" or "admin:").
func (a *API) issueOwnToken(w http.ResponseWriter, r *http.Request, ag store.Agent, actorPrefix string) {
	tok, err := agentauth.NewToken()
	if err != nil {
		a.internal(w, r, "new token", err)
		return
	}
	e := store.AuditEvent{Actor: actorPrefix + ag.ID, Event: "agent.token_rotated",
		Details: map[string]any{"agent_id": ag.ID, "agent_told": false, "sent_to": "caller", "own": true}}
	if err := a.store.RotateOwnToken(r.Context(), e, ag.ID, agentauth.Hash(tok)); err != nil {
		if store.IsUnavailable(err) {
			writeDBUnavailable(w)
			return
		}
		a.storeFail(w, r, "rotate own token", err)
		return
	}
	writeJSON(w, http.StatusOK, AgentWithToken{Agent: agentFromStore(ag), Token: tok})
}

func (a *API) openRequest(w http.ResponseWriter, r *http.Request) {
	var body openBody
	if p := decodeJSON(w, r, &body); p != nil {
		writeProblem(w, *p)
		return
	}
	ctx, cancel := a.temporalCtx(r)
	defer cancel()
	st, err := a.svc.Open(ctx, agentFrom(r.Context()), requests.OpenParams{
		Action: domain.Action(body.Action), CustomerID: body.CustomerID, ServerID: body.ServerID,
		Email: body.Email, Reason: body.Reason, PIN: body.PIN, FactorCode: body.FactorCode,
	})
	if err != nil {
		a.fail(w, r, "open request", "", err)
		return
	}
	w.Header().Set("Location", "/api/v1/requests/"+url.PathEscape(st.RequestID))
	writeJSON(w, http.StatusCreated, RequestFromStatus(st))
}

// listParams holds the accepted query parameters of GET /api/v1/requests.
var listParams = map[string]bool{"mine": true, "open": true, "customer": true, "limit": true}

func (a *API) listRequests(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k, v := range q {
		if !listParams[k] {
			invalid(w, "unknown query parameter %q (accepted: mine, open, customer, limit)", k)
			return
		}
		if len(v) != 1 {
			invalid(w, "query parameter %q given %d times", k, len(v))
			return
		}
	}
	f := store.ListFilter{Limit: 50}
	mine, ok := boolParam(w, q, "mine")
	if !ok {
		return
	}
	if mine {
		f.RequesterID = agentFrom(r.Context()).ID
	}
	if f.OpenOnly, ok = boolParam(w, q, "open"); !ok {
		return
	}
	if c := q.Get("customer"); c != "" {
		if !idPattern.MatchString(c) {
			invalid(w, "customer must be a customer id such as C-1042")
			return
		}
		f.CustomerID = c
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			invalid(w, "limit must be a whole number from 1 to 500")
			return
		}
		f.Limit = n
	}
	rows, err := a.store.ListReadable(r.Context(), agentFrom(r.Context()), f)
	if err != nil {
		a.internal(w, r, "list requests", err)
		return
	}
	out := struct {
		Requests []Request `json:"requests"`
	}{Requests: make([]Request, 0, len(rows))}
	for _, row := range rows {
		out.Requests = append(out.Requests, RequestFromRow(row))
	}
	writeJSON(w, http.StatusOK, out)
}

// boolParam reads an optional true/false query parameter; on a bad value it
// answers 400 and returns ok=false.
func boolParam(w http.ResponseWriter, q url.Values, name string) (v, ok bool) {
	raw := q.Get(name)
	if raw == "" {
		return false, true
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		invalid(w, "%s must be true or false", name)
		return false, false
	}
	return b, true
}

func (a *API) getRequest(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !requestIDPattern.MatchString(id) {
		writeProblem(w, newProblem(codeRequestNotFound, "there is no request with that id (ids look like req_k3v9q2x7m4p8w1z5)"))
		return
	}
	if err := a.svc.CheckReadable(r.Context(), agentFrom(r.Context()), id); err != nil {
		a.fail(w, r, "request status", id, err)
		return
	}
	ctx, cancel := a.temporalCtx(r)
	defer cancel()
	st, err := a.svc.Status(ctx, id)
	if err != nil {
		a.fail(w, r, "request status", id, err)
		return
	}
	writeJSON(w, http.StatusOK, RequestFromStatus(st))
}

func (a *API) withdraw(w http.ResponseWriter, r *http.Request) {
	agent := agentFrom(r.Context())
	a.cancel(w, r, workflows.CancelInput{By: domain.CancelByRequester, ActorID: agent.ID})
}

func (a *API) veto(w http.ResponseWriter, r *http.Request) {
	agent := agentFrom(r.Context())
	if agent.Role != domain.RoleSenior {
		writeProblem(w, newProblem(codeNotSenior, "only senior agents can veto a request; the requester can withdraw it instead"))
		return
	}
	a.cancel(w, r, workflows.CancelInput{By: domain.CancelBySenior, ActorID: agent.ID, ActorRole: agent.Role})
}

// cancel reads the reason and sends the cancel Update; the workflow's
// validator decides whether this agent may.
func (a *API) cancel(w http.ResponseWriter, r *http.Request, in workflows.CancelInput) {
	id := r.PathValue("id")
	if !requestIDPattern.MatchString(id) {
		writeProblem(w, newProblem(codeRequestNotFound, "there is no request with that id (ids look like req_k3v9q2x7m4p8w1z5)"))
		return
	}
	var body reasonBody
	if p := decodeJSON(w, r, &body); p != nil {
		writeProblem(w, *p)
		return
	}
	reason, err := checkReason(body.Reason)
	if err != nil {
		invalid(w, "%v", err)
		return
	}
	in.Reason = reason
	// Another agent's request answers as one that does not exist, before
	// the workflow could say whose it is.
	if err := a.svc.CheckReadable(r.Context(), agentFrom(r.Context()), id); err != nil {
		a.fail(w, r, "cancel request", id, err)
		return
	}
	ctx, cancel := a.temporalCtx(r)
	defer cancel()
	st, err := a.svc.Cancel(ctx, id, in)
	if err != nil {
		a.fail(w, r, "cancel request", id, err)
		return
	}
	writeJSON(w, http.StatusOK, RequestFromStatus(st))
}

// checkReason applies the text rule to a free-text reason and returns it
// trimmed.
func checkReason(s string) (string, error) {
	if strings.Trim(s, " ") == "" {
		return "", errors.New("reason is required: it goes to the audit trail")
	}
	return textrule.Clean("reason", s, textrule.Options{Required: true, MaxLen: requests.MaxReasonLen})
}
