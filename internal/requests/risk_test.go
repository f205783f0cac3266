package requests

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/panelstandin"
	"github.com/vigil-oss/vigil/internal/risk"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/testpg"
)

const (
	riskPanelToken = "risk-test-panel-token"
	riskReadToken  = "risk-test-read-token"
	totpSecret     = "JBSWY3DPEHPK3PXPJBSWY3DP"
)

// riskEnv is a Service whose opens ask a real panel stand-in (over HTTP,
// with the web front's read-only token) about the account.
type riskEnv struct {
	svc   *Service
	st    *store.Store
	panel *panelstandin.Server
	srv   *httptest.Server
}

func (lt *liveTemporal) riskService(t *testing.T) riskEnv {
	t.Helper()
	db := testpg.New(t)
	st := store.New(db)
	ctx := context.Background()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	seedAccount(t, st)
	ps, err := panelstandin.New(ctx, db, riskPanelToken, riskReadToken, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ps.Handler())
	t.Cleanup(srv.Close)
	pc, err := panel.NewClient(srv.URL, riskReadToken, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(lt.tc, st, Timings{ApprovalTimeout: time.Hour, NoticeTimeout: time.Hour, ExecuteMaxAttempts: 3,
		Cooling: domain.DefaultCoolingPeriods()}, RiskChecks{Accounts: pc, Policy: risk.DefaultPolicy()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return riskEnv{svc: svc, st: st, panel: ps, srv: srv}
}

// takeover plants what the founding incident leaves on the account: the
// password reset through the mailbox, then the PIN read on the account page.
func (e riskEnv) takeover(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if err := e.panel.PlantEvent(ctx, "C-1", "password_reset", "email", "", time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := e.panel.PlantEvent(ctx, "C-1", "pin_viewed", "", "", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func currentCode(t *testing.T) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(totpSecret, time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func resend() OpenParams {
	return OpenParams{Action: domain.ActionResendCredentials, CustomerID: "C-1", ServerID: "srv-1",
		Reason: "customer asks for the credentials to the email on file", PIN: "123456"}
}

// TestOpenAfterATakeover: the attacker of the founding incident owns the
// mailbox and has read the PIN. The PIN alone no longer opens the request:
// the customer's authenticator must confirm, and what it cannot confirm is
// refused, audited and told to security. Nothing of the code is kept.
func TestOpenAfterATakeover(t *testing.T) {
	lt := newLiveTemporal(t)
	ctx := context.Background()

	t.Run("a quiet account opens with the PIN alone", func(t *testing.T) {
		e := lt.riskService(t)
		agent, _ := e.st.Agent(ctx, "ag_req")
		got, err := e.svc.Open(ctx, agent, resend())
		if err != nil {
			t.Fatal(err)
		}
		if n := count(t, e.st, "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event LIKE 'gate.risk%'", got.RequestID); n != 0 {
			t.Fatalf("%d risk events on a quiet account", n)
		}
	})

	t.Run("the PIN alone is not enough: factor_required, nothing checked or written", func(t *testing.T) {
		e := lt.riskService(t)
		e.takeover(t)
		agent, _ := e.st.Agent(ctx, "ag_req")
		_, err := e.svc.Open(ctx, agent, resend())
		r, ok := AsRefusal(err)
		if !ok || r.Code != CodeFactorRequired || !strings.Contains(r.Message, "password reset (email)") || !strings.Contains(r.Message, "pin viewed") {
			t.Fatalf("open = %v, want factor_required naming the events", err)
		}
		for _, q := range []string{"SELECT count(*) FROM requests", "SELECT count(*) FROM pin_failures", "SELECT count(*) FROM pin_verdicts", "SELECT count(*) FROM audit_events"} {
			if n := count(t, e.st, q); n != 0 {
				t.Fatalf("%s = %d after factor_required, want 0", q, n)
			}
		}
	})

	t.Run("the customer's code opens it, and the trail says why it was needed", func(t *testing.T) {
		e := lt.riskService(t)
		e.takeover(t)
		if err := e.panel.EnrollTOTP(ctx, "C-1", totpSecret); err != nil {
			t.Fatal(err)
		}
		agent, _ := e.st.Agent(ctx, "ag_req")
		p := resend()
		p.FactorCode = currentCode(t)
		got, err := e.svc.Open(ctx, agent, p)
		if err != nil {
			t.Fatal(err)
		}
		if !lt.workflowExists(t, got.RequestID) {
			t.Fatal("no workflow")
		}
		for _, ev := range []string{"gate.risk.assessed", "gate.factor.verified"} {
			if n := count(t, e.st, "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event = $2", got.RequestID, ev); n != 1 {
				t.Fatalf("%d %s events, want 1", n, ev)
			}
		}
		if n := count(t, e.st, "SELECT count(*) FROM audit_events WHERE details::text LIKE '%' || $1 || '%'", p.FactorCode); n != 0 {
			t.Fatalf("the code is in %d audit rows", n)
		}
	})

	t.Run("a wrong code counts as a wrong PIN and ends the request", func(t *testing.T) {
		e := lt.riskService(t)
		e.takeover(t)
		if err := e.panel.EnrollTOTP(ctx, "C-1", totpSecret); err != nil {
			t.Fatal(err)
		}
		agent, _ := e.st.Agent(ctx, "ag_req")
		p := resend()
		p.FactorCode = "000000"
		if p.FactorCode == currentCode(t) {
			p.FactorCode = "111111"
		}
		got, err := e.svc.Open(ctx, agent, p)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != domain.StatusPINRejected || got.PINFailures != 1 {
			t.Fatalf("open with a wrong code = %+v, want pin_rejected with one failure", got)
		}
		if n := count(t, e.st, "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event = 'gate.factor.rejected'", got.RequestID); n != 1 {
			t.Fatalf("%d gate.factor.rejected events, want 1", n)
		}
		if lt.workflowExists(t, got.RequestID) {
			t.Fatal("a workflow started for a wrong code")
		}
		// A wrong PIN with the right code spends no code: the code still
		// verifies the next open.
		p.PIN, p.FactorCode = "654321", currentCode(t)
		if got, err := e.svc.Open(ctx, agent, p); err != nil || got.Status != domain.StatusPINRejected {
			t.Fatalf("wrong PIN, right code = %+v %v", got, err)
		}
		p.PIN = "123456"
		if got, err := e.svc.Open(ctx, agent, p); err != nil || got.Status != domain.StatusPINCheck {
			t.Fatalf("right PIN, the code not spent by the wrong PIN = %+v %v", got, err)
		}
	})

	for _, tc := range []struct {
		name   string
		plant  func(e riskEnv)
		params OpenParams
		why    string
	}{
		{"no authenticator enrolled", func(e riskEnv) { e.takeover(t) },
			func() OpenParams { p := resend(); p.FactorCode = "123456"; return p }(), "no authenticator enrolled"},
		{"2FA changed just now: the authenticator may be the attacker's", func(e riskEnv) {
			_ = e.panel.PlantEvent(ctx, "C-1", "2fa_changed", "", "", time.Now().Add(-time.Hour))
		}, resend(), "cannot be verified here"},
		{"disabling 2FA cannot be proved with the 2FA", func(e riskEnv) { e.takeover(t) },
			OpenParams{Action: domain.ActionDisable2FA, CustomerID: "C-1", Reason: "lost phone", PIN: "123456"}, "cannot be verified with it"},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			e := lt.riskService(t)
			tc.plant(e)
			agent, _ := e.st.Agent(ctx, "ag_req")
			_, err := e.svc.Open(ctx, agent, tc.params)
			r, ok := AsRefusal(err)
			if !ok || r.Code != CodeRiskRefused || !strings.Contains(r.Message, tc.why) || !strings.Contains(r.Message, "Security has been told") {
				t.Fatalf("open = %v, want refused_by_risk saying %q", err, tc.why)
			}
			if n := count(t, e.st, "SELECT count(*) FROM requests"); n != 0 {
				t.Fatalf("%d rows after a refusal", n)
			}
			if n := count(t, e.st, "SELECT count(*) FROM audit_events WHERE event = $1 AND actor = 'agent:ag_req' AND details->>'customer' = 'C-1'", store.EventRiskRefused); n != 1 {
				t.Fatalf("%d %s events, want 1", n, store.EventRiskRefused)
			}
			if n := count(t, e.st, "SELECT count(*) FROM security_alerts WHERE kind = $1", store.AlertRiskRefused); n != 1 {
				t.Fatalf("%d alerts, want 1", n)
			}
		})
	}

	// The attacker reloads the PIN page 200 times, then enrolls their own
	// authenticator: the 2FA change must not fall off a full answer.
	t.Run("200 harmless events cannot hide a 2FA change", func(t *testing.T) {
		e := lt.riskService(t)
		for i := range 200 {
			if err := e.panel.PlantEvent(ctx, "C-1", "pin_viewed", "", "", time.Now().Add(-3*time.Hour+time.Duration(i)*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.panel.PlantEvent(ctx, "C-1", "2fa_changed", "", "", time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := e.panel.EnrollTOTP(ctx, "C-1", totpSecret); err != nil {
			t.Fatal(err)
		}
		agent, _ := e.st.Agent(ctx, "ag_req")
		p := resend()
		p.FactorCode = currentCode(t)
		_, err := e.svc.Open(ctx, agent, p)
		if r, ok := AsRefusal(err); !ok || r.Code != CodeRiskRefused {
			t.Fatalf("open with 201 events = %v, want refused_by_risk", err)
		}
		if n := count(t, e.st, "SELECT count(*) FROM requests"); n != 0 {
			t.Fatalf("%d rows", n)
		}
	})

	t.Run("a panel that cannot answer opens nothing", func(t *testing.T) {
		e := lt.riskService(t)
		e.srv.Close()
		agent, _ := e.st.Agent(ctx, "ag_req")
		_, err := e.svc.Open(ctx, agent, resend())
		if r, ok := AsRefusal(err); !ok || r.Code != CodePanelUnavailable {
			t.Fatalf("open with the panel down = %v, want panel_unavailable", err)
		}
		if n := count(t, e.st, "SELECT count(*) FROM requests"); n != 0 {
			t.Fatalf("%d rows", n)
		}
	})
}

// TestRiskChecksMustBeConfigured: a Service with neither a panel nor an
// explicit Off is refused, so risk checks cannot be left out by accident.
func TestRiskChecksMustBeConfigured(t *testing.T) {
	if _, err := New(nil, nil, Timings{}, RiskChecks{}, nil); err == nil {
		t.Fatal("New accepted risk checks with no panel and no Off")
	}
	bad := risk.Policy{Rules: []risk.Rule{{Name: "x"}}}
	if _, err := New(nil, nil, Timings{}, RiskChecks{Accounts: &panel.Client{}, Policy: bad}, nil); err == nil {
		t.Fatal("New accepted an invalid policy")
	}
}

// TestAdminsAndSecurityDoNotOpen: an admin (who also creates agents) and the
// security role (who also unlocks customers) are refused before anything
// is checked or written, whatever credential they hold.
func TestAdminsAndSecurityDoNotOpen(t *testing.T) {
	lt := newLiveTemporal(t)
	ctx := context.Background()
	svc, st := lt.service(t)
	for _, role := range []domain.Role{domain.RoleAdmin, domain.RoleSecurity} {
		id := "ag_" + string(role)
		if err := st.CreateAgent(ctx, store.Agent{ID: id, Name: id, Role: role}, nil); err != nil {
			t.Fatal(err)
		}
		agent, err := st.Agent(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		_, err = svc.Open(ctx, agent, resend())
		if r, ok := AsRefusal(err); !ok || r.Code != CodeRoleCannotOpen {
			t.Fatalf("open by %s = %v, want role_cannot_open", role, err)
		}
	}
	for _, q := range []string{"SELECT count(*) FROM requests", "SELECT count(*) FROM pin_verdicts", "SELECT count(*) FROM pin_failures"} {
		if n := count(t, st, q); n != 0 {
			t.Fatalf("%s = %d after refused opens", q, n)
		}
	}
}
