package workflows_test

import (
	"slices"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// TestNewlyEstablishedAddressNotified: an address too young for the notice
// when the request was approved ages past the established age while the
// request cools (change notice-newly-established). Before the action runs
// it gets the notice, with the others, and the cooling period starts again
// from that notice; a second address ageing in the second cooling period
// ends the request failed.
func TestNewlyEstablishedAddressNotified(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		ageSecond  bool // another address ages during the second cooling period
		wantStatus domain.Status
	}{
		{"one address ages during cooling", false, domain.StatusExecuted},
		{"addresses keep ageing", true, domain.StatusFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			age := func(email string) {
				if _, err := h.db.DB().ExecContext(h.ctx, `UPDATE customer_contacts SET added_at = now() - interval '30 days',
					verified_at = now() - interval '10 days' WHERE email = $1`, email); err != nil {
					t.Errorf("age %s: %v", email, err)
				}
			}
			const second = "late@customer.test"
			if tc.ageSecond {
				if _, err := h.db.DB().ExecContext(h.ctx, `INSERT INTO customer_contacts (customer_id, email, added_at, verified_at)
					VALUES ($1, $2, now(), now())`, customerID, second); err != nil {
					t.Fatal(err)
				}
			}
			reqID := "req-newly-established"
			env := h.env(reqID)
			dec := h.decide(env, time.Hour, approve())
			env.RegisterDelayedCallback(func() { age(freshEmail) }, 3*time.Hour)
			if tc.ageSecond {
				env.RegisterDelayedCallback(func() { age(second) }, 2*testPolicy.CoolingPeriod)
			}
			st := h.run(env, input(reqID, domain.ActionReinstallVPS))

			dec.mustAccept(t, "approval")
			if st.Status != tc.wantStatus {
				t.Fatalf("status %s (%q), want %s", st.Status, st.Failure, tc.wantStatus)
			}
			notices := h.mails(reqID, "notice")
			var to []string
			for _, m := range notices {
				to = append(to, m.To...)
			}
			if !slices.Contains(to, freshEmail) {
				t.Fatalf("notices went to %v, want %s too once it was established", to, freshEmail)
			}
			if n := len(h.started("NotifyCustomer")); n != 2 {
				t.Fatalf("NotifyCustomer started %d times, want twice (the notice, then again with the aged address)", n)
			}
			resent := eventNamed(t, h.trail(reqID), "gate.notice.resent")
			if resent.Details["newly_established"] != "1" || resent.Details["recipients"] != "3" {
				t.Fatalf("gate.notice.resent %v, want 1 newly established of 3 recipients", resent.Details)
			}
			if tc.wantStatus == domain.StatusFailed {
				if len(h.performed()) != 0 || slices.Contains(h.calls(), "Execute") {
					t.Fatal("the action ran although an address never had a cooling period")
				}
				ev := h.trail(reqID)[len(h.trail(reqID))-1]
				if ev.Event != "request.failed" || ev.Details["cause"] != "addresses_changed" {
					t.Fatalf("last event %s %v, want request.failed for changed addresses", ev.Event, ev.Details)
				}
				return
			}
			// The second notice restarted the cooling period.
			if st.Recipients != 3 || st.ExecutedAt.Sub(st.NotifiedAt) < testPolicy.CoolingPeriod ||
				!st.CoolingEndsAt.Equal(st.NotifiedAt.Add(testPolicy.CoolingPeriod)) ||
				st.NotifiedAt.Sub(st.Decision.At) < testPolicy.CoolingPeriod {
				t.Fatalf("decided %v, notified %v (%d), cooling ends %v, executed %v: want a full cooling period after the second notice",
					st.Decision.At, st.NotifiedAt, st.Recipients, st.CoolingEndsAt, st.ExecutedAt)
			}
			if row := h.projection(reqID); row.NotifiedAt == nil || !sameMicro(*row.NotifiedAt, st.NotifiedAt) {
				t.Fatalf("projection notified %v, want the second notice %v", row.NotifiedAt, st.NotifiedAt)
			}
		})
	}
}
