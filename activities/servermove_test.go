package activities_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/store"
)

// takeIdleServer is the attack: an import creates a customer whose
// addresses billing dates a year back, and lists the victim's idle server
// srv-1 as theirs. The PIN is the attacker's own.
func takeIdleServer(t *testing.T, w *liveWorld) {
	t.Helper()
	hash, err := pinhash.Hash("11223344", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-365 * 24 * time.Hour)
	res, err := w.st.ImportCustomer(context.Background(), store.CustomerImport{ID: "C-666", Name: "Mallory", PrimaryEmail: "inbox@attacker.test",
		PINHash: hash, Contacts: []store.Contact{{Email: "ops@attacker.test", AddedAt: long, VerifiedAt: &long}}, Servers: []string{"srv-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || len(res.MovedServers) != 1 {
		t.Fatalf("import = %+v, want a new customer that took srv-1", res)
	}
	// Billing's dates for a new customer stand: its primary is established.
	if to, err := w.st.EstablishedEmails(context.Background(), "C-666", time.Now(), 7*24*time.Hour); err != nil || len(to) == 0 {
		t.Fatalf("the new customer's addresses: %v, %v; the attack needs them established", to, err)
	}
}

// TestRecentlyMovedServerNotifiesNobody: a request on a server that moved
// to its customer less than the ageing period ago treats that customer's
// addresses as new: the notice goes to nobody, so the request fails at the
// notice gate, and no credentials are mailed. Once the server has been
// theirs for the ageing period, the notice goes out as usual.
func TestRecentlyMovedServerNotifiesNobody(t *testing.T) {
	for _, action := range []domain.Action{domain.ActionResendCredentials, domain.ActionReinstallVPS} {
		t.Run(string(action), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			w := newLiveWorld(t)
			takeIdleServer(t, w)
			const id = "req_taken"
			if err := w.st.CreateRequest(ctx, store.Request{ID: id, WorkflowID: "vigil-request-" + id, Action: action,
				CustomerID: "C-666", RequesterID: requester, ServerID: "srv-1", Reason: "customer asked in chat", Status: domain.StatusNotifying}); err != nil {
				t.Fatal(err)
			}
			in := activities.NotifyInput{RequestID: id, Action: action, CustomerID: "C-666", RequesterID: requester, ServerID: "srv-1", CoolingPeriod: time.Hour}
			_, err := activityEnv(&world{acts: w.acts}, nil, nil).ExecuteActivity(w.acts.NotifyCustomer, in)
			if err == nil {
				t.Fatal("the notice went out for a server that moved minutes ago")
			}
			app := appError(t, err)
			if !app.NonRetryable() || !strings.Contains(app.Error(), "srv-1") || !strings.Contains(app.Error(), "moved") || strings.Contains(app.Error(), "@") {
				t.Fatalf("notice error %q (non-retryable %v): want a permanent one naming the move, no address", app.Error(), app.NonRetryable())
			}
			if n := len(w.catcher.Messages()); n != 0 {
				t.Fatalf("%d messages sent", n)
			}
			// A week and a day later (the arrival moved back, as time would).
			if _, err := w.st.DB().ExecContext(ctx, `UPDATE customer_servers SET arrived_at = arrived_at - interval '8 days' WHERE server_id = 'srv-1'`); err != nil {
				t.Fatal(err)
			}
			res, err := activityEnv(&world{acts: w.acts}, nil, nil).ExecuteActivity(w.acts.NotifyCustomer, in)
			if err != nil {
				t.Fatalf("notice once the server aged: %v", err)
			}
			var got activities.NotifyResult
			if err := res.Get(&got); err != nil || got.Recipients != 2 {
				t.Fatalf("notice once the server aged: %+v %v, want both addresses", got, err)
			}
		})
	}
}

// TestApprovalCardShowsARecentServerMove: the senior who is asked to
// approve a request on a server that moved recently reads it on the card:
// from which customer, and when.
func TestApprovalCardShowsARecentServerMove(t *testing.T) {
	ctx := context.Background()
	w := newLiveWorld(t)
	sl := w.withSlack(t)
	takeIdleServer(t, w)
	for id, cust := range map[string]string{"req_taken": "C-666"} {
		if err := w.st.CreateRequest(ctx, store.Request{ID: id, WorkflowID: "vigil-request-" + id, Action: domain.ActionResendCredentials,
			CustomerID: cust, RequesterID: requester, ServerID: "srv-1", Reason: "customer asked in chat", Status: domain.StatusAwaitingApproval}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.st.CreateRequest(ctx, store.Request{ID: "req_plain", WorkflowID: "vigil-request-req_plain", Action: domain.ActionDisable2FA,
		CustomerID: victim, RequesterID: requester, Reason: "customer asked in chat", Status: domain.StatusAwaitingApproval}); err != nil {
		t.Fatal(err)
	}
	post := func(id string) string {
		t.Helper()
		if _, err := activityEnv(&world{acts: w.acts}, nil, nil).ExecuteActivity(w.acts.PostApproval, activities.ApprovalInput{
			RequestID: id, ExpiresAt: time.Now().Add(time.Hour), CoolingPeriod: time.Hour}); err != nil {
			t.Fatalf("PostApproval %s: %v", id, err)
		}
		msgs := sl.Messages()
		return string(msgs[len(msgs)-1].Blocks)
	}
	card := post("req_taken")
	for _, want := range []string{"srv-1", "moved to this customer from C-1042", "established"} {
		if !strings.Contains(card, want) {
			t.Errorf("card of a request on a moved server does not say %q:\n%s", want, card)
		}
	}
	if card := post("req_plain"); strings.Contains(card, "moved to this customer") {
		t.Errorf("card of a request on no moved server speaks of a move:\n%s", card)
	}
}

// TestNoticeShowsEachReaderOnlyTheirAddress: a notice about a new address
// lists the account's addresses, and each recipient reads their own in full
// and the others masked: one mailbox does not learn the account's others.
func TestNoticeShowsEachReaderOnlyTheirAddress(t *testing.T) {
	ctx := context.Background()
	w := newLiveWorld(t)
	const id = "req_add"
	if err := w.st.CreateRequest(ctx, store.Request{ID: id, WorkflowID: "vigil-request-" + id, Action: domain.ActionAddContactEmail,
		CustomerID: victim, RequesterID: requester, Email: "new@elsewhere.test", Reason: "customer asked in chat", Status: domain.StatusNotifying}); err != nil {
		t.Fatal(err)
	}
	if _, err := activityEnv(&world{acts: w.acts}, nil, nil).ExecuteActivity(w.acts.NotifyCustomer, activities.NotifyInput{RequestID: id,
		Action: domain.ActionAddContactEmail, CustomerID: victim, RequesterID: requester, Email: "new@elsewhere.test", CoolingPeriod: time.Hour}); err != nil {
		t.Fatal(err)
	}
	msgs := w.catcher.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d notices, want 2", len(msgs))
	}
	for _, m := range msgs {
		own := m.To[0]
		other := map[string]string{victimPrimary: victimOps, victimOps: victimPrimary}[own]
		body := strings.ReplaceAll(string(m.Raw), "=\r\n", "")
		if !strings.Contains(body, own+" (this one)") || strings.Contains(body, other) || !strings.Contains(body, other[:1]+"***@victim.test") {
			t.Errorf("notice to %s: want its own address in full and %s masked:\n%s", own, other, body)
		}
	}
}
