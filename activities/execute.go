package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/mail"
	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/store"
)

// Error types of an execution that failed for good, one per reason, so that
// the workflow can say in words what refused the action. They are all
// non-retryable; histories from before them carry ErrTypePermanent instead.
const (
	// ErrTypePanelNotFound: the panel answered 404, it knows no such
	// customer, server or endpoint.
	ErrTypePanelNotFound = "PanelNotFound"
	// ErrTypePanelUnauthorized: the panel answered 401 or 403, it refused
	// Vigil's token.
	ErrTypePanelUnauthorized = "PanelUnauthorized"
	// ErrTypePanelRefused: the panel refused the call with another 4xx
	// (a malformed call, an idempotency key reused for another call).
	ErrTypePanelRefused = "PanelRefused"
	// ErrTypePanelBadAnswer: the panel answered success with a body Vigil
	// cannot use; a replay would give the same body.
	ErrTypePanelBadAnswer = "PanelBadAnswer"
	// ErrTypeInvalidJob: the job failed the panel client's own checks, so
	// the panel was never called.
	ErrTypeInvalidJob = "InvalidJob"
	// ErrTypeTargetChanged: what the request acts on changed while it waited
	// (the server moved to another customer, the credentials' address is no
	// longer one the notice went to), so it was not executed.
	ErrTypeTargetChanged = "TargetChanged"
	// ErrTypeMailRefused: the mail relay refused the credentials email with
	// a 5xx reply.
	ErrTypeMailRefused = "MailRefused"
)

// IdempotencyKey is the key the control panel sees for a request: the same on
// every retry, replay and worker restart.
func IdempotencyKey(requestID string) string { return "vigil-" + requestID }

// Execute performs the action once. The executions table serialises
// concurrent attempts and remembers success; the control panel's idempotency
// key covers a crash between its answer and our commit. Credentials are
// fetched and emailed here and never leave this function.
func (a *Activities) Execute(ctx context.Context, in ExecuteInput) (ExecuteResult, error) {
	key := IdempotencyKey(in.RequestID)
	stop := keepAlive(ctx)
	res, err := a.Store.ExecuteOnce(ctx, in.RequestID, in.Action, key, func(ctx context.Context) (string, error) {
		// Checked here, not before ExecuteOnce: a retry of a run that
		// already finished must report it, whatever changed since.
		checked, err := a.checkTargets(ctx, in)
		if err != nil {
			return "", err
		}
		out, err := a.Executor.Execute(ctx, panel.Job{
			IdempotencyKey: key, Action: in.Action, CustomerID: in.CustomerID, ServerID: in.ServerID, Email: in.Email,
		})
		if err != nil {
			return "", err
		}
		if err := a.afterPanel(ctx, in, out, checked); err != nil {
			return "", err
		}
		return out.Reference, nil
	})
	stop()
	var refused *refusedError
	if errors.As(err, &refused) {
		return ExecuteResult{}, a.refuse(ctx, in, refused)
	}
	if err != nil {
		if refused := executeRefusal(err, in); refused != nil {
			return ExecuteResult{}, refused
		}
		return ExecuteResult{}, fmt.Errorf("execute %s for request %s: %w", in.Action, in.RequestID, err)
	}
	if err := a.Store.AuditOnce(ctx, store.AuditEvent{RequestID: in.RequestID, Actor: "system", Event: "execution.done",
		Details: map[string]any{"action": string(in.Action), "reference": res.Reference, "already_done": res.AlreadyDone}}, "execution"); err != nil {
		return ExecuteResult{}, fmt.Errorf("audit execution: %w", err)
	}
	a.log(ctx).Info("action executed", "request", in.RequestID, "action", in.Action, "reference", res.Reference, "already_done", res.AlreadyDone)
	return ExecuteResult{Reference: res.Reference, AlreadyDone: res.AlreadyDone}, nil
}

// executeRefusal classifies an execution error that retrying cannot fix by
// what refused it, and returns nil for any other error. Its message names
// the class and the HTTP status, not the panel's or the relay's text: the
// cause keeps that for the worker's log.
func executeRefusal(err error, in ExecuteInput) error {
	var pe *panel.PermanentError
	switch {
	case errors.As(err, &pe):
		typ := panelRefusalType(pe)
		msg := fmt.Sprintf("the control panel refused the %s for request %s (%s", in.Action, in.RequestID, typ)
		if pe.Status != 0 {
			msg += fmt.Sprintf(", status %d", pe.Status)
		}
		return temporal.NewNonRetryableApplicationError(msg+")", typ, err)
	case mail.IsPermanent(err):
		return temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the mail relay refused the credentials email for request %s", in.RequestID), ErrTypeMailRefused, err)
	}
	return nil
}

