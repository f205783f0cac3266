package mail

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/mailcatcher"
)

func startCatcher(t *testing.T) (*mailcatcher.Catcher, string) {
	t.Helper()
	c := mailcatcher.New(nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.ServeSMTP(l) }()
	t.Cleanup(func() {
		_ = c.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeSMTP: %v", err)
		}
	})
	return c, l.Addr().String()
}

func newSender(t *testing.T, cfg SMTPConfig) *Sender {
	t.Helper()
	s, err := NewSender(cfg)
	if err != nil {
		t.Fatalf("NewSender(%s): %v", cfg, err)
	}
	return s
}

func testMessage(t *testing.T) Message {
	t.Helper()
	subject, text, html, err := RenderNotice(noticeData(domain.ActionReinstallVPS))
	if err != nil {
		t.Fatalf("RenderNotice: %v", err)
	}
	return Message{
		To:      []string{"Ada Lovelace <ada@example.com>", "ops@example.com"},
		Subject: subject, Text: text, HTML: html,
		Headers: map[string]string{"X-Vigil-Request": "req-42"},
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSendDeliversMultipart(t *testing.T) {
	catcher, addr := startCatcher(t)
	for _, tc := range []struct {
		name     string
		username string
	}{{"no auth", ""}, {"auth plain", "vigil"}} {
		t.Run(tc.name, func(t *testing.T) {
			pw := ""
			if tc.username != "" {
				pw = "relay-password"
			}
			s := newSender(t, SMTPConfig{Addr: addr, From: "Acme Hosting <notices@acme.example>", Username: tc.username, Password: pw, HeloName: "vigil.test"})
			m := testMessage(t)
			start := time.Now()
			if err := s.Send(ctx(t), m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got, err := catcher.WaitFor(ctx(t), func(mailcatcher.Message) bool { return true })
			if err != nil {
				t.Fatalf("WaitFor: %v", err)
			}
			catcher.Clear()

			if got.From != "notices@acme.example" || strings.Join(got.To, ",") != "ada@example.com,ops@example.com" {
				t.Errorf("envelope from %q to %v", got.From, got.To)
			}
			msg, err := netmail.ReadMessage(strings.NewReader(string(got.Raw)))
			if err != nil {
				t.Fatalf("parse delivered message: %v", err)
			}
			h := msg.Header
			dec := new(mime.WordDecoder)
			subject, err := dec.DecodeHeader(h.Get("Subject"))
			if err != nil || subject != m.Subject {
				t.Errorf("Subject = %q (%v), want %q", subject, err, m.Subject)
			}
			if h.Get("From") != `"Acme Hosting" <notices@acme.example>` {
				t.Errorf("From = %q", h.Get("From"))
			}
			to, err := h.AddressList("To")
			if err != nil || len(to) != 2 || to[0].Address != "ada@example.com" || to[0].Name != "Ada Lovelace" {
				t.Errorf("To = %v (%v)", to, err)
			}
			date, err := h.Date()
			if err != nil || date.Before(start.Add(-time.Second)) || date.After(time.Now().Add(time.Second)) {
				t.Errorf("Date = %v (%v)", date, err)
			}
			if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@acme.example>") {
				t.Errorf("Message-ID = %q", id)
			}
			if h.Get("MIME-Version") != "1.0" || h.Get("X-Vigil-Request") != "req-42" {
				t.Errorf("MIME-Version %q, X-Vigil-Request %q", h.Get("MIME-Version"), h.Get("X-Vigil-Request"))
			}
			mediaType, params, err := mime.ParseMediaType(h.Get("Content-Type"))
			if err != nil || mediaType != "multipart/alternative" {
				t.Fatalf("Content-Type = %q (%v)", h.Get("Content-Type"), err)
			}
			mr := multipart.NewReader(msg.Body, params["boundary"])
			wantParts := []struct{ ctype, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}}
			for i := range wantParts {
				raw, err := mr.NextRawPart()
				if err != nil {
					t.Fatalf("part %d: %v", i, err)
				}
				if cte := raw.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
					t.Errorf("part %d encoding %q, want quoted-printable", i, cte)
				}
				encoded, _ := io.ReadAll(raw)
				for _, line := range strings.Split(string(encoded), "\r\n") {
					if len(line) > 76 {
						t.Errorf("part %d has a %d-character line", i, len(line))
					}
				}
			}
			// NextPart decodes quoted-printable itself.
			mr = multipart.NewReader(strings.NewReader(string(got.Raw[strings.Index(string(got.Raw), "\r\n\r\n")+4:])), params["boundary"])
			for i, want := range wantParts {
				p, err := mr.NextPart()
				if err != nil {
					t.Fatalf("part %d: %v", i, err)
				}
				ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
				body, _ := io.ReadAll(p)
				if ct != want.ctype || strings.ReplaceAll(string(body), "\r\n", "\n") != want.body {
					t.Errorf("part %d: type %q, body matches %v", i, ct, string(body) == want.body)
				}
				if !strings.Contains(string(body), testCancelURL) {
					t.Errorf("part %d lacks the cancel URL", i)
				}
			}
			if _, err := mr.NextPart(); !errors.Is(err, io.EOF) {
				t.Errorf("more than two parts: %v", err)
			}
		})
	}
}

