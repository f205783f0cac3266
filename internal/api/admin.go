package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/vigil-oss/vigil/internal/agentauth"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/phone"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// Import bounds, so one call cannot hold a transaction for minutes.
const (
	maxContacts = 100
	maxPhones   = 20
	maxServers  = 1000
	maxNameLen  = 200
)

// agentBody is POST /admin/v1/agents.
type agentBody struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Email       string `json:"email"`
	Team        string `json:"team"`
	Role        string `json:"role"`
	SlackUserID string `json:"slack_user_id"`
}

// patchAgentBody is PATCH /admin/v1/agents/{id}: only the role changes.
type patchAgentBody struct {
	Role string `json:"role"`
}

// customerBody is PUT /admin/v1/customers/{id}.
type customerBody struct {
	Name         string        `json:"name"`
	PrimaryEmail string        `json:"primary_email"`
	PINHash      string        `json:"pin_hash"`
	Contacts     []contactBody `json:"contacts"`
	Phones       []phoneBody   `json:"phones"`
	Servers      []string      `json:"servers"`
}

// String keeps the PIN hash out of any accidental %v.
func (c customerBody) String() string {
	return fmt.Sprintf("customerBody{Name:%q PrimaryEmail:%q PINHash:[redacted] Contacts:%d Phones:%d Servers:%v}", c.Name, c.PrimaryEmail, len(c.Contacts), len(c.Phones), c.Servers)
}

// phoneBody is a phone number of an import, E.164.
type phoneBody struct {
	Number     string     `json:"number"`
	AddedAt    *time.Time `json:"added_at"`
	VerifiedAt *time.Time `json:"verified_at"`
}

type contactBody struct {
	Email      string     `json:"email"`
	AddedAt    *time.Time `json:"added_at"`
	VerifiedAt *time.Time `json:"verified_at"`
}

// audit appends an admin event; changed says whether the change it records
// was already made. On failure the answer is a 500 that says which, and the
// log keeps the event's content.
func (a *API) audit(w http.ResponseWriter, r *http.Request, e store.AuditEvent, changed bool) bool {
	return a.auditAdmin(w, r, e, changed, true, nil)
}

// auditAdmin is audit with its announcement chosen: announce posts the
// event to the security channel, and dm, if set, tells the agent it
// concerns, both queued in the audit event's own transaction. The actor is
// the admin who called, by id.
func (a *API) auditAdmin(w http.ResponseWriter, r *http.Request, e store.AuditEvent, changed, announce bool, dm *store.AgentDM) bool {
	e.Actor = adminFrom(r.Context()).actor()
	if err := a.store.AuditAdmin(r.Context(), e, announce, dm); err != nil {
		if !changed && store.IsUnavailable(err) {
			// Nothing happened yet, so this is a plain "try again"; the log
			// still keeps what was attempted. After a change the 500 below
			// stays: it says the audit event is missing.
			a.logger.Warn("admin audit event not written: database unavailable", "event", e.Event,
				"request", e.RequestID, "details", e.Details, "error", err)
			writeDBUnavailable(w)
			return false
		}
		id := errorID()
		a.logger.Error("admin audit event not written", "error_id", id, "event", e.Event,
			"request", e.RequestID, "details", e.Details, "error", err)
		state := "nothing was changed"
		if changed {
			state = "the change was made but its audit event is missing"
		}
		writeProblem(w, newProblem(codeInternal, "the audit trail could not be written, so "+state+"; give the Vigil operators error id "+id+"."))
		return false
	}
	return true
}

