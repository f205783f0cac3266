// Package requests is the one door through which the web front opens,
// follows, decides and cancels sensitive requests: it checks what it can
// before Temporal, calls the workflow and turns refusals into typed errors.
package requests

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/textrule"
	"github.com/vigil-oss/vigil/workflows"
)

// Code is a stable, machine-readable reason a request was refused. The API
// sends it as the problem type; the CLI and Slack turn it into words.
type Code string

// Refusal codes.
const (
	CodeInvalid        Code = "invalid_input"
	CodeUnknownCust    Code = "unknown_customer"
	CodeUnknownServer  Code = "unknown_server"
	CodeNotFound       Code = "request_not_found"
	CodeSelfApproval   Code = "self_approval"
	CodeNotSenior      Code = "not_senior"
	CodeAlreadyDecided Code = "already_decided"
	CodeNotAwaiting    Code = "not_awaiting_approval"
	CodeNotRequester   Code = "not_requester"
	CodeNotCustomer    Code = "not_customer"
	CodeEnded          Code = "request_ended"
	CodeExecuting      Code = "already_executing"
	CodeUnavailable    Code = "temporal_unavailable"
	// CodeSlackUnavailable: Slack did not take a message the ask needed.
	CodeSlackUnavailable Code = "slack_unavailable"
	// CodeDuplicate: a request for the same customer, action and target is
	// still open; the refusal names it.
	CodeDuplicate Code = "duplicate_request"
	// CodeAlreadyOnAccount: add_contact_email for an address the account
	// already has, as its primary or as a contact.
	CodeAlreadyOnAccount Code = "already_on_account"
	// CodeEmailUnchanged: change_account_email to the current primary.
	CodeEmailUnchanged Code = "email_unchanged"
	// CodeLookalikeAddress: the new address differs from one the account
	// already has only in characters that look alike ("exarnple.com" for
	// "example.com"); the customer's notice would read as their own address.
	CodeLookalikeAddress Code = "lookalike_address"
	// CodePINAttempts: the agent typed too many wrong PINs across
	// customers; their PIN checks stop for a while and security was told.
	CodePINAttempts Code = "pin_attempts_exceeded"
	// CodeRoleCannotOpen: admins and the security role do not open
	// requests: an admin who can also create agents, and security who can
	// also unlock customers, would otherwise hold two of the gates' keys.
	CodeRoleCannotOpen Code = "role_cannot_open"
)

// Refusal is an expected "no": nothing changed and the message says why in
// words fit for the person who asked.
type Refusal struct {
	Code    Code
	Message string
	// RequestID names the request the refusal is about when it is not the
	// one asked about: the open request a duplicate_request points to.
	RequestID string
}

func (r *Refusal) Error() string { return r.Message }

