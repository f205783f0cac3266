// Package mailcatcher is a local SMTP server that keeps every message it
// receives and shows them on a small web page; the local run and the tests
// use it in place of a real mail relay.
package mailcatcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/vigil-oss/vigil/internal/standin"
)

// MaxMessageBytes is the largest message the catcher accepts.
const MaxMessageBytes = 10 << 20

// maxKept bounds memory when the catcher runs for days in a local stack.
const maxKept = 1000

// ErrClosed is returned by WaitFor once the catcher is closed.
var ErrClosed = errors.New("mailcatcher: closed")

// Message is one delivered message: the SMTP envelope and the raw content.
type Message struct {
	ID         int
	From       string   // envelope sender (MAIL FROM)
	To         []string // envelope recipients (RCPT TO)
	Subject    string   // decoded Subject header
	Raw        []byte
	ReceivedAt time.Time
}

// Catcher receives mail over SMTP and serves it over HTTP.
type Catcher struct {
	logger *slog.Logger
	server *smtp.Server
	state  *standin.StateFile // nil: messages live in memory only
	// saveMu orders saves, so an older snapshot never overwrites a newer one.
	saveMu sync.Mutex

	mu        sync.Mutex
	messages  []Message
	nextID    int
	changed   chan struct{} // closed and replaced whenever a message arrives or the catcher closes
	closed    bool
	listeners []net.Listener
	refuseTmp int
	refusePrm int
	// refuseRcpt holds lower-cased addresses whose deliveries are refused.
	refuseRcpt map[string]bool
}

// New returns a Catcher that accepts any recipient and any AUTH PLAIN login.
func New(logger *slog.Logger) *Catcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Catcher{logger: logger, nextID: 1, changed: make(chan struct{})}
	s := smtp.NewServer(backend{c})
	s.Domain = "mailcatcher.localhost"
	s.MaxMessageBytes = MaxMessageBytes
	s.MaxRecipients = 100
	s.AllowInsecureAuth = true // local use only: it listens on loopback and has no TLS
	s.ReadTimeout = time.Minute
	s.WriteTimeout = time.Minute
	s.ErrorLog = slogPrinter{logger}
	c.server = s
	return c
}

// Open returns a Catcher like New that keeps its messages in the JSON file
// at path across restarts: it loads them now (a corrupt file is an error
// naming it) and rewrites the file atomically after each delivery or Clear.
func Open(path string, logger *slog.Logger) (*Catcher, error) {
	state, err := standin.OpenStateFile(path)
	if err != nil {
		return nil, fmt.Errorf("mailcatcher: %w", err)
	}
	c := New(logger)
	c.state = state
	if err := c.load(); err != nil {
		return nil, fmt.Errorf("mailcatcher: %w", err)
	}
	// Write once now, so a file that cannot be written fails at start, not at the first mail.
	if err := c.state.Save(c.snapshot()); err != nil {
		return nil, fmt.Errorf("mailcatcher: %w", err)
	}
	return c, nil
}

// ServeSMTP accepts SMTP connections on l until Close; it then returns nil.
func (c *Catcher) ServeSMTP(l net.Listener) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = l.Close()
		return nil
	}
	c.listeners = append(c.listeners, l)
	c.mu.Unlock()

	err := c.server.Serve(l)
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil
	}
	return fmt.Errorf("mailcatcher: serve smtp: %w", err)
}

// Close stops accepting mail, drops open SMTP connections and wakes WaitFor callers.
func (c *Catcher) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	listeners := c.listeners
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()

	err := c.server.Close()
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	for _, l := range listeners {
		_ = l.Close() // Serve may not have registered it yet
	}
	return err
}

// Messages returns a copy of the kept messages, oldest first.
func (c *Catcher) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Message, len(c.messages))
	for i, m := range c.messages {
		out[i] = m.clone()
	}
	return out
}

// Clear forgets every kept message.
func (c *Catcher) Clear() {
	c.mu.Lock()
	c.messages = nil
	c.mu.Unlock()
	c.save()
}

