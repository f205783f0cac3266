package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/store"
)

// codeNotLocked answers an unlock of a customer no lockout holds.
const codeNotLocked = "customer_not_locked"

// UnlockResult is the answer of POST /api/v1/customers/{id}/unlock: the
// customer as it stands now, and what the unlock lifted.
type UnlockResult struct {
	Customer CustomerView `json:"customer"`
	// WasLockedUntil is when the lifted lockout would have ended.
	WasLockedUntil time.Time `json:"was_locked_until"`
	// ClearedFailures is how many wrong PINs no longer count.
	ClearedFailures int `json:"cleared_failures"`
}

// unlockCustomer lifts a customer's PIN lockout, for the security role
// only: audited (customer.unlocked) and alerted in the security channel, in
// one transaction. Any other role is refused with 403 and the attempt is
// audited (customer.unlock_refused).
func (a *API) unlockCustomer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !idPattern.MatchString(id) {
		writeProblem(w, newProblem(string(requests.CodeUnknownCust), "there is no customer with that id (ids look like C-1042)"))
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
	ctx, now := r.Context(), a.now()
	agent := agentFrom(ctx)
	lifted, err := a.store.UnlockCustomer(ctx, id, agent, reason, now)
	switch {
	case errors.Is(err, store.ErrNotSecurity):
		a.logger.Warn("customer unlock refused: not the security role", "agent", agent.ID, "role", string(agent.Role), "customer", id)
		writeProblem(w, newProblem(codeForbidden, "only the security role may unlock a customer; the attempt was recorded. Ask your security team"))
		return
	case errors.Is(err, store.ErrNotFound):
		writeProblem(w, newProblem(string(requests.CodeUnknownCust), "there is no customer with that id (ids look like C-1042)"))
		return
	case errors.Is(err, store.ErrNotLocked):
		writeProblem(w, newProblem(codeNotLocked, "customer "+id+" is not locked; nothing was changed"))
		return
	case err != nil:
		a.internal(w, r, "unlock customer", err)
		return
	}
	a.logger.Info("customer unlocked", "agent", agent.ID, "customer", id, "cleared_failures", lifted.Failures)
	cust, err := a.store.Customer(ctx, id)
	if err != nil {
		a.internal(w, r, "load customer", err)
		return
	}
	established, err := a.store.EstablishedEmails(ctx, id, now, a.customers.establishedAfter)
	if err != nil {
		a.internal(w, r, "load customer", err)
		return
	}
	phones, err := a.store.EstablishedPhones(ctx, id, now, a.customers.establishedAfter)
	if err != nil {
		a.internal(w, r, "load customer", err)
		return
	}
	standing, err := a.store.CustomerStanding(ctx, id, now, a.customers.pin)
	if err != nil {
		a.internal(w, r, "load customer", err)
		return
	}
	writeJSON(w, http.StatusOK, UnlockResult{Customer: a.customerView(cust, established, phones, standing),
		WasLockedUntil: lifted.LockedUntil.UTC(), ClearedFailures: lifted.Failures})
}
