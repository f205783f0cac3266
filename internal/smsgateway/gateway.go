// Package smsgateway is the local SMS gateway: it speaks the part of
// Twilio's Messages API that Vigil uses, keeps every message it accepts, shows
// them on a web page and can be told to fail the next sends.
package smsgateway

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/vigil-oss/vigil/internal/standin"
)

// stateVersion is the layout of the state file; another version is refused.
const stateVersion = 1

// maxBody bounds a send: Twilio takes at most 1600 characters of body.
const maxBody = 1600

// Message is one SMS the gateway accepted.
type Message struct {
	SID        string    `json:"sid"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	Body       string    `json:"body"`
	ReceivedAt time.Time `json:"received_at"`
}

// Gateway accepts messages for one account. It is safe for concurrent use.
type Gateway struct {
	account, token string
	logger         *slog.Logger
	state          *standin.StateFile

	mu       sync.Mutex
	nextID   int
	messages []Message
	// fail5xx and fail429 are how many next sends answer 503 or 429.
	fail5xx, fail429 int

	saveMu sync.Mutex
}

type snapshotFile struct {
	Version  int       `json:"version"`
	NextID   int       `json:"next_id"`
	Messages []Message `json:"messages"`
}

// New is a gateway for account and its auth token, keeping messages in
// memory only.
func New(account, token string, logger *slog.Logger) *Gateway {
	return &Gateway{account: account, token: token, logger: logger, nextID: 1}
}

// Open is New keeping messages in the state file at path across restarts.
func Open(path, account, token string, logger *slog.Logger) (*Gateway, error) {
	sf, err := standin.OpenStateFile(path)
	if err != nil {
		return nil, err
	}
	g := New(account, token, logger)
	g.state = sf
	var snap snapshotFile
	found, err := sf.Load(&snap)
	if err != nil {
		return nil, err
	}
	if found {
		if snap.Version != stateVersion {
			return nil, sf.Corrupt(fmt.Errorf("version %d, this gateway reads version %d", snap.Version, stateVersion))
		}
		if snap.NextID <= len(snap.Messages) {
			return nil, sf.Corrupt(fmt.Errorf("next_id %d is not after the %d messages", snap.NextID, len(snap.Messages)))
		}
		g.nextID, g.messages = snap.NextID, snap.Messages
	}
	return g, nil
}

// Messages returns the accepted messages, oldest first.
func (g *Gateway) Messages() []Message {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Message(nil), g.messages...)
}

// Fail makes the next n5xx sends answer 503 and the n429 after them 429.
func (g *Gateway) Fail(n5xx, n429 int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fail5xx, g.fail429 = n5xx, n429
}

// Handler serves the Messages API, the page and the test API:
//
//	POST   /2010-04-01/Accounts/{sid}/Messages.json  send (basic auth: account, token)
//	GET    /                                          page of messages, newest first
//	GET    /api/messages                              JSON [{sid,from,to,body,received_at}], oldest first
//	DELETE /api/messages                              forget every message
//	POST   /api/fail                                  {"server_errors":n,"rate_limited":m}: fail the next sends
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", g.send)
	mux.HandleFunc("GET /{$}", g.page)
	mux.HandleFunc("GET /api/messages", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, g.Messages()) })
	mux.HandleFunc("DELETE /api/messages", func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.messages = nil
		g.mu.Unlock()
		g.save()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /api/fail", g.apiFail)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

// twilioError is Twilio's error body.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	Status   int    `json:"status"`
	MoreInfo string `json:"more_info,omitempty"`
}

func (g *Gateway) send(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(g.account)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(g.token)) != 1 || r.PathValue("sid") != g.account {
		writeJSON(w, http.StatusUnauthorized, twilioError{Code: 20003, Message: "Authenticate", Status: 401})
		return
	}
	g.mu.Lock()
	switch {
	case g.fail5xx > 0:
		g.fail5xx--
		g.mu.Unlock()
		writeJSON(w, http.StatusServiceUnavailable, twilioError{Code: 20500, Message: "Service unavailable (injected)", Status: 503})
		return
	case g.fail429 > 0:
		g.fail429--
		g.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusTooManyRequests, twilioError{Code: 20429, Message: "Too Many Requests (injected)", Status: 429})
		return
	}
	g.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, twilioError{Code: 21000, Message: "malformed form body", Status: 400})
		return
	}
	to, from, body := r.PostForm.Get("To"), r.PostForm.Get("From"), r.PostForm.Get("Body")
	switch {
	case to == "":
		writeJSON(w, http.StatusBadRequest, twilioError{Code: 21604, Message: "A 'To' phone number is required.", Status: 400})
		return
	case from == "":
		writeJSON(w, http.StatusBadRequest, twilioError{Code: 21603, Message: "A 'From' phone number is required.", Status: 400})
		return
	case body == "":
		writeJSON(w, http.StatusBadRequest, twilioError{Code: 21602, Message: "Message body is required.", Status: 400})
		return
	case len([]rune(body)) > maxBody:
		writeJSON(w, http.StatusBadRequest, twilioError{Code: 21617, Message: "The concatenated message body exceeds the 1600 character limit.", Status: 400})
		return
	}
	g.mu.Lock()
	m := Message{SID: fmt.Sprintf("SM%032d", g.nextID), From: from, To: to, Body: body, ReceivedAt: time.Now().UTC()}
	g.nextID++
	g.messages = append(g.messages, m)
	g.mu.Unlock()
	g.save()
	g.logger.Info("sms accepted", "sid", m.SID, "to", m.To)
	writeJSON(w, http.StatusCreated, map[string]any{
		"sid": m.SID, "account_sid": g.account, "to": m.To, "from": m.From, "body": m.Body,
		"status": "queued", "num_segments": strconv.Itoa(Segments(m.Body)),
	})
}

func (g *Gateway) apiFail(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ServerErrors int `json:"server_errors"`
		RateLimited  int `json:"rate_limited"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.ServerErrors < 0 || req.RateLimited < 0 {
		http.Error(w, `want {"server_errors":n,"rate_limited":m}, both 0 or more`, http.StatusBadRequest)
		return
	}
	g.Fail(req.ServerErrors, req.RateLimited)
	w.WriteHeader(http.StatusNoContent)
}

