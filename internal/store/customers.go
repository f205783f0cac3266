package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

// Contact is an extra email address on a customer's account.
type Contact struct {
	Email      string
	AddedAt    time.Time
	VerifiedAt *time.Time
}

// Phone is a phone number on a customer's account, in E.164 form. It ages
// like a Contact: it gets notices once added and verified long enough ago.
type Phone struct {
	Number     string
	AddedAt    time.Time
	VerifiedAt *time.Time
}

// Customer is an account as agents see it; it never carries the PIN hash.
type Customer struct {
	ID, Name, PrimaryEmail string
	// PrimaryEmailSince is when the primary became the primary; it gets
	// notices once that is longer ago than the ageing period.
	PrimaryEmailSince time.Time
	Contacts          []Contact
	// Phones are oldest first.
	Phones    []Phone
	Servers   []string
	CreatedAt time.Time
}

// CustomerImport is a customer record from the billing system, PIN hash
// included. Its String, GoString and LogValue redact the hash.
type CustomerImport struct {
	ID, Name, PrimaryEmail, PINHash string
	Contacts                        []Contact
	// Phones must be E.164 (see internal/phone); the importer validates.
	Phones  []Phone
	Servers []string
}

// String describes the import without the PIN hash.
func (c CustomerImport) String() string {
	return fmt.Sprintf("CustomerImport{ID:%q Name:%q PrimaryEmail:%q PINHash:[redacted] Contacts:%d Phones:%d Servers:%v}",
		c.ID, c.Name, c.PrimaryEmail, len(c.Contacts), len(c.Phones), c.Servers)
}

// GoString keeps %#v from printing the PIN hash.
func (c CustomerImport) GoString() string { return c.String() }

// LogValue keeps slog from printing the PIN hash.
func (c CustomerImport) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", c.ID),
		slog.String("primary_email", c.PrimaryEmail),
		slog.String("pin_hash", "[redacted]"),
		slog.Int("contacts", len(c.Contacts)),
		slog.Int("phones", len(c.Phones)),
		slog.Any("servers", c.Servers),
	)
}

// UpsertCustomer is ImportCustomer for callers that need only the error.
func (s *Store) UpsertCustomer(ctx context.Context, c CustomerImport) error {
	_, err := s.ImportCustomer(ctx, c)
	return err
}

// ImportResult says what an import changed that decides who hears about a
// request and whose server a request acts on.
type ImportResult struct {
	// Created is true when the customer was new.
	Created bool
	// PreviousPrimary is the primary address the import replaced, "" when
	// it kept it. It stays on file as a contact, as established as it was;
	// the new primary starts ageing now.
	PreviousPrimary string
	// AddedContacts are addresses new to an existing customer: they start
	// ageing now, whatever dates the import gave.
	AddedContacts []string
	// DatesKept are addresses already on file for which the import gave
	// other dates: the stored ones were kept (an unverified one the import
	// calls verified counts from the import).
	DatesKept []string
	// PINChanged is true when the import replaced an existing customer's
	// PIN hash (never the hash itself).
	PINChanged bool
	// AddedPhones and PhoneDatesKept are the same for phone numbers.
	AddedPhones, PhoneDatesKept []string
	// MovedServers are the listed servers that belonged to another customer.
	MovedServers []ServerMove
	// OpenRequests are the customer's requests open at the import, oldest
	// first: the import happened while they ran.
	OpenRequests []string
}

// ServerMove is a server an import took from another customer.
type ServerMove struct{ Server, From string }

// ErrServerBusy means an import would move a server to another customer
// while a request on it is open. It is a kind of ErrConflict; the error is a
// *ServerBusyError naming the request.
var ErrServerBusy = fmt.Errorf("%w: a request on the server is open", ErrConflict)

// ServerBusyError names the open request that keeps a server where it is.
type ServerBusyError struct {
	Server, Owner, RequestID string
	Status                   domain.Status
}

