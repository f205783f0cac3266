// Package mail sends Vigil's customer emails over SMTP and renders them
// (cancel-link notices, outcomes, server credentials) from embedded templates.
package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Message is one email with a plain-text and an HTML alternative.
type Message struct {
	From    string   // header From; empty means the sender's configured From
	To      []string // recipients, each a bare or named address
	Subject string
	Text    string
	HTML    string
	Headers map[string]string // extra headers, e.g. "X-Vigil-Request"; may not override the structural ones
	// ID, if set, is the left part of a stable Message-ID: a resend after an
	// ambiguous failure carries the same Message-ID, which mail systems
	// that deduplicate recognise. Empty means a random one.
	ID string
}

// reservedHeaders are written by build and cannot be set through Message.Headers.
var reservedHeaders = map[string]bool{
	"From": true, "To": true, "Cc": true, "Bcc": true, "Subject": true, "Date": true,
	"Message-Id": true, "Mime-Version": true, "Content-Type": true,
	"Content-Transfer-Encoding": true, "Sender": true, "Return-Path": true,
}

// built is a validated message ready for the SMTP envelope.
type built struct {
	recipients []string // bare addresses for RCPT TO
	data       []byte
}

// build validates m and renders it as RFC 5322 bytes with CRLF line endings.
func build(m Message, defaultFrom string, now time.Time) (built, error) {
	fromHeader := m.From
	if fromHeader == "" {
		fromHeader = defaultFrom
	}
	from, err := parseAddress("from", fromHeader)
	if err != nil {
		return built{}, err
	}
	if len(m.To) == 0 {
		return built{}, errors.New("mail: no recipients")
	}
	to := make([]*mail.Address, 0, len(m.To))
	recipients := make([]string, 0, len(m.To))
	for _, raw := range m.To {
		a, err := parseAddress("to", raw)
		if err != nil {
			return built{}, err
		}
		to = append(to, a)
		recipients = append(recipients, a.Address)
	}
	if err := headerValue("subject", m.Subject); err != nil {
		return built{}, err
	}
	if m.Text == "" || m.HTML == "" {
		return built{}, errors.New("mail: both a text and an HTML body are required")
	}
	names := make([]string, 0, len(m.Headers))
	for name, value := range m.Headers {
		if !validHeaderName(name) {
			return built{}, fmt.Errorf("mail: invalid header name %q", name)
		}
		if reservedHeaders[textproto.CanonicalMIMEHeaderKey(name)] {
			return built{}, fmt.Errorf("mail: header %s is set by the sender and cannot be overridden", name)
		}
		if err := headerValue(name, value); err != nil {
			return built{}, err
		}
		names = append(names, name)
	}
	slices.Sort(names)

	var buf bytes.Buffer
	writeHeader := func(name, value string) { fmt.Fprintf(&buf, "%s: %s\r\n", name, value) }
	writeHeader("From", from.String())
	toList := make([]string, len(to))
	for i, a := range to {
		toList[i] = a.String()
	}
	writeHeader("To", strings.Join(toList, ", "))
	writeHeader("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	writeHeader("Date", now.Format(time.RFC1123Z))
	id, err := messageID(m.ID, from.Address)
	if err != nil {
		return built{}, err
	}
	writeHeader("Message-ID", id)
	writeHeader("MIME-Version", "1.0")
	for _, name := range names {
		writeHeader(textproto.CanonicalMIMEHeaderKey(name), mime.QEncoding.Encode("utf-8", m.Headers[name]))
	}

	mw := multipart.NewWriter(&buf)
	writeHeader("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	buf.WriteString("\r\n")
	for _, p := range []struct{ ctype, body string }{
		{"text/plain; charset=utf-8", m.Text},
		{"text/html; charset=utf-8", m.HTML},
	} {
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.ctype},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return built{}, fmt.Errorf("mail: write part: %w", err)
		}
		qp := quotedprintable.NewWriter(pw)
		if _, err := qp.Write([]byte(crlf(p.body))); err != nil {
			return built{}, fmt.Errorf("mail: encode part: %w", err)
		}
		if err := qp.Close(); err != nil {
			return built{}, fmt.Errorf("mail: encode part: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return built{}, fmt.Errorf("mail: close multipart: %w", err)
	}
	return built{recipients: recipients, data: buf.Bytes()}, nil
}

func parseAddress(field, s string) (*mail.Address, error) {
	if err := headerValue(field, s); err != nil {
		return nil, err
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("mail: invalid %s address %q: %w", field, s, err)
	}
	return a, nil
}

// headerValue refuses CR, LF and other control characters, which would let a
// value start a new header or end the header block.
func headerValue(field, v string) error {
	for _, r := range v {
		if r == '\r' || r == '\n' || r < ' ' && r != '\t' || r == 0x7f {
			return fmt.Errorf("mail: %s contains a control character", field)
		}
	}
	return nil
}

func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c > '~' || c == ':' {
			return false
		}
	}
	return true
}

func messageID(left, fromAddr string) (string, error) {
	if left == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("mail: message id: %w", err)
		}
		left = hex.EncodeToString(b[:])
	} else if !stableID.MatchString(left) {
		return "", fmt.Errorf("mail: message id %q: use 1-200 letters, digits, dots, dashes and underscores", left)
	}
	domain := "vigil.localhost"
	if at := strings.LastIndexByte(fromAddr, '@'); at >= 0 && at < len(fromAddr)-1 {
		domain = fromAddr[at+1:]
	}
	return "<" + left + "@" + domain + ">", nil
}

// stableID is what a caller-chosen Message-ID left part may hold: the dot-atom
// subset that needs no quoting.
var stableID = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// crlf normalises line endings so quoted-printable emits CRLF hard breaks.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}
