package cancelpage

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	vmail "github.com/vigil-oss/vigil/internal/mail"
	"github.com/vigil-oss/vigil/internal/mailcatcher"
	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/panelstandin"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/syncbuf"
	"github.com/vigil-oss/vigil/internal/temporaltest"
	"github.com/vigil-oss/vigil/workflows"
)

func TestMain(m *testing.M) {
	code := m.Run()
	temporaltest.RemoveBuilt()
	os.Exit(code)
}

// liveEnv is env with a running Temporal and an in-process worker running
// the real workflow and activities against the env's database, a real SMTP
// server and the control panel stand-in. Slack is left out: the workflow
// carries on without its message, and no scenario here needs it.
type liveEnv struct {
	*env
	temporal client.Client
	catcher  *mailcatcher.Catcher
	servers  int // servers cooling has added to the seeded customer
}

const seniorID = "ag_senior"

func newLiveEnv(t *testing.T) *liveEnv {
	t.Helper()
	return newLiveEnvWith(t, Options{})
}

// newLiveEnvWith is newLiveEnv with the pages' options.
func newLiveEnvWith(t *testing.T, opts Options) *liveEnv {
	t.Helper()
	addr := temporaltest.StartDevServer(t)
	logs := &syncbuf.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker and client logs:\n%s", logs.String())
		}
	})
	tc, err := client.Dial(client.Options{HostPort: addr, Namespace: "default", Logger: tlog.NewStructuredLogger(logger)})
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(tc.Close)
	le := &liveEnv{env: newEnvWith(t, opts, tc), temporal: tc}
	ctx := context.Background()
	if err := le.st.CreateAgent(ctx, store.Agent{ID: seniorID, Name: "Sam", Role: domain.RoleSenior}, nil); err != nil {
		t.Fatal(err)
	}

	quiet := slog.New(slog.DiscardHandler)
	le.catcher = mailcatcher.New(quiet)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	smtpDone := make(chan error, 1)
	go func() { smtpDone <- le.catcher.ServeSMTP(l) }()
	t.Cleanup(func() {
		_ = le.catcher.Close()
		<-smtpDone
	})
	sender, err := vmail.NewSender(vmail.SMTPConfig{Addr: l.Addr().String(), From: "vigil@vigil.test", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := panelstandin.New(ctx, le.st.DB(), "panel-token-for-tests", "", quiet)
	if err != nil {
		t.Fatal(err)
	}
	panelSrv := httptest.NewServer(ps.Handler())
	t.Cleanup(panelSrv.Close)
	pc, err := panel.NewClient(panelSrv.URL, "panel-token-for-tests", panelSrv.Client())
	if err != nil {
		t.Fatal(err)
	}
	acts, err := activities.New(le.st, pc, sender, le.signer, activities.Settings{
		CancelBaseURL: le.srv.URL, MailFrom: "Vigil <vigil@vigil.test>", SupportEmail: "help@acme-hosting.test",
		ProductName: "Acme Hosting",
		// The seeded customer's primary address is minutes old.
		EstablishedAfter: time.Nanosecond,
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	w := worker.New(tc, workflows.TaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.SensitiveRequest, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)
	return le
}

// waitUntil polls cond until it holds; the deadline is only a safety net.
func waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not reached (last: %s)", what, last)
}

var linkInMail = regexp.MustCompile(`/c/([A-Za-z0-9_.-]+)`)

// cooling opens a reinstall for the seeded customer, has the senior approve
// it and waits for the notice: it returns the request id and the token of
// the cancel link the customer got by email.
func (le *liveEnv) cooling(t *testing.T) (requestID, token string) {
	t.Helper()
	ctx := context.Background()
	requester, err := le.st.Agent(ctx, "ag_req")
	if err != nil {
		t.Fatal(err)
	}
	// Each on a server of its own: only one reinstall per server may be
	// open, and the seeded rows and earlier cases keep theirs open.
	le.servers++
	server := fmt.Sprintf("srv-live-%d", le.servers)
	if _, err := le.st.DB().ExecContext(ctx, `INSERT INTO customer_servers (server_id, customer_id) VALUES ($1, 'C-1')`, server); err != nil {
		t.Fatal(err)
	}
	st, err := le.svc.Open(ctx, requester, requests.OpenParams{Action: domain.ActionReinstallVPS, CustomerID: "C-1", ServerID: server,
		Reason: "customer says the server is compromised", PIN: "123456"})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	waitUntil(t, "request awaiting approval", func() (bool, string) {
		cur, err := le.svc.Status(ctx, st.RequestID)
		return err == nil && cur.Status == domain.StatusAwaitingApproval, fmt.Sprint(cur.Status, err)
	})
	// The web front records the senior's verified click before it sends
	// the decision; the worker checks for it.
	if err := le.st.RecordSlackDecision(ctx, store.SlackDecision{RequestID: st.RequestID, AgentID: seniorID, Decision: domain.DecisionApprove,
		SlackUser: "U0SENIOR", ActionTS: "1700000000.000100", RecordedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := le.svc.Decide(ctx, st.RequestID, workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: seniorID, ApproverRole: domain.RoleSenior}); err != nil {
		t.Fatalf("approve: %v", err)
	}
	waitUntil(t, "request cooling", func() (bool, string) {
		r, err := le.st.Request(ctx, st.RequestID)
		return err == nil && r.Status == domain.StatusCooling, fmt.Sprint(r.Status, err)
	})
	mctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	m, err := le.catcher.WaitFor(mctx, func(m mailcatcher.Message) bool {
		return strings.Contains(string(m.Raw), "X-Vigil-Request: "+st.RequestID) && strings.Contains(string(m.Raw), "X-Vigil-Kind: notice")
	})
	if err != nil {
		t.Fatalf("no notice for %s: %v", st.RequestID, err)
	}
	text, _, err := mailcatcher.Parts(m.Raw)
	if err != nil {
		t.Fatal(err)
	}
	link := linkInMail.FindStringSubmatch(text)
	if link == nil || !strings.Contains(text, le.srv.URL+"/c/") {
		t.Fatalf("no cancel link to %s in the notice:\n%s", le.srv.URL, text)
	}
	return st.RequestID, link[1]
}

// trail counts a request's audit events by event name and actor.
func (le *liveEnv) trail(t *testing.T, requestID string) map[string]int {
	t.Helper()
	events, err := le.st.AuditTrail(context.Background(), requestID)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, e := range events {
		n[e.Event+" by "+e.Actor]++
	}
	return n
}

// acceptedUpdates counts the Updates the workflow accepted, from history.
func (le *liveEnv) acceptedUpdates(t *testing.T, requestID string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	it := le.temporal.GetWorkflowHistory(ctx, workflows.WorkflowID(requestID), "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetEventType() == enums.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED {
			n++
		}
	}
	return n
}

// TestCancelThroughTemporal presses the button on the emailed link of real
// requests run by the real workflow: pressing again, however it happens,
// confirms the one cancellation instead of calling it an error, and a
// cancel the workflow refuses still gets the refusal page.
func TestCancelThroughTemporal(t *testing.T) {
	t.Parallel()
	le := newLiveEnv(t)
	ctx := context.Background()
	customer := workflows.CancelInput{By: domain.CancelByCustomer, ActorID: "C-1", Reason: CancelReason}
	const confirmed = "Cancelled. Nothing will happen."
	tests := []struct {
		name string
		// before runs between opening the page and the first press.
		before func(t *testing.T, requestID, linkID string)
		// presses are sent one after the other, or all at once.
		presses    int
		concurrent bool
		want       int
		text       string
		endedBy    string // actor of the request.cancelled event
		refused    int    // cancel.refused events the presses leave
		// usedMayWait: the press may find the request cancelled before it
		// reaches Temporal, and then it does not mark the link (it cannot
		// tell this link did it).
		usedMayWait bool
	}{
		{name: "one press", presses: 1, want: 200, text: "We stopped the request to erase and reinstall VPS srv-live-1", endedBy: "customer:C-1"},
		{name: "pressed again after it went through", presses: 3, want: 200, text: confirmed, endedBy: "customer:C-1"},
		{name: "double click", presses: 2, concurrent: true, want: 200, text: confirmed, endedBy: "customer:C-1"},
		{name: "pressed again after the first press's answer was lost",
			before: func(t *testing.T, requestID, linkID string) {
				// What a press that timed out after Temporal accepted it leaves.
				if err := le.svc.CancelByLink(ctx, requestID, linkID, customer); err != nil {
					t.Fatalf("first press: %v", err)
				}
			},
			presses: 1, want: 200, text: confirmed, endedBy: "customer:C-1", usedMayWait: true},
		{name: "vetoed by a senior while the projection lags",
			before: func(t *testing.T, requestID, _ string) {
				if _, err := le.svc.Cancel(ctx, requestID, workflows.CancelInput{By: domain.CancelBySenior, ActorID: seniorID,
					ActorRole: domain.RoleSenior, Reason: "looks like fraud"}); err != nil {
					t.Fatalf("veto: %v", err)
				}
				waitUntil(t, "workflow ended", func() (bool, string) {
					d, err := le.temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(requestID), "")
					if err != nil {
						return false, err.Error()
					}
					s := d.GetWorkflowExecutionInfo().GetStatus()
					return s == enums.WORKFLOW_EXECUTION_STATUS_COMPLETED, s.String()
				})
				// The page reads the projection; put it back as it was so the
				// press reaches the workflow, which has the last word.
				if _, err := le.st.DB().ExecContext(ctx, `UPDATE requests SET status = 'cooling', cancelled_by = NULL, ended_at = NULL WHERE id = $1`, requestID); err != nil {
					t.Fatal(err)
				}
			},
			presses: 1, want: 410, text: "It was already cancelled. Nothing will happen.", endedBy: "agent:" + seniorID, refused: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requestID, token := le.cooling(t)
			claims, err := le.signer.Parse(token, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			cookie, field, _ := le.confirmAs(t, token)
			if tt.before != nil {
				tt.before(t, requestID, claims.ID)
			}
			press := func() (page, error) {
				return le.send(nil, "POST", "/c/"+token, http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}, "Origin": {le.srv.URL}},
					url.Values{"csrf": {field}})
			}
			pages, errs := make([]page, tt.presses), make([]error, tt.presses)
			if tt.concurrent {
				var wg sync.WaitGroup
				for i := range pages {
					wg.Go(func() { pages[i], errs[i] = press() })
				}
				wg.Wait()
			} else {
				for i := range pages {
					pages[i], errs[i] = press()
				}
			}
			for i, p := range pages {
				if errs[i] != nil {
					t.Fatalf("press %d: %v", i+1, errs[i])
				}
				checkHeaders(t, "POST", p)
				if p.status != tt.want || !strings.Contains(p.body, tt.text) {
					t.Fatalf("press %d: status %d, want %d with %q:\n%s", i+1, p.status, tt.want, tt.text, p.body)
				}
			}
			if tt.want == http.StatusOK {
				// The projection moves before the audit event is appended.
				waitUntil(t, "request cancelled in the projection and the audit trail", func() (bool, string) {
					r, err := le.st.Request(ctx, requestID)
					n := le.trail(t, requestID)
					return err == nil && r.Status == domain.StatusCancelled && n["request.cancelled by "+tt.endedBy] > 0, fmt.Sprint(r.Status, err, n)
				})
				// Once it has ended, pressing again still confirms.
				if p, err := press(); err != nil || p.status != http.StatusOK || !strings.Contains(p.body, confirmed) {
					t.Fatalf("press after the end: status %d, %v:\n%s", p.status, err, p.body)
				}
			}
			n := le.trail(t, requestID)
			if n["request.cancelled by "+tt.endedBy] != 1 || n["request.cancelled by customer:C-1"]+n["request.cancelled by agent:"+seniorID] != 1 {
				t.Fatalf("want exactly one cancellation, by %s; audit trail: %v", tt.endedBy, n)
			}
			if got := n["cancel.refused by customer:C-1"]; got != tt.refused {
				t.Fatalf("%d refused cancels in the audit trail, want %d: %v", got, tt.refused, n)
			}
			if got := le.acceptedUpdates(t, requestID); got != 2 { // the approval and one cancel
				t.Fatalf("the workflow accepted %d Updates, want 2 (approve, cancel)", got)
			}
			row, err := le.st.CancelToken(ctx, claims.ID)
			if err != nil {
				t.Fatal(err)
			}
			if used := row.UsedAt != nil; used != (tt.want == http.StatusOK) && !(tt.usedMayWait && !used) {
				t.Fatalf("link used = %v after status %d", used, tt.want)
			}
		})
	}
}