func (e *ServerBusyError) Error() string {
	return fmt.Sprintf("server %s has open request %s (%s) for customer %s; it cannot move to another customer until that request ends (withdraw or veto it first)",
		e.Server, e.RequestID, e.Status, e.Owner)
}

// Unwrap makes errors.Is match ErrServerBusy and ErrConflict.
func (e *ServerBusyError) Unwrap() error { return ErrServerBusy }

// ImportCustomer inserts the customer or updates its name, primary email
// and PIN hash, then adds its contacts and servers, all in one transaction.
// PIN lockout state is left untouched.
//
// A new customer is taken as the import describes it: billing is the
// authority on an account Vigil has never seen, and its addresses count as
// established from the dates given. An existing customer is Vigil's own
// record, and an import may not redirect its notices:
//   - a changed primary starts ageing now (primary_email_since), and the
//     old primary stays on file as a contact, as established as it was;
//   - an address already on file keeps its dates: moving them into the
//     past would establish it at once, moving them forward would silence
//     it; an unverified one the import calls verified is verified now;
//   - a new contact starts ageing now, whatever dates the import gives;
//   - nothing is removed: contacts and servers absent from c stay.
//
// A listed server that belongs to another customer moves to c, unless a
// request on it is open: then nothing changes and the error is a
// *ServerBusyError (errors.Is ErrServerBusy, ErrConflict). A move is dated
// now (see ServerArrival) and queued for the security channel
// (AlertServerMoved) in the same transaction.
func (s *Store) ImportCustomer(ctx context.Context, c CustomerImport) (ImportResult, error) {
	switch {
	case c.ID == "":
		return ImportResult{}, errors.New("store: upsert customer: empty id")
	case strings.TrimSpace(c.PrimaryEmail) == "":
		return ImportResult{}, fmt.Errorf("store: upsert customer %s: empty primary email", c.ID)
	case !strings.HasPrefix(c.PINHash, "$"):
		// Catches a plain PIN passed by mistake; the value is not echoed.
		return ImportResult{}, fmt.Errorf("store: upsert customer %s: PIN hash is not a PHC string", c.ID)
	}
	for _, ct := range c.Contacts {
		if strings.TrimSpace(ct.Email) == "" {
			return ImportResult{}, fmt.Errorf("store: upsert customer %s: empty contact email", c.ID)
		}
	}
	for _, ph := range c.Phones {
		if !e164.MatchString(ph.Number) {
			// The number is not echoed: the importer's validation names it.
			return ImportResult{}, fmt.Errorf("store: upsert customer %s: a phone number is not E.164", c.ID)
		}
	}
	for _, srv := range c.Servers {
		if srv == "" {
			return ImportResult{}, fmt.Errorf("store: upsert customer %s: empty server id", c.ID)
		}
	}
	primary := strings.TrimSpace(c.PrimaryEmail)
	var res ImportResult
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res = ImportResult{}
		err := tx.QueryRowContext(ctx, `
			INSERT INTO customers (id, name, primary_email, pin_hash) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO NOTHING RETURNING true`,
			c.ID, c.Name, primary, c.PINHash).Scan(&res.Created)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if err := updateCustomer(ctx, tx, c, primary, &res); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("customer row: %w", err)
		}
		for _, ct := range c.Contacts {
			if err := importContact(ctx, tx, c.ID, ct, &res); err != nil {
				return err
			}
		}
		for _, ph := range c.Phones {
			if err := importPhone(ctx, tx, c.ID, ph, &res); err != nil {
				return err
			}
		}
		for _, srv := range c.Servers {
			if err := importServer(ctx, tx, c.ID, srv, &res); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, `SELECT id FROM requests WHERE customer_id = $1 AND ended_at IS NULL ORDER BY created_at, id`, c.ID)
		if err != nil {
			return fmt.Errorf("open requests: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return fmt.Errorf("open requests: %w", err)
			}
			res.OpenRequests = append(res.OpenRequests, id)
		}
		return rows.Err()
	})
	if err != nil {
		return ImportResult{}, fmt.Errorf("store: upsert customer %s: %w", c.ID, err)
	}
	return res, nil
}

