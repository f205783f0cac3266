package mailcatcher

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
)

// maxDepth bounds nested multiparts so a hostile message cannot recurse forever.
const maxDepth = 5

// Parts returns the decoded text/plain and text/html bodies of a raw message.
// It walks multipart/alternative (and any enclosing multipart) and undoes
// quoted-printable and base64. A single-part message yields one of the two.
func Parts(raw []byte) (text, html string, err error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return "", "", fmt.Errorf("mailcatcher: parse message: %w", err)
	}
	var p partCollector
	if err := p.walk(textproto.MIMEHeader(msg.Header), msg.Body, 0); err != nil {
		return "", "", err
	}
	if !p.haveText && !p.haveHTML {
		return "", "", errors.New("mailcatcher: message has no text/plain or text/html part")
	}
	return p.text, p.html, nil
}

type partCollector struct {
	text, html         string
	haveText, haveHTML bool
}

func (p *partCollector) walk(h textproto.MIMEHeader, body io.Reader, depth int) error {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain; charset=us-ascii"
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("mailcatcher: content type %q: %w", ct, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		if depth >= maxDepth {
			return errors.New("mailcatcher: multipart nested too deeply")
		}
		boundary := params["boundary"]
		if boundary == "" {
			return errors.New("mailcatcher: multipart without boundary")
		}
		mr := multipart.NewReader(body, boundary)
		for {
			part, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("mailcatcher: read part: %w", err)
			}
			if err := p.walk(part.Header, part, depth+1); err != nil {
				return err
			}
		}
	}
	if mediaType != "text/plain" && mediaType != "text/html" {
		return nil // attachments and other parts are not shown
	}
	if strings.EqualFold(h.Get("Content-Disposition"), "attachment") {
		return nil
	}
	decoded, err := decodeBody(h.Get("Content-Transfer-Encoding"), body)
	if err != nil {
		return err
	}
	switch {
	case mediaType == "text/plain" && !p.haveText:
		p.text, p.haveText = decoded, true
	case mediaType == "text/html" && !p.haveHTML:
		p.html, p.haveHTML = decoded, true
	}
	return nil
}

func decodeBody(encoding string, body io.Reader) (string, error) {
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "7bit", "8bit", "binary":
		r = body
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &newlineStripper{r: body})
	default:
		return "", fmt.Errorf("mailcatcher: unknown transfer encoding %q", encoding)
	}
	b, err := io.ReadAll(io.LimitReader(r, MaxMessageBytes))
	if err != nil {
		return "", fmt.Errorf("mailcatcher: decode %s body: %w", encoding, err)
	}
	return string(b), nil
}

// newlineStripper drops CR, LF, spaces and tabs, which base64 bodies carry between lines.
type newlineStripper struct{ r io.Reader }

// Read returns the next bytes with whitespace removed.
func (s *newlineStripper) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}
