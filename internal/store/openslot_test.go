package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/testpg"
)

// TestOneOpenRequestPerTarget walks every status domain knows: a request in
// a status that is not final holds its customer's slot for that action and
// target, a final one frees it. A final status added to domain later is
// covered without touching the index, since the index reads ended_at.
func TestOneOpenRequestPerTarget(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s) // req_1: reinstall_vps on srv_1, pin_check
	for i, st := range domain.Statuses() {
		t.Run(string(st), func(t *testing.T) {
			first := Request{ID: fmt.Sprintf("req_a%d", i), WorkflowID: fmt.Sprintf("wf-a%d", i), Action: domain.ActionResendCredentials,
				CustomerID: f.customer, RequesterID: f.requester, ServerID: "srv_" + string(st), Reason: "r"}
			if err := s.CreateRequest(ctx, first); err != nil {
				t.Fatal(err)
			}
			if st != domain.StatusPINCheck {
				if err := s.UpdateRequest(ctx, first.ID, RequestUpdate{Status: st}, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
			second := first
			second.ID, second.WorkflowID = first.ID+"_again", first.WorkflowID+"-again"
			err := s.CreateRequest(ctx, second)
			if st.Final() {
				if err != nil {
					t.Fatalf("after a request ended %s, a new one = %v, want accepted", st, err)
				}
				return
			}
			var dup *DuplicateOpenError
			if !errors.As(err, &dup) || !errors.Is(err, ErrDuplicateOpen) || !errors.Is(err, ErrConflict) {
				t.Fatalf("second open while the first is %s = %v, want a *DuplicateOpenError", st, err)
			}
			if dup.ID != first.ID || dup.Status != st {
				t.Fatalf("duplicate names %s (%s), want %s (%s)", dup.ID, dup.Status, first.ID, st)
			}
			if !strings.Contains(err.Error(), first.ID) {
				t.Fatalf("error %q does not name %s", err, first.ID)
			}
			if n := countRows(t, s, "SELECT count(*) FROM requests WHERE id = $1", second.ID); n != 0 {
				t.Fatalf("the refused request left %d rows", n)
			}
		})
	}
}

// TestOpenSlotTargets: what counts as the same slot.
func TestOpenSlotTargets(t *testing.T) {
	t.Parallel()
	hash := "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
	type req struct {
		action          domain.Action
		customer        string
		server, email   string
		requesterSenior bool
	}
	tests := []struct {
		name          string
		first, second req
		same          bool
	}{
		{"same server", req{action: domain.ActionReinstallVPS, server: "srv_a"}, req{action: domain.ActionReinstallVPS, server: "srv_a"}, true},
		{"same server, another requester", req{action: domain.ActionReinstallVPS, server: "srv_a"}, req{action: domain.ActionReinstallVPS, server: "srv_a", requesterSenior: true}, true},
		{"another server", req{action: domain.ActionReinstallVPS, server: "srv_a"}, req{action: domain.ActionReinstallVPS, server: "srv_b"}, false},
		{"same server, another action", req{action: domain.ActionReinstallVPS, server: "srv_a"}, req{action: domain.ActionResendCredentials, server: "srv_a"}, false},
		{"same address", req{action: domain.ActionAddContactEmail, email: "cto@example.com"}, req{action: domain.ActionAddContactEmail, email: "cto@example.com"}, true},
		{"same address, other case", req{action: domain.ActionAddContactEmail, email: "cto@example.com"}, req{action: domain.ActionAddContactEmail, email: "CTO@Example.COM"}, true},
		{"another address", req{action: domain.ActionAddContactEmail, email: "cto@example.com"}, req{action: domain.ActionAddContactEmail, email: "cfo@example.com"}, false},
		{"same address, another action", req{action: domain.ActionAddContactEmail, email: "cto@example.com"}, req{action: domain.ActionChangeAccountEmail, email: "cto@example.com"}, false},
		{"no target", req{action: domain.ActionDisable2FA}, req{action: domain.ActionDisable2FA}, true},
		{"no target, another customer", req{action: domain.ActionDisable2FA}, req{action: domain.ActionDisable2FA, customer: "cus_2"}, false},
		// A server moved to another customer keeps one open slot (0008).
		{"same server, another customer", req{action: domain.ActionReinstallVPS, server: "srv_a"}, req{action: domain.ActionReinstallVPS, server: "srv_a", customer: "cus_2"}, true},
		{"same server, another customer and action", req{action: domain.ActionReinstallVPS, server: "srv_a"}, req{action: domain.ActionResendCredentials, server: "srv_a", customer: "cus_2"}, false},
		{"same address, another customer", req{action: domain.ActionAddContactEmail, email: "cto@example.com"}, req{action: domain.ActionAddContactEmail, email: "cto@example.com", customer: "cus_2"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			ctx := context.Background()
			f := seed(t, s)
			if err := s.UpsertCustomer(ctx, CustomerImport{ID: "cus_2", PrimaryEmail: "b@b.test", PINHash: hash}); err != nil {
				t.Fatal(err)
			}
			mk := func(id string, r req) Request {
				cust, requester := f.customer, f.requester
				if r.customer != "" {
					cust = r.customer
				}
				if r.requesterSenior {
					requester = f.senior
				}
				return Request{ID: id, WorkflowID: "wf-" + id, Action: r.action, CustomerID: cust,
					RequesterID: requester, ServerID: r.server, Email: r.email, Reason: "r"}
			}
			if err := s.CreateRequest(ctx, mk("req_first", tt.first)); err != nil {
				t.Fatal(err)
			}
			err := s.CreateRequest(ctx, mk("req_second", tt.second))
			var dup *DuplicateOpenError
			// A holder of another customer is not named to the caller.
			otherCustomer := tt.same && tt.second.customer != tt.first.customer
			switch {
			case otherCustomer && (!errors.As(err, &dup) || !dup.OtherCustomer || dup.ID != "" || strings.Contains(err.Error(), "req_first")):
				t.Fatalf("second = %v, want a duplicate of another customer's request, not named", err)
			case tt.same && !otherCustomer && (!errors.As(err, &dup) || dup.ID != "req_first"):
				t.Fatalf("second = %v, want a duplicate of req_first", err)
			case !tt.same && err != nil:
				t.Fatalf("second = %v, want accepted (another slot)", err)
			}
		})
	}
}

// TestOpenRequest: the row and the start commit together or not at all.
func TestOpenRequest(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	row := func(id, server string) Request {
		return Request{ID: id, WorkflowID: "wf-" + id, Action: domain.ActionReinstallVPS, CustomerID: f.customer,
			RequesterID: f.requester, ServerID: server, Reason: "r"}
	}

	// A start that fails leaves nothing, and its error comes back as is.
	refused := errors.New("temporal said no")
	err := s.OpenRequest(ctx, row("req_fail", "srv_2"), func(context.Context) error { return refused })
	if err != refused {
		t.Fatalf("OpenRequest with a failing start = %v, want the start's error unwrapped", err)
	}
	if n := countRows(t, s, "SELECT count(*) FROM requests WHERE id = 'req_fail'") +
		countRows(t, s, "SELECT count(*) FROM audit_events WHERE request_id = 'req_fail'"); n != 0 {
		t.Fatalf("a failed start left %d rows", n)
	}

	// start sees the row already written but not yet visible to others.
	var seenOutside int
	err = s.OpenRequest(ctx, row("req_ok", "srv_2"), func(context.Context) error {
		seenOutside = countRows(t, s, "SELECT count(*) FROM requests WHERE id = 'req_ok'")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seenOutside != 0 {
		t.Fatalf("the row was visible to others before the start returned")
	}
	r, err := s.Request(ctx, "req_ok")
	if err != nil || r.Status != domain.StatusPINCheck || r.ServerID != "srv_2" {
		t.Fatalf("row after OpenRequest = %+v, %v", r, err)
	}
	// The workflow's Open activity repeats the row and the event: no-ops.
	if err := s.CreateRequest(ctx, row("req_ok", "srv_2")); err != nil {
		t.Fatalf("the activity's CreateRequest after OpenRequest = %v, want a no-op", err)
	}
	if err := s.AuditOnce(ctx, OpenedEvent(row("req_ok", "srv_2")), OpenedDedupe); err != nil {
		t.Fatal(err)
	}
	trail, err := s.AuditTrail(ctx, "req_ok")
	if err != nil {
		t.Fatal(err)
	}
	if len(trail) != 1 || trail[0].Event != "request.opened" || trail[0].Actor != "agent:"+f.requester ||
		trail[0].Details["server"] != "srv_2" || trail[0].Details["reason"] != "r" {
		t.Fatalf("audit trail after OpenRequest and the activity: %+v, want one request.opened", trail)
	}

	// The slot is taken: start is never called.
	called := false
	err = s.OpenRequest(ctx, row("req_dup", "srv_2"), func(context.Context) error { called = true; return nil })
	var dup *DuplicateOpenError
	if !errors.As(err, &dup) || dup.ID != "req_ok" || called {
		t.Fatalf("OpenRequest on a taken slot = %v (start called: %v), want a duplicate of req_ok and no start", err, called)
	}

	// A caller that hangs up once start has succeeded does not lose the row.
	cctx, cancel := context.WithCancel(ctx)
	err = s.OpenRequest(cctx, row("req_hangup", "srv_3"), func(context.Context) error { cancel(); return nil })
	if err != nil {
		t.Fatalf("OpenRequest whose caller hung up after the start = %v", err)
	}
	if _, err := s.Request(ctx, "req_hangup"); err != nil {
		t.Fatalf("row of a started request whose caller hung up: %v", err)
	}
}

// TestOpenRequestConcurrent: two opens for one slot at the same moment. The
// second waits in its INSERT for the first's transaction, then fails; only
// one start ever runs.
func TestOpenRequestConcurrent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	warmPool(t, s, 4)
	const n = 2
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		starts  int
		barrier = make(chan struct{})
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-barrier
			id := fmt.Sprintf("req_race%d", i)
			errs[i] = s.OpenRequest(ctx, Request{ID: id, WorkflowID: "wf-" + id, Action: domain.ActionDisable2FA,
				CustomerID: f.customer, RequesterID: f.requester, Reason: "r"}, func(context.Context) error {
				mu.Lock()
				starts++
				mu.Unlock()
				// Hold the transaction open a moment, as a start does, so
				// the other INSERT has to wait for it.
				time.Sleep(100 * time.Millisecond)
				return nil
			})
		})
	}
	close(barrier)
	wg.Wait()
	won, dups := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, ErrDuplicateOpen):
			dups++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if won != 1 || dups != 1 || starts != 1 {
		t.Fatalf("%d won, %d duplicates, %d starts; want 1, 1, 1", won, dups, starts)
	}
	if c := countRows(t, s, "SELECT count(*) FROM requests WHERE action = 'disable_2fa'"); c != 1 {
		t.Fatalf("%d rows, want 1", c)
	}
}

