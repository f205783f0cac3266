package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"

	"github.com/vigil-oss/vigil/internal/requests"
)

// Problem codes the API adds to requests.Code. Together they are the stable
// "code" of every error response (RFC 9457 problem details).
const (
	codeUnauthenticated  = "unauthenticated"
	codeForbidden        = "forbidden"
	codeSecondFactor     = "second_factor_required"
	codeSignInRequired   = "sign_in_required"
	codeInvalid          = string(requests.CodeInvalid)
	codeBodyTooLarge     = "body_too_large"
	codeUnsupportedMedia = "unsupported_media_type"
	codeAgentNotFound    = "agent_not_found"
	codeNotSenior        = string(requests.CodeNotSenior)
	codeConflict         = "conflict"
	codeServerBusy       = "server_has_open_request"
	codeRateLimited      = "rate_limited"
	codeDBUnavailable    = "database_unavailable"
	codeInternal         = "internal"
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
	codeRequestNotFound  = string(requests.CodeNotFound)
	codeBootstrapOnly    = "bootstrap_only"
	codeNoSlackID        = "no_slack_id"
)

// problemTypeBase prefixes the code to form the problem "type" URI.
const problemTypeBase = "https://vigil.dev/problems/"

// problemKinds fixes the HTTP status and title of every code.
var problemKinds = map[string]struct {
	status int
	title  string
}{
	codeUnauthenticated:                   {http.StatusUnauthorized, "Not authenticated"},
	codeForbidden:                         {http.StatusForbidden, "Not allowed"},
	codeSecondFactor:                      {http.StatusUnauthorized, "Second factor required"},
	codeSignInRequired:                    {http.StatusUnauthorized, "Sign in with the identity provider"},
	codeInvalid:                           {http.StatusBadRequest, "Invalid input"},
	codeBodyTooLarge:                      {http.StatusRequestEntityTooLarge, "Request body too large"},
	codeUnsupportedMedia:                  {http.StatusUnsupportedMediaType, "Unsupported media type"},
	string(requests.CodeUnknownCust):      {http.StatusNotFound, "Unknown customer"},
	string(requests.CodeUnknownServer):    {http.StatusNotFound, "Unknown server"},
	codeRequestNotFound:                   {http.StatusNotFound, "Request not found"},
	codeAgentNotFound:                     {http.StatusNotFound, "Agent not found"},
	string(requests.CodeSelfApproval):     {http.StatusConflict, "Self-approval refused"},
	codeNotSenior:                         {http.StatusForbidden, "Senior agent required"},
	string(requests.CodeAlreadyDecided):   {http.StatusConflict, "Already decided"},
	string(requests.CodeNotAwaiting):      {http.StatusConflict, "Not awaiting approval"},
	string(requests.CodeNotRequester):     {http.StatusForbidden, "Not the requester"},
	string(requests.CodeNotCustomer):      {http.StatusForbidden, "Not the customer"},
	string(requests.CodeEnded):            {http.StatusConflict, "Request already ended"},
	string(requests.CodeExecuting):        {http.StatusConflict, "Already executing"},
	codeConflict:                          {http.StatusConflict, "Conflict"},
	codeServerBusy:                        {http.StatusConflict, "Server has an open request"},
	codeRateLimited:                       {http.StatusTooManyRequests, "Too many requests"},
	string(requests.CodeUnavailable):      {http.StatusServiceUnavailable, "Temporarily unavailable"},
	codeDBUnavailable:                     {http.StatusServiceUnavailable, "Database temporarily unavailable"},
	codeInternal:                          {http.StatusInternalServerError, "Internal error"},
	codeNotFound:                          {http.StatusNotFound, "Not found"},
	codeMethodNotAllowed:                  {http.StatusMethodNotAllowed, "Method not allowed"},
	codeAlreadyConsented:                  {http.StatusConflict, "Consent already recorded"},
	codeBreakGlassSeniors:                 {http.StatusForbidden, "Break-glass needs two seniors"},
	codeBootstrapOnly:                     {http.StatusForbidden, "Bootstrap token: first admin only"},
	codeNoSlackID:                         {http.StatusConflict, "The agent has no Slack id to receive a token"},
	codeNotLocked:                         {http.StatusConflict, "Customer not locked"},
	string(requests.CodeSlackUnavailable): {http.StatusServiceUnavailable, "Slack unavailable"},

	// The account's state makes these opens doubled or pointless; the same
	// body may succeed later (once the open request ends, or the account
	// changes), so they are conflicts with that state, not bad input.
	string(requests.CodeDuplicate):        {http.StatusConflict, "Request already open"},
	string(requests.CodeAlreadyOnAccount): {http.StatusConflict, "Address already on the account"},
	string(requests.CodeEmailUnchanged):   {http.StatusConflict, "Address already the primary"},
	string(requests.CodeLookalikeAddress): {http.StatusConflict, "Address looks like one on the account"},
	// An agent over the limit of wrong PINs across customers: their PIN
	// checks stop until the oldest failure leaves the window.
	string(requests.CodePINAttempts): {http.StatusForbidden, "Too many wrong PINs"},
	// Admins and security do not open requests (see requests.CodeRoleCannotOpen).
	string(requests.CodeRoleCannotOpen): {http.StatusForbidden, "This role does not open requests"},
	// The account's recent security events: the open needs the customer's
	// authenticator code (ask it, send it with the PIN), or cannot be
	// verified here at all, or the panel could not say (fails closed).
	string(requests.CodeFactorRequired):   {http.StatusPreconditionRequired, "Authenticator code required"},
	string(requests.CodeRiskRefused):      {http.StatusForbidden, "Refused: the account shows a possible takeover"},
	string(requests.CodePanelUnavailable): {http.StatusServiceUnavailable, "Control panel unavailable"},
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	RequestID string `json:"request_id,omitempty"`
}

// newProblem builds the problem for code. An unknown code is a programming
// error and becomes "internal" rather than an unlisted status.
func newProblem(code, detail string) Problem {
	k, ok := problemKinds[code]
	if !ok {
		code, k = codeInternal, problemKinds[codeInternal]
	}
	return Problem{Type: problemTypeBase + code, Title: k.title, Status: k.status, Detail: detail, Code: code}
}

// writeProblem sends p as application/problem+json.
func writeProblem(w http.ResponseWriter, p Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// problemFromRefusal maps a requests.Refusal 1:1 onto a problem.
func problemFromRefusal(r *requests.Refusal, requestID string) Problem {
	p := newProblem(string(r.Code), r.Message)
	if p.Code == string(r.Code) {
		p.RequestID = requestID
		if p.RequestID == "" {
			// An open refused as a duplicate points to the open request.
			p.RequestID = r.RequestID
		}
	}
	return p
}

// errorID returns a short random id that ties an internal-error response to
// its log line without revealing anything.
func errorID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