func (a *API) createAgent(w http.ResponseWriter, r *http.Request) {
	var body agentBody
	if p := decodeJSON(w, r, &body); p != nil {
		writeProblem(w, *p)
		return
	}
	name, team, email, err := checkAgent(body)
	if err != nil {
		invalid(w, "%v", err)
		return
	}
	role, err := parseRole(body.Role)
	if err != nil {
		invalid(w, "%v", err)
		return
	}
	tok, err := agentauth.NewToken()
	if err != nil {
		a.internal(w, r, "new token", err)
		return
	}
	ag := store.Agent{ID: body.ID, Name: name, Email: email, Team: team, Role: role, SlackUserID: body.SlackUserID}
	create := a.store.CreateAgent
	if adminFrom(r.Context()).bootstrap {
		// The bootstrap token makes the first admin and nothing else.
		if role != domain.RoleAdmin {
			writeProblem(w, newProblem(codeBootstrapOnly, "the bootstrap token only creates the first admin: the role must be admin"))
			return
		}
		create = a.store.CreateFirstAdmin
	}
	if err := create(r.Context(), ag, agentauth.Hash(tok)); err != nil {
		if errors.Is(err, store.ErrBootstrapDone) {
			writeProblem(w, newProblem(codeBootstrapOnly, "an enabled admin exists, so the bootstrap token creates no more; ask an admin, and unset VIGIL_ADMIN_TOKEN"))
			return
		}
		if errors.Is(err, store.ErrConflict) {
			writeProblem(w, newProblem(codeConflict, "an agent with this id or Slack user already exists"))
			return
		}
		a.internal(w, r, "create agent", err)
		return
	}
	created, err := a.store.Agent(r.Context(), ag.ID)
	if err != nil {
		a.internal(w, r, "load agent", err)
		return
	}
	if !a.audit(w, r, store.AuditEvent{Event: "agent.created", Details: map[string]any{
		"agent_id": created.ID, "role": string(created.Role), "slack_user_id": created.SlackUserID}}, true) {
		return
	}
	w.Header().Set("Location", "/admin/v1/agents/"+url.PathEscape(created.ID))
	writeJSON(w, http.StatusCreated, AgentWithToken{Agent: agentFromStore(created), Token: tok})
}

// checkAgent applies the text rule to a new agent's fields and returns the
// name and team trimmed and the email canonical.
func checkAgent(b agentBody) (name, team, email string, err error) {
	if err := checkID("id", b.ID, "an agent id of 1 to 64 letters, digits or ._:- (example: ag_jane)"); err != nil {
		return "", "", "", err
	}
	if name, err = textrule.Clean("name", b.Name, textrule.Options{Required: true, MaxLen: maxNameLen}); err != nil {
		return "", "", "", err
	}
	if b.Email != "" {
		addr, err := textrule.Email("email", b.Email)
		if err != nil {
			return "", "", "", err
		}
		email = addr.String()
	}
	if team, err = textrule.Clean("team", b.Team, textrule.Options{MaxLen: maxNameLen}); err != nil {
		return "", "", "", err
	}
	if b.SlackUserID != "" {
		if err := checkID("slack_user_id", b.SlackUserID, "a Slack member id such as U012AB3CD"); err != nil {
			return "", "", "", err
		}
	}
	return name, team, email, nil
}

// parseRole reads a role, saying what is wrong in words that quote only
// text the rule passed.
func parseRole(s string) (domain.Role, error) {
	if err := textrule.Check("role", s, textrule.Options{Required: true, MaxLen: 32}); err != nil {
		return "", err
	}
	r, err := domain.ParseRole(s)
	if err != nil {
		return "", fmt.Errorf("role: %w", err)
	}
	return r, nil
}

// checkID applies the text rule to an id, then its pattern; want says what
// the id must look like.
func checkID(field, id, want string) error {
	if err := textrule.Check(field, id, textrule.Options{Required: true, MaxLen: requests.MaxIDLen}); err != nil {
		return err
	}
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%s must be %s", field, want)
	}
	return nil
}

func (a *API) listAgents(w http.ResponseWriter, r *http.Request) {
	list, err := a.store.ListAgents(r.Context())
	if err != nil {
		a.internal(w, r, "list agents", err)
		return
	}
	out := struct {
		Agents []Agent `json:"agents"`
	}{Agents: make([]Agent, 0, len(list))}
	for _, ag := range list {
		out.Agents = append(out.Agents, agentFromStore(ag))
	}
	writeJSON(w, http.StatusOK, out)
}