func refusal(code Code, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsRefusal returns the refusal inside err, if any.
func AsRefusal(err error) (*Refusal, bool) {
	var r *Refusal
	ok := errors.As(err, &r)
	return r, ok
}

// Timings fixes the policy new requests start with.
type Timings struct {
	ApprovalTimeout    time.Duration
	NoticeTimeout      time.Duration
	ExecuteMaxAttempts int
	Cooling            domain.CoolingPeriods
	// PIN bounds PIN guessing; the zero value means store.DefaultPINPolicy.
	PIN store.PINPolicy
}

// Service opens and steers requests.
type Service struct {
	temporal client.Client
	store    *store.Store
	timings  Timings
	risk     RiskChecks
	logger   *slog.Logger
	// pinChecks bounds the argon2id checks running at once: each holds
	// about 19 MiB while it hashes.
	pinChecks chan struct{}
	// VerdictWait is how long CancelByLink waits, once the cancel Update is
	// in Temporal, to tell a refusal from an acceptance. Refusals come back
	// at once; an accepted cancel is already durable, so the wait only ever
	// ends early, never decides anything.
	VerdictWait time.Duration
	// Now is the clock the PIN checks count by (default time.Now).
	Now func() time.Time
}

// New builds a Service. rc says how opens check the account's risk; it is
// refused when it is neither complete nor explicitly off.
func New(tc client.Client, st *store.Store, t Timings, rc RiskChecks, logger *slog.Logger) (*Service, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if t.PIN == (store.PINPolicy{}) {
		t.PIN = store.DefaultPINPolicy()
	}
	if err := rc.check(); err != nil {
		return nil, err
	}
	return &Service{temporal: tc, store: st, timings: t, risk: rc, logger: logger, VerdictWait: 2 * time.Second, Now: time.Now,
		pinChecks: make(chan struct{}, 2*runtime.GOMAXPROCS(0))}, nil
}

// OpenParams is what an agent supplies. The requester is never part of it:
// it comes from the authenticated agent.
type OpenParams struct {
	Action     domain.Action
	CustomerID string
	ServerID   string
	Email      string
	Reason     string
	PIN        string
	// FactorCode is the code from the customer's authenticator app, given
	// when the risk check asks for it (factor_required).
	FactorCode string
}

// String keeps the PIN and the code out of logs.
func (p OpenParams) String() string {
	return fmt.Sprintf("OpenParams{Action:%s CustomerID:%s ServerID:%s Email:%s PIN:[redacted] FactorCode:[redacted]}", p.Action, p.CustomerID, p.ServerID, p.Email)
}

var (
	pinPattern = regexp.MustCompile(`^[0-9A-Za-z]{` + strconv.Itoa(MinPINLen) + `,32}$`)
	idPattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
)

// MinPINLen is the shortest support PIN: 6 digits (or letters). A customer
// whose imported PIN is shorter can never pass the PIN gate and needs a new
// PIN; `starter admin hash-pin` refuses to hash a shorter one.
const MinPINLen = 6

// MaxReasonLen bounds the free-text reason, in characters.
const MaxReasonLen = 500

// MaxIDLen bounds customer and server ids, as idPattern does.
const MaxIDLen = 64

// Validate checks p without touching anything. Messages never echo the PIN.
func (p OpenParams) Validate() error {
	_, err := p.Normalized()
	return err
}

// Normalized validates p and returns it in the form to use: the reason
// trimmed, the email address in its canonical form. Every text field passes
// the one text rule (textrule) first, so a refusal names the field and the
// character; the id and PIN patterns then narrow them further.
func (p OpenParams) Normalized() (OpenParams, error) {
	if err := textrule.Check("action", string(p.Action), textrule.Options{Required: true, MaxLen: MaxIDLen}); err != nil {
		return p, refusal(CodeInvalid, "%v", err)
	}
	if _, err := domain.ParseAction(string(p.Action)); err != nil {
		return p, refusal(CodeInvalid, "%v", err)
	}
	if err := textrule.Check("customer_id", p.CustomerID, textrule.Options{Required: true, MaxLen: MaxIDLen}); err != nil {
		return p, refusal(CodeInvalid, "%v", err)
	}
	if !idPattern.MatchString(p.CustomerID) {
		return p, refusal(CodeInvalid, "customer_id must be 1 to 64 letters, digits or ._:- (example: C-1042)")
	}
	reason, err := textrule.Clean("reason", p.Reason, textrule.Options{Required: true, MaxLen: MaxReasonLen})
	if err != nil {
		if strings.TrimSpace(p.Reason) == "" {
			return p, refusal(CodeInvalid, "reason is required: say why the customer asked (it goes to the approver and the audit trail)")
		}
		return p, refusal(CodeInvalid, "%v", err)
	}
	p.Reason = reason
	if err := textrule.Check("server_id", p.ServerID, textrule.Options{MaxLen: MaxIDLen}); err != nil {
		return p, refusal(CodeInvalid, "%v", err)
	}
	if p.Action.NeedsServer() {
		// Some actions may leave the server out when there is only one.
		serverOptional := p.Action.Spec().ServerOptional && p.ServerID == ""
		if !serverOptional && !idPattern.MatchString(p.ServerID) {
			return p, refusal(CodeInvalid, "server_id: %s needs a server id", p.Action)
		}
	} else if p.ServerID != "" {
		return p, refusal(CodeInvalid, "server_id: %s does not take a server id", p.Action)
	}
	if p.Action.NeedsEmail() {
		addr, err := textrule.Email("email", p.Email)
		if err != nil {
			return p, refusal(CodeInvalid, "%v", err)
		}
		p.Email = addr.String()
	} else if p.Email != "" {
		return p, refusal(CodeInvalid, "email: %s does not take an email address", p.Action)
	}
	if !pinPattern.MatchString(p.PIN) {
		return p, refusal(CodeInvalid, "pin: the PIN must be %d to 32 letters or digits (a customer whose PIN is shorter needs a new one)", MinPINLen)
	}
	if p.FactorCode != "" && !factorPattern.MatchString(p.FactorCode) {
		return p, refusal(CodeInvalid, "factor_code: the code from the customer's authenticator app is 6 to 10 digits")
	}
	return p, nil
}

// NewID returns a fresh request id such as req_k3v9q2x7m4p8w1z5.
func NewID() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("request id: %w", err)
	}
	return "req_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)), nil
}