// updateCustomer updates an existing customer's row, holding it locked for
// the rest of the import so that imports of one customer run one at a time.
func updateCustomer(ctx context.Context, tx *sql.Tx, c CustomerImport, primary string, res *ImportResult) error {
	var (
		old, oldHash string
		since        time.Time
	)
	if err := tx.QueryRowContext(ctx, `SELECT primary_email, primary_email_since, pin_hash FROM customers WHERE id = $1 FOR UPDATE`, c.ID).
		Scan(&old, &since, &oldHash); err != nil {
		return fmt.Errorf("customer row: %w", err)
	}
	// A new PIN by import is what an admin who wants to open requests for
	// the customer would do: the audit event and its announcement say so.
	res.PINChanged = oldHash != c.PINHash
	if _, err := tx.ExecContext(ctx, `UPDATE customers SET name = $2, pin_hash = $3 WHERE id = $1`, c.ID, c.Name, c.PINHash); err != nil {
		return fmt.Errorf("customer row: %w", err)
	}
	if strings.EqualFold(old, primary) {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE customers SET primary_email = $2, primary_email_since = now() WHERE id = $1`, c.ID, primary); err != nil {
		return fmt.Errorf("primary email: %w", err)
	}
	if err := keepAsContact(ctx, tx, c.ID, old, since); err != nil {
		return fmt.Errorf("previous primary email: %w", err)
	}
	res.PreviousPrimary = old
	return nil
}

// keepAsContact keeps a replaced primary address on file as a contact,
// established from when it became the primary (or earlier, if it was a
// contact before): whoever replaced it must not silence it.
func keepAsContact(ctx context.Context, tx *sql.Tx, customerID, email string, since time.Time) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO customer_contacts AS cc (customer_id, email, added_at, verified_at) VALUES ($1, $2, $3, $3)
		ON CONFLICT (customer_id, lower(email)) DO UPDATE SET
			added_at = LEAST(cc.added_at, EXCLUDED.added_at),
			verified_at = LEAST(COALESCE(cc.verified_at, EXCLUDED.verified_at), EXCLUDED.verified_at)`,
		customerID, email, since)
	return err
}