// pathAgent loads the agent named in the path, answering 404 if there is none.
func (a *API) pathAgent(w http.ResponseWriter, r *http.Request) (store.Agent, bool) {
	id := r.PathValue("id")
	if !idPattern.MatchString(id) {
		writeProblem(w, newProblem(codeAgentNotFound, "there is no agent with that id"))
		return store.Agent{}, false
	}
	ag, err := a.store.Agent(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeProblem(w, newProblem(codeAgentNotFound, fmt.Sprintf("there is no agent %s", id)))
		return store.Agent{}, false
	}
	if err != nil {
		a.internal(w, r, "load agent", err)
		return store.Agent{}, false
	}
	return ag, true
}

func (a *API) patchAgent(w http.ResponseWriter, r *http.Request) {
	var body patchAgentBody
	if p := decodeJSON(w, r, &body); p != nil {
		writeProblem(w, *p)
		return
	}
	role, err := parseRole(body.Role)
	if err != nil {
		invalid(w, "%v", err)
		return
	}
	before, ok := a.pathAgent(w, r)
	if !ok {
		return
	}
	if err := a.store.SetAgentRole(r.Context(), before.ID, role); err != nil {
		a.storeFail(w, r, "set role", err)
		return
	}
	details := map[string]any{"agent_id": before.ID, "role": string(role), "previous_role": string(before.Role)}
	if before.Role == domain.RoleSenior && role != domain.RoleSenior {
		// What it approved and has not run yet no longer has a senior's approval.
		details["stopped_requests"] = a.stopForStanding(r, before.ID, false, "approver "+before.ID+" is no longer a senior (role changed by an admin)")
	}
	a.answerAgent(w, r, before.ID, store.AuditEvent{Event: "agent.role_changed", Details: details})
}

func (a *API) disableAgent(w http.ResponseWriter, r *http.Request) {
	if p := decodeEmpty(w, r); p != nil {
		writeProblem(w, *p)
		return
	}
	ag, ok := a.pathAgent(w, r)
	if !ok {
		return
	}
	if err := a.store.DisableAgent(r.Context(), ag.ID, a.now()); err != nil {
		a.storeFail(w, r, "disable agent", err)
		return
	}
	stopped := a.stopForStanding(r, ag.ID, true, "agent "+ag.ID+" was disabled by an admin")
	a.answerAgent(w, r, ag.ID, store.AuditEvent{Event: "agent.disabled", Details: map[string]any{"agent_id": ag.ID, "stopped_requests": stopped}})
}

func (a *API) rotateToken(w http.ResponseWriter, r *http.Request) {
	if p := decodeEmpty(w, r); p != nil {
		writeProblem(w, *p)
		return
	}
	ag, ok := a.pathAgent(w, r)
	if !ok {
		return
	}
	if ag.ID == adminFrom(r.Context()).agent.ID {
		// An admin's own token: it comes back to them, as to any agent
		// rotating their own (POST /api/v1/me/token).
		a.issueOwnToken(w, r, ag, "admin:")
		return
	}
	// Someone else's token: whoever held it could act as that agent (open
	// as a requester, consent as a senior), so it goes to the agent alone,
	// in a Slack direct message, and the answer never carries it.
	if ag.SlackUserID == "" {
		writeProblem(w, newProblem(codeNoSlackID, fmt.Sprintf(
			"agent %s has no Slack user id, so a new token could reach no one but you; nothing was changed. They rotate their own (starter token rotate, POST /api/v1/me/token), or an admin first sets their Slack id", ag.ID)))
		return
	}
	tok, err := agentauth.NewToken()
	if err != nil {
		a.internal(w, r, "new token", err)
		return
	}
	e := store.AuditEvent{Actor: adminFrom(r.Context()).actor(), Event: "agent.token_rotated", Details: map[string]any{
		"agent_id": ag.ID, "agent_told": true, "sent_to": "slack_dm"}}
	err = a.store.RotateTokenFor(r.Context(), e, store.AgentDM{AgentID: ag.ID, SlackUserID: ag.SlackUserID}, agentauth.Hash(tok), tok)
	if errors.Is(err, store.ErrNotFound) {
		writeProblem(w, newProblem(codeConflict, fmt.Sprintf("agent %s was removed or their Slack id changed while the token was issued; nothing was changed, try again", ag.ID)))
		return
	}
	if err != nil {
		if store.IsUnavailable(err) {
			writeDBUnavailable(w)
			return
		}
		a.internal(w, r, "rotate token", err)
		return
	}
	writeJSON(w, http.StatusOK, AgentWithToken{Agent: agentFromStore(ag), SentTo: "slack_dm"})
}

