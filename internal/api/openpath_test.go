package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
)

// TestOpenRefusedByAccountState: opens the account's state makes doubled or
// pointless are refused with their own codes, before Temporal (which is
// unreachable here: a call that got that far would answer 503), and change
// nothing.
func TestOpenRefusedByAccountState(t *testing.T) {
	t.Parallel()
	e := newEnv(t, adminToken, Options{})
	ctx := context.Background()
	if err := e.st.AddContact(ctx, "C-1042", "Cto@Acme.test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateRequest(ctx, store.Request{ID: "req_held", WorkflowID: "wf-held", Action: domain.ActionDisable2FA,
		CustomerID: "C-1042", RequesterID: "ag_senior", Reason: "lost phone", Status: domain.StatusCooling}); err != nil {
		t.Fatal(err)
	}
	open := func(action, email string) string {
		b := map[string]any{"action": action, "customer_id": "C-1042", "reason": "customer asked", "pin": testPIN}
		if email != "" {
			b["email"] = email
		}
		return openJSON(b)
	}
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantCode   string
		wantDetail []string
		wantReqID  string
	}{
		{"add the primary, other case", open("add_contact_email", "OWNER@acme.TEST"), 409, "already_on_account", []string{"OWNER@acme.test", "primary"}, ""},
		{"add a contact, other case", open("add_contact_email", "cto@ACME.test"), 409, "already_on_account", []string{"contact"}, ""},
		{"add a contact, same case", open("add_contact_email", "Cto@Acme.test"), 409, "already_on_account", []string{"contact"}, ""},
		{"change to the primary, other case", open("change_account_email", "Owner@Acme.Test"), 409, "email_unchanged", []string{"primary"}, ""},
		{"second open while one waits", open("disable_2fa", ""), 409, "duplicate_request", []string{"req_held", "cooling"}, "req_held"},
		{"add a look-alike of the primary", open("add_contact_email", "owner@acrne.test"), 409, "lookalike_address", []string{"owner@acrne.test", "owner@acme.test", "look alike"}, ""},
		{"add a look-alike of a contact", open("add_contact_email", "ct0@acme.test"), 409, "lookalike_address", []string{"Cto@acme.test"}, ""},
		{"change to a look-alike of the primary", open("change_account_email", "0wner@acme.test"), 409, "lookalike_address", []string{"0wner@acme.test"}, ""},
		// Controls: these pass the checks and reach Temporal.
		{"change to a contact", open("change_account_email", "cto@acme.test"), 503, "temporal_unavailable", nil, ""},
		{"add an address that only shares the domain", open("add_contact_email", "owner2@acme.test"), 503, "temporal_unavailable", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs, audits := e.count("requests"), e.count("audit_events")
			res := e.as("ag_req", "POST", "/api/v1/requests", tt.body)
			if res.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			p := res.problem(t)
			if p.Code != tt.wantCode || p.RequestID != tt.wantReqID {
				t.Fatalf("problem %+v, want code %s and request_id %q", p, tt.wantCode, tt.wantReqID)
			}
			for _, w := range tt.wantDetail {
				if !strings.Contains(p.Detail, w) {
					t.Errorf("detail %q lacks %q", p.Detail, w)
				}
			}
			if n := e.count("requests"); n != reqs {
				t.Fatalf("requests rows %d -> %d", reqs, n)
			}
			if n := e.count("audit_events"); n != audits {
				t.Fatalf("audit rows %d -> %d", audits, n)
			}
		})
	}
}
