package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/workflows"
)

// TestListEntryMatchesStatus: a cooling request approved by break-glass and
// notified to two addresses, cancelled by a senior: GET /requests (from the
// row) and GET /requests/{id} (from the workflow) render the same JSON, down
// to the nanoseconds Postgres does not keep. Reason is only in the listing.
func TestListEntryMatchesStatus(t *testing.T) {
	at := time.Date(2026, 12, 8, 10, 0, 0, 123456789, time.UTC)
	stored := at.Round(time.Microsecond)
	ends, deadline, pin := stored.Add(24*time.Hour), stored.Add(3*time.Hour), stored.Add(-time.Minute)
	row := store.Request{ID: "req_1", Action: domain.ActionReinstallVPS, CustomerID: "C-1", RequesterID: "ag_a", Reason: "asked by phone",
		Status: domain.StatusCancelled, Decision: "approve", ApproverID: "ag_b", DecidedAt: &stored, NotifiedAt: &stored, CoolingEndsAt: &ends,
		CreatedAt: stored.Add(-time.Hour), OpenedAt: stored.Add(-time.Hour), PINVerifiedAt: &pin, PINFailures: 1, ApprovalDeadline: &deadline,
		Recipients: 2, BreakGlass: true, SecondApproverID: "ag_c", CancelledBy: "senior", CancelActorID: "ag_d", CancelReason: "fraud",
		CancelledAt: &ends, EndedAt: &ends}
	st := workflows.Status{RequestID: "req_1", Action: domain.ActionReinstallVPS, CustomerID: "C-1", RequesterID: "ag_a",
		Status: domain.StatusCancelled, NotifiedAt: at, Recipients: 2, CoolingEndsAt: at.Add(24 * time.Hour), OpenedAt: at.Add(-time.Hour),
		PINVerifiedAt: at.Add(-time.Minute), PINFailures: 1, ApprovalDeadline: at.Add(3 * time.Hour),
		Decision:     &workflows.Decision{Decision: domain.DecisionApprove, ApproverID: "ag_b", At: at, BreakGlass: true, SecondApproverID: "ag_c"},
		Cancellation: &workflows.Cancellation{By: domain.CancelBySenior, ActorID: "ag_d", Reason: "fraud", At: at.Add(24 * time.Hour)},
		EndedAt:      at.Add(24 * time.Hour)}
	list, status := RequestFromRow(row), RequestFromStatus(st)
	if list.Reason != "asked by phone" {
		t.Fatalf("listing reason %q", list.Reason)
	}
	list.Reason = ""
	l, _ := json.Marshal(list)
	s, _ := json.Marshal(status)
	if string(l) != string(s) {
		t.Fatalf("list and status disagree:\nlist   %s\nstatus %s", l, s)
	}
	if list.Recipients != 2 || !list.Decision.BreakGlass || list.Cancellation.ActorID != "ag_d" {
		t.Fatalf("listing lost fields: %s", l)
	}
}