// importContact adds one contact of the import. See ImportCustomer for
// which dates count.
func importContact(ctx context.Context, tx *sql.Tx, customerID string, ct Contact, res *ImportResult) error {
	email := strings.TrimSpace(ct.Email)
	if res.Created {
		// A contact listed twice in one import (in two letter cases) keeps
		// the first dates unless the second gives some.
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO customer_contacts AS cc (customer_id, email, added_at, verified_at)
			VALUES ($1, $2, COALESCE($3, now()), $4)
			ON CONFLICT (customer_id, lower(email)) DO UPDATE SET
				added_at = COALESCE($3, cc.added_at),
				verified_at = COALESCE($4, cc.verified_at)`,
			customerID, email, nullTime(ct.AddedAt), ptrTime(ct.VerifiedAt)); err != nil {
			return fmt.Errorf("contact: %w", err)
		}
		return nil
	}
	var (
		added    time.Time
		verified sql.NullTime
	)
	err := tx.QueryRowContext(ctx, `SELECT added_at, verified_at FROM customer_contacts WHERE customer_id = $1 AND lower(email) = lower($2)`,
		customerID, email).Scan(&added, &verified)
	if errors.Is(err, sql.ErrNoRows) {
		// New to this customer: it ages from now, as one added by a request.
		// ON CONFLICT covers a contact added by an executing request
		// meanwhile; that one's dates stand.
		res.AddedContacts = append(res.AddedContacts, email)
		_, err := tx.ExecContext(ctx, `
			INSERT INTO customer_contacts (customer_id, email, added_at, verified_at)
			VALUES ($1, $2, now(), CASE WHEN $3 THEN now() END)
			ON CONFLICT (customer_id, lower(email)) DO NOTHING`,
			customerID, email, ct.VerifiedAt != nil)
		if err != nil {
			return fmt.Errorf("contact: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("contact: %w", err)
	}
	differs := !ct.AddedAt.IsZero() && !sameInstant(ct.AddedAt, added) ||
		ct.VerifiedAt != nil && (!verified.Valid || !sameInstant(*ct.VerifiedAt, verified.Time))
	if differs {
		res.DatesKept = append(res.DatesKept, email)
	}
	if ct.VerifiedAt != nil && !verified.Valid {
		// Verified by billing just now, as far as Vigil can tell.
		if _, err := tx.ExecContext(ctx, `UPDATE customer_contacts SET verified_at = now()
			WHERE customer_id = $1 AND lower(email) = lower($2) AND verified_at IS NULL`, customerID, email); err != nil {
			return fmt.Errorf("contact: %w", err)
		}
	}
	return nil
}

// e164 is the stored form of a phone number; internal/phone validates it
// fully, this only keeps a careless caller from storing another spelling.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// importPhone adds one phone number of the import under the rules of
// importContact: a new customer's numbers take the import's dates; a number
// new to an existing customer ages from now; a number on file keeps its
// dates (an unverified one the import calls verified is verified now).
func importPhone(ctx context.Context, tx *sql.Tx, customerID string, ph Phone, res *ImportResult) error {
	if res.Created {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO customer_phones AS cp (customer_id, phone, added_at, verified_at)
			VALUES ($1, $2, COALESCE($3, now()), $4)
			ON CONFLICT (customer_id, phone) DO UPDATE SET
				added_at = COALESCE($3, cp.added_at),
				verified_at = COALESCE($4, cp.verified_at)`,
			customerID, ph.Number, nullTime(ph.AddedAt), ptrTime(ph.VerifiedAt)); err != nil {
			return fmt.Errorf("phone: %w", err)
		}
		return nil
	}
	var (
		added    time.Time
		verified sql.NullTime
	)
	err := tx.QueryRowContext(ctx, `SELECT added_at, verified_at FROM customer_phones WHERE customer_id = $1 AND phone = $2`,
		customerID, ph.Number).Scan(&added, &verified)
	if errors.Is(err, sql.ErrNoRows) {
		res.AddedPhones = append(res.AddedPhones, ph.Number)
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO customer_phones (customer_id, phone, added_at, verified_at)
			VALUES ($1, $2, now(), CASE WHEN $3 THEN now() END)
			ON CONFLICT (customer_id, phone) DO NOTHING`,
			customerID, ph.Number, ph.VerifiedAt != nil); err != nil {
			return fmt.Errorf("phone: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("phone: %w", err)
	}
	differs := !ph.AddedAt.IsZero() && !sameInstant(ph.AddedAt, added) ||
		ph.VerifiedAt != nil && (!verified.Valid || !sameInstant(*ph.VerifiedAt, verified.Time))
	if differs {
		res.PhoneDatesKept = append(res.PhoneDatesKept, ph.Number)
	}
	if ph.VerifiedAt != nil && !verified.Valid {
		if _, err := tx.ExecContext(ctx, `UPDATE customer_phones SET verified_at = now()
			WHERE customer_id = $1 AND phone = $2 AND verified_at IS NULL`, customerID, ph.Number); err != nil {
			return fmt.Errorf("phone: %w", err)
		}
	}
	return nil
}

// sameInstant compares at Postgres's precision, a microsecond.
func sameInstant(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Microsecond && d < time.Microsecond
}

// importServer gives srv to the customer, unless it belongs to another one
// with a request on it still open.
func importServer(ctx context.Context, tx *sql.Tx, customerID, srv string, res *ImportResult) error {
	var owner string
	err := tx.QueryRowContext(ctx, `SELECT customer_id FROM customer_servers WHERE server_id = $1 FOR UPDATE`, srv).Scan(&owner)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// ON CONFLICT: another import created it meanwhile; this one waits
		// for it and then moves it like any other server.
		if _, err := tx.ExecContext(ctx, `INSERT INTO customer_servers (server_id, customer_id) VALUES ($1, $2)
			ON CONFLICT (server_id) DO NOTHING`, srv, customerID); err != nil {
			return fmt.Errorf("server %s: %w", srv, err)
		}
		if err := tx.QueryRowContext(ctx, `SELECT customer_id FROM customer_servers WHERE server_id = $1 FOR UPDATE`, srv).Scan(&owner); err != nil {
			return fmt.Errorf("server %s: %w", srv, err)
		}
		if owner == customerID {
			return nil
		}
	case err != nil:
		return fmt.Errorf("server %s: %w", srv, err)
	case owner == customerID:
		return nil
	}
	var busy ServerBusyError
	var status string
	err = tx.QueryRowContext(ctx, `SELECT id, status, customer_id FROM requests WHERE server_id = $1 AND ended_at IS NULL
		ORDER BY created_at, id LIMIT 1`, srv).Scan(&busy.RequestID, &status, &busy.Owner)
	switch {
	case err == nil:
		busy.Server, busy.Status = srv, domain.Status(status)
		return &busy
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("server %s: open requests: %w", srv, err)
	}
	var at time.Time
	if err := tx.QueryRowContext(ctx, `UPDATE customer_servers SET customer_id = $2, arrived_at = now(), moved_from = $3
		WHERE server_id = $1 RETURNING arrived_at`, srv, customerID, owner).Scan(&at); err != nil {
		return fmt.Errorf("server %s: %w", srv, err)
	}
	// In the import's transaction: a move nobody hears of is the attack.
	if err := queueAlert(ctx, tx, AlertServerMoved, "", map[string]any{
		"server": srv, "from": owner, "to": customerID, "at": at.UTC().Format(time.RFC3339), "new_customer": res.Created,
	}); err != nil {
		return fmt.Errorf("server %s: %w", srv, err)
	}
	res.MovedServers = append(res.MovedServers, ServerMove{Server: srv, From: owner})
	return nil
}

// ServerArrival is a server's last move to its customer.
type ServerArrival struct {
	// At is when the import moved it, by Vigil's clock.
	At time.Time
	// From is the customer it belonged to before.
	From string
}

// ServerArrival returns when and from whom serverID moved to customerID;
// moved is false when it never moved (Vigil first saw it with this
// customer) or is not customerID's.
func (s *Store) ServerArrival(ctx context.Context, customerID, serverID string) (arr ServerArrival, moved bool, err error) {
	var at sql.NullTime
	var from sql.NullString
	err = s.db.QueryRowContext(ctx, `SELECT arrived_at, moved_from FROM customer_servers WHERE customer_id = $1 AND server_id = $2`,
		customerID, serverID).Scan(&at, &from)
	if errors.Is(err, sql.ErrNoRows) {
		return ServerArrival{}, false, nil
	}
	if err != nil {
		return ServerArrival{}, false, fmt.Errorf("store: arrival of server %s at %s: %w", serverID, customerID, err)
	}
	if !at.Valid {
		return ServerArrival{}, false, nil
	}
	return ServerArrival{At: at.Time, From: from.String}, true, nil
}

// Customer returns the customer with its contacts (oldest first) and servers
// (sorted).
func (s *Store) Customer(ctx context.Context, id string) (Customer, error) {
	c := Customer{ID: id}
	err := s.db.QueryRowContext(ctx,
		`SELECT name, primary_email, primary_email_since, created_at FROM customers WHERE id = $1`, id).
		Scan(&c.Name, &c.PrimaryEmail, &c.PrimaryEmailSince, &c.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Customer{}, fmt.Errorf("store: customer %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Customer{}, fmt.Errorf("store: customer %s: %w", id, err)
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT email, added_at, verified_at FROM customer_contacts
		WHERE customer_id = $1 ORDER BY added_at, lower(email)`, id)
	if err != nil {
		return Customer{}, fmt.Errorf("store: customer %s contacts: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var ct Contact
		var verified sql.NullTime
		if err := rows.Scan(&ct.Email, &ct.AddedAt, &verified); err != nil {
			return Customer{}, fmt.Errorf("store: customer %s contacts: %w", id, err)
		}
		ct.VerifiedAt = timePtr(verified)
		c.Contacts = append(c.Contacts, ct)
	}
	if err := rows.Err(); err != nil {
		return Customer{}, fmt.Errorf("store: customer %s contacts: %w", id, err)
	}
	prows, err := s.db.QueryContext(ctx, `
		SELECT phone, added_at, verified_at FROM customer_phones
		WHERE customer_id = $1 ORDER BY added_at, phone`, id)
	if err != nil {
		return Customer{}, fmt.Errorf("store: customer %s phones: %w", id, err)
	}
	defer prows.Close()
	for prows.Next() {
		var ph Phone
		var verified sql.NullTime
		if err := prows.Scan(&ph.Number, &ph.AddedAt, &verified); err != nil {
			return Customer{}, fmt.Errorf("store: customer %s phones: %w", id, err)
		}
		ph.VerifiedAt = timePtr(verified)
		c.Phones = append(c.Phones, ph)
	}
	if err := prows.Err(); err != nil {
		return Customer{}, fmt.Errorf("store: customer %s phones: %w", id, err)
	}
	srows, err := s.db.QueryContext(ctx,
		`SELECT server_id FROM customer_servers WHERE customer_id = $1 ORDER BY server_id`, id)
	if err != nil {
		return Customer{}, fmt.Errorf("store: customer %s servers: %w", id, err)
	}
	defer srows.Close()
	for srows.Next() {
		var srv string
		if err := srows.Scan(&srv); err != nil {
			return Customer{}, fmt.Errorf("store: customer %s servers: %w", id, err)
		}
		c.Servers = append(c.Servers, srv)
	}
	if err := srows.Err(); err != nil {
		return Customer{}, fmt.Errorf("store: customer %s servers: %w", id, err)
	}
	return c, nil
}