// Open opens a request for the authenticated requester. It checks the PIN
// itself (argon2id, the lockouts) before any workflow starts, so the PIN
// never enters Temporal, and answers at once:
//   - a right PIN: the workflow is started without the PIN in its input;
//     its PIN gate consumes the verdict recorded here, bound to this
//     request. The answer is pin_check with the PIN's verification time.
//   - a wrong PIN or a locked customer: the request ends there, pin_rejected
//     or locked, its row and audit trail written with the verdict; no
//     workflow is started.
//
// Refusals (invalid input, unknown customer or server, already_on_account,
// email_unchanged, duplicate_request, pin_attempts_exceeded for an agent over
// the limit across customers, temporal_unavailable for a start that failed)
// open nothing; an accepted request has its row and request.opened event
// when Open returns.
func (s *Service) Open(ctx context.Context, requester store.Agent, p OpenParams) (workflows.Status, error) {
	if requester.Role != domain.RoleAgent && requester.Role != domain.RoleSenior {
		return workflows.Status{}, refusal(CodeRoleCannotOpen,
			"agents of role %s do not open sensitive requests: an agent or a senior of the support team does", requester.Role)
	}
	p, err := p.Normalized()
	if err != nil {
		return workflows.Status{}, err
	}
	cust, err := s.store.Customer(ctx, p.CustomerID)
	if errors.Is(err, store.ErrNotFound) {
		return workflows.Status{}, refusal(CodeUnknownCust, "customer %s does not exist; check the id in the billing system", p.CustomerID)
	}
	if err != nil {
		return workflows.Status{}, fmt.Errorf("load customer: %w", err)
	}
	if p.Action.NeedsServer() && p.ServerID == "" {
		if len(cust.Servers) != 1 {
			return workflows.Status{}, refusal(CodeInvalid, "customer %s has %d servers; say which one with a server id", cust.ID, len(cust.Servers))
		}
		p.ServerID = cust.Servers[0]
	}
	if p.Action.NeedsServer() {
		ok, err := s.store.ServerBelongsTo(ctx, cust.ID, p.ServerID)
		if err != nil {
			return workflows.Status{}, fmt.Errorf("check server: %w", err)
		}
		if !ok {
			return workflows.Status{}, refusal(CodeUnknownServer, "server %s does not belong to customer %s", p.ServerID, cust.ID)
		}
	}
	if err := refuseNoOpEmail(cust, p); err != nil {
		return workflows.Status{}, err
	}
	id, err := NewID()
	if err != nil {
		return workflows.Status{}, err
	}
	// The row the request opens with; the PIN check below writes it final
	// when the PIN is not accepted, OpenRequest otherwise, in one
	// transaction with the workflow's start.
	row := store.Request{
		ID: id, WorkflowID: workflows.WorkflowID(id), Action: p.Action, CustomerID: cust.ID,
		RequesterID: requester.ID, ServerID: p.ServerID, Email: p.Email, Reason: p.Reason,
		Status: domain.StatusPINCheck,
	}
	// A duplicate is refused before a guess is spent on it.
	if dup, err := s.slotHolder(ctx, row); err != nil {
		return workflows.Status{}, err
	} else if dup != nil {
		return workflows.Status{}, duplicateRefusal(p, cust.ID, dup)
	}
	// The account's risk, before any guess is spent: a needed factor is
	// asked for first, a refusal opens nothing.
	risky, err := s.assessRisk(ctx, row, p.FactorCode)
	if err != nil {
		return workflows.Status{}, err
	}
	pin, err := s.checkPIN(ctx, row, p.PIN, s.verifier(ctx, row.CustomerID, p.FactorCode, risky, pinhash.Verify))
	if errors.Is(err, panel.ErrNotEnrolled) {
		return workflows.Status{}, s.refuseOnRisk(ctx, row, risky.Assessment,
			"it needs the code from the customer's authenticator besides the PIN, and the customer has no authenticator enrolled")
	}
	if err != nil {
		return workflows.Status{}, err
	}
	st := workflows.Status{RequestID: id, Action: p.Action, CustomerID: cust.ID, RequesterID: requester.ID,
		ServerID: p.ServerID, Email: p.Email, Status: domain.StatusPINCheck, OpenedAt: pin.at,
		PINFailures: pin.out.Failures, LockedUntil: pin.out.LockedUntil}
	if !pin.out.Verified {
		// Ended: the store wrote the row final with its trail and any
		// alert. No workflow starts; the PIN went nowhere near Temporal.
		st.Status, st.EndedAt = domain.StatusPINRejected, pin.at
		if pin.out.Locked && !pin.out.JustLocked {
			st.Status = domain.StatusLocked
		}
		if risky.factorChecked && !risky.factorOK {
			// The PIN was right and the code wrong: the trail says which.
			if err := s.store.AuditOnce(ctx, store.AuditEvent{RequestID: id, Actor: "system", Event: "gate.factor.rejected", At: pin.at,
				Details: map[string]any{"factor": "totp", "signals": risky.Summary()}}, "factor"); err != nil {
				s.logger.Error("could not record the wrong authenticator code", "request", id, "error", err)
			}
		}
		s.logger.Info("request refused at the PIN", "request", id, "action", p.Action, "customer", cust.ID,
			"requester", requester.ID, "status", st.Status, "failures", pin.out.Failures, "locked", pin.out.Locked,
			"factor_checked", risky.factorChecked)
		return st, nil
	}
	st.PINVerifiedAt = pin.at
	if err := s.start(ctx, row, pin.at, riskEvents(risky, pin.at)); err != nil {
		return workflows.Status{}, err
	}
	s.logger.Info("request opened", "request", id, "action", p.Action, "customer", cust.ID, "requester", requester.ID)
	return st, nil
}

