package mailcatcher

import (
	"bytes"
	"encoding/json"
	stdhtml "html"
	"html/template"
	"io"
	"net/http"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// contentSecurityPolicy lets pages (and the sandboxed message frame, which
// inherits it) use inline styles and data: images only: no scripts, no
// remote fetches, no forms.
const contentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// apiMessage is one entry of GET /api/messages.
type apiMessage struct {
	ID         int       `json:"id"`
	From       string    `json:"from"`
	To         []string  `json:"to"`
	Subject    string    `json:"subject"`
	ReceivedAt time.Time `json:"received_at"`
	Text       string    `json:"text"`
	HTML       string    `json:"html"`
}

// Handler serves the web page and JSON API:
//
//	GET    /                  list page, newest first
//	GET    /messages/{id}     headers, text part, HTML part in a sandboxed iframe
//	GET    /messages/{id}.eml the raw message
//	GET    /api/messages      JSON [{id,from,to,subject,received_at,text,html}], oldest first
//	DELETE /api/messages      forget every message
//	POST   /api/refuse        {"temporary":n} and/or {"permanent":n}: fail the next deliveries with 451 / 550
//	POST   /api/refuse-recipient {"recipient":"a@b","refuse":true|false}: refuse (450) or accept again one address
func (c *Catcher) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.listPage)
	mux.HandleFunc("GET /messages/{id}", c.messagePage)
	mux.HandleFunc("GET /api/messages", c.apiList)
	mux.HandleFunc("DELETE /api/messages", c.apiClear)
	mux.HandleFunc("POST /api/refuse", c.apiRefuse)
	mux.HandleFunc("POST /api/refuse-recipient", c.apiRefuseRecipient)
	return securityHeaders(mux)
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// humanTime is how the pages show a time, as Vigil's messages do: "2026-12-03 14:05:09 UTC".
func humanTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

var pageTemplates = template.Must(template.New("layout").Funcs(template.FuncMap{"human": humanTime}).Parse(`{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.}} · mailcatcher</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}
pre{white-space:pre-wrap;background:#f6f6f6;padding:1rem;border:1px solid #ddd}
iframe{width:100%;height:36rem;border:1px solid #ddd}
.muted{color:#666}
</style></head><body>{{end}}
{{define "list"}}{{template "head" "Messages"}}
<h1>Messages</h1>
{{if .}}<table><thead><tr><th>#</th><th>Received</th><th>From</th><th>To</th><th>Subject</th></tr></thead><tbody>
{{range .}}<tr><td>{{.ID}}</td><td class="muted">{{human .ReceivedAt}}</td><td>{{.From}}</td><td>{{range $i, $t := .To}}{{if $i}}, {{end}}{{$t}}{{end}}</td>
<td><a href="/messages/{{.ID}}">{{if .Subject}}{{.Subject}}{{else}}(no subject){{end}}</a></td></tr>
{{end}}</tbody></table>{{else}}<p class="muted">No messages yet.</p>{{end}}
</body></html>{{end}}
{{define "message"}}{{template "head" .Subject}}
<p><a href="/">&larr; all messages</a> · <a href="/messages/{{.ID}}.eml">raw .eml</a></p>
<h1>{{if .Subject}}{{.Subject}}{{else}}(no subject){{end}}</h1>
<table>
<tr><th>Envelope from</th><td>{{.From}}</td></tr>
<tr><th>Envelope to</th><td>{{range $i, $t := .To}}{{if $i}}, {{end}}{{$t}}{{end}}</td></tr>
<tr><th>Received</th><td>{{human .ReceivedAt}}</td></tr>
{{range .Headers}}<tr><th>{{.Name}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
{{if .ParseError}}<p>Could not decode the body: {{.ParseError}}</p>{{end}}
{{if .HTML}}<h2>HTML part</h2>
<iframe sandbox srcdoc="{{.HTML}}" title="HTML part"></iframe>
{{if .Links}}<h3>Links in the HTML part</h3><ul>{{range .Links}}<li><a href="{{.}}" rel="noreferrer noopener" target="_blank">{{.}}</a></li>{{end}}</ul>{{end}}
{{end}}
{{if .Text}}<h2>Text part</h2><pre>{{.Text}}</pre>{{end}}
</body></html>{{end}}`))

