package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

func ptr[T any](v T) *T { return &v }

func TestCreateRequestIdempotent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	// seed created req_1; creating the same request again (the workflow's
	// Open activity after the API wrote the row, or its retry) is a no-op,
	// whatever the time and status it brings.
	again := Request{ID: f.request, WorkflowID: "wf-" + f.request, Action: domain.ActionReinstallVPS,
		CustomerID: f.customer, RequesterID: f.requester, ServerID: "srv_1", Reason: "customer asked",
		CreatedAt: t0.Add(time.Hour)}
	if err := s.CreateRequest(ctx, again); err != nil {
		t.Fatalf("second CreateRequest: %v", err)
	}
	// The same id with other contents is another request: refused, and the
	// stored one stays as it was.
	other := []struct {
		name   string
		change func(*Request)
	}{
		{"workflow id", func(r *Request) { r.WorkflowID = "wf-other" }},
		{"action", func(r *Request) { r.Action = domain.ActionResendCredentials }},
		{"customer", func(r *Request) { r.CustomerID = "cus_other" }},
		{"requester", func(r *Request) { r.RequesterID = f.senior }},
		{"server", func(r *Request) { r.ServerID = "srv_2" }},
		{"email", func(r *Request) { r.Email = "x@acme.test" }},
		{"reason", func(r *Request) { r.Reason = "different" }},
	}
	for _, tt := range other {
		r := again
		tt.change(&r)
		if err := s.CreateRequest(ctx, r); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), tt.name) {
			t.Errorf("CreateRequest with another %s = %v, want ErrConflict naming it", tt.name, err)
		}
	}
	r, err := s.Request(ctx, f.request)
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != domain.ActionReinstallVPS || r.Reason != "customer asked" || r.Status != domain.StatusPINCheck ||
		r.ServerID != "srv_1" || !r.CreatedAt.Equal(t0) || !r.UpdatedAt.Equal(t0) || r.EndedAt != nil || r.WorkflowID != "wf-req_1" {
		t.Fatalf("request after duplicate create = %+v", r)
	}
	if n := countRows(t, s, "SELECT count(*) FROM requests"); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}

	bad := []struct {
		name string
		r    Request
		is   error
	}{
		{"unknown customer", Request{ID: "r2", WorkflowID: "wf2", Action: domain.ActionDisable2FA, CustomerID: "nobody", RequesterID: f.requester, Reason: "x"}, ErrNotFound},
		{"unknown requester", Request{ID: "r2", WorkflowID: "wf2", Action: domain.ActionDisable2FA, CustomerID: f.customer, RequesterID: "nobody", Reason: "x"}, ErrNotFound},
		{"workflow id taken", Request{ID: "r2", WorkflowID: "wf-req_1", Action: domain.ActionDisable2FA, CustomerID: f.customer, RequesterID: f.requester, Reason: "x"}, ErrConflict},
		{"unknown action", Request{ID: "r2", WorkflowID: "wf2", Action: "format_disk", CustomerID: f.customer, RequesterID: f.requester, Reason: "x"}, nil},
		{"unknown status", Request{ID: "r2", WorkflowID: "wf2", Action: domain.ActionDisable2FA, Status: "pending", CustomerID: f.customer, RequesterID: f.requester, Reason: "x"}, nil},
		{"empty id", Request{WorkflowID: "wf2", Action: domain.ActionDisable2FA, CustomerID: f.customer, RequesterID: f.requester}, nil},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := s.CreateRequest(ctx, tt.r)
			if err == nil {
				t.Fatal("CreateRequest accepted bad input")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %v", err, tt.is)
			}
			if n := countRows(t, s, "SELECT count(*) FROM requests"); n != 1 {
				t.Fatalf("bad input left %d requests", n)
			}
		})
	}
	if _, err := s.Request(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Request(missing) = %v, want ErrNotFound", err)
	}
}

