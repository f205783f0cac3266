package cliclient

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/vigil-oss/vigil/internal/agentauth"
	"github.com/vigil-oss/vigil/internal/api"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/testpg"
)

// TestAuditAndCustomerAgainstTheAPI runs the client's audit and customer
// methods against the real API on a real Postgres: paging walks every
// event once and in order, filters reach the server, refusals come back as
// problems.
func TestAuditAndCustomerAgainstTheAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(testpg.New(t))
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	hash, err := pinhash.Hash("246810", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertCustomer(ctx, store.CustomerImport{ID: "C-1", Name: "Acme", PrimaryEmail: "owner@acme.test", PINHash: hash, Servers: []string{"srv-1"}}); err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, ag := range []store.Agent{{ID: "ag_a", Name: "A", Role: domain.RoleAgent}, {ID: "ag_s", Name: "S", Role: domain.RoleSenior}} {
		tok, err := agentauth.NewToken()
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateAgent(ctx, ag, agentauth.Hash(tok)); err != nil {
			t.Fatal(err)
		}
		tokens[ag.ID] = tok
	}
	if err := st.OpenRequest(ctx, store.Request{ID: "req_a1", WorkflowID: "wf-req_a1", Action: domain.ActionDisable2FA,
		CustomerID: "C-1", RequesterID: "ag_a", Reason: "lost phone"}, func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	for i, ev := range []string{"gate.pin.verified", "gate.approval.passed", "notice.accepted", "gate.cooling.passed", "execution.done"} {
		if err := st.Audit(ctx, store.AuditEvent{RequestID: "req_a1", Actor: "system", Event: ev, Details: map[string]any{"n": i}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Audit(ctx, store.AuditEvent{Actor: "admin", Event: "agent.disabled", Details: map[string]any{"agent_id": "ag_x"}}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := requests.New(nil, st, requests.Timings{}, requests.RiskChecks{Off: true}, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(svc, st, "", logger, api.Options{}).Handler())
	t.Cleanup(srv.Close)
	client := func(who string) *Client {
		c, err := New(srv.URL, tokens[who])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	testpg.AwaitAuditExport(t, st.DB())
	all, err := st.AuditExport(ctx, store.AuditFilter{Limit: store.MaxAuditPage})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 3 {
		t.Fatalf("only %d events seeded", len(all))
	}

	for _, limit := range []int{0, 1, 2, 7} {
		var got []AuditEvent
		if err := client("ag_s").EachAuditEvent(ctx, AuditFilter{Limit: limit}, func(e AuditEvent) error {
			got = append(got, e)
			return nil
		}); err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		if len(got) != len(all) {
			t.Fatalf("limit %d: %d events, want %d", limit, len(got), len(all))
		}
		for i, e := range got {
			var raw struct{ ID int64 }
			if e.ID != all[i].ID || e.Event != all[i].Event || !e.At.Equal(all[i].At) || json.Unmarshal(e.Raw, &raw) != nil || raw.ID != e.ID {
				t.Fatalf("limit %d: event %d = %+v (raw %s), want %+v", limit, i, e, e.Raw, all[i])
			}
		}
	}
	var events []string
	if err := client("ag_s").EachAuditEvent(ctx, AuditFilter{Event: "gate.*", CustomerID: "C-1", Limit: 1}, func(e AuditEvent) error {
		events = append(events, e.Event)
		return nil
	}); err != nil || len(events) != 3 {
		t.Errorf("gate events of C-1: %v (%v), want the three gates", events, err)
	}
	stop := errors.New("stop")
	n := 0
	if err := client("ag_s").EachAuditEvent(ctx, AuditFilter{Limit: 2}, func(AuditEvent) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("fn's error: %v after %d events, want stop after 1", err, n)
	}

	err = client("ag_a").EachAuditEvent(ctx, AuditFilter{}, func(AuditEvent) error { return nil })
	if p, ok := AsProblem(err); !ok || p.Code != "forbidden" || !p.Refused() {
		t.Errorf("an agent's export: %v, want a forbidden problem", err)
	}

	trail, err := client("ag_a").RequestAudit(ctx, "req_a1")
	if err != nil || trail.RequestID != "req_a1" || len(trail.Events) != 6 || trail.Events[0].Event != "request.opened" || len(trail.Raw) == 0 {
		t.Errorf("own trail: %+v %v", trail, err)
	}
	_, err = client("ag_a").RequestAudit(ctx, "req_nope")
	if p, ok := AsProblem(err); !ok || p.Code != "request_not_found" || p.RequestID != "req_nope" {
		t.Errorf("missing request's trail: %v, want request_not_found naming it", err)
	}

	cust, err := client("ag_a").ShowCustomer(ctx, "C-1")
	if err != nil || cust.ID != "C-1" || cust.PrimaryEmail != "owner@acme.test" || !cust.PrimaryEstablished || cust.Lock.MaxFailures != 5 ||
		len(cust.Servers) != 1 || cust.ImportedAt.IsZero() || len(cust.Raw) == 0 {
		t.Errorf("customer: %+v %v", cust, err)
	}
	_, err = client("ag_a").ShowCustomer(ctx, "C-404")
	if p, ok := AsProblem(err); !ok || p.Code != "unknown_customer" {
		t.Errorf("unknown customer: %v", err)
	}
}

// TestEachAuditEventStopsAServerThatDoesNotMoveOn refuses a next_after that
// does not advance instead of paging for ever.
func TestEachAuditEventStopsAServerThatDoesNotMoveOn(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"events":[{"id":5,"at":"2026-03-01T10:00:00Z","actor":"system","event":"x","details":{}}],"next_after":5}`)
	}))
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, agentToken)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	err = c.EachAuditEvent(context.Background(), AuditFilter{}, func(AuditEvent) error { calls++; return nil })
	var te *TransportError
	if !errors.As(err, &te) || calls != 2 {
		t.Fatalf("err %v after %d events, want a transport error after the second page", err, calls)
	}
}

// TestAuditTypesMatchTheServer is TestTypesMatchTheServer for the audit and
// customer view types.
func TestAuditTypesMatchTheServer(t *testing.T) {
	for _, p := range []struct{ client, server any }{
		{AuditEvent{}, api.AuditEvent{}},
		{AuditTrail{}, api.AuditTrail{}},
		{AuditPage{}, api.AuditPage{}},
		{CustomerView{}, api.CustomerView{}},
		{ContactView{}, api.ContactView{}},
		{PhoneView{}, api.PhoneView{}},
		{LockView{}, api.LockView{}},
	} {
		ct, st := reflect.TypeOf(p.client), reflect.TypeOf(p.server)
		client, server := jsonFields(ct), jsonFields(st)
		for name, cf := range client {
			sf, ok := server[name]
			if !ok {
				t.Errorf("client %s.%s reads %q, which the server's %s never writes", ct.Name(), cf.Name, name, st.Name())
				continue
			}
			if cs, ss := shape(cf.Type), shape(sf.Type); cs != ss {
				t.Errorf("%q: client %s is %s, server %s is %s", name, ct.Name(), cs, st.Name(), ss)
			}
		}
		if len(client) != len(server) {
			t.Errorf("%s reads %d fields, the server's %s writes %d", ct.Name(), len(client), st.Name(), len(server))
		}
	}
}