// slotHolder is the open request holding row's slot, if any. A holder whose
// workflow no longer runs in Temporal (terminated, cancelled or deleted there,
// outside Vigil) is ended first (store.EndOutsideVigil: failed, audited,
// alerted), so no one can wedge a customer's slot for good from the
// Temporal side; the slot is then looked up again.
func (s *Service) slotHolder(ctx context.Context, row store.Request) (*store.DuplicateOpenError, error) {
	dup, err := s.store.OpenSlotHolder(ctx, row)
	if err != nil || dup == nil || dup.ID == "" {
		return dup, err
	}
	_, ended, err := s.endIfGone(ctx, dup.ID, "an open for its slot")
	if err != nil {
		s.logger.Error("could not end a request whose workflow is gone", "request", dup.ID, "error", err)
		return dup, nil
	}
	if !ended {
		return dup, nil
	}
	return s.store.OpenSlotHolder(ctx, row)
}

// endIfGone ends request id's open row (store.EndOutsideVigil: failed,
// audited, alerted) when its workflow no longer runs in Temporal, and says
// how Temporal says it ended; foundBy names what met it, for the log. A row
// already final, or missing, is left alone (ended false).
func (s *Service) endIfGone(ctx context.Context, id, foundBy string) (how string, ended bool, err error) {
	how, gone := s.workflowGone(ctx, id)
	if !gone {
		return "", false, nil
	}
	ended, err = s.store.EndOutsideVigil(ctx, id, how, s.Now().UTC())
	if errors.Is(err, store.ErrNotFound) {
		return how, false, nil
	}
	if err != nil {
		return how, false, err
	}
	if ended {
		s.logger.Warn("request ended outside Vigil", "request", id, "temporal", how, "found_by", foundBy)
	}
	return how, ended, nil
}

// workflowGone reports whether request id's workflow has stopped running in
// Temporal, and how Temporal says it ended. When Temporal cannot be asked,
// the workflow is taken to run: the duplicate is refused as before.
func (s *Service) workflowGone(ctx context.Context, id string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(id), "")
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		return "not found in Temporal (deleted, or past the namespace's retention)", true
	case err != nil:
		s.logger.Warn("could not ask Temporal about the request holding a slot", "request", id, "error", err)
		return "", false
	}
	st := desc.GetWorkflowExecutionInfo().GetStatus()
	if st == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return "", false
	}
	return strings.ToLower(strings.TrimPrefix(st.String(), "WorkflowExecutionStatus")), true
}

// pinResult is a PIN check made for an open, and when it was made.
type pinResult struct {
	out store.PINOutcome
	at  time.Time
}

// checkPIN checks the PIN typed for row before its workflow starts, at most
// len(pinChecks) at a time. An agent over the limit across customers is a
// refusal; a missing customer (deleted meanwhile) is unknown_customer.
func (s *Service) checkPIN(ctx context.Context, row store.Request, pin string, verify func(hash, pin string) (bool, error)) (pinResult, error) {
	select {
	case s.pinChecks <- struct{}{}:
		defer func() { <-s.pinChecks }()
	case <-ctx.Done():
		return pinResult{}, &Refusal{Code: CodeUnavailable, Message: "too many PINs are being checked right now; try again in a moment"}
	}
	at := s.Now().UTC().Truncate(time.Microsecond)
	out, err := s.store.CheckPINForOpen(ctx, row, pin, at, s.timings.PIN, verify)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return pinResult{}, refusal(CodeUnknownCust, "customer %s does not exist; check the id in the billing system", row.CustomerID)
	case err != nil:
		return pinResult{}, fmt.Errorf("check PIN: %w", err)
	case out.AgentBlocked:
		s.logger.Warn("PIN check refused: the agent typed too many wrong PINs", "requester", row.RequesterID,
			"customer", row.CustomerID, "until", out.AgentBlockedUntil)
		return pinResult{}, refusal(CodePINAttempts,
			"you have typed %d wrong support PINs within %s across customers, so Vigil checks no more PINs for you until %s; security has been told. Nothing was opened",
			s.timings.PIN.AgentMaxFailures, s.timings.PIN.AgentWindow, out.AgentBlockedUntil.UTC().Format("2006-01-02 15:04 UTC"))
	}
	return pinResult{out: out, at: at}, nil
}

