package requests

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/risk"
	"github.com/vigil-oss/vigil/internal/store"
)

// Refusal codes of the risk check.
const (
	// CodeFactorRequired: the account shows signs that the PIN or the
	// mailbox may be in someone else's hands; the open needs the code from
	// the customer's authenticator too. Nothing was checked or opened.
	CodeFactorRequired Code = "factor_required"
	// CodeRiskRefused: the account's recent events mean Vigil cannot verify
	// the caller at all (2FA just changed, or a factor is needed that the
	// action or the account cannot give); security has been told.
	CodeRiskRefused Code = "refused_by_risk"
	// CodePanelUnavailable: the control panel could not say what happened
	// to the account lately, so nothing opens (the check fails closed).
	CodePanelUnavailable Code = "panel_unavailable"
)

// Accounts is what the risk check asks the control panel: the account's
// recent security events, and whether a code from the customer's
// authenticator is right. *panel.Client implements it.
type Accounts interface {
	SecurityEvents(ctx context.Context, customerID string, since time.Time) ([]panel.SecurityEvent, error)
	VerifyTOTP(ctx context.Context, customerID, code string) (bool, error)
}

// RiskChecks configures the check made at the PIN gate. Off must be said
// explicitly: a Service without Accounts refuses to start otherwise.
type RiskChecks struct {
	Accounts Accounts
	Policy   risk.Policy
	// Lookback is how far back events are asked for (default 30 days).
	Lookback time.Duration
	// Off turns the check off (tests of other gates, and deployments whose
	// panel has no security events API); the web front logs it loudly.
	Off bool
}

// check validates c for New.
func (c RiskChecks) check() error {
	if c.Off {
		return nil
	}
	if c.Accounts == nil {
		return errors.New("requests: risk checks need the control panel (Accounts), or Off")
	}
	return c.Policy.Validate()
}

var factorPattern = regexp.MustCompile(`^[0-9]{6,10}$`)

// assessment is the risk check of one open, once made.
type assessment struct {
	risk.Assessment
	factorChecked, factorOK bool
}

// assessRisk asks the panel about the account and applies the policy. A
// refusal is audited and alerted (store.RecordRiskRefusal); a needed factor
// without a code asks for one before any PIN is checked.
func (s *Service) assessRisk(ctx context.Context, row store.Request, code string) (*assessment, error) {
	if s.risk.Off {
		return &assessment{}, nil
	}
	now := s.Now().UTC()
	lookback := s.risk.Lookback
	if lookback <= 0 {
		lookback = 30 * 24 * time.Hour
	}
	events, err := s.risk.Accounts.SecurityEvents(ctx, row.CustomerID, now.Add(-lookback))
	if errors.Is(err, panel.ErrTooManyEvents) {
		// Hundreds of events in the lookback are a sign in themselves, and
		// the one that would refuse the open may be among those cut.
		return nil, s.refuseOnRisk(ctx, row, risk.Assessment{Signals: []risk.Signal{{Rule: "too many events", Kind: "many_events", At: now}}},
			"the account has more recent security events than Vigil can read in one answer, so it cannot be judged")
	}
	if err != nil {
		s.logger.Error("risk check: the panel did not give the account's security events", "customer", row.CustomerID, "error", err)
		return nil, refusal(CodePanelUnavailable,
			"the control panel could not say what happened to customer %s's account lately, so Vigil cannot check the request's risk; nothing was opened, try again in a minute", row.CustomerID)
	}
	a := &assessment{Assessment: s.risk.Policy.Assess(row.Action, events, now)}
	switch {
	case a.Refuse:
		why := "its recent security events mean the caller cannot be verified here"
		if a.FactorUnavailable {
			why = fmt.Sprintf("it needs the customer's authenticator besides the PIN, and %s cannot be verified with it", row.Action)
		}
		return nil, s.refuseOnRisk(ctx, row, a.Assessment, why)
	case a.Factor && code == "":
		s.logger.Info("risk check: factor required", "customer", row.CustomerID, "action", row.Action, "signals", len(a.Signals))
		return nil, refusal(CodeFactorRequired,
			"customer %s's account shows %s, so the PIN alone is not enough: ask the customer for the 6-digit code from their authenticator app and give it with the PIN. Nothing was checked or opened",
			row.CustomerID, a.Summary())
	}
	return a, nil
}

// refuseOnRisk audits and alerts a refused open and returns its refusal.
func (s *Service) refuseOnRisk(ctx context.Context, row store.Request, a risk.Assessment, why string) error {
	if err := s.store.RecordRiskRefusal(ctx, row, a.Summary(), why, s.Now().UTC()); err != nil {
		return fmt.Errorf("record the risk refusal: %w", err)
	}
	s.logger.Warn("request refused by the risk check", "customer", row.CustomerID, "action", row.Action, "requester", row.RequesterID, "signals", a.Summary())
	return refusal(CodeRiskRefused,
		"Vigil cannot open %s for customer %s: %s (%s). Security has been told; the customer must be verified another way",
		row.Action, row.CustomerID, why, a.Summary())
}

// verifier is the PIN check's verify step, extended with the enrolled factor
// when the assessment asks for it: the request passes only if both are
// right, and a wrong code counts as a wrong PIN. The factor is asked once
// per open, however often the store re-reads the customer's row.
func (s *Service) verifier(ctx context.Context, customerID, code string, a *assessment, pin func(hash, pin string) (bool, error)) func(hash, pin string) (bool, error) {
	if a == nil || !a.Factor {
		return pin
	}
	var once sync.Once
	var factorErr error
	return func(hash, typed string) (bool, error) {
		ok, err := pin(hash, typed)
		if err != nil || !ok {
			return ok, err
		}
		once.Do(func() {
			a.factorChecked = true
			a.factorOK, factorErr = s.risk.Accounts.VerifyTOTP(ctx, customerID, code)
		})
		if errors.Is(factorErr, panel.ErrNotEnrolled) {
			return false, factorErr
		}
		if factorErr != nil {
			return false, fmt.Errorf("verify the authenticator code: %w", factorErr)
		}
		return a.factorOK, nil
	}
}

// riskEvents are the audit events an opened request carries about its risk
// check, written with request.opened.
func riskEvents(a *assessment, at time.Time) []store.AuditEvent {
	if a == nil || !a.Risky() {
		return nil
	}
	details := map[string]any{"signals": a.Summary(), "factor_required": a.Factor}
	out := []store.AuditEvent{{Actor: "system", Event: "gate.risk.assessed", At: at, Details: details}}
	if a.factorChecked && a.factorOK {
		out = append(out, store.AuditEvent{Actor: "system", Event: "gate.factor.verified", At: at,
			Details: map[string]any{"factor": "totp"}})
	}
	return out
}
