package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

func TestRequestsByStatus(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	if got, err := s.RequestsByStatus(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty store: %+v, %v", got, err)
	}
	f := seed(t, s) // req_1, pin_check, created at t0
	// Distinct servers: one open request per customer, action and target.
	mk := func(id string, at time.Duration, status domain.Status) {
		t.Helper()
		if err := s.CreateRequest(ctx, Request{ID: id, WorkflowID: "wf-" + id, Action: domain.ActionReinstallVPS,
			CustomerID: f.customer, RequesterID: f.requester, ServerID: "srv_" + id, Reason: "r", CreatedAt: t0.Add(at)}); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateRequest(ctx, id, RequestUpdate{Status: status}, t0.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	mk("req_2", time.Hour, domain.StatusCooling)
	mk("req_3", 2*time.Hour, domain.StatusCooling)
	mk("req_4", 3*time.Hour, domain.StatusExecuted)
	got, err := s.RequestsByStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byStatus := map[domain.Status]StatusCount{}
	for _, c := range got {
		byStatus[c.Status] = c
	}
	if len(got) != 3 || byStatus[domain.StatusCooling].Count != 2 || byStatus[domain.StatusExecuted].Count != 1 ||
		byStatus[domain.StatusPINCheck].Count != 1 {
		t.Fatalf("counts %+v", got)
	}
	if c := byStatus[domain.StatusCooling]; !c.OldestSince.Equal(t0.Add(time.Hour)) {
		t.Fatalf("oldest cooling since %v, want %v (%s)", c.OldestSince, t0.Add(time.Hour), fmt.Sprint(got))
	}
}