// start writes row (its request.opened and gate.pin.verified events) and
// starts its workflow in one transaction; see store.OpenRequest for every
// point this can stop at. The workflow's input has no PIN: its PIN gate
// consumes the verdict checkPIN recorded. When the start did not happen
// the verdict is voided, so no start made later can pass on it.
func (s *Service) start(ctx context.Context, row store.Request, checkedAt time.Time, more []store.AuditEvent) error {
	pol := workflows.DefaultPolicy(row.Action, s.timings.Cooling)
	pol.ApprovalTimeout = s.timings.ApprovalTimeout
	pol.NoticeTimeout = s.timings.NoticeTimeout
	pol.ExecuteMaxAttempts = int32(s.timings.ExecuteMaxAttempts)
	in := workflows.Input{
		RequestID: row.ID, Action: row.Action, CustomerID: row.CustomerID, RequesterID: row.RequesterID,
		ServerID: row.ServerID, Email: row.Email, Reason: row.Reason, Policy: pol,
	}
	verified := store.AuditEvent{Actor: "system", Event: "gate.pin.verified", At: checkedAt,
		Details: map[string]any{"customer": row.CustomerID}}
	var started bool
	var startErr error
	err := s.store.OpenRequestWith(ctx, row, append([]store.AuditEvent{verified}, more...), func(ctx context.Context) error {
		_, startErr = s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:                       row.WorkflowID,
			TaskQueue:                workflows.TaskQueue,
			WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			WorkflowExecutionTimeout: 0,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				workflows.SAAction.ValueSet(string(row.Action)),
				workflows.SACustomer.ValueSet(row.CustomerID),
				workflows.SARequester.ValueSet(row.RequesterID),
				workflows.SAStatus.ValueSet(string(domain.StatusPINCheck)),
			),
		}, workflows.WorkflowName, in)
		started = startErr == nil
		return startErr
	})
	var dup *store.DuplicateOpenError
	switch {
	case started && err != nil:
		// The workflow runs, so the request exists: say so. Its Open
		// activity writes the row the lost commit did not.
		s.logger.Error("request started but its row was not committed; the workflow will write it",
			"request", row.ID, "error", err)
		return nil
	case err == nil:
		return nil
	case startErr != nil && isTimeout(startErr):
		// Ambiguous: the start may have happened, and its workflow then
		// needs the verdict (and writes the row the rollback dropped).
		return s.temporalErr("start request", startErr)
	}
	s.void(row.ID)
	switch {
	case startErr != nil:
		return s.temporalErr("start request", startErr)
	case errors.As(err, &dup):
		p := OpenParams{Action: row.Action, ServerID: row.ServerID, Email: row.Email}
		return duplicateRefusal(p, row.CustomerID, dup)
	}
	return fmt.Errorf("record request: %w", err)
}

// void voids request id's verdict after a start that did not happen. It
// runs on its own context: the caller's may be what ended the open.
func (s *Service) void(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.store.VoidPINVerdict(ctx, id, s.Now().UTC()); err != nil {
		// Only a workflow with exactly this request's id and contents could
		// use it, within the verdict's lifetime.
		s.logger.Error("PIN verdict of a request that did not start not voided", "request", id, "error", err)
	}
}

// refuseNoOpEmail refuses an email action that would change nothing: adding
// an address the account already has, or making the primary the primary.
// Such a request would still page a senior and notify the customer for
// nothing. Addresses are compared whole and without regard to letter case,
// as the contacts table's unique index compares them.
func refuseNoOpEmail(cust store.Customer, p OpenParams) error {
	switch p.Action {
	case domain.ActionAddContactEmail:
		if strings.EqualFold(p.Email, cust.PrimaryEmail) {
			return &Refusal{Code: CodeAlreadyOnAccount, Message: fmt.Sprintf(
				"%s is already the primary address of customer %s; nothing to add", p.Email, cust.ID)}
		}
		for _, c := range cust.Contacts {
			if strings.EqualFold(p.Email, c.Email) {
				return &Refusal{Code: CodeAlreadyOnAccount, Message: fmt.Sprintf(
					"%s is already a contact address of customer %s; nothing to add", p.Email, cust.ID)}
			}
		}
	case domain.ActionChangeAccountEmail:
		if strings.EqualFold(p.Email, cust.PrimaryEmail) {
			return &Refusal{Code: CodeEmailUnchanged, Message: fmt.Sprintf(
				"%s is already the primary address of customer %s; nothing to change", p.Email, cust.ID)}
		}
	case domain.ActionResendCredentials, domain.ActionReinstallVPS, domain.ActionDisable2FA:
		// they carry no address to compare
		return nil
	default:
		return fmt.Errorf("requests: no no-op rule for action %q", p.Action)
	}
	return refuseLookalike(cust, p.Email)
}

// refuseLookalike refuses a new address that a reader could take for one the
// account already has. The notice about it goes to the customer's own
// addresses; if "dana@exarnple.com will be added" reads as their own
// address, the customer sees no reason to cancel, which is the attack.
// Stored addresses that no longer pass the rule are skipped: they cannot be
// compared, and an address that cannot be parsed cannot be mistaken either.
func refuseLookalike(cust store.Customer, email string) error {
	next, err := textrule.Email("email", email)
	if err != nil {
		return nil // Normalized already refused it; nothing to compare
	}
	existing := []string{cust.PrimaryEmail}
	for _, c := range cust.Contacts {
		existing = append(existing, c.Email)
	}
	for _, e := range existing {
		have, err := textrule.Email("email", e)
		if err != nil || !next.LooksLike(have) {
			continue
		}
		return &Refusal{Code: CodeLookalikeAddress, Message: fmt.Sprintf(
			"%s looks like %s, an address customer %s already has: they differ only in characters that look alike, so the customer's notice would read as their own address; check the spelling with the customer",
			next.Display(), have.Display(), cust.ID)}
	}
	return nil
}