func TestSendRefusals(t *testing.T) {
	catcher, addr := startCatcher(t)
	s := newSender(t, SMTPConfig{Addr: addr, From: "notices@acme.example"})

	catcher.Refuse(1, 0)
	err := s.Send(ctx(t), testMessage(t))
	if err == nil || IsPermanent(err) {
		t.Fatalf("451 refusal: err %v, IsPermanent %v; want a temporary error", err, IsPermanent(err))
	}
	catcher.Refuse(0, 1)
	err = s.Send(ctx(t), testMessage(t))
	var pe *PermanentError
	if !errors.As(err, &pe) || !IsPermanent(err) || pe.Code != 550 {
		t.Fatalf("550 refusal: err %v, want *PermanentError with code 550", err)
	}
	if n := len(catcher.Messages()); n != 0 {
		t.Fatalf("%d messages delivered despite refusals", n)
	}
	if err := s.Send(ctx(t), testMessage(t)); err != nil {
		t.Fatalf("Send after refusals: %v", err)
	}
}

func TestSendNetworkErrorsAreTemporary(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s := newSender(t, SMTPConfig{Addr: addr, From: "notices@acme.example"})
	err = s.Send(ctx(t), testMessage(t))
	if err == nil || IsPermanent(err) {
		t.Fatalf("connection refused: err %v, IsPermanent %v", err, IsPermanent(err))
	}
}

func TestSendHonoursContext(t *testing.T) {
	// A server that accepts and then says nothing: only the deadline ends the wait.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	var conns sync.WaitGroup
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() { defer conns.Done(); _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	s := newSender(t, SMTPConfig{Addr: l.Addr().String(), From: "notices@acme.example", Timeout: time.Minute})

	t.Run("deadline", func(t *testing.T) {
		c, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := s.Send(c, testMessage(t))
		if !errors.Is(err, context.DeadlineExceeded) || IsPermanent(err) {
			t.Fatalf("Send = %v, want a temporary deadline error", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Send took %v despite a 200ms deadline", d)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		c, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		err := s.Send(c, testMessage(t))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %v, want context.Canceled", err)
		}
	})
	t.Run("config timeout", func(t *testing.T) {
		s := newSender(t, SMTPConfig{Addr: l.Addr().String(), From: "notices@acme.example", Timeout: 200 * time.Millisecond})
		start := time.Now()
		err := s.Send(context.Background(), testMessage(t))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) > 5*time.Second {
			t.Fatalf("Send = %v after %v, want a timeout", err, time.Since(start))
		}
	})
	l.Close()
	conns.Wait()
}