// panelRefusalType is the error type of a panel refusal.
func panelRefusalType(pe *panel.PermanentError) string {
	switch {
	case pe.Status == 0:
		return ErrTypeInvalidJob
	case pe.Status >= 200 && pe.Status <= 299:
		return ErrTypePanelBadAnswer
	case pe.Status == http.StatusNotFound:
		return ErrTypePanelNotFound
	case pe.Status == http.StatusUnauthorized || pe.Status == http.StatusForbidden:
		return ErrTypePanelUnauthorized
	}
	return ErrTypePanelRefused
}

// Reasons an execution is refused before the panel is called.
const (
	// RefusedServerMoved: the server no longer belongs to the request's
	// customer (an import moved it while the request was open).
	RefusedServerMoved = "server_moved"
	// RefusedPrimaryNotNotified: credentials would go to a primary address
	// that never got the notice (it changed after the customer was told).
	RefusedPrimaryNotNotified = "primary_not_notified"
)

// refusedError is a check of checkTargets that failed: retrying cannot
// help, and nothing was done.
type refusedError struct {
	reason string // one of the Refused constants
	why    string // one line, no address
}

func (e *refusedError) Error() string { return e.why }

// checked is what checkTargets found true just before the panel call, for
// what follows the call to act on instead of reading it again.
type checked struct {
	// recipient is the address the credentials go to: the primary as it
	// was when it was checked against the notice's recipients.
	recipient string
}

// checkTargets re-reads, just before the panel is called, what the request
// acts on: what was true when it opened may have been changed by an import
// since. What it checked is returned, and the steps after the panel call use
// that: an import that lands while the call is in flight must not change
// where the credentials go.
func (a *Activities) checkTargets(ctx context.Context, in ExecuteInput) (checked, error) {
	if in.Action.NeedsServer() {
		ok, err := a.Store.ServerBelongsTo(ctx, in.CustomerID, in.ServerID)
		if err != nil {
			return checked{}, fmt.Errorf("check the server's owner: %w", err)
		}
		if !ok {
			return checked{}, &refusedError{reason: RefusedServerMoved, why: fmt.Sprintf(
				"server %s no longer belongs to customer %s (it was moved while the request was open); the %s was not carried out",
				in.ServerID, in.CustomerID, in.Action)}
		}
	}
	if in.Action == domain.ActionResendCredentials {
		cust, err := a.Store.Customer(ctx, in.CustomerID)
		if err != nil {
			return checked{}, fmt.Errorf("load customer: %w", err)
		}
		notified, err := a.noticeRecipients(ctx, in.RequestID)
		if err != nil {
			return checked{}, err
		}
		if !slices.ContainsFunc(notified, func(e string) bool { return strings.EqualFold(e, cust.PrimaryEmail) }) {
			return checked{}, &refusedError{reason: RefusedPrimaryNotNotified, why: fmt.Sprintf(
				"the primary address of customer %s is not one the notice went to (it changed after the customer was told); the credentials were not sent",
				in.CustomerID)}
		}
		return checked{recipient: cust.PrimaryEmail}, nil
	}
	return checked{}, nil
}

// refuse records a refused execution (audit trail, security channel) and
// returns the permanent error that ends the request failed.
func (a *Activities) refuse(ctx context.Context, in ExecuteInput, r *refusedError) error {
	a.log(ctx).Warn("execution refused", "request", in.RequestID, "action", in.Action, "reason", r.reason, "why", r.why)
	details := map[string]any{"action": string(in.Action), "reason": r.reason, "why": r.why}
	if in.ServerID != "" {
		details["server"] = in.ServerID
	}
	if err := a.Store.AuditOnce(ctx, store.AuditEvent{RequestID: in.RequestID, Actor: "system", Event: "execution.refused",
		Details: details}, "execution-refused"); err != nil {
		// Retried until written: a refusal nobody can see is not one.
		return fmt.Errorf("audit refused execution: %w", err)
	}
	if a.Approvals != nil {
		if err := a.Approvals.Security(ctx, fmt.Sprintf("Request %s (%s for %s) was not executed: %s.", in.RequestID, in.Action, in.CustomerID, r.why)); err != nil {
			a.log(ctx).Warn("security alert for a refused execution not posted", "request", in.RequestID, "error", err)
		}
	}
	// InvalidJob: the workflow's words for it say the panel was never called.
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("request %s not executed: %s", in.RequestID, r.why), ErrTypeTargetChanged, r)
}