// answerAgent audits a change to agent id and answers with its new state.
func (a *API) answerAgent(w http.ResponseWriter, r *http.Request, id string, e store.AuditEvent) {
	ag, err := a.store.Agent(r.Context(), id)
	if err != nil {
		a.storeFail(w, r, "load agent", err)
		return
	}
	if !a.audit(w, r, e, true) {
		return
	}
	writeJSON(w, http.StatusOK, agentFromStore(ag))
}

// storeFail maps the store's sentinel errors for agent calls.
func (a *API) storeFail(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeProblem(w, newProblem(codeAgentNotFound, "there is no agent "+r.PathValue("id")))
	case errors.Is(err, store.ErrConflict):
		writeProblem(w, newProblem(codeConflict, "the change conflicts with another agent"))
	default:
		a.internal(w, r, what, err)
	}
}

func (a *API) importCustomer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !idPattern.MatchString(id) {
		invalid(w, "the customer id must be 1 to 64 letters, digits or ._:- (example: C-1042)")
		return
	}
	var body customerBody
	if p := decodeJSON(w, r, &body); p != nil {
		writeProblem(w, *p)
		return
	}
	body, err := checkCustomer(body)
	if err != nil {
		invalid(w, "%v", err)
		return
	}
	imp := store.CustomerImport{ID: id, Name: body.Name, PrimaryEmail: body.PrimaryEmail,
		PINHash: body.PINHash, Servers: body.Servers}
	for _, c := range body.Contacts {
		ct := store.Contact{Email: c.Email, VerifiedAt: c.VerifiedAt}
		if c.AddedAt != nil {
			ct.AddedAt = *c.AddedAt
		}
		imp.Contacts = append(imp.Contacts, ct)
	}
	for _, p := range body.Phones {
		ph := store.Phone{Number: p.Number, VerifiedAt: p.VerifiedAt}
		if p.AddedAt != nil {
			ph.AddedAt = *p.AddedAt
		}
		imp.Phones = append(imp.Phones, ph)
	}
	res, err := a.store.ImportCustomer(r.Context(), imp)
	var busy *store.ServerBusyError
	if errors.As(err, &busy) {
		writeProblem(w, newProblem(codeServerBusy, busy.Error()+"; nothing was imported"))
		return
	}
	if err != nil {
		a.internal(w, r, "import customer", err)
		return
	}
	cust, err := a.store.Customer(r.Context(), id)
	if err != nil {
		a.internal(w, r, "load customer", err)
		return
	}
	if !a.audit(w, r, store.AuditEvent{Event: "customer.imported", Details: importDetails(id, body, res)}, true) {
		return
	}
	// The requests that were running see it in their own trail.
	for _, reqID := range res.OpenRequests {
		if !a.auditAdmin(w, r, store.AuditEvent{RequestID: reqID, Event: "customer.imported_during_request", Details: importDetails(id, body, res)}, true, false, nil) {
			return
		}
	}
	writeJSON(w, http.StatusOK, customerFromStore(cust))
}

