package requests

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/temporaltest"
	"github.com/vigil-oss/vigil/internal/testpg"
	"github.com/vigil-oss/vigil/workflows"
)

func TestMain(m *testing.M) {
	code := m.Run()
	temporaltest.RemoveBuilt()
	os.Exit(code)
}

// seedAccount adds customer C-1 (primary Ann@Example.test, contact
// bob@example.test, servers srv-1 and srv-2) and agents ag_req and ag_two.
func seedAccount(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	hash, err := pinhash.Hash("123456", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertCustomer(ctx, store.CustomerImport{ID: "C-1", Name: "Ann", PrimaryEmail: "Ann@Example.test", PINHash: hash,
		Contacts: []store.Contact{{Email: "bob@example.test", AddedAt: time.Now().Add(-time.Hour)}},
		Servers:  []string{"srv-1", "srv-2"}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ag_req", "ag_two"} {
		if err := st.CreateAgent(ctx, store.Agent{ID: id, Name: id, Role: domain.RoleAgent}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// liveTemporal is a real devserver with no worker: workflows start and wait
// in their task queue, so what Open leaves behind is all there is to see.
type liveTemporal struct {
	tc client.Client
}

func newLiveTemporal(t *testing.T) *liveTemporal {
	t.Helper()
	addr := temporaltest.StartDevServer(t)
	tc, err := client.Dial(client.Options{HostPort: addr, Namespace: "default", Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(tc.Close)
	return &liveTemporal{tc: tc}
}

// service is a Service on a fresh, seeded database.
func (lt *liveTemporal) service(t *testing.T) (*Service, *store.Store) {
	t.Helper()
	st := store.New(testpg.New(t))
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	seedAccount(t, st)
	logger := slog.New(slog.DiscardHandler)
	svc, err := New(lt.tc, st, Timings{ApprovalTimeout: time.Hour, NoticeTimeout: time.Hour, ExecuteMaxAttempts: 3,
		Cooling: domain.DefaultCoolingPeriods()}, RiskChecks{Off: true}, logger)
	if err != nil {
		t.Fatal(err)
	}
	return svc, st
}

// workflowExists reports whether Temporal has a run for request id.
func (lt *liveTemporal) workflowExists(t *testing.T, id string) bool {
	t.Helper()
	_, err := lt.tc.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(id), "")
	return err == nil
}

// workflowsFor counts the workflows Temporal lists for a customer id, once
// visibility has caught up with at least want of them.
func (lt *liveTemporal) workflowsFor(t *testing.T, customer string, want int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := lt.tc.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("%s = '%s'", workflows.SACustomer.GetName(), customer)})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(resp.Executions); n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func count(t *testing.T, st *store.Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := st.DB().QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func reinstall(server string) OpenParams {
	return OpenParams{Action: domain.ActionReinstallVPS, CustomerID: "C-1", ServerID: server, Reason: "server compromised", PIN: "123456"}
}

// TestOpenOnRealTemporal runs Open against a real Temporal with no worker:
// the row and the opened event are there when Open returns, and the
// database lets one request per customer, action and target be open.
func TestOpenOnRealTemporal(t *testing.T) {
	lt := newLiveTemporal(t)
	ctx := context.Background()

	t.Run("listed before any worker ran", func(t *testing.T) {
		svc, st := lt.service(t)
		requester, _ := st.Agent(ctx, "ag_req")
		got, err := svc.Open(ctx, requester, OpenParams{Action: domain.ActionAddContactEmail, CustomerID: "C-1",
			Email: "cto@example.test", Reason: "  new CTO  ", PIN: "123456"})
		if err != nil {
			t.Fatal(err)
		}
		list, err := st.ListRequests(ctx, store.ListFilter{OpenOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 {
			t.Fatalf("listing after Open: %+v, want the request", list)
		}
		r := list[0]
		if r.ID != got.RequestID || r.WorkflowID != workflows.WorkflowID(got.RequestID) || r.Action != domain.ActionAddContactEmail ||
			r.CustomerID != "C-1" || r.RequesterID != "ag_req" || r.Email != "cto@example.test" || r.Reason != "new CTO" ||
			r.Status != domain.StatusPINCheck || r.ServerID != "" {
			t.Fatalf("row %+v", r)
		}
		if !lt.workflowExists(t, got.RequestID) {
			t.Fatal("no workflow behind the row")
		}
		trail, err := st.AuditTrail(ctx, got.RequestID)
		if err != nil {
			t.Fatal(err)
		}
		if len(trail) != 2 || trail[0].Event != "request.opened" || trail[0].Actor != "agent:ag_req" || trail[0].Details["email"] != "cto@example.test" ||
			trail[1].Event != "gate.pin.verified" {
			t.Fatalf("audit trail %+v, want request.opened, gate.pin.verified", trail)
		}
		// The PIN was checked here, and its verdict waits for the workflow.
		if got.Status != domain.StatusPINCheck || got.PINVerifiedAt.IsZero() {
			t.Fatalf("open answered %+v, want pin_check with the PIN verified", got)
		}
		if v, err := st.PINVerdictOf(ctx, got.RequestID); err != nil || !v.Verified || v.ConsumedAt != nil || v.WorkflowID != r.WorkflowID {
			t.Fatalf("verdict %+v %v", v, err)
		}
	})

	t.Run("two at once: one request, one duplicate_request", func(t *testing.T) {
		svc, st := lt.service(t)
		// A customer of its own, so that Temporal's listing counts only these.
		hash, _ := pinhash.Hash("123456", pinhash.TestParams())
		if err := st.UpsertCustomer(ctx, store.CustomerImport{ID: "C-race", PrimaryEmail: "r@example.test", PINHash: hash}); err != nil {
			t.Fatal(err)
		}
		type result struct {
			id  string
			err error
		}
		var (
			wg      sync.WaitGroup
			barrier = make(chan struct{})
			out     = make([]result, 2)
		)
		for i, agent := range []string{"ag_req", "ag_two"} {
			requester, _ := st.Agent(ctx, agent)
			wg.Go(func() {
				<-barrier
				s, err := svc.Open(ctx, requester, OpenParams{Action: domain.ActionDisable2FA, CustomerID: "C-race", Reason: "lost phone", PIN: "123456"})
				out[i] = result{s.RequestID, err}
			})
		}
		close(barrier)
		wg.Wait()
		var won string
		var refused *Refusal
		for _, o := range out {
			if r, ok := AsRefusal(o.err); ok && r.Code == CodeDuplicate {
				refused = r
				continue
			}
			if o.err != nil {
				t.Fatalf("open: %v", o.err)
			}
			won = o.id
		}
		if won == "" || refused == nil {
			t.Fatalf("results %+v, want one request and one duplicate_request", out)
		}
		if refused.RequestID != won || !strings.Contains(refused.Message, won) || !strings.Contains(refused.Message, string(domain.StatusPINCheck)) {
			t.Fatalf("refusal %+v does not name %s and its status", refused, won)
		}
		if n := count(t, st, "SELECT count(*) FROM requests WHERE customer_id = 'C-race'"); n != 1 {
			t.Fatalf("%d rows, want 1", n)
		}
		if n := count(t, st, "SELECT count(*) FROM audit_events"); n != 2 {
			t.Fatalf("%d audit events, want the winner's request.opened and gate.pin.verified", n)
		}
		// The loser's PIN may have been checked before the index refused
		// it; its verdict then serves no start.
		if n := count(t, st, "SELECT count(*) FROM pin_verdicts WHERE request_id <> $1 AND voided_at IS NULL", won); n != 0 {
			t.Fatalf("%d verdicts of the refused open are still usable", n)
		}
		if n := lt.workflowsFor(t, "C-race", 1); n != 1 {
			t.Fatalf("Temporal lists %d workflows for the customer, want 1", n)
		}
	})

	t.Run("a second open while the first waits, then after it ended", func(t *testing.T) {
		svc, st := lt.service(t)
		requester, _ := st.Agent(ctx, "ag_req")
		first, err := svc.Open(ctx, requester, reinstall("srv-1"))
		if err != nil {
			t.Fatal(err)
		}
		other, _ := st.Agent(ctx, "ag_two")
		_, err = svc.Open(ctx, other, reinstall("srv-1"))
		r, ok := AsRefusal(err)
		if !ok || r.Code != CodeDuplicate || r.RequestID != first.RequestID ||
			!strings.Contains(r.Message, first.RequestID) || !strings.Contains(r.Message, "pin_check") || !strings.Contains(r.Message, "srv-1") {
			t.Fatalf("second open = %v, want duplicate_request naming %s (pin_check)", err, first.RequestID)
		}
		if n := count(t, st, "SELECT count(*) FROM requests"); n != 1 {
			t.Fatalf("%d rows after the refusal, want 1", n)
		}
		// End the first as the worker would: the workflow closes, its last
		// activity writes the final status.
		if err := lt.tc.TerminateWorkflow(ctx, workflows.WorkflowID(first.RequestID), "", "test: withdrawn"); err != nil {
			t.Fatal(err)
		}
		if err := st.UpdateRequest(ctx, first.RequestID, store.RequestUpdate{Status: domain.StatusWithdrawn}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		again, err := svc.Open(ctx, other, reinstall("srv-1"))
		if err != nil {
			t.Fatalf("open after the first ended: %v", err)
		}
		if again.RequestID == first.RequestID || !lt.workflowExists(t, again.RequestID) {
			t.Fatalf("reopened %+v", again)
		}
	})

	// An operator who terminates (or deletes) a request's workflow in
	// Temporal must not wedge the customer's slot for good, nor end the
	// request unseen: the next open ends the row as failed, audits and
	// alerts it, and opens. A running holder still refuses.
	t.Run("a slot held by a workflow ended outside Vigil is freed, audited and alerted", func(t *testing.T) {
		svc, st := lt.service(t)
		requester, _ := st.Agent(ctx, "ag_req")
		first, err := svc.Open(ctx, requester, reinstall("srv-1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := lt.tc.TerminateWorkflow(ctx, workflows.WorkflowID(first.RequestID), "", "operator at the Temporal CLI"); err != nil {
			t.Fatal(err)
		}
		other, _ := st.Agent(ctx, "ag_two")
		again, err := svc.Open(ctx, other, reinstall("srv-1"))
		if err != nil {
			t.Fatalf("open after the holder's workflow was terminated: %v", err)
		}
		if again.RequestID == first.RequestID || !lt.workflowExists(t, again.RequestID) {
			t.Fatalf("reopened %+v", again)
		}
		row, err := st.Request(ctx, first.RequestID)
		if err != nil || row.Status != domain.StatusFailed || !strings.Contains(row.OutcomeDetail, "terminated") {
			t.Fatalf("the terminated request's row = %+v (%v), want failed saying terminated", row, err)
		}
		if n := count(t, st, "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event = $2 AND details->>'temporal' = 'terminated'",
			first.RequestID, store.EventEndedOutside); n != 1 {
			t.Fatalf("%d %s events, want 1", n, store.EventEndedOutside)
		}
		if n := count(t, st, "SELECT count(*) FROM security_alerts WHERE kind = $1 AND details->>'request' = $2", store.AlertEndedOutside, first.RequestID); n != 1 {
			t.Fatalf("%d alerts, want 1", n)
		}
		// The new holder runs: it still refuses a third open, and is not ended.
		_, err = svc.Open(ctx, requester, reinstall("srv-1"))
		if r, ok := AsRefusal(err); !ok || r.Code != CodeDuplicate || r.RequestID != again.RequestID {
			t.Fatalf("third open = %v, want duplicate_request naming %s", err, again.RequestID)
		}
		if row, _ := st.Request(ctx, again.RequestID); row.Status.Final() {
			t.Fatalf("the running holder was ended: %+v", row)
		}
		// Ending again is a no-op: one event, one alert.
		if ended, err := st.EndOutsideVigil(ctx, first.RequestID, "terminated", time.Time{}); err != nil || ended {
			t.Fatalf("second EndOutsideVigil = %v, %v; want a no-op", ended, err)
		}
	})

	// Nobody needs to open the same slot again: the first withdraw, veto or
	// click that reaches the terminated workflow ends the row too.
	t.Run("a withdraw of a request ended outside Vigil ends its row", func(t *testing.T) {
		svc, st := lt.service(t)
		requester, _ := st.Agent(ctx, "ag_req")
		first, err := svc.Open(ctx, requester, reinstall("srv-1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := lt.tc.TerminateWorkflow(ctx, workflows.WorkflowID(first.RequestID), "", "operator at the Temporal CLI"); err != nil {
			t.Fatal(err)
		}
		_, err = svc.Cancel(ctx, first.RequestID, workflows.CancelInput{By: domain.CancelByRequester, ActorID: "ag_req", Reason: "not needed"})
		if r, ok := AsRefusal(err); !ok || r.Code != CodeEnded || !strings.Contains(r.Message, "outside Vigil") {
			t.Fatalf("withdraw of a terminated request = %v, want request_ended saying it ended outside Vigil", err)
		}
		row, err := st.Request(ctx, first.RequestID)
		if err != nil || row.Status != domain.StatusFailed {
			t.Fatalf("row after the withdraw = %+v (%v), want failed", row, err)
		}
		if n := count(t, st, "SELECT count(*) FROM audit_events WHERE request_id = $1 AND event = $2", first.RequestID, store.EventEndedOutside); n != 1 {
			t.Fatalf("%d %s events, want 1", n, store.EventEndedOutside)
		}
	})

	t.Run("other targets are independent", func(t *testing.T) {
		svc, st := lt.service(t)
		requester, _ := st.Agent(ctx, "ag_req")
		for _, p := range []OpenParams{
			reinstall("srv-1"),
			reinstall("srv-2"),
			{Action: domain.ActionResendCredentials, CustomerID: "C-1", ServerID: "srv-1", Reason: "lost them", PIN: "123456"},
			{Action: domain.ActionAddContactEmail, CustomerID: "C-1", Email: "one@example.test", Reason: "new admin", PIN: "123456"},
			{Action: domain.ActionAddContactEmail, CustomerID: "C-1", Email: "two@example.test", Reason: "new admin", PIN: "123456"},
			{Action: domain.ActionChangeAccountEmail, CustomerID: "C-1", Email: "one@example.test", Reason: "moving", PIN: "123456"},
			{Action: domain.ActionDisable2FA, CustomerID: "C-1", Reason: "lost phone", PIN: "123456"},
		} {
			if _, err := svc.Open(ctx, requester, p); err != nil {
				t.Fatalf("open %s: %v", p, err)
			}
		}
		if n := count(t, st, "SELECT count(*) FROM requests WHERE ended_at IS NULL"); n != 7 {
			t.Fatalf("%d open rows, want 7", n)
		}
		_, err := svc.Open(ctx, requester, OpenParams{Action: domain.ActionAddContactEmail, CustomerID: "C-1",
			Email: "TWO@example.TEST", Reason: "new admin", PIN: "123456"})
		if r, ok := AsRefusal(err); !ok || r.Code != CodeDuplicate {
			t.Fatalf("the same address in other case = %v, want duplicate_request", err)
		}
	})
}

// TestOpenWritesNothingWhenRefused: a start Temporal could not take, and the
// opens that would change nothing on the account, leave no row, no audit
// event and (as Temporal is unreachable) no workflow.
func TestOpenWritesNothingWhenRefused(t *testing.T) {
	svc, st := unreachableService(t)
	seedAccount(t, st)
	ctx := context.Background()
	requester, err := st.Agent(ctx, "ag_req")
	if err != nil {
		t.Fatal(err)
	}
	email := func(a domain.Action, addr string) OpenParams {
		return OpenParams{Action: a, CustomerID: "C-1", Email: addr, Reason: "customer asked", PIN: "123456"}
	}
	tests := []struct {
		name string
		p    OpenParams
		code Code
	}{
		{"Temporal unreachable", reinstall("srv-1"), CodeUnavailable},
		{"add the primary", email(domain.ActionAddContactEmail, "Ann@Example.test"), CodeAlreadyOnAccount},
		{"add the primary, other case", email(domain.ActionAddContactEmail, "ann@example.TEST"), CodeAlreadyOnAccount},
		{"add a contact", email(domain.ActionAddContactEmail, "bob@example.test"), CodeAlreadyOnAccount},
		{"add a contact, other case", email(domain.ActionAddContactEmail, "BOB@Example.Test"), CodeAlreadyOnAccount},
		{"change to the primary", email(domain.ActionChangeAccountEmail, "Ann@Example.test"), CodeEmailUnchanged},
		{"change to the primary, other case", email(domain.ActionChangeAccountEmail, "ANN@EXAMPLE.TEST"), CodeEmailUnchanged},
		// These pass the account checks: only Temporal stops them.
		{"change to a contact", email(domain.ActionChangeAccountEmail, "bob@example.test"), CodeUnavailable},
		{"add a look-alike of the primary's local part", email(domain.ActionAddContactEmail, "ann@example.test.evil.test"), CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			_, err := svc.Open(cctx, requester, tt.p)
			r, ok := AsRefusal(err)
			if !ok || r.Code != tt.code {
				t.Fatalf("Open = %v, want a %s refusal", err, tt.code)
			}
			// The message shows the address as normalised (the domain in
			// lower case), so compare without regard to case.
			if tt.code != CodeUnavailable && !strings.Contains(strings.ToLower(r.Message), strings.ToLower(tt.p.Email)) {
				t.Fatalf("message %q does not name %s", r.Message, tt.p.Email)
			}
			if n := count(t, st, "SELECT count(*) FROM requests") + count(t, st, "SELECT count(*) FROM audit_events"); n != 0 {
				t.Fatalf("a refused open left %d rows", n)
			}
		})
	}
}
