package activities_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
)

// tellWatch is the real Slack client with a look at the audit trail at the
// moment a direct message is handed to it; fail makes that message fail
// (after the look) as a Slack outage that outlasted the client's retries.
type tellWatch struct {
	activities.Approvals
	before func()
	fail   bool
}

func (w *tellWatch) Tell(ctx context.Context, user, text string) error {
	w.before()
	if w.fail {
		return errors.New("slack is down")
	}
	return w.Approvals.Tell(ctx, user, text)
}

// TestRequesterToldAfterTheAuditRow: the direct message to the requester is
// sent only once its audit row is written, so no message exists that the
// trail does not name; a message that fails is audited as failed and not
// sent again by a retry (the card says it all, and Slack has no idempotency
// key to make a second send safe).
func TestRequesterToldAfterTheAuditRow(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(map[bool]string{false: "sent", true: "failed"}[fail], func(t *testing.T) {
			ctx := context.Background()
			w := newLiveWorld(t)
			sl := w.withSlack(t)
			const id = "req_told"
			if err := w.st.CreateRequest(ctx, store.Request{ID: id, WorkflowID: "vigil-request-" + id, Action: domain.ActionDisable2FA,
				CustomerID: victim, RequesterID: requester, Reason: "customer asked in chat", Status: domain.StatusAwaitingApproval}); err != nil {
				t.Fatal(err)
			}
			if _, err := activityEnv(&world{acts: w.acts}, nil, nil).ExecuteActivity(w.acts.PostApproval, activities.ApprovalInput{
				RequestID: id, ExpiresAt: time.Now().Add(time.Hour), CoolingPeriod: time.Hour}); err != nil {
				t.Fatal(err)
			}
			var rowsAtSend []int
			watch := &tellWatch{Approvals: w.acts.Approvals, fail: fail, before: func() {
				n := 0
				for _, ev := range w.events(t, id) {
					if ev.Event == "slack.requester_told" && ev.Details["event"] == string(domain.StatusRejected) {
						n++
					}
				}
				rowsAtSend = append(rowsAtSend, n)
			}}
			w.acts.Approvals = watch
			update := activities.MessageUpdate{RequestID: id, Event: string(domain.StatusRejected), ActorID: requester, Reason: "no", At: time.Now()}
			for range 2 { // the second is a retry of the activity
				if _, err := activityEnv(&world{acts: w.acts}, nil, nil).ExecuteActivity(w.acts.UpdateApprovalMessage, update); err != nil {
					t.Fatalf("UpdateApprovalMessage: %v", err)
				}
			}
			if len(rowsAtSend) != 1 || rowsAtSend[0] != 1 {
				t.Fatalf("told rows at each send = %v, want one send, with its row already written", rowsAtSend)
			}
			var dms, failed int
			for _, m := range sl.Messages() {
				if m.Channel == "U0RITA" || strings.HasPrefix(m.Channel, "D") {
					dms++
				}
			}
			for _, ev := range w.events(t, id) {
				if ev.Event == "slack.requester_tell_failed" {
					failed++
				}
			}
			if want := map[bool]int{false: 1, true: 0}[fail]; dms != want {
				t.Fatalf("%d direct messages, want %d", dms, want)
			}
			if want := map[bool]int{false: 0, true: 1}[fail]; failed != want {
				t.Fatalf("%d slack.requester_tell_failed events, want %d", failed, want)
			}
		})
	}
}