// duplicateRefusal names the open request that holds the slot p wanted.
func duplicateRefusal(p OpenParams, customerID string, dup *store.DuplicateOpenError) *Refusal {
	target := ""
	switch {
	case p.ServerID != "":
		target = " on server " + p.ServerID
	case p.Email != "":
		target = " for " + p.Email
	}
	if dup.OtherCustomer {
		return &Refusal{Code: CodeDuplicate, Message: fmt.Sprintf(
			"another %s request%s is still open for the server's previous owner; it must end before one opens for customer %s",
			p.Action, target, customerID)}
	}
	if dup.ID == "" {
		return &Refusal{Code: CodeDuplicate, Message: fmt.Sprintf(
			"another %s request%s for customer %s was open a moment ago; check `starter list --open` and try again",
			p.Action, target, customerID)}
	}
	return &Refusal{Code: CodeDuplicate, RequestID: dup.ID, Message: fmt.Sprintf(
		"request %s (%s) is already open: %s%s for customer %s; follow it with `starter status %s`, or withdraw it before opening another",
		dup.ID, dup.Status, p.Action, target, customerID, dup.ID)}
}

// CheckReadable answers, for an agent calling the agent API, a not_found
// refusal worded exactly as for a request that does not exist when reader
// may not read request id (store.ReadableRequest holds the rule), so the API
// is no oracle for other agents' request ids.
func (s *Service) CheckReadable(ctx context.Context, reader store.Agent, id string) error {
	if !validRequestID(id) {
		return refusal(CodeNotFound, "request does not exist")
	}
	if _, err := s.store.ReadableRequest(ctx, reader, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return refusal(CodeNotFound, "request does not exist")
		}
		return err
	}
	return nil
}

// Status answers the workflow's status Query; it works on ended requests
// too. A request that never had a workflow (refused at the PIN, before any
// start) is answered from its row and its PIN verdict.
func (s *Service) Status(ctx context.Context, id string) (workflows.Status, error) {
	if !validRequestID(id) {
		return workflows.Status{}, refusal(CodeNotFound, "request %q does not exist", id)
	}
	v, err := s.temporal.QueryWorkflow(ctx, workflows.WorkflowID(id), "", workflows.QueryStatus)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		if st, ok, rerr := s.statusWithoutWorkflow(ctx, id); rerr != nil || ok {
			return st, rerr
		}
	}
	if err != nil {
		return workflows.Status{}, s.temporalErr("query request "+id, err)
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		return workflows.Status{}, fmt.Errorf("decode status of %s: %w", id, err)
	}
	return st, nil
}

// statusWithoutWorkflow is the status of request id when it ended at the PIN
// check, before any workflow: ok is false for any other request.
func (s *Service) statusWithoutWorkflow(ctx context.Context, id string) (workflows.Status, bool, error) {
	row, err := s.store.Request(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return workflows.Status{}, false, nil
	}
	if err != nil {
		return workflows.Status{}, false, err
	}
	if row.Status != domain.StatusPINRejected && row.Status != domain.StatusLocked {
		return workflows.Status{}, false, nil
	}
	v, err := s.store.PINVerdictOf(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// An old request: its workflow ended and Temporal no longer keeps it.
		return workflows.Status{}, false, nil
	}
	if err != nil {
		return workflows.Status{}, false, err
	}
	st := workflows.Status{RequestID: row.ID, Action: row.Action, CustomerID: row.CustomerID, RequesterID: row.RequesterID,
		ServerID: row.ServerID, Email: row.Email, Status: row.Status, OpenedAt: row.CreatedAt, LockedUntil: v.LockedUntil,
		PINFailures: v.Failures}
	if row.EndedAt != nil {
		st.EndedAt = *row.EndedAt
	}
	return st, true, nil
}

// Decide sends a senior's decision through the decide Update. The caller has
// authenticated the approver; the workflow's validator enforces the rules.
func (s *Service) Decide(ctx context.Context, id string, d workflows.DecideInput) (workflows.Status, error) {
	st, err := s.update(ctx, id, workflows.UpdateDecide, d)
	if r, ok := AsRefusal(err); ok {
		s.auditRefusal(ctx, id, "agent:"+d.ApproverID, "decision.refused", r, map[string]any{"decision": string(d.Decision)})
	}
	return st, err
}

// Repost has the request's approval message posted again through the
// repost Update; the workflow's validator decides whether this agent may.
func (s *Service) Repost(ctx context.Context, id string, in workflows.RepostInput) (workflows.Status, error) {
	st, err := s.update(ctx, id, workflows.UpdateRepost, in)
	if r, ok := AsRefusal(err); ok {
		s.auditRefusal(ctx, id, "agent:"+in.ActorID, "repost.refused", r, map[string]any{})
	}
	return st, err
}