// EstablishedEmails returns the addresses a customer notice goes to: the
// primary email, then every contact both added and verified at least minAge
// before now, deduplicated case-insensitively and sorted. An address added
// minutes ago (perhaps by whoever is asking) is never on it.
func (s *Store) EstablishedEmails(ctx context.Context, customerID string, now time.Time, minAge time.Duration) ([]string, error) {
	var (
		primary string
		since   time.Time
	)
	err := s.db.QueryRowContext(ctx, `SELECT primary_email, primary_email_since FROM customers WHERE id = $1`, customerID).Scan(&primary, &since)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: established emails of %s: customer %s: %w", customerID, customerID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: established emails of %s: %w", customerID, err)
	}
	cutoff := now.Add(-minAge)
	rows, err := s.db.QueryContext(ctx, `
		SELECT email FROM customer_contacts
		WHERE customer_id = $1 AND verified_at IS NOT NULL AND verified_at <= $2 AND added_at <= $2`,
		customerID, cutoff)
	if err != nil {
		return nil, fmt.Errorf("store: established emails of %s: %w", customerID, err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	var out, contacts []string
	if primary != "" && !since.After(cutoff) {
		out = append(out, primary)
		seen[strings.ToLower(primary)] = true
	}
	for rows.Next() {
		var e string
		if err := rows.Scan(&e); err != nil {
			return nil, fmt.Errorf("store: established emails of %s: %w", customerID, err)
		}
		if k := strings.ToLower(e); !seen[k] {
			seen[k] = true
			contacts = append(contacts, e)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: established emails of %s: %w", customerID, err)
	}
	sort.Slice(contacts, func(i, j int) bool {
		a, b := strings.ToLower(contacts[i]), strings.ToLower(contacts[j])
		if a != b {
			return a < b
		}
		return contacts[i] < contacts[j]
	})
	return append(out, contacts...), nil
}

// EstablishedPhones returns the numbers a customer notice goes to by SMS:
// every phone both added and verified at least minAge before now, sorted. A
// number added minutes ago (perhaps by whoever is asking) is never on it. A
// missing customer is ErrNotFound.
func (s *Store) EstablishedPhones(ctx context.Context, customerID string, now time.Time, minAge time.Duration) ([]string, error) {
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM customers WHERE id = $1)`, customerID).Scan(&exists); err != nil {
		return nil, fmt.Errorf("store: established phones of %s: %w", customerID, err)
	}
	if !exists {
		return nil, fmt.Errorf("store: established phones of %s: customer %s: %w", customerID, customerID, ErrNotFound)
	}
	cutoff := now.Add(-minAge)
	rows, err := s.db.QueryContext(ctx, `
		SELECT phone FROM customer_phones
		WHERE customer_id = $1 AND verified_at IS NOT NULL AND verified_at <= $2 AND added_at <= $2
		ORDER BY phone`, customerID, cutoff)
	if err != nil {
		return nil, fmt.Errorf("store: established phones of %s: %w", customerID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("store: established phones of %s: %w", customerID, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: established phones of %s: %w", customerID, err)
	}
	return out, nil
}

// AddContact adds an unverified contact address dated at. Adding an address
// the customer already has (in any case) changes nothing.
func (s *Store) AddContact(ctx context.Context, customerID, email string, at time.Time) error {
	email = strings.TrimSpace(email)
	if email == "" {
		return fmt.Errorf("store: add contact to %s: empty email", customerID)
	}
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO customer_contacts (customer_id, email, added_at) VALUES ($1, $2, COALESCE($3, now()))
		ON CONFLICT (customer_id, lower(email)) DO NOTHING`,
		customerID, email, nullTime(at))
	if code, _ := pgCode(err); code == codeForeignKeyViolation {
		return fmt.Errorf("store: add contact: customer %s: %w", customerID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: add contact to %s: %w", customerID, err)
	}
	return nil
}

// SetPrimaryEmail changes the customer's account email.
func (s *Store) SetPrimaryEmail(ctx context.Context, customerID, email string) error {
	email = strings.TrimSpace(email)
	if email == "" {
		return fmt.Errorf("store: set primary email of %s: empty email", customerID)
	}
	// The old primary stays on file as an established contact, and the new
	// one is established only after it has aged (see EstablishedEmails).
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var (
			old   string
			since time.Time
		)
		err := tx.QueryRowContext(ctx, `SELECT primary_email, primary_email_since FROM customers WHERE id = $1 FOR UPDATE`, customerID).Scan(&old, &since)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("customer %s: %w", customerID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if strings.EqualFold(old, email) {
			return nil
		}
		if _, err := tx.ExecContext(ctx, `UPDATE customers SET primary_email = $2, primary_email_since = now() WHERE id = $1`, customerID, email); err != nil {
			return err
		}
		return keepAsContact(ctx, tx, customerID, old, since)
	})
	if err != nil {
		return fmt.Errorf("store: set primary email of %s: %w", customerID, err)
	}
	return nil
}

// ServerBelongsTo reports whether serverID is one of the customer's servers.
func (s *Store) ServerBelongsTo(ctx context.Context, customerID, serverID string) (bool, error) {
	var ok bool
	err := s.db.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM customer_servers WHERE customer_id = $1 AND server_id = $2)`,
		customerID, serverID).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("store: server %s of %s: %w", serverID, customerID, err)
	}
	return ok, nil
}