func TestUpdateRequest(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	t1, t2, t3 := t0.Add(time.Minute), t0.Add(2*time.Minute), t0.Add(48*time.Hour)

	if err := s.UpdateRequest(ctx, f.request, RequestUpdate{Status: domain.StatusAwaitingApproval,
		SlackChannel: ptr("C1"), SlackTS: ptr("1700000000.0001")}, t1); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateRequest(ctx, f.request, RequestUpdate{Status: domain.StatusCooling, ApproverID: ptr(f.senior),
		Decision: ptr(string(domain.DecisionApprove)), DecisionReason: ptr("ok"), DecidedAt: &t2,
		NotifiedAt: &t2, CoolingEndsAt: &t3}, t2); err != nil {
		t.Fatal(err)
	}
	r, err := s.Request(ctx, f.request)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != domain.StatusCooling || r.SlackChannel != "C1" || r.SlackTS != "1700000000.0001" || r.ApproverID != f.senior ||
		r.Decision != "approve" || r.DecisionReason != "ok" || !r.DecidedAt.Equal(t2) || !r.NotifiedAt.Equal(t2) ||
		!r.CoolingEndsAt.Equal(t3) || !r.UpdatedAt.Equal(t2) || r.EndedAt != nil {
		t.Fatalf("after updates = %+v", r)
	}

	// Moving to a final status sets ended_at.
	if err := s.UpdateRequest(ctx, f.request, RequestUpdate{Status: domain.StatusCancelled,
		CancelledBy: ptr(string(domain.CancelByCustomer)), CancelReason: ptr("not me")}, t3); err != nil {
		t.Fatal(err)
	}
	r, err = s.Request(ctx, f.request)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != domain.StatusCancelled || r.EndedAt == nil || !r.EndedAt.Equal(t3) || r.CancelledBy != "customer" || r.CancelReason != "not me" {
		t.Fatalf("after cancel = %+v", r)
	}

	// A final request never changes again.
	tests := []struct {
		name    string
		u       RequestUpdate
		wantErr error
	}{
		{"same final status is a no-op", RequestUpdate{Status: domain.StatusCancelled, CancelReason: ptr("retry")}, nil},
		{"no status is a no-op", RequestUpdate{OutcomeDetail: ptr("late")}, nil},
		{"other final status refused", RequestUpdate{Status: domain.StatusExecuted, OutcomeDetail: ptr("ran")}, ErrFinal},
		{"back to cooling refused", RequestUpdate{Status: domain.StatusCooling}, ErrFinal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.UpdateRequest(ctx, f.request, tt.u, t3.Add(time.Hour))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("UpdateRequest = %v, want %v", err, tt.wantErr)
			}
			after, err := s.Request(ctx, f.request)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", r) {
				t.Fatalf("final request changed:\n got %+v\nwant %+v", after, r)
			}
		})
	}

	if err := s.UpdateRequest(ctx, "nope", RequestUpdate{Status: domain.StatusCooling}, t1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing request: %v, want ErrNotFound", err)
	}
	if err := s.UpdateRequest(ctx, f.request, RequestUpdate{Status: "bogus"}, t1); err == nil || errors.Is(err, ErrFinal) {
		t.Fatalf("unknown status: %v, want a validation error", err)
	}
}

func TestListRequests(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s) // req_1 by alice for cus_1 at t0, open
	if err := s.CreateAgent(ctx, Agent{ID: "zoe", Name: "Zoe", Role: domain.RoleAgent}, nil); err != nil {
		t.Fatal(err)
	}
	hash := "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
	if err := s.UpsertCustomer(ctx, CustomerImport{ID: "cus_2", PrimaryEmail: "b@b.test", PINHash: hash}); err != nil {
		t.Fatal(err)
	}
	// Each on its own server: one open request per customer, action and target.
	mk := func(id, requester, customer string, at time.Duration, status domain.Status) {
		t.Helper()
		if err := s.CreateRequest(ctx, Request{ID: id, WorkflowID: "wf-" + id, Action: domain.ActionReinstallVPS,
			CustomerID: customer, RequesterID: requester, ServerID: "srv_" + id, Reason: "r", CreatedAt: t0.Add(at)}); err != nil {
			t.Fatal(err)
		}
		if status != "" {
			if err := s.UpdateRequest(ctx, id, RequestUpdate{Status: status}, t0.Add(at+time.Second)); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("req_2", f.requester, "cus_2", 1*time.Hour, domain.StatusExecuted)
	mk("req_3", "zoe", f.customer, 2*time.Hour, domain.StatusCooling)
	mk("req_4", "zoe", "cus_2", 3*time.Hour, domain.StatusRejected)
	mk("req_5", f.requester, f.customer, 4*time.Hour, domain.StatusAwaitingApproval)

	tests := []struct {
		name string
		f    ListFilter
		want []string
	}{
		{"all newest first", ListFilter{}, []string{"req_5", "req_4", "req_3", "req_2", "req_1"}},
		{"by requester", ListFilter{RequesterID: "zoe"}, []string{"req_4", "req_3"}},
		{"by customer", ListFilter{CustomerID: f.customer}, []string{"req_5", "req_3", "req_1"}},
		{"open only", ListFilter{OpenOnly: true}, []string{"req_5", "req_3", "req_1"}},
		{"requester and customer and open", ListFilter{RequesterID: f.requester, CustomerID: "cus_2", OpenOnly: true}, nil},
		{"limit", ListFilter{Limit: 2}, []string{"req_5", "req_4"}},
		{"limit above max is clamped", ListFilter{Limit: 100000}, []string{"req_5", "req_4", "req_3", "req_2", "req_1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListRequests(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.want) {
				t.Fatalf("ListRequests(%+v) = %v, want %v", tt.f, ids, tt.want)
			}
		})
	}
}

