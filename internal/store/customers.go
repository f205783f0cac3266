package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"
)

// Contact is an extra email address on a customer's account.
type Contact struct {
	Email      string
	AddedAt    time.Time
	VerifiedAt *time.Time
}

// Customer is an account as agents see it; it never carries the PIN hash.
type Customer struct {
	ID, Name, PrimaryEmail string
	Contacts               []Contact
	Servers                []string
	CreatedAt              time.Time
}

// CustomerImport is a customer record from the billing system, PIN hash
// included. Its String, GoString and LogValue redact the hash.
type CustomerImport struct {
	ID, Name, PrimaryEmail, PINHash string
	Contacts                        []Contact
	Servers                         []string
}

// String describes the import without the PIN hash.
func (c CustomerImport) String() string {
	return fmt.Sprintf("CustomerImport{ID:%q Name:%q PrimaryEmail:%q PINHash:[redacted] Contacts:%d Servers:%v}",
		c.ID, c.Name, c.PrimaryEmail, len(c.Contacts), c.Servers)
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
		slog.Any("servers", c.Servers),
	)
}

// UpsertCustomer inserts the customer or updates its name, primary email and
// PIN hash, then upserts its contacts and servers, all in one transaction.
// Contacts and servers absent from c are left in place. A contact's AddedAt
// and VerifiedAt overwrite the stored ones when set (the import is the
// authority on them); a server listed for c is moved to c. PIN lockout state
// is left untouched.
func (s *Store) UpsertCustomer(ctx context.Context, c CustomerImport) error {
	switch {
	case c.ID == "":
		return errors.New("store: upsert customer: empty id")
	case strings.TrimSpace(c.PrimaryEmail) == "":
		return fmt.Errorf("store: upsert customer %s: empty primary email", c.ID)
	case !strings.HasPrefix(c.PINHash, "$"):
		// Catches a plain PIN passed by mistake; the value is not echoed.
		return fmt.Errorf("store: upsert customer %s: PIN hash is not a PHC string", c.ID)
	}
	for _, ct := range c.Contacts {
		if strings.TrimSpace(ct.Email) == "" {
			return fmt.Errorf("store: upsert customer %s: empty contact email", c.ID)
		}
	}
	for _, srv := range c.Servers {
		if srv == "" {
			return fmt.Errorf("store: upsert customer %s: empty server id", c.ID)
		}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO customers (id, name, primary_email, pin_hash) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,
				primary_email = EXCLUDED.primary_email, pin_hash = EXCLUDED.pin_hash`,
			c.ID, c.Name, strings.TrimSpace(c.PrimaryEmail), c.PINHash); err != nil {
			return fmt.Errorf("customer row: %w", err)
		}
		for _, ct := range c.Contacts {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO customer_contacts (customer_id, email, added_at, verified_at)
				VALUES ($1, $2, COALESCE($3, now()), $4)
				ON CONFLICT (customer_id, lower(email)) DO UPDATE SET
					added_at = COALESCE($3, customer_contacts.added_at),
					verified_at = COALESCE($4, customer_contacts.verified_at)`,
				c.ID, strings.TrimSpace(ct.Email), nullTime(ct.AddedAt), ptrTime(ct.VerifiedAt)); err != nil {
				return fmt.Errorf("contact: %w", err)
			}
		}
		for _, srv := range c.Servers {
			if _, err := tx.ExecContext(ctx, `
				INSERT INTO customer_servers (server_id, customer_id) VALUES ($1, $2)
				ON CONFLICT (server_id) DO UPDATE SET customer_id = EXCLUDED.customer_id`,
				srv, c.ID); err != nil {
				return fmt.Errorf("server %s: %w", srv, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: upsert customer %s: %w", c.ID, err)
	}
	return nil
}

// Customer returns the customer with its contacts (oldest first) and servers
// (sorted).
func (s *Store) Customer(ctx context.Context, id string) (Customer, error) {
	c := Customer{ID: id}
	err := s.db.QueryRowContext(ctx,
		`SELECT name, primary_email, created_at FROM customers WHERE id = $1`, id).
		Scan(&c.Name, &c.PrimaryEmail, &c.CreatedAt)
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
		_, err = tx.ExecContext(ctx, `
			INSERT INTO customer_contacts (customer_id, email, added_at, verified_at)
			VALUES ($1, $2, $3, $3) ON CONFLICT DO NOTHING`, customerID, old, since)
		return err
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