// Cancel stops a request through the cancel Update.
func (s *Service) Cancel(ctx context.Context, id string, c workflows.CancelInput) (workflows.Status, error) {
	st, err := s.update(ctx, id, workflows.UpdateCancel, c)
	if r, ok := AsRefusal(err); ok {
		s.auditRefusal(ctx, id, cancelActor(c), "cancel.refused", r, map[string]any{"by": string(c.By)})
	}
	return st, err
}

// StopForStanding stops every open request that rests on agentID's
// standing and has not started executing, through the cancel Update with
// party security: those it approved and, when it was disabled, those it
// opened. why says what happened, for the trail and the alert. It returns
// the ids of the requests stopped; one that ended or started executing
// meanwhile is left to its workflow (whose own check just before executing
// reads the agents table again).
func (s *Service) StopForStanding(ctx context.Context, agentID string, disabled bool, why string) ([]string, error) {
	reqs, err := s.store.RequestsDependingOn(ctx, agentID, disabled)
	if err != nil {
		return nil, err
	}
	var stopped []string
	var errs []error
	for _, r := range reqs {
		_, err := s.Cancel(ctx, r.ID, workflows.CancelInput{By: domain.CancelBySecurity, ActorID: agentID, Reason: why})
		if _, refused := AsRefusal(err); refused {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", r.ID, err))
			continue
		}
		stopped = append(stopped, r.ID)
	}
	return stopped, errors.Join(errs...)
}

// cancelActor names who cancels, as the audit trail does.
func cancelActor(c workflows.CancelInput) string {
	if c.By == domain.CancelByCustomer {
		return "customer:" + c.ActorID
	}
	if c.By == domain.CancelBySecurity {
		return "system"
	}
	return "agent:" + c.ActorID
}

// CancelByLink sends the customer's cancel through one emailed link. A nil
// error means the workflow accepted the cancellation: it is in history and the
// request will not execute, even if the request has not reached its end
// state yet. The Update id is derived from the link, so a POST repeated after
// a timeout or a double click joins the first Update and gets its outcome
// rather than "already cancelled". Refusals are audited as Cancel's are. An
// error that is not a Refusal, or a CodeUnavailable Refusal, means the
// outcome is unknown: the cancellation may or may not have been recorded, and
// calling again with the same link is safe.
func (s *Service) CancelByLink(ctx context.Context, requestID, linkID string, c workflows.CancelInput) error {
	err := s.cancelByLink(ctx, requestID, linkID, c)
	if r, ok := AsRefusal(err); ok {
		s.auditRefusal(ctx, requestID, cancelActor(c), "cancel.refused", r, map[string]any{"by": string(c.By)})
	}
	return err
}

// LinkUpdateID is the cancel Update id for one cancel link. It is a hash of
// the link id rather than the id itself: Update ids are kept in Temporal
// history, and the link id has no business there.
func LinkUpdateID(linkID string) string {
	sum := sha256.Sum256([]byte("vigil-cancel-link-v1\x00" + linkID))
	return "cancel-link-" + hex.EncodeToString(sum[:16])
}

func (s *Service) cancelByLink(ctx context.Context, requestID, linkID string, c workflows.CancelInput) error {
	if !validRequestID(requestID) {
		return refusal(CodeNotFound, "request %q does not exist", requestID)
	}
	if linkID == "" {
		return refusal(CodeInvalid, "the cancel link has no id")
	}
	// Waiting for Accepted, not Completed: the handler only finishes once the
	// workflow has recorded the end state, which needs a worker to run
	// activities, while acceptance is the point after which the cancel cannot
	// be lost and the validator (which refuses executing or ended requests)
	// has spoken.
	h, err := s.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		UpdateID:     LinkUpdateID(linkID),
		WorkflowID:   workflows.WorkflowID(requestID),
		UpdateName:   workflows.UpdateCancel,
		Args:         []any{c},
		WaitForStage: client.WorkflowUpdateStageAccepted,
	})
	if err != nil {
		return s.updateErr(ctx, requestID, workflows.UpdateCancel, err)
	}
	// A refusal comes back as a completed handle whose Get answers at once;
	// an accepted Update still running blocks in Get until the handler ends.
	wait, cancel := context.WithTimeout(ctx, s.VerdictWait)
	defer cancel()
	err = h.Get(wait, nil)
	switch {
	case err == nil:
		return nil
	case refusalFromWorkflow(err) != nil:
		return refusalFromWorkflow(err)
	case isCallTimeout(err):
		// Only a handle that is still polling can time out, and only an
		// accepted Update gives such a handle.
		s.logger.Debug("cancel accepted, end state not yet recorded", "request", requestID)
		return nil
	}
	return s.updateErr(ctx, requestID, workflows.UpdateCancel, err)
}

