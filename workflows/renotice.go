package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
)

// noticeNewlyEstablished runs once the cooling period is over (change
// notice-newly-established): an address that became established while the
// request waited (it aged past the established age) and never got the
// notice gets it now, with every other established address (the run time
// moved), and the cooling period starts again from that notice. If, after
// the second cooling period, yet another address is established without
// the notice, the request ends failed rather than run past an address
// that never had a full cooling period to cancel.
func (r *request) noticeNewlyEstablished(ctx workflow.Context) *ending {
	for round := 0; ; round++ {
		var missing []string
		if err := workflow.ExecuteActivity(shortOptions(ctx), acts.UnnotifiedEstablished, activities.UnnotifiedInput{
			RequestID: r.in.RequestID, CustomerID: r.in.CustomerID, Action: r.in.Action, Email: r.in.Email,
		}).Get(ctx, &missing); err != nil {
			return end(r.gateError(ctx, "cooling", fmt.Errorf("addresses without the notice: %w", err)))
		}
		if len(missing) == 0 {
			return nil
		}
		if round > 0 {
			r.st.Failure = "the customer's addresses kept changing while the request waited; nothing was done"
			return end(r.finish(ctx, domain.StatusFailed, "request.failed", "system",
				map[string]string{"gate": "cooling", "cause": "addresses_changed", "unnotified": fmt.Sprint(len(missing))}))
		}
		notice, e := r.noticeStoppedByCancel(ctx, r.noticeOptions(), r.noticeInput())
		if e != nil {
			return e
		}
		r.st.NotifiedAt = workflow.Now(ctx)
		r.st.Recipients = notice.Recipients
		r.st.CoolingEndsAt = r.st.NotifiedAt.Add(r.in.Policy.CoolingPeriod)
		if r.st.Cancellation != nil {
			return end(r.cancelled(ctx))
		}
		if err := r.record(ctx, "gate.notice.resent", "system", map[string]string{
			"recipients": fmt.Sprint(notice.Recipients), "newly_established": fmt.Sprint(len(missing)),
		}); err != nil {
			return end(r.gateError(ctx, "cooling", err))
		}
		r.updateMessage(ctx, activities.MessageUpdate{Event: activities.MessageNotified, RunsAt: r.st.CoolingEndsAt})
		if _, err := workflow.AwaitWithTimeout(ctx, r.in.Policy.CoolingPeriod, func() bool {
			return r.st.Cancellation != nil
		}); err != nil {
			return end(r.st, fmt.Errorf("cooling period: %w", err))
		}
		if r.st.Cancellation != nil {
			return end(r.cancelled(ctx))
		}
	}
}