func TestListRequestsLimits(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	// 600 rows in one statement, to check the default and the maximum; each
	// on its own server, as only one may be open per target.
	if _, err := s.DB().Exec(`INSERT INTO requests (id, workflow_id, action, customer_id, requester_id, server_id, reason, status, created_at)
		SELECT 'bulk_' || g, 'wf-bulk_' || g, 'reinstall_vps', $1, $2, 'srv_bulk_' || g, 'r', 'pin_check', $3::timestamptz + g * interval '1 second'
		FROM generate_series(1, 600) g`, f.customer, f.requester, t0); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ limit, want int }{{0, 50}, {-3, 50}, {10, 10}, {500, 500}, {501, 500}} {
		got, err := s.ListRequests(ctx, ListFilter{Limit: tt.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tt.want {
			t.Errorf("Limit %d: %d rows, want %d", tt.limit, len(got), tt.want)
		}
		if len(got) > 0 && got[0].ID != "bulk_600" {
			t.Errorf("Limit %d: first row %s, want the newest bulk_600", tt.limit, got[0].ID)
		}
	}
}

// TestMoveRequestIsOneTransaction: the status and its audit event are
// written together or not at all, and a retried move writes neither twice.
func TestMoveRequestIsOneTransaction(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	move := func(actor string) error {
		return s.MoveRequest(ctx, f.request, RequestUpdate{Status: domain.StatusAwaitingApproval}, t0.Add(time.Minute),
			AuditEvent{RequestID: f.request, Actor: actor, Event: "gate.approval.waiting"}, "gate.approval.waiting/awaiting_approval")
	}
	// An event the audit table refuses (no actor) rolls the status back.
	if err := move(""); err == nil {
		t.Fatal("move with an invalid audit event succeeded")
	}
	if r, err := s.Request(ctx, f.request); err != nil || r.Status == domain.StatusAwaitingApproval {
		t.Fatalf("status after a refused move = %v (%v), want unchanged", r.Status, err)
	}
	for range 2 {
		if err := move("system"); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Request(ctx, f.request)
	if err != nil || r.Status != domain.StatusAwaitingApproval {
		t.Fatalf("status after move = %v (%v)", r.Status, err)
	}
	events, err := s.AuditTrail(ctx, f.request)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Event == "gate.approval.waiting" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d gate.approval.waiting events after a retried move, want 1", n)
	}
	// An event for another request is refused outright.
	err = s.MoveRequest(ctx, f.request, RequestUpdate{}, time.Time{}, AuditEvent{RequestID: "req_other", Actor: "system", Event: "x"}, "x")
	if err == nil {
		t.Fatal("move with another request's event succeeded")
	}
}

// TestUpdateRequestStatusFields: the fields a status read shows besides
// are kept as written, left alone when an update omits them, the workflow's
// opening time is kept once set, and the workflow's end time is the one
// stored on a final move (not the update's).
func TestUpdateRequestStatusFields(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	opened, pinAt, deadline := t0.Add(-time.Second), t0.Add(time.Minute), t0.Add(3*time.Hour)
	ended, recorded := t0.Add(2*time.Hour), t0.Add(2*time.Hour+time.Second)
	two, one, yes := 2, 1, true
	if err := s.UpdateRequest(ctx, f.request, RequestUpdate{Status: domain.StatusAwaitingApproval, OpenedAt: &opened,
		PINVerifiedAt: &pinAt, PINFailures: &one, ApprovalDeadline: &deadline}, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	later := opened.Add(time.Hour)
	if err := s.UpdateRequest(ctx, f.request, RequestUpdate{Status: domain.StatusCooling, OpenedAt: &later,
		Recipients: &two, BreakGlass: &yes, SecondApproverID: ptr(f.senior)}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateRequest(ctx, f.request, RequestUpdate{Status: domain.StatusCancelled, EndedAt: &ended, CancelledAt: &ended,
		CancelledBy: ptr(string(domain.CancelBySenior)), CancelActorID: ptr(f.senior), CancelReason: ptr("fraud")}, recorded); err != nil {
		t.Fatal(err)
	}
	r, err := s.Request(ctx, f.request)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OpenedAt.Equal(opened) || !r.PINVerifiedAt.Equal(pinAt) || r.PINFailures != 1 || !r.ApprovalDeadline.Equal(deadline) ||
		r.Recipients != 2 || !r.BreakGlass || r.SecondApproverID != f.senior || r.CancelActorID != f.senior ||
		!r.CancelledAt.Equal(ended) || r.EndedAt == nil || !r.EndedAt.Equal(ended) || r.ExecutedAt != nil || r.Reference != "" {
		t.Fatalf("after updates = %+v", r)
	}
}