type headerLine struct{ Name, Value string }

type messageView struct {
	Message
	Headers    []headerLine
	Text, HTML string
	Links      []string
	ParseError string
}

func (c *Catcher) listPage(w http.ResponseWriter, _ *http.Request) {
	msgs := c.Messages()
	slices.Reverse(msgs)
	render(w, "list", msgs)
}

var hrefPattern = regexp.MustCompile(`(?i)href\s*=\s*"([^"]*)"`)

func (c *Catcher) messagePage(w http.ResponseWriter, r *http.Request) {
	idText := r.PathValue("id")
	raw := strings.HasSuffix(idText, ".eml")
	id, err := strconv.Atoi(strings.TrimSuffix(idText, ".eml"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	m, ok := c.message(id)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if raw {
		w.Header().Set("Content-Type", "message/rfc822")
		w.Header().Set("Content-Disposition", `attachment; filename="message-`+strconv.Itoa(id)+`.eml"`)
		_, _ = w.Write(m.Raw)
		return
	}
	v := messageView{Message: m}
	if parsed, err := mail.ReadMessage(bytes.NewReader(m.Raw)); err == nil {
		for _, name := range []string{"From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"} {
			if val := parsed.Header.Get(name); val != "" {
				v.Headers = append(v.Headers, headerLine{name, decodeHeader(val)})
			}
		}
	}
	if text, html, err := Parts(m.Raw); err != nil {
		v.ParseError = err.Error()
	} else {
		v.Text, v.HTML = text, html
		for _, match := range hrefPattern.FindAllStringSubmatch(html, -1) {
			link := stdhtml.UnescapeString(match[1])
			if strings.HasPrefix(link, "http://") || strings.HasPrefix(link, "https://") || strings.HasPrefix(link, "mailto:") {
				v.Links = append(v.Links, link)
			}
		}
	}
	render(w, "message", v)
}

func render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTemplates.ExecuteTemplate(w, name, data); err != nil {
		// Headers are gone by now; the truncated page is the best signal left.
		_, _ = io.WriteString(w, "\n<!-- render error -->")
	}
}

func (c *Catcher) apiList(w http.ResponseWriter, _ *http.Request) {
	msgs := c.Messages()
	out := make([]apiMessage, 0, len(msgs))
	for _, m := range msgs {
		text, html, _ := Parts(m.Raw)
		to := m.To
		if to == nil {
			to = []string{}
		}
		out = append(out, apiMessage{ID: m.ID, From: m.From, To: to, Subject: m.Subject, ReceivedAt: m.ReceivedAt, Text: text, HTML: html})
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Catcher) apiClear(w http.ResponseWriter, _ *http.Request) {
	c.Clear()
	w.WriteHeader(http.StatusNoContent)
}

func (c *Catcher) apiRefuse(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Temporary int `json:"temporary"`
		Permanent int `json:"permanent"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Temporary < 0 || req.Permanent < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"temporary":n} and/or {"permanent":n} with n >= 0`})
		return
	}
	c.Refuse(req.Temporary, req.Permanent)
	writeJSON(w, http.StatusOK, req)
}

func (c *Catcher) apiRefuseRecipient(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Recipient string `json:"recipient"`
		Refuse    *bool  `json:"refuse"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || !strings.Contains(req.Recipient, "@") || req.Refuse == nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"recipient":"name@example.com","refuse":true} (or false to accept it again)`})
		return
	}
	c.RefuseRecipient(req.Recipient, *req.Refuse)
	writeJSON(w, http.StatusOK, req)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
