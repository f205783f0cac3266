package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
)

// UnnotifiedInput names a request whose cooling period is over.
type UnnotifiedInput struct {
	RequestID  string
	CustomerID string
	Action     domain.Action
	Email      string
}

// UnnotifiedEstablished returns the customer's addresses that are
// established now but never got this request's notice: an address that
// aged past VIGIL_ESTABLISHED_AFTER while the request waited. The workflow
// notifies them and starts the cooling period again, so every address
// established when the action runs had a full cooling period to cancel.
func (a *Activities) UnnotifiedEstablished(ctx context.Context, in UnnotifiedInput) ([]string, error) {
	now := a.now()
	established, err := a.Store.EstablishedEmails(ctx, in.CustomerID, now, a.Settings.EstablishedAfter)
	if errors.Is(err, store.ErrNotFound) {
		return nil, permanent(err, "customer %s does not exist", in.CustomerID)
	}
	if err != nil {
		return nil, fmt.Errorf("established addresses: %w", err)
	}
	if in.Action == domain.ActionAddContactEmail {
		// The address being added never gets a link to cancel its own addition.
		established = without(established, in.Email)
	}
	notified, err := a.noticeRecipients(ctx, in.RequestID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range established {
		seen := false
		for _, n := range notified {
			seen = seen || strings.EqualFold(e, n)
		}
		if !seen {
			out = append(out, e)
		}
	}
	if len(out) > 0 {
		a.log(ctx).Warn("addresses became established during the request without its notice", "request", in.RequestID, "count", len(out))
	}
	return out, nil
}
