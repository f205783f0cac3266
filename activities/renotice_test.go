package activities_test

import (
	"context"
	"slices"
	"testing"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
)

// TestUnnotifiedEstablished lists the established addresses the request's
// notice never reached, in any letter case, leaving out the address an
// add_contact_email request adds.
func TestUnnotifiedEstablished(t *testing.T) {
	t.Parallel()
	w := newLiveWorld(t)
	ctx := context.Background()
	w.open(t, "req-renotice", domain.ActionReinstallVPS, "srv-1", domain.StatusCooling)
	accepted := func(rcpt string) {
		t.Helper()
		if err := w.st.AuditOnce(ctx, store.AuditEvent{RequestID: "req-renotice", Actor: "system", Event: "notice.accepted",
			Details: map[string]any{"recipient": rcpt}}, "notice/"+rcpt); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(action domain.Action, email string) []string {
		t.Helper()
		got, err := w.acts.UnnotifiedEstablished(ctx, activities.UnnotifiedInput{RequestID: "req-renotice", CustomerID: victim, Action: action, Email: email})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := ask(domain.ActionReinstallVPS, ""); !slices.Equal(got, []string{victimPrimary, victimOps}) {
		t.Fatalf("before any notice: %v, want both established addresses", got)
	}
	accepted("OWNER@victim.test")
	if got := ask(domain.ActionReinstallVPS, ""); !slices.Equal(got, []string{victimOps}) {
		t.Fatalf("after the primary's notice: %v, want only %s", got, victimOps)
	}
	if got := ask(domain.ActionAddContactEmail, victimOps); len(got) != 0 {
		t.Fatalf("the address being added: %v, want none", got)
	}
	accepted(victimOps)
	if got := ask(domain.ActionReinstallVPS, ""); len(got) != 0 {
		t.Fatalf("after both notices: %v, want none", got)
	}
	if _, err := w.acts.UnnotifiedEstablished(ctx, activities.UnnotifiedInput{RequestID: "req-renotice", CustomerID: "C-none"}); err == nil {
		t.Fatal("an unknown customer answered")
	}
}