// TestCancelByLinkJoinsItsUpdate pins the Update id at work on a real
// Temporal: the same link joins the accepted cancel, even once the workflow
// has closed, while another link is refused as already cancelled, which is
// audited.
func TestCancelByLinkJoinsItsUpdate(t *testing.T) {
	t.Parallel()
	le := newLiveEnv(t)
	ctx := context.Background()
	requestID, token := le.cooling(t)
	claims, err := le.signer.Parse(token, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	in := workflows.CancelInput{By: domain.CancelByCustomer, ActorID: "C-1", Reason: CancelReason}
	if err := le.svc.CancelByLink(ctx, requestID, claims.ID, in); err != nil {
		t.Fatalf("first cancel: %v", err)
	}
	waitUntil(t, "workflow closed", func() (bool, string) {
		d, err := le.temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(requestID), "")
		if err != nil {
			return false, err.Error()
		}
		s := d.GetWorkflowExecutionInfo().GetStatus()
		return s == enums.WORKFLOW_EXECUTION_STATUS_COMPLETED, s.String()
	})
	tests := []struct {
		name   string
		linkID string
		code   requests.Code // "" means accepted
	}{
		{"same link after the workflow closed", claims.ID, ""},
		{"another link", claims.ID + "-other", requests.CodeEnded},
		{"same link once more", claims.ID, ""},
	}
	refused := 0
	for _, tt := range tests {
		err := le.svc.CancelByLink(ctx, requestID, tt.linkID, in)
		if tt.code == "" {
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			continue
		}
		refused++
		r, ok := requests.AsRefusal(err)
		if !ok || r.Code != tt.code {
			t.Fatalf("%s: err = %v, want a %s refusal", tt.name, err, tt.code)
		}
		if n := le.trail(t, requestID)["cancel.refused by customer:C-1"]; n != refused {
			t.Fatalf("%s: %d refusals audited, want %d", tt.name, n, refused)
		}
	}
	if n := le.trail(t, requestID)["request.cancelled by customer:C-1"]; n != 1 {
		t.Fatalf("%d cancellations in the audit trail, want 1", n)
	}
	if got := le.acceptedUpdates(t, requestID); got != 2 {
		t.Fatalf("the workflow accepted %d Updates, want 2 (approve, cancel)", got)
	}
}

// TestRunTimeWhileTheProjectionLags: a customer who opens the link before
// the stored request has the run time still reads it, from the workflow.
func TestRunTimeWhileTheProjectionLags(t *testing.T) {
	t.Parallel()
	le := newLiveEnv(t)
	ctx := context.Background()
	requestID, token := le.cooling(t)
	st, err := le.svc.Status(ctx, requestID)
	if err != nil || st.CoolingEndsAt.IsZero() {
		t.Fatalf("status of a cooling request: %+v, %v", st, err)
	}
	// What the projection looks like in the moment before the workflow's
	// Record activity writes the time.
	if _, err := le.st.DB().ExecContext(ctx, `UPDATE requests SET cooling_ends_at = NULL WHERE id = $1`, requestID); err != nil {
		t.Fatal(err)
	}
	_, _, p := le.confirmAs(t, token)
	want := "It will happen on " + st.CoolingEndsAt.UTC().Format("Monday 2 January 2006 at 15:04 MST") + " unless you cancel it."
	if p.status != http.StatusOK || !strings.Contains(p.body, want) {
		t.Fatalf("page while the projection lags: status %d, want 200 saying %q:\n%s", p.status, want, p.body)
	}
}