// save writes the state file, if any. A failed write is logged: the message
// is kept in memory, only a restart would lose it.
func (g *Gateway) save() {
	if g.state == nil {
		return
	}
	g.saveMu.Lock()
	defer g.saveMu.Unlock()
	g.mu.Lock()
	snap := snapshotFile{Version: stateVersion, NextID: g.nextID, Messages: append([]Message{}, g.messages...)}
	g.mu.Unlock()
	if err := g.state.Save(snap); err != nil {
		g.logger.Error("state not saved: a restart would lose the latest messages", "err", err)
	}
}

// Segments is how many SMS segments body takes: 160 GSM-7 characters in
// one, 153 each when split; 70 and 67 for a body that needs UCS-2.
func Segments(body string) int {
	n, single, multi := 0, 160, 153
	for _, r := range body {
		if !isGSM(r) {
			single, multi = 70, 67
			break
		}
	}
	for _, r := range body {
		n++
		if single == 160 && isGSMExtended(r) {
			n++ // an escape, then the character
		}
	}
	if n <= single {
		return 1
	}
	return (n + multi - 1) / multi
}

// gsmBasic is the GSM 03.38 basic character set.
const gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"

// gsmExtended are the characters that take an escape and a second septet.
const gsmExtended = "^{}\\[~]|€\f"

func isGSMExtended(r rune) bool {
	for _, c := range gsmExtended {
		if c == r {
			return true
		}
	}
	return false
}

func isGSM(r rune) bool {
	for _, c := range gsmBasic {
		if c == r {
			return true
		}
	}
	return isGSMExtended(r)
}

var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"human":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"segments": Segments,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SMS · gateway</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #ddd;vertical-align:top}
pre{white-space:pre-wrap;margin:0}
.muted{color:#666}
</style></head><body>
<h1>SMS</h1>
<p class="muted">Messages sent through the local SMS gateway, newest first.</p>
{{if .}}<table><tr><th>Received</th><th>To</th><th>From</th><th>Message</th><th>Segments</th></tr>
{{range .}}<tr><td>{{human .ReceivedAt}}</td><td>{{.To}}</td><td>{{.From}}</td><td><pre>{{.Body}}</pre></td><td>{{segments .Body}}</td></tr>
{{end}}</table>{{else}}<p>No messages yet.</p>{{end}}
</body></html>`))

func (g *Gateway) page(w http.ResponseWriter, r *http.Request) {
	msgs := g.Messages()
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := page.Execute(w, msgs); err != nil {
		g.logger.Error("page", "err", err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