// importDetails is what the audit trail keeps of an import: what it changed
// that decides who hears about a request and whose server it acts on.
func importDetails(id string, body customerBody, res store.ImportResult) map[string]any {
	d := map[string]any{"customer_id": id, "contacts": len(body.Contacts), "phones": len(body.Phones), "servers": body.Servers, "created": res.Created}
	if res.PreviousPrimary != "" {
		d["previous_primary_email"], d["primary_email"] = res.PreviousPrimary, body.PrimaryEmail
	}
	if res.PINChanged {
		d["pin_changed"] = true
	}
	if len(res.AddedContacts) > 0 {
		d["added_contacts"] = res.AddedContacts
	}
	if len(res.DatesKept) > 0 {
		d["dates_kept"] = res.DatesKept
	}
	// The audit trail is read by the security team: numbers stay masked
	// there, as everywhere but the admin's own import answer.
	if len(res.AddedPhones) > 0 {
		d["added_phones"] = maskAll(res.AddedPhones)
	}
	if len(res.PhoneDatesKept) > 0 {
		d["phone_dates_kept"] = maskAll(res.PhoneDatesKept)
	}
	if len(res.MovedServers) > 0 {
		moved := make([]map[string]string, len(res.MovedServers))
		for i, m := range res.MovedServers {
			moved[i] = map[string]string{"server": m.Server, "from": m.From}
		}
		d["moved_servers"] = moved
	}
	if len(res.OpenRequests) > 0 {
		d["open_requests"] = res.OpenRequests
	}
	return d
}

// checkCustomer validates an import and returns it with the name trimmed
// and every address canonical. Errors name the field and never quote the PIN
// hash.
func checkCustomer(c customerBody) (customerBody, error) {
	name, err := textrule.Clean("name", c.Name, textrule.Options{MaxLen: maxNameLen})
	if err != nil {
		return c, err
	}
	c.Name = name
	addr, err := textrule.Email("primary_email", c.PrimaryEmail)
	if err != nil {
		return c, err
	}
	c.PrimaryEmail = addr.String()
	if c.PINHash == "" {
		return c, errors.New("pin_hash is required: the customer's support PIN hashed as a PHC argon2id string")
	}
	if _, err := pinhash.ParamsOf(c.PINHash); err != nil {
		// pinhash errors describe the structure only, never the content.
		return c, fmt.Errorf("pin_hash must be a PHC argon2id string like $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> (%v)", err)
	}
	if len(c.Contacts) > maxContacts {
		return c, fmt.Errorf("contacts: at most %d per import", maxContacts)
	}
	contacts := make([]contactBody, len(c.Contacts))
	for i, ct := range c.Contacts {
		addr, err := textrule.Email(fmt.Sprintf("contacts[%d].email", i), ct.Email)
		if err != nil {
			return c, err
		}
		ct.Email = addr.String()
		contacts[i] = ct
	}
	c.Contacts = contacts
	if len(c.Phones) > maxPhones {
		return c, fmt.Errorf("phones: at most %d per import", maxPhones)
	}
	phones := make([]phoneBody, len(c.Phones))
	for i, p := range c.Phones {
		n, err := phone.Parse(fmt.Sprintf("phones[%d].number", i), p.Number)
		if err != nil {
			return c, err
		}
		p.Number = n
		phones[i] = p
	}
	c.Phones = phones
	if len(c.Servers) > maxServers {
		return c, fmt.Errorf("servers: at most %d per import", maxServers)
	}
	for i, s := range c.Servers {
		if err := checkID(fmt.Sprintf("servers[%d]", i), s, "a server id of 1 to 64 letters, digits or ._:-"); err != nil {
			return c, err
		}
	}
	return c, nil
}

// maskAll masks each number for the audit trail.
func maskAll(numbers []string) []string {
	out := make([]string, len(numbers))
	for i, n := range numbers {
		out[i] = phone.Mask(n)
	}
	return out
}