// TestStableMessageID: a caller-chosen ID gives the same Message-ID on every
// send, so a resend is recognisably the same message.
func TestStableMessageID(t *testing.T) {
	catcher, addr := startCatcher(t)
	s := newSender(t, SMTPConfig{Addr: addr, From: "notices@acme.example"})
	for range 2 {
		m := testMessage(t)
		m.ID = "credentials.req_abc123"
		if err := s.Send(ctx(t), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Send(ctx(t), testMessage(t)); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range catcher.Messages() {
		msg, err := netmail.ReadMessage(strings.NewReader(string(m.Raw)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, msg.Header.Get("Message-ID"))
	}
	if len(ids) != 3 || ids[0] != "<credentials.req_abc123@acme.example>" || ids[1] != ids[0] || ids[2] == ids[0] || !strings.HasSuffix(ids[2], "@acme.example>") {
		t.Fatalf("Message-IDs %q: want the stable one twice, then a random one", ids)
	}
}

func TestSendRefusesHeaderInjection(t *testing.T) {
	catcher, addr := startCatcher(t)
	s := newSender(t, SMTPConfig{Addr: addr, From: "notices@acme.example"})
	tests := []struct {
		name string
		mod  func(*Message)
	}{
		{"subject CRLF", func(m *Message) { m.Subject = "Hello\r\nBcc: victim@example.com" }},
		{"subject LF", func(m *Message) { m.Subject = "Hello\nBcc: victim@example.com" }},
		{"subject CR", func(m *Message) { m.Subject = "Hello\rBcc: victim@example.com" }},
		{"recipient with newline", func(m *Message) { m.To = []string{"ada@example.com\r\nBcc: victim@example.com"} }},
		{"from with newline", func(m *Message) { m.From = "a@example.com\nBcc: victim@example.com" }},
		{"header value newline", func(m *Message) { m.Headers = map[string]string{"X-Vigil": "a\r\nBcc: victim@example.com"} }},
		{"header name colon", func(m *Message) { m.Headers = map[string]string{"Bcc: victim@example.com\r\nX": "a"} }},
		{"override Bcc", func(m *Message) { m.Headers = map[string]string{"bcc": "victim@example.com"} }},
		{"override Content-Type", func(m *Message) { m.Headers = map[string]string{"Content-Type": "text/plain"} }},
		{"invalid recipient", func(m *Message) { m.To = []string{"not an address"} }},
		{"no recipients", func(m *Message) { m.To = nil }},
		{"no HTML", func(m *Message) { m.HTML = "" }},
		{"message id with angle bracket", func(m *Message) { m.ID = "a>\r\nBcc: victim@example.com" }},
		{"message id with at sign", func(m *Message) { m.ID = "a@evil.example" }},
		{"message id with space", func(m *Message) { m.ID = "credentials req" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMessage(t)
			tt.mod(&m)
			if err := s.Send(ctx(t), m); err == nil {
				t.Fatalf("Send accepted %s", tt.name)
			}
		})
	}
	if n := len(catcher.Messages()); n != 0 {
		t.Fatalf("%d messages delivered despite refused input", n)
	}
}

func TestNewSenderValidates(t *testing.T) {
	tests := []struct {
		name string
		cfg  SMTPConfig
	}{
		{"no port", SMTPConfig{Addr: "127.0.0.1", From: "a@example.com"}},
		{"bad from", SMTPConfig{Addr: "127.0.0.1:25", From: "nope"}},
		{"from newline", SMTPConfig{Addr: "127.0.0.1:25", From: "a@example.com\r\nX: y"}},
		{"password without user", SMTPConfig{Addr: "127.0.0.1:25", From: "a@example.com", Password: "x"}},
		{"helo newline", SMTPConfig{Addr: "127.0.0.1:25", From: "a@example.com", HeloName: "a\r\nb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewSender(tt.cfg); err == nil {
				t.Fatalf("NewSender(%s) succeeded", tt.cfg)
			}
		})
	}
}

// tlsBackend is a go-smtp backend for the STARTTLS tests: it records whether
// each delivery came over TLS and can reject AUTH.
type tlsBackend struct {
	mu        sync.Mutex
	delivered []bool // TLS state per delivered message
	authFails atomic.Bool
}

func (b *tlsBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &tlsSession{b: b, c: c}, nil
}

type tlsSession struct {
	b *tlsBackend
	c *smtp.Conn
}

func (s *tlsSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *tlsSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, _, _ string) error {
		if s.b.authFails.Load() {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "authentication failed"}
		}
		return nil
	}), nil
}
func (s *tlsSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *tlsSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *tlsSession) Data(r io.Reader) error {
	_, _ = io.Copy(io.Discard, r)
	_, isTLS := s.c.TLSConnectionState()
	s.b.mu.Lock()
	s.b.delivered = append(s.b.delivered, isTLS)
	s.b.mu.Unlock()
	return nil
}
func (s *tlsSession) Reset()        {}
func (s *tlsSession) Logout() error { return nil }

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("cert: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse cert: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func startTLSServer(t *testing.T, be *tlsBackend, cert tls.Certificate) string {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Domain = "127.0.0.1"
	srv.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-certificate case logs a handshake error
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

func TestSendSTARTTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	be := &tlsBackend{}
	addr := startTLSServer(t, be, cert)

	s := newSender(t, SMTPConfig{Addr: addr, From: "notices@acme.example", Username: "vigil", Password: "relay-secret", RequireTLS: true, RootCAs: pool})
	if err := s.Send(ctx(t), testMessage(t)); err != nil {
		t.Fatalf("Send over STARTTLS: %v", err)
	}
	be.mu.Lock()
	delivered := append([]bool(nil), be.delivered...)
	be.mu.Unlock()
	if len(delivered) != 1 || !delivered[0] {
		t.Fatalf("deliveries (TLS per message) = %v, want [true]", delivered)
	}

	// An untrusted certificate is an error, never a silent fallback to plain text.
	untrusted := newSender(t, SMTPConfig{Addr: addr, From: "notices@acme.example"})
	if err := untrusted.Send(ctx(t), testMessage(t)); err == nil {
		t.Fatal("Send trusted a self-signed certificate without RootCAs")
	}

	// A 535 on AUTH is permanent, and the error does not carry the password.
	be.authFails.Store(true)
	err := s.Send(ctx(t), testMessage(t))
	if !IsPermanent(err) || strings.Contains(err.Error(), "relay-secret") {
		t.Fatalf("auth failure: %v (permanent %v)", err, IsPermanent(err))
	}
}

func TestSendRequireTLSWithoutSTARTTLS(t *testing.T) {
	catcher, addr := startCatcher(t) // the catcher offers no STARTTLS
	s := newSender(t, SMTPConfig{Addr: addr, From: "notices@acme.example", RequireTLS: true})
	err := s.Send(ctx(t), testMessage(t))
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("Send = %v, want an error about missing STARTTLS", err)
	}
	if n := len(catcher.Messages()); n != 0 {
		t.Fatalf("%d messages delivered without TLS", n)
	}
}
