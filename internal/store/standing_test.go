package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// TestRequestsDependingOn lists, for an agent who loses standing, the open
// requests it approved (and, when disabled, opened) that have not started
// executing; ended, executing and rejected ones are left alone.
func TestRequestsDependingOn(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s) // req_1: opened by alice, no decision
	approve := func(id string, status domain.Status, decision domain.Decision) {
		t.Helper()
		if err := s.CreateRequest(ctx, Request{ID: id, WorkflowID: "wf-" + id, Action: domain.ActionAddContactEmail,
			CustomerID: f.customer, RequesterID: f.requester, Email: id + "@contact.test", Reason: "customer asked", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		at := t0.Add(time.Minute)
		if err := s.UpdateRequest(ctx, id, RequestUpdate{Status: status, ApproverID: ptr(f.senior), Decision: ptr(string(decision)),
			DecisionReason: ptr("ok"), DecidedAt: &at}, at); err != nil {
			t.Fatal(err)
		}
	}
	approve("req_cooling", domain.StatusCooling, domain.DecisionApprove)
	approve("req_notifying", domain.StatusNotifying, domain.DecisionApprove)
	approve("req_executing", domain.StatusExecuting, domain.DecisionApprove)
	approve("req_rejected", domain.StatusRejected, domain.DecisionReject)
	approve("req_executed", domain.StatusExecuted, domain.DecisionApprove)

	cases := []struct {
		name   string
		agent  string
		opened bool
		want   []string
	}{
		{"the approver, demoted", f.senior, false, []string{"req_cooling", "req_notifying"}},
		{"the approver, disabled", f.senior, true, []string{"req_cooling", "req_notifying"}},
		{"the requester, disabled", f.requester, true, []string{"req_1", "req_cooling", "req_notifying"}},
		{"the requester, demoted", f.requester, false, nil},
		{"an agent nothing rests on", "nobody", true, nil},
	}
	for _, tc := range cases {
		got, err := s.RequestsDependingOn(ctx, tc.agent, tc.opened)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var ids []string
		for _, r := range got {
			ids = append(ids, r.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, ids, tc.want)
		}
	}
}