// WaitFor returns the first kept message (oldest first) that match accepts,
// waiting for new mail until ctx is done or the catcher closes.
func (c *Catcher) WaitFor(ctx context.Context, match func(Message) bool) (Message, error) {
	seen := 0 // messages with ID <= seen were already offered to match
	for {
		c.mu.Lock()
		var fresh []Message
		for _, m := range c.messages {
			if m.ID > seen {
				fresh = append(fresh, m.clone())
			}
		}
		closed, changed := c.closed, c.changed
		c.mu.Unlock()

		for _, m := range fresh {
			if match(m) {
				return m, nil
			}
			seen = m.ID
		}
		if closed {
			return Message{}, ErrClosed
		}
		select {
		case <-ctx.Done():
			return Message{}, fmt.Errorf("mailcatcher: waiting for message: %w", ctx.Err())
		case <-changed:
		}
	}
}

// Refuse makes the next temporary deliveries fail with 451 and the ones
// after those, up to permanent, with 550. It replaces earlier settings.
func (c *Catcher) Refuse(temporary, permanent int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refuseTmp, c.refusePrm = max(temporary, 0), max(permanent, 0)
}

// RefuseRecipient makes every delivery to addr fail with 450 at RCPT until
// it is called again with refuse false; other recipients are unaffected.
func (c *Catcher) RefuseRecipient(addr string, refuse bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refuseRcpt == nil {
		c.refuseRcpt = map[string]bool{}
	}
	if refuse {
		c.refuseRcpt[strings.ToLower(addr)] = true
	} else {
		delete(c.refuseRcpt, strings.ToLower(addr))
	}
}

func (c *Catcher) refusesRecipient(addr string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refuseRcpt[strings.ToLower(addr)]
}

func (c *Catcher) refusal() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.refuseTmp > 0:
		c.refuseTmp--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "mailcatcher: temporary refusal (test fault)"}
	case c.refusePrm > 0:
		c.refusePrm--
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "mailcatcher: permanent refusal (test fault)"}
	}
	return nil
}

func (c *Catcher) deliver(from string, to []string, raw []byte) {
	subject := ""
	if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		subject = decodeHeader(msg.Header.Get("Subject"))
	}
	c.mu.Lock()
	m := Message{ID: c.nextID, From: from, To: to, Subject: subject, Raw: raw, ReceivedAt: time.Now().UTC()}
	c.nextID++
	c.messages = append(c.messages, m)
	if len(c.messages) > maxKept {
		c.messages = slices.Delete(c.messages, 0, len(c.messages)-maxKept)
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	c.save()
	c.logger.Info("mail received", "id", m.ID, "from", from, "to", to, "subject", subject, "bytes", len(raw))
}

func (c *Catcher) message(id int) (Message, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.messages {
		if m.ID == id {
			return m.clone(), true
		}
	}
	return Message{}, false
}

func (m Message) clone() Message {
	m.To = slices.Clone(m.To)
	m.Raw = slices.Clone(m.Raw)
	return m
}

func decodeHeader(v string) string {
	dec := new(mime.WordDecoder)
	if s, err := dec.DecodeHeader(v); err == nil {
		return s
	}
	return v
}

type backend struct{ c *Catcher }

// NewSession starts a transaction state for one SMTP connection.
func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{c: b.c}, nil }

// session is one SMTP connection's transaction state.
type session struct {
	c    *Catcher
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

// AuthMechanisms offers PLAIN so clients configured with a login can send.
func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

// Auth accepts any login: the catcher is a local stand-in, not a gate.
func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error { return nil }), nil
}

// Mail starts a delivery, or refuses it when a Refuse setting is pending.
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if err := s.c.refusal(); err != nil {
		return err
	}
	s.from = from
	return nil
}

// Rcpt accepts any recipient but those RefuseRecipient named.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.c.refusesRecipient(to) {
		return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailcatcher: mailbox temporarily unavailable (test fault)"}
	}
	s.to = append(s.to, to)
	return nil
}

// Data keeps the message.
func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.c.deliver(s.from, slices.Clone(s.to), raw)
	return nil
}

// Reset forgets the current transaction.
func (s *session) Reset() {
	s.from = ""
	s.to = nil
}

// Logout has nothing to free.
func (s *session) Logout() error { return nil }

// slogPrinter adapts go-smtp's Printf-style error log to slog.
type slogPrinter struct{ l *slog.Logger }

// Printf logs one go-smtp error line.
func (p slogPrinter) Printf(format string, v ...any) {
	p.l.Warn("smtp server", "detail", fmt.Sprintf(format, v...))
}

// Println logs one go-smtp error line.
func (p slogPrinter) Println(v ...any) { p.l.Warn("smtp server", "detail", fmt.Sprint(v...)) }
