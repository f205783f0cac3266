package mail

import (
	"testing"

	"github.com/vigil-oss/vigil/internal/domain"
)

// TestEveryActionHasItsOwnWording renders the notice and every outcome for
// every action and fails when two actions read the same: an action whose
// wording fell back on another's (the old switches gave any unlisted action
// the 2FA text) would mail the customer the wrong thing.
func TestEveryActionHasItsOwnWording(t *testing.T) {
	outcomes := []domain.Status{domain.StatusExecuted, domain.StatusCancelled, domain.StatusRejected, domain.StatusExpired, domain.StatusFailed}
	seen := map[string]domain.Action{}
	for _, a := range domain.Actions {
		t.Run(string(a), func(t *testing.T) {
			subject, text, html, err := RenderNotice(noticeData(a))
			if err != nil {
				t.Fatalf("notice: %v", err)
			}
			checkParts(t, subject, text, html)
			if other, dup := seen["notice:"+subject]; dup {
				t.Errorf("notice subject %q is also %s's", subject, other)
			}
			seen["notice:"+subject] = a
			nd := noticeData(a)
			for _, o := range outcomes {
				d := OutcomeData{CustomerName: nd.CustomerName, Action: a, ServerID: nd.ServerID, NewEmail: nd.NewEmail,
					Outcome: o, CancelledBy: domain.CancelByCustomer, At: runsAt, SupportEmail: nd.SupportEmail, ProductName: nd.ProductName}
				subject, text, html, err := RenderOutcome(d)
				if err != nil {
					t.Fatalf("outcome %s: %v", o, err)
				}
				checkParts(t, subject, text, html)
				if other, dup := seen[string(o)+":"+subject]; dup {
					t.Errorf("%s subject %q is also %s's", o, subject, other)
				}
				seen[string(o)+":"+subject] = a
			}
		})
	}
}
