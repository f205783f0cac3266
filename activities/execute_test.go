package activities_test

import (
	"context"
	"strings"
	"testing"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/store"
)

// TestExecuteRechecksTargets: what a request acts on is read again just
// before the control panel is called. A server that moved to another
// customer while the request was open, or credentials that would go to a
// primary address the notice never reached, end the request for good:
// no panel call, no mail, an execution.refused event naming the reason.
// Otherwise the action runs as before.
func TestExecuteRechecksTargets(t *testing.T) {
	tests := []struct {
		name   string
		action domain.Action
		// change is what happened while the request was cooling.
		change func(t *testing.T, w *liveWorld)
		// refused is the reason, "" when the action must run.
		refused string
	}{
		{"nothing changed: credentials go to the notified primary", domain.ActionResendCredentials, nil, ""},
		{"nothing changed: reinstall", domain.ActionReinstallVPS, nil, ""},
		{"server moved to another customer: reinstall", domain.ActionReinstallVPS, moveServer, activities.RefusedServerMoved},
		{"server moved to another customer: credentials", domain.ActionResendCredentials, moveServer, activities.RefusedServerMoved},
		{"primary changed by a re-import: credentials", domain.ActionResendCredentials, reimportPrimary, activities.RefusedPrimaryNotNotified},
		{"primary changed by a re-import: reinstall still runs", domain.ActionReinstallVPS, reimportPrimary, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			w := newLiveWorld(t)
			const id = "req_exec"
			w.open(t, id, tt.action, "srv-1", domain.StatusExecuting)
			// The notice went to the addresses established then.
			for _, rcpt := range []string{victimPrimary, victimOps} {
				if err := w.st.AuditOnce(ctx, store.AuditEvent{RequestID: id, Actor: "system", Event: "notice.accepted",
					Details: map[string]any{"recipient": rcpt}}, "notice/"+rcpt); err != nil {
					t.Fatal(err)
				}
			}
			if tt.change != nil {
				tt.change(t, w)
			}
			_, err := activityEnv(&world{acts: w.acts}, nil, nil).ExecuteActivity(w.acts.Execute, activities.ExecuteInput{
				RequestID: id, Action: tt.action, CustomerID: victim, ServerID: "srv-1"})
			calls, cerr := w.panel.Calls(ctx)
			if cerr != nil {
				t.Fatal(cerr)
			}
			var refusals []store.AuditEvent
			for _, ev := range w.events(t, id) {
				if ev.Event == "execution.refused" {
					refusals = append(refusals, ev)
				}
			}
			var credentials int
			for _, m := range w.catcher.Messages() {
				if strings.Contains(string(m.Raw), "X-Vigil-Kind: credentials") {
					credentials++
				}
			}
			if tt.refused == "" {
				if err != nil || len(calls) != 1 || len(refusals) != 0 {
					t.Fatalf("Execute = %v with %d panel calls and refusals %+v; want it carried out once", err, len(calls), refusals)
				}
				if want := map[bool]int{true: 1, false: 0}[tt.action == domain.ActionResendCredentials]; credentials != want {
					t.Fatalf("%d credential mails, want %d", credentials, want)
				}
				return
			}
			app := appError(t, err)
			if !app.NonRetryable() || app.Type() != activities.ErrTypeTargetChanged {
				t.Fatalf("Execute = %q type %q non-retryable %v, want a non-retryable TargetChanged (the panel was never called)", app.Error(), app.Type(), app.NonRetryable())
			}
			if !strings.Contains(app.Error(), "not") || strings.Contains(app.Error(), "@") {
				t.Fatalf("message %q: want it to say what was not done, and no address", app.Error())
			}
			if len(calls) != 0 || credentials != 0 {
				t.Fatalf("refused, yet %d panel calls and %d credential mails", len(calls), credentials)
			}
			if len(refusals) != 1 || refusals[0].Details["reason"] != tt.refused || refusals[0].Details["action"] != string(tt.action) {
				t.Fatalf("execution.refused events = %+v, want one with reason %s", refusals, tt.refused)
			}
			// A retry (the workflow gives up on a permanent error, but an
			// operator may reset it) refuses again and audits once.
			if _, err := activityEnv(&world{acts: w.acts}, nil, nil).ExecuteActivity(w.acts.Execute, activities.ExecuteInput{
				RequestID: id, Action: tt.action, CustomerID: victim, ServerID: "srv-1"}); err == nil {
				t.Fatal("a second attempt went through")
			}
			if n := len(w.events(t, id)); n != 3 {
				t.Fatalf("trail after two refused attempts has %d events, want 3 (two notices, one refusal)", n)
			}
			if calls, _ := w.panel.Calls(ctx); len(calls) != 0 {
				t.Fatalf("the second attempt called the panel: %+v", calls)
			}
		})
	}
}

