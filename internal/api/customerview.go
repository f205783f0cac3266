package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/vigil-oss/vigil/internal/phone"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/store"
)

// CustomerView is a customer as GET /api/v1/customers/{id} shows it to
// agents: what they need to open a request and to understand its refusals.
// It never holds the PIN hash.
type CustomerView struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	PrimaryEmail string `json:"primary_email"`
	// PrimaryEmailSince is when the address became the primary; left out
	// when it has been the primary since the first import (such an address
	// is established from the start).
	PrimaryEmailSince  *time.Time `json:"primary_email_since,omitempty"`
	PrimaryEstablished bool       `json:"primary_established"`
	// ImportedAt is when the customer was first imported.
	ImportedAt *time.Time    `json:"imported_at,omitempty"`
	Contacts   []ContactView `json:"contacts"`
	Phones     []PhoneView   `json:"phones"`
	Servers    []string      `json:"servers"`
	// EstablishedAfterSeconds is the age (VIGIL_ESTABLISHED_AFTER) at which
	// a verified contact starts getting notices.
	EstablishedAfterSeconds int64    `json:"established_after_seconds"`
	Lock                    LockView `json:"lock"`
}

// ContactView is a contact address and whether a notice would go to it now.
type ContactView struct {
	Email       string     `json:"email"`
	AddedAt     *time.Time `json:"added_at,omitempty"`
	VerifiedAt  *time.Time `json:"verified_at,omitempty"`
	Established bool       `json:"established"`
}

// PhoneView is a phone number, masked (agents need to recognise it, not to
// call it), and whether it is established for SMS notices.
type PhoneView struct {
	Masked      string     `json:"masked"`
	AddedAt     *time.Time `json:"added_at,omitempty"`
	VerifiedAt  *time.Time `json:"verified_at,omitempty"`
	Established bool       `json:"established"`
}

// LockView is the customer's PIN lockout as it stands.
type LockView struct {
	Locked         bool       `json:"locked"`
	LockedUntil    *time.Time `json:"locked_until,omitempty"`
	RecentFailures int        `json:"recent_failures"`
	FirstFailureAt *time.Time `json:"first_failure_at,omitempty"`
	MaxFailures    int        `json:"max_failures"`
	WindowSeconds  int64      `json:"window_seconds"`
}

// customerSettings are the worker's settings the customer view judges by.
type customerSettings struct {
	establishedAfter time.Duration
	pin              store.PINPolicy
}

// customerSettingsFrom takes Options' settings, with the defaults of
// internal/config for those left zero.
func customerSettingsFrom(o Options) customerSettings {
	s := customerSettings{establishedAfter: o.EstablishedAfter, pin: o.PINPolicy}
	if s.establishedAfter <= 0 {
		s.establishedAfter = 7 * 24 * time.Hour
	}
	if s.pin.MaxFailures == 0 {
		s.pin = store.DefaultPINPolicy()
	}
	return s
}

// showCustomer answers any enabled agent: agents open requests for any
// customer, so any of them may see one.
func (a *API) showCustomer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	unknown := func() {
		writeProblem(w, newProblem(string(requests.CodeUnknownCust), "there is no customer with that id (ids look like C-1042)"))
	}
	if !idPattern.MatchString(id) {
		unknown()
		return
	}
	failed := func(err error) {
		if errors.Is(err, store.ErrNotFound) {
			unknown()
			return
		}
		a.internal(w, r, "load customer", err)
	}
	ctx, now := r.Context(), a.now()
	cust, err := a.store.Customer(ctx, id)
	if err != nil {
		failed(err)
		return
	}
	established, err := a.store.EstablishedEmails(ctx, id, now, a.customers.establishedAfter)
	if err != nil {
		failed(err)
		return
	}
	phones, err := a.store.EstablishedPhones(ctx, id, now, a.customers.establishedAfter)
	if err != nil {
		failed(err)
		return
	}
	standing, err := a.store.CustomerStanding(ctx, id, now, a.customers.pin)
	if err != nil {
		failed(err)
		return
	}
	writeJSON(w, http.StatusOK, a.customerView(cust, established, phones, standing))
}

func (a *API) customerView(c store.Customer, established, phones []string, st store.CustomerStanding) CustomerView {
	notified := map[string]bool{}
	for _, e := range established {
		notified[strings.ToLower(e)] = true
	}
	p := a.customers.pin
	out := CustomerView{
		ID: c.ID, Name: c.Name, PrimaryEmail: c.PrimaryEmail, PrimaryEmailSince: ts(st.PrimaryEmailSince),
		PrimaryEstablished: notified[strings.ToLower(c.PrimaryEmail)], ImportedAt: ts(c.CreatedAt),
		Contacts: []ContactView{}, Phones: []PhoneView{}, Servers: []string{},
		EstablishedAfterSeconds: int64(a.customers.establishedAfter / time.Second),
		Lock: LockView{
			Locked: st.LockedUntil != nil, LockedUntil: tsp(st.LockedUntil),
			RecentFailures: st.RecentFailures, FirstFailureAt: tsp(st.FirstFailureAt),
			MaxFailures: p.MaxFailures, WindowSeconds: int64(p.Window / time.Second),
		},
	}
	for _, ct := range c.Contacts {
		out.Contacts = append(out.Contacts, ContactView{Email: ct.Email, AddedAt: ts(ct.AddedAt),
			VerifiedAt: tsp(ct.VerifiedAt), Established: notified[strings.ToLower(ct.Email)]})
	}
	texted := map[string]bool{}
	for _, p := range phones {
		texted[p] = true
	}
	for _, p := range c.Phones {
		out.Phones = append(out.Phones, PhoneView{Masked: phone.Mask(p.Number), AddedAt: ts(p.AddedAt),
			VerifiedAt: tsp(p.VerifiedAt), Established: texted[p.Number]})
	}
	out.Servers = append(out.Servers, c.Servers...)
	return out
}