// afterPanel finishes what the panel call started on Vigil's side, acting on
// what checkTargets checked (ok), never on a fresh read.
func (a *Activities) afterPanel(ctx context.Context, in ExecuteInput, out panel.Result, ok checked) error {
	switch in.Action {
	case domain.ActionResendCredentials:
		if out.Credentials == nil {
			return fmt.Errorf("control panel returned no credentials for server %s", in.ServerID)
		}
		if ok.recipient == "" {
			return fmt.Errorf("no checked recipient for the credentials of request %s", in.RequestID)
		}
		// The name is only the greeting; the address is the checked one.
		cust, err := a.Store.Customer(ctx, in.CustomerID)
		if err != nil {
			return fmt.Errorf("load customer: %w", err)
		}
		// The mail is marked in the audit trail outside the executions
		// transaction: if that transaction then fails, the retry gets the
		// same credentials from the panel (same idempotency key) and must
		// not mail them a second time.
		mailed, err := a.credentialsMailed(ctx, in.RequestID)
		if err != nil {
			return err
		}
		if mailed {
			a.log(ctx).Info("credentials were already mailed for this request; not sending them again", "request", in.RequestID)
			return nil
		}
		subject, text, html, err := mail.RenderCredentials(mail.CredentialsData{
			CustomerName: cust.Name, ServerID: in.ServerID,
			Username: out.Credentials.Username, Password: out.Credentials.Password,
			SupportEmail: a.Settings.SupportEmail, ProductName: a.Settings.ProductName,
		})
		if err != nil {
			return fmt.Errorf("render credentials email: %w", err)
		}
		if err := a.Mailer.Send(ctx, mail.Message{From: a.Settings.MailFrom, To: []string{ok.recipient}, Subject: subject, Text: text, HTML: html,
			Headers: map[string]string{"X-Vigil-Request": in.RequestID, "X-Vigil-Kind": "credentials"},
			// Should a crash still slip between the send and the mark,
			// the resend at least carries the same Message-ID.
			ID: "credentials." + in.RequestID}); err != nil {
			return err
		}
		return a.markCredentialsMailed(ctx, in.RequestID, store.AuditEvent{RequestID: in.RequestID, Actor: "system", Event: "credentials.mailed",
			Details: map[string]any{"recipient": ok.recipient, "server": in.ServerID}})
	case domain.ActionAddContactEmail:
		return a.Store.AddContact(ctx, in.CustomerID, in.Email, a.now())
	case domain.ActionChangeAccountEmail:
		return a.Store.SetPrimaryEmail(ctx, in.CustomerID, in.Email)
	case domain.ActionReinstallVPS, domain.ActionDisable2FA:
		return nil // the panel call was all of it
	}
	return fmt.Errorf("no executor step for action %q", in.Action)
}

// credentialsMailed reports whether an earlier attempt already mailed the
// credentials for the request.
func (a *Activities) credentialsMailed(ctx context.Context, requestID string) (bool, error) {
	trail, err := a.Store.AuditTrail(ctx, requestID)
	if err != nil {
		return false, fmt.Errorf("audit trail of %s: %w", requestID, err)
	}
	for _, ev := range trail {
		if ev.Event == "credentials.mailed" {
			return true, nil
		}
	}
	return false, nil
}

// markCredentialsMailed writes the mark, trying for a while: the mail is
// already out, and every failed write here means a second email on retry.
// A Postgres restart or failover usually passes within the wait.
func (a *Activities) markCredentialsMailed(ctx context.Context, requestID string, ev store.AuditEvent) error {
	wait := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := a.Store.AuditOnce(ctx, ev, "credentials")
		if err == nil || attempt == 6 {
			return err
		}
		a.log(ctx).Warn("credentials mailed but not yet marked; trying again", "request", requestID, "attempt", attempt, "error", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
}
