package activities_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/mail"
	"github.com/vigil-oss/vigil/internal/mailcatcher"
	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/panelstandin"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/slackstandin"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/syncbuf"
	"github.com/vigil-oss/vigil/internal/testpg"
	"github.com/vigil-oss/vigil/internal/tokens"
)

// The customer every live world starts with: established since its import.
const (
	victim        = "C-1042"
	victimPrimary = "owner@victim.test"
	victimOps     = "ops@victim.test"
	requester     = "ag_rita"
)

// liveWorld is the real activities with everything they reach: Postgres,
// an SMTP server (the mail catcher) and the control panel stand-in.
type liveWorld struct {
	st      *store.Store
	acts    *activities.Activities
	catcher *mailcatcher.Catcher
	panel   *panelstandin.Server
	signer  *tokens.Signer
	logs    *syncbuf.Buffer
}

func newLiveWorld(t *testing.T) *liveWorld {
	t.Helper()
	ctx := context.Background()
	db := testpg.New(t)
	st := store.New(db)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	w := &liveWorld{st: st, catcher: mailcatcher.New(quiet), logs: &syncbuf.Buffer{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	smtpDone := make(chan error, 1)
	go func() { smtpDone <- w.catcher.ServeSMTP(l) }()
	t.Cleanup(func() {
		_ = w.catcher.Close()
		<-smtpDone
	})
	sender, err := mail.NewSender(mail.SMTPConfig{Addr: l.Addr().String(), From: "vigil@vigil.test", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if w.panel, err = panelstandin.New(ctx, db, "panel-token-for-tests", "", quiet); err != nil {
		t.Fatal(err)
	}
	panelSrv := httptest.NewServer(w.panel.Handler())
	t.Cleanup(panelSrv.Close)
	pc, err := panel.NewClient(panelSrv.URL, "panel-token-for-tests", panelSrv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if w.signer, err = tokens.NewSigner(bytes.Repeat([]byte{7}, 32)); err != nil {
		t.Fatal(err)
	}
	w.acts, err = activities.New(st, pc, sender, w.signer, activities.Settings{CancelBaseURL: "http://127.0.0.1:8080",
		MailFrom: "Vigil <vigil@vigil.test>", SupportEmail: "help@vigil.test", EstablishedAfter: 7 * 24 * time.Hour},
		slog.New(slog.NewTextHandler(w.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	hash, err := pinhash.Hash("58203917", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-60 * 24 * time.Hour)
	if err := st.UpsertCustomer(ctx, store.CustomerImport{ID: victim, Name: "Dana Whitfield", PrimaryEmail: victimPrimary, PINHash: hash,
		Contacts: []store.Contact{{Email: victimOps, AddedAt: long, VerifiedAt: &long}}, Servers: []string{"srv-1"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAgent(ctx, store.Agent{ID: requester, Name: "Rita Moreau", Email: "rita@vigil.test", Role: domain.RoleAgent}, nil); err != nil {
		t.Fatal(err)
	}
	return w
}

// open records a request in status, as the workflow would have by then.
func (w *liveWorld) open(t *testing.T, id string, action domain.Action, server string, status domain.Status) {
	t.Helper()
	if err := w.st.CreateRequest(context.Background(), store.Request{ID: id, WorkflowID: "vigil-request-" + id, Action: action,
		CustomerID: victim, RequesterID: requester, ServerID: server, Reason: "customer asked in chat", Status: status}); err != nil {
		t.Fatal(err)
	}
}

// events returns the names of a request's audit events, in order.
func (w *liveWorld) events(t *testing.T, id string) []store.AuditEvent {
	t.Helper()
	trail, err := w.st.AuditTrail(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return trail
}

// withSlack gives w's activities the real Slack client against the Slack
// stand-in, and returns the stand-in. The requester is a workspace member.
func (w *liveWorld) withSlack(t *testing.T) *slackstandin.Server {
	t.Helper()
	sl, err := slackstandin.New(slackstandin.Config{BotToken: "xoxb-activities-test", SigningSecret: "activities-signing",
		Users: []slackstandin.User{{ID: "U0RITA", Name: "rita", RealName: "Rita Moreau"}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sl.Handler())
	t.Cleanup(srv.Close)
	api := slack.New("xoxb-activities-test", slack.OptionAPIURL(srv.URL+"/api/"), slack.OptionHTTPClient(srv.Client()))
	w.acts.Approvals = approvals.NewClient(api, approvals.Config{ApprovalsChannel: "#vigil-approvals", SecurityChannel: "#vigil-security"},
		slog.New(slog.DiscardHandler), approvals.WithRetryPolicy(approvals.RetryPolicy{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 1}))
	if _, err := w.st.DB().ExecContext(context.Background(), `UPDATE agents SET slack_user_id = 'U0RITA' WHERE id = $1`, requester); err != nil {
		t.Fatal(err)
	}
	return sl
}