// TestMigrationKeepsExistingDuplicates: open duplicates from before the
// index neither stop the migration nor get ended; the oldest holds the
// slot, the others are marked and left alone until they end.
func TestMigrationKeepsExistingDuplicates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := migratedBefore(t, 4)
	seed(t, s) // req_1 at t0: reinstall_vps on srv_1, open
	for i, id := range []string{"req_2", "req_3"} {
		if _, err := s.DB().ExecContext(ctx, `INSERT INTO requests (id, workflow_id, action, customer_id, requester_id, server_id, reason, status, created_at)
			VALUES ($1, 'wf-' || $1, 'reinstall_vps', 'cus_1', 'alice', 'srv_1', 'r', 'cooling', $2)`, id, t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate over existing duplicates: %v", err)
	}
	if got := countRows(t, s, "SELECT count(*) FROM requests WHERE legacy_duplicate"); got != 2 {
		t.Fatalf("%d marked, want 2 (all but the oldest)", got)
	}
	if got := countRows(t, s, "SELECT count(*) FROM requests WHERE id = 'req_1' AND NOT legacy_duplicate"); got != 1 {
		t.Fatal("the oldest open request lost the slot")
	}
	// The marked ones still move on and end as before.
	if err := s.UpdateRequest(ctx, "req_3", RequestUpdate{Status: domain.StatusCancelled}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	err := s.CreateRequest(ctx, Request{ID: "req_4", WorkflowID: "wf-req_4", Action: domain.ActionReinstallVPS,
		CustomerID: "cus_1", RequesterID: "alice", ServerID: "srv_1", Reason: "r"})
	var dup *DuplicateOpenError
	if !errors.As(err, &dup) || dup.ID != "req_1" {
		t.Fatalf("new open after the migration = %v, want a duplicate of req_1", err)
	}
}

// TestMigration0008KeepsExistingDuplicates: open requests on one server
// under two customers (a server moved while a request was open) neither
// stop migration 0008 nor get ended; the oldest holds the server's slot,
// the others are marked and run to their end. A group whose oldest open
// row 0004 already marked still gets a holder.
func TestMigration0008KeepsExistingDuplicates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := migratedBefore(t, 8)
	f := seed(t, s) // req_1 at t0: reinstall_vps on srv_1 of cus_1, open
	hash, err := pinhash.Hash("1", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"cus_2", "cus_3"} {
		if err := s.UpsertCustomer(ctx, CustomerImport{ID: id, PrimaryEmail: "b@b.test", PINHash: hash}); err != nil {
			t.Fatal(err)
		}
	}
	rows := []struct {
		id, customer, server, status string
		legacy                       bool
		at                           time.Duration
	}{
		{"req_2", "cus_2", "srv_1", "cooling", false, time.Minute},       // srv_1 moved to cus_2 with req_1 open
		{"req_3", "cus_3", "srv_1", "notifying", false, 2 * time.Minute}, // and then to cus_3
		// srv_2: its oldest open row was marked by 0004 (its holder ended
		// since), and a newer one holds 0004's slot.
		{"req_4", "cus_1", "srv_2", "cooling", true, 3 * time.Minute},
		{"req_5", "cus_1", "srv_2", "cooling", false, 4 * time.Minute},
		{"req_6", "cus_2", "srv_2", "awaiting_approval", false, 5 * time.Minute},
	}
	for _, r := range rows {
		if _, err := s.DB().ExecContext(ctx, `INSERT INTO requests (id, workflow_id, action, customer_id, requester_id, server_id, reason, status, created_at, legacy_duplicate)
			VALUES ($1, 'wf-' || $1, 'reinstall_vps', $2, 'alice', $3, 'r', $4, $5, $6)`, r.id, r.customer, r.server, r.status, t0.Add(r.at), r.legacy); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate over existing duplicates: %v", err)
	}
	var marked []string
	rs, err := s.DB().QueryContext(ctx, "SELECT id FROM requests WHERE legacy_duplicate ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			t.Fatal(err)
		}
		marked = append(marked, id)
	}
	rs.Close()
	if strings.Join(marked, ",") != "req_2,req_3,req_4,req_6" {
		t.Fatalf("marked %v, want req_2, req_3 (req_1 holds srv_1), req_4 (from 0004), req_6 (req_5 holds srv_2)", marked)
	}
	// Every row is still readable and open, and moves on as before.
	for _, r := range rows {
		got, err := s.Request(ctx, r.id)
		if err != nil || string(got.Status) != r.status || got.EndedAt != nil {
			t.Fatalf("%s after the migration: %+v, %v", r.id, got, err)
		}
	}
	if err := s.UpdateRequest(ctx, "req_3", RequestUpdate{Status: domain.StatusCancelled}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	// New opens on either server, for either customer, are refused.
	for _, tt := range []struct{ customer, server, holder string }{
		{f.customer, "srv_1", "req_1"}, {"cus_2", "srv_1", ""}, {f.customer, "srv_2", "req_5"}, {"cus_2", "srv_2", ""},
	} {
		err := s.CreateRequest(ctx, Request{ID: "req_new", WorkflowID: "wf-req_new", Action: domain.ActionReinstallVPS,
			CustomerID: tt.customer, RequesterID: f.requester, ServerID: tt.server, Reason: "r"})
		var dup *DuplicateOpenError
		if !errors.As(err, &dup) || dup.ID != tt.holder || dup.OtherCustomer != (tt.holder == "") {
			t.Fatalf("new open for %s on %s = %v, want a duplicate of %q", tt.customer, tt.server, err, tt.holder)
		}
	}
}

// migratedBefore returns a store on a fresh database with the migrations
// before version applied, as a database from before that migration would
// be, so a test can put rows in it and then run Migrate.
func migratedBefore(t *testing.T, version int) *Store {
	t.Helper()
	ctx := context.Background()
	s := New(testpg.New(t))
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TABLE schema_migrations (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.version >= version {
			break
		}
		if err := applyMigration(ctx, conn, m); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	return s
}