// moveServer moves srv-1 to another customer behind the import's back, as
// an import racing the request's open could (the import itself refuses to
// move a server with an open request).
func moveServer(t *testing.T, w *liveWorld) {
	t.Helper()
	ctx := context.Background()
	hash, err := pinhash.Hash("11223344", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.st.UpsertCustomer(ctx, store.CustomerImport{ID: "C-666", PrimaryEmail: "x@attacker.test", PINHash: hash}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.DB().ExecContext(ctx, `UPDATE customer_servers SET customer_id = 'C-666' WHERE server_id = 'srv-1'`); err != nil {
		t.Fatal(err)
	}
}

// reimportPrimary is an admin's re-import that makes their own address the
// customer's primary.
func reimportPrimary(t *testing.T, w *liveWorld) {
	t.Helper()
	hash, err := pinhash.Hash("11223344", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.st.UpsertCustomer(context.Background(), store.CustomerImport{ID: victim, Name: "Dana Whitfield",
		PrimaryEmail: "inbox@attacker.test", PINHash: hash, Servers: []string{"srv-1"}}); err != nil {
		t.Fatal(err)
	}
}

// duringPanel is the real panel client with something else happening while
// its call is in flight: the window between the execution's checks and the
// mail that follows the call.
type duringPanel struct {
	inner  panel.Executor
	during func()
}

func (d duringPanel) Execute(ctx context.Context, j panel.Job) (panel.Result, error) {
	d.during()
	return d.inner.Execute(ctx, j)
}

// TestCredentialsGoToTheCheckedAddress: a re-import that changes the
// primary while the panel call is in flight (after the check that the
// primary got the notice) must not redirect the credentials. They go to the
// address that was checked, the one the customer was told about, and the
// audit trail names it.
func TestCredentialsGoToTheCheckedAddress(t *testing.T) {
	ctx := context.Background()
	w := newLiveWorld(t)
	const id = "req_race"
	w.open(t, id, domain.ActionResendCredentials, "srv-1", domain.StatusExecuting)
	for _, rcpt := range []string{victimPrimary, victimOps} {
		if err := w.st.AuditOnce(ctx, store.AuditEvent{RequestID: id, Actor: "system", Event: "notice.accepted",
			Details: map[string]any{"recipient": rcpt}}, "notice/"+rcpt); err != nil {
			t.Fatal(err)
		}
	}
	w.acts.Executor = duringPanel{inner: w.acts.Executor, during: func() { reimportPrimary(t, w) }}
	if _, err := activityEnv(&world{acts: w.acts}, nil, nil).ExecuteActivity(w.acts.Execute, activities.ExecuteInput{
		RequestID: id, Action: domain.ActionResendCredentials, CustomerID: victim, ServerID: "srv-1"}); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if cust, err := w.st.Customer(ctx, victim); err != nil || cust.PrimaryEmail != "inbox@attacker.test" {
		t.Fatalf("the import during the panel call did not happen: %+v %v", cust, err)
	}
	var to [][]string
	for _, m := range w.catcher.Messages() {
		if strings.Contains(string(m.Raw), "X-Vigil-Kind: credentials") {
			to = append(to, m.To)
		}
	}
	if len(to) != 1 || len(to[0]) != 1 || to[0][0] != victimPrimary {
		t.Fatalf("credential mails went to %v, want one to %s (the checked, notified primary)", to, victimPrimary)
	}
	for _, ev := range w.events(t, id) {
		if ev.Event == "credentials.mailed" && ev.Details["recipient"] != victimPrimary {
			t.Fatalf("credentials.mailed names %v, want %s", ev.Details["recipient"], victimPrimary)
		}
	}
}