// isCallTimeout reports whether err is this client giving up on a call (its
// context expired or was cancelled), as opposed to an answer from Temporal.
func isCallTimeout(err error) bool {
	var updTimeout *client.WorkflowUpdateServiceTimeoutOrCanceledError
	return errors.As(err, &updTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// auditRefusal records a refused decision or cancel. Requests that do not
// exist have no trail to write to; the log line is all they get.
func (s *Service) auditRefusal(ctx context.Context, id, actor, event string, r *Refusal, details map[string]any) {
	s.logger.Warn("refused", "request", id, "actor", actor, "event", event, "code", r.Code, "reason", r.Message)
	if r.Code == CodeNotFound || r.Code == CodeUnavailable {
		return
	}
	details["code"] = string(r.Code)
	details["message"] = r.Message
	if err := s.store.Audit(ctx, store.AuditEvent{RequestID: id, Actor: actor, Event: event, Details: details}); err != nil {
		s.logger.Error("audit refusal", "request", id, "error", err)
	}
}

func validRequestID(id string) bool { return strings.HasPrefix(id, "req_") && len(id) <= 64 }

func (s *Service) update(ctx context.Context, id, name string, arg any) (workflows.Status, error) {
	if !validRequestID(id) {
		return workflows.Status{}, refusal(CodeNotFound, "request %q does not exist", id)
	}
	h, err := s.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflows.WorkflowID(id),
		UpdateName:   name,
		Args:         []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		var st workflows.Status
		if err = h.Get(ctx, &st); err == nil {
			return st, nil
		}
	}
	return workflows.Status{}, s.updateErr(ctx, id, name, err)
}

// updateErr turns a failed Update into a Refusal where it is one.
func (s *Service) updateErr(ctx context.Context, id, name string, err error) error {
	if r := refusalFromWorkflow(err); r != nil {
		return r
	}
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		// The workflow is closed (or never existed). One closed outside
		// Vigil (terminated, cancelled, deleted in Temporal) left its row
		// open: end it now, audited and alerted, and say so.
		how, ended, eerr := s.endIfGone(ctx, id, "the "+name+" Update")
		if eerr != nil {
			return fmt.Errorf("end request %s, whose workflow is gone: %w", id, eerr)
		}
		if ended {
			return refusal(CodeEnded, "the request's workflow was %s in Temporal, outside Vigil; Vigil has ended it (failed) and told security", how)
		}
		st, qerr := s.Status(ctx, id)
		if qerr != nil {
			return qerr
		}
		return endedRefusal(st)
	}
	if isTimeout(err) {
		// The Update may have reached the workflow before the call gave up.
		return &Refusal{Code: CodeUnavailable, Message: "Temporal did not confirm this in time, so it may or may not have taken effect; check the request's status, then try again if needed"}
	}
	return s.temporalErr(name+" "+id, err)
}

func endedRefusal(st workflows.Status) *Refusal {
	switch st.Status {
	case domain.StatusExpired:
		return refusal(CodeEnded, "expired at %s", st.ApprovalDeadline.UTC().Format("15:04 UTC"))
	case domain.StatusExecuted:
		return refusal(CodeEnded, "the request was already executed at %s", st.ExecutedAt.UTC().Format("2006-01-02 15:04 UTC"))
	}
	return refusal(CodeEnded, "the request already ended (%s)", st.Status)
}

var codeByType = map[string]Code{
	workflows.RefusedSelfApproval:   CodeSelfApproval,
	workflows.RefusedNotSenior:      CodeNotSenior,
	workflows.RefusedAlreadyDecided: CodeAlreadyDecided,
	workflows.RefusedNotAwaiting:    CodeNotAwaiting,
	workflows.RefusedInvalid:        CodeInvalid,
	workflows.RefusedNotRequester:   CodeNotRequester,
	workflows.RefusedNotCustomer:    CodeNotCustomer,
	workflows.RefusedAlreadyEnded:   CodeEnded,
	workflows.RefusedExecuting:      CodeExecuting,
	workflows.RefusedSlack:          CodeSlackUnavailable,
	// The workflow's own check of the agents table refused a decision.
	workflows.RefusedNotInGoodStanding: CodeNotSenior,
}

func refusalFromWorkflow(err error) *Refusal {
	var app *temporal.ApplicationError
	if !errors.As(err, &app) {
		return nil
	}
	code, ok := codeByType[app.Type()]
	if !ok {
		return nil
	}
	return &Refusal{Code: code, Message: app.Message()}
}

func (s *Service) temporalErr(what string, err error) error {
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return refusal(CodeNotFound, "request does not exist")
	}
	if isTimeout(err) {
		return &Refusal{Code: CodeUnavailable, Message: "Temporal did not answer in time; try again in a minute"}
	}
	var unavailable *serviceerror.Unavailable
	if errors.As(err, &unavailable) {
		return &Refusal{Code: CodeUnavailable, Message: "Temporal is not reachable right now; try again in a minute"}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// isTimeout reports whether a call to Temporal ran out of time: the caller's
// context, the gRPC deadline, or an Update the SDK stopped waiting for (after
// a worker restart, an Update can wait on a dead worker's sticky queue).
func isTimeout(err error) bool {
	var deadline *serviceerror.DeadlineExceeded
	return isCallTimeout(err) || errors.As(err, &deadline)
}
