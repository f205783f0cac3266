package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"time"
)

const defaultTimeout = 30 * time.Second

// SMTPConfig says how to reach the relay.
type SMTPConfig struct {
	Addr       string // host:port
	From       string // envelope sender and default From header
	Username   string // AUTH PLAIN only when set
	Password   string
	HeloName   string        // name sent in EHLO; empty means "localhost"
	Timeout    time.Duration // whole-conversation limit when ctx has no earlier deadline; 0 means 30s
	RequireTLS bool          // refuse to send when the relay does not offer STARTTLS
	RootCAs    *x509.CertPool
}

// String describes the config without the password.
func (c SMTPConfig) String() string {
	pw := ""
	if c.Password != "" {
		pw = "[redacted]"
	}
	return fmt.Sprintf("SMTPConfig{Addr:%s From:%s Username:%s Password:%s HeloName:%s Timeout:%s RequireTLS:%t}",
		c.Addr, c.From, c.Username, pw, c.HeloName, c.Timeout, c.RequireTLS)
}

// GoString keeps the password out of %#v output.
func (c SMTPConfig) GoString() string { return c.String() }

// LogValue keeps the password out of slog output.
func (c SMTPConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr), slog.String("from", c.From), slog.String("username", c.Username),
		slog.Bool("password_set", c.Password != ""), slog.Bool("require_tls", c.RequireTLS))
}

// PermanentError is a 5xx SMTP reply: the relay refused the message and
// sending it again will not help.
type PermanentError struct {
	Code int    // SMTP reply code, 500..599
	Msg  string // the relay's reply text
	Op   string // the SMTP step that was refused, e.g. "RCPT"
}

// Error names the refused step and the relay's reply.
func (e *PermanentError) Error() string {
	return fmt.Sprintf("mail: relay refused %s permanently: %d %s", e.Op, e.Code, e.Msg)
}

// IsPermanent reports whether err (or anything it wraps) is a PermanentError.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// Sender delivers messages through one SMTP relay.
type Sender struct {
	cfg  SMTPConfig
	host string
	from string // bare envelope address
}

// NewSender checks cfg and returns a Sender.
func NewSender(cfg SMTPConfig) (*Sender, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("mail: SMTP address %q must be host:port", cfg.Addr)
	}
	from, err := parseAddress("from", cfg.From)
	if err != nil {
		return nil, err
	}
	if err := headerValue("helo name", cfg.HeloName); err != nil {
		return nil, err
	}
	if cfg.Username == "" && cfg.Password != "" {
		return nil, errors.New("mail: SMTP password set without a username")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	return &Sender{cfg: cfg, host: host, from: from.Address}, nil
}

// Send delivers m. Errors are *PermanentError for 5xx replies and plain
// wrapped (retryable) errors for 4xx replies, network failures and timeouts.
func (s *Sender) Send(ctx context.Context, m Message) error {
	b, err := build(m, s.cfg.From, time.Now())
	if err != nil {
		return err
	}
	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	dialer := net.Dialer{Deadline: deadline}
	conn, err := dialer.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("mail: connect to %s: %w", s.cfg.Addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("mail: set deadline: %w", err)
	}
	// Cancelling ctx unblocks any read or write in progress.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	err = s.converse(conn, b)
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("mail: send to %s: %w (%w)", s.cfg.Addr, cerr, err)
	}
	// The connection deadline can fire a moment before ctx notices its own.
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return fmt.Errorf("mail: send to %s: %w (%w)", s.cfg.Addr, context.DeadlineExceeded, err)
	}
	return err
}

func (s *Sender) converse(conn net.Conn, b built) error {
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return classify("greeting", err)
	}
	defer c.Close()
	helo := s.cfg.HeloName
	if helo == "" {
		helo = "localhost"
	}
	if err := c.Hello(helo); err != nil {
		return classify("EHLO", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: s.host, RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12}); err != nil {
			return classify("STARTTLS", err)
		}
	} else if s.cfg.RequireTLS {
		return fmt.Errorf("mail: relay %s does not offer STARTTLS and TLS is required", s.cfg.Addr)
	}
	if s.cfg.Username != "" {
		// net/smtp's PlainAuth itself refuses to send the password unencrypted except to localhost.
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.host)); err != nil {
			return classify("AUTH", err)
		}
	}
	if err := c.Mail(s.from); err != nil {
		return classify("MAIL", err)
	}
	for _, r := range b.recipients {
		if err := c.Rcpt(r); err != nil {
			return classify("RCPT", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return classify("DATA", err)
	}
	if _, err := w.Write(b.data); err != nil {
		return classify("DATA", err)
	}
	if err := w.Close(); err != nil {
		return classify("DATA", err)
	}
	// The relay accepted the message at the end of DATA; a failed QUIT does not undo that.
	_ = c.Quit()
	return nil
}

// classify turns a 5xx reply into a PermanentError and wraps everything else.
func classify(op string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) && te.Code >= 500 && te.Code < 600 {
		return &PermanentError{Code: te.Code, Msg: te.Msg, Op: op}
	}
	return fmt.Errorf("mail: %s: %w", op, err)
}
