package requests

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/temporaltest"
	"github.com/vigil-oss/vigil/internal/testpg"
	"github.com/vigil-oss/vigil/workflows"
)

// unreachableService is a Service on a fresh database whose Temporal client
// is a real SDK client aimed at a port nobody listens on.
func unreachableService(t *testing.T) (*Service, *store.Store) {
	t.Helper()
	st := store.New(testpg.New(t))
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	logger := slog.New(slog.DiscardHandler)
	svc, err := New(temporaltest.Unreachable(t, logger), st, Timings{Cooling: domain.DefaultCoolingPeriods()}, RiskChecks{Off: true}, logger)
	if err != nil {
		t.Fatal(err)
	}
	return svc, st
}

// TestTemporalErrors maps what the SDK returns to what fronts show: a call
// that ran out of time, however the SDK says so, is "try again" (503 in the
// API, the "could not confirm yet" page for a customer), never a bare error
// (500). An Update that timed out may have taken effect, and says so.
func TestTemporalErrors(t *testing.T) {
	svc, _ := unreachableService(t)
	updateTimeout := client.NewWorkflowUpdateServiceTimeoutOrCanceledError(serviceerror.NewDeadlineExceeded("context deadline exceeded"))
	plain := errors.New("codec: bad key")
	tests := []struct {
		name string
		err  error
		code Code // "" means not a refusal
		// forUpdate is the wording Update callers get, when it differs.
		forUpdate string
	}{
		{"Update not confirmed in time", updateTimeout, CodeUnavailable, "may or may not have taken effect"},
		{"Update not confirmed in time, wrapped", fmt.Errorf("cancel: %w", updateTimeout), CodeUnavailable, "may or may not have taken effect"},
		{"Update wait cancelled", client.NewWorkflowUpdateServiceTimeoutOrCanceledError(context.Canceled), CodeUnavailable, "may or may not have taken effect"},
		{"gRPC deadline exceeded", serviceerror.NewDeadlineExceeded("deadline"), CodeUnavailable, "may or may not have taken effect"},
		{"context deadline exceeded", context.DeadlineExceeded, CodeUnavailable, "may or may not have taken effect"},
		{"unavailable", serviceerror.NewUnavailable("connection refused"), CodeUnavailable, ""},
		{"not found", serviceerror.NewNotFound("workflow not found"), CodeNotFound, ""},
		{"anything else", plain, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := svc.temporalErr("query request req_x", tt.err)
			r, ok := AsRefusal(err)
			if tt.code == "" {
				if ok || !errors.Is(err, tt.err) {
					t.Fatalf("temporalErr = %v (refusal %v), want the error wrapped", err, ok)
				}
				return
			}
			if !ok || r.Code != tt.code {
				t.Fatalf("temporalErr = %v, want a %s refusal", err, tt.code)
			}
			if strings.Contains(r.Message, "deadline") || strings.Contains(r.Message, "127.0.0.1") {
				t.Fatalf("message leaks the SDK's words: %q", r.Message)
			}
			if tt.code == CodeNotFound {
				return // updateErr asks the workflow how it ended instead
			}
			err = svc.updateErr(context.Background(), "req_x", workflows.UpdateDecide, tt.err)
			if r, ok = AsRefusal(err); !ok || r.Code != tt.code {
				t.Fatalf("updateErr = %v, want a %s refusal", err, tt.code)
			}
			if tt.forUpdate != "" && !strings.Contains(r.Message, tt.forUpdate) {
				t.Fatalf("updateErr message %q lacks %q", r.Message, tt.forUpdate)
			}
		})
	}
}

// TestRefusalsFromValidators keeps the validators' refusals refusals, with
// their code and words, wherever the SDK puts them.
func TestRefusalsFromValidators(t *testing.T) {
	svc, _ := unreachableService(t)
	tests := []struct {
		kind string
		code Code
	}{
		{workflows.RefusedAlreadyEnded, CodeEnded},
		{workflows.RefusedExecuting, CodeExecuting},
		{workflows.RefusedNotCustomer, CodeNotCustomer},
	}
	for _, tt := range tests {
		msg := "refused because " + tt.kind
		err := svc.updateErr(context.Background(), "req_x", workflows.UpdateCancel,
			fmt.Errorf("update: %w", temporal.NewApplicationError(msg, tt.kind)))
		r, ok := AsRefusal(err)
		if !ok || r.Code != tt.code || r.Message != msg {
			t.Fatalf("%s: %v, want %s refusal %q", tt.kind, err, tt.code, msg)
		}
	}
}

// TestCancelByLinkWithoutTemporal: a cancel that cannot reach Temporal is
// "try again" and leaves no refusal in the audit trail; a request id that
// cannot exist never reaches it.
func TestCancelByLinkWithoutTemporal(t *testing.T) {
	svc, st := unreachableService(t)
	ctx := context.Background()
	hash, err := pinhash.Hash("123456", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertCustomer(ctx, store.CustomerImport{ID: "C-1", Name: "Ann", PrimaryEmail: "ann@example.test", PINHash: hash}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAgent(ctx, store.Agent{ID: "ag_req", Name: "Rita", Role: domain.RoleAgent}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRequest(ctx, store.Request{ID: "req_live", WorkflowID: workflows.WorkflowID("req_live"), Action: domain.ActionDisable2FA,
		CustomerID: "C-1", RequesterID: "ag_req", Reason: "r", Status: domain.StatusCooling}); err != nil {
		t.Fatal(err)
	}
	in := workflows.CancelInput{By: domain.CancelByCustomer, ActorID: "C-1", Reason: "from the link"}
	tests := []struct {
		name, requestID, linkID string
		code                    Code
	}{
		{"Temporal unreachable", "req_live", "tok_1", CodeUnavailable},
		{"malformed request id", "../etc", "tok_1", CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			err := svc.CancelByLink(cctx, tt.requestID, tt.linkID, in)
			if r, ok := AsRefusal(err); !ok || r.Code != tt.code {
				t.Fatalf("CancelByLink = %v, want a %s refusal", err, tt.code)
			}
		})
	}
	events, err := st.AuditTrail(ctx, "req_live")
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 0 {
		t.Fatalf("audit trail: %+v, want nothing (the outcome is unknown, not a refusal)", events)
	}
}

// TestLinkUpdateID: one stable id per link, distinct between links, and
// without the link id itself, since Update ids stay in Temporal history.
func TestLinkUpdateID(t *testing.T) {
	tests := []struct{ a, b string }{
		{"k3v9q2x7m4p8w1z5", "k3v9q2x7m4p8w1z6"},
		{"a", "b"},
	}
	for _, tt := range tests {
		ida, idb := LinkUpdateID(tt.a), LinkUpdateID(tt.b)
		if ida != LinkUpdateID(tt.a) {
			t.Fatalf("LinkUpdateID(%q) is not stable", tt.a)
		}
		if ida == idb {
			t.Fatalf("links %q and %q share Update id %s", tt.a, tt.b, ida)
		}
		if !strings.HasPrefix(ida, "cancel-link-") || strings.Contains(ida, tt.a) && len(tt.a) > 4 {
			t.Fatalf("LinkUpdateID(%q) = %s", tt.a, ida)
		}
	}
}
