package slackstandin

import (
	"encoding/json"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// contentSecurityPolicy allows inline styles and same-origin form posts only:
// the page needs no scripts, images or remote fetches.
const contentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

const maxClicksKept = 200

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

var pageTemplates = template.Must(template.New("page").Funcs(template.FuncMap{"human": humanTime}).Parse(`{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">{{if .Refresh}}<meta http-equiv="refresh" content="5">{{end}}<title>{{.Title}} · slack stand-in</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d1c1d;max-width:60rem}
.channel{margin-bottom:2rem}
.msg{border:1px solid #ddd;border-radius:6px;padding:.6rem .8rem;margin:.6rem 0;background:#fff}
.msg.eph{background:#f4f8fb;border-style:dashed}
.replies{margin-left:2rem;border-left:3px solid #eee;padding-left:.8rem}
.meta,.context{color:#616061;font-size:.85rem}
.header{font-weight:700;font-size:1.1rem}
.text,.field{white-space:pre-wrap}
.fields{display:grid;grid-template-columns:1fr 1fr;gap:.3rem 1rem;margin:.4rem 0}
form.button{display:inline-block;margin:.3rem .6rem .3rem 0;padding:.3rem;border:1px solid #eee;border-radius:4px}
button{padding:.3rem .8rem;border-radius:4px;border:1px solid #bbb;background:#fff;cursor:pointer}
button.primary{background:#007a5a;color:#fff;border-color:#007a5a}
button.danger{background:#e01e5a;color:#fff;border-color:#e01e5a}
.flash{border:2px solid #1264a3;padding:.6rem .8rem;border-radius:6px;margin-bottom:1rem}
blockquote{margin:.2rem 0;padding-left:.6rem;border-left:4px solid #ddd;color:#454245}
code,pre.code{font-family:ui-monospace,monospace;font-size:.85em;background:#f6f6f6;border:1px solid #e2e2e2;border-radius:3px}
code{padding:0 .2rem;color:#c01343}
pre.code{margin:.3rem 0;padding:.4rem;white-space:pre-wrap}
.mention{color:#1264a3;background:#e8f5fa;border-radius:3px;padding:0 .1rem}
.bad{color:#b00}
.who{font-size:1.1rem}
.modal{border:2px solid #1d1c1d;border-radius:8px;padding:.6rem 1rem;margin-bottom:1.5rem;background:#fafafa}
</style></head><body>{{end}}

{{define "lines"}}{{range .}}{{if eq .Kind "header"}}<div class="header">{{.HTML}}</div>
{{else if eq .Kind "fields"}}<div class="fields">{{range .Fields}}<div class="field">{{.}}</div>{{end}}</div>
{{else if eq .Kind "context"}}<div class="context">{{.HTML}}</div>
{{else if eq .Kind "divider"}}<hr>
{{else}}<div class="text">{{.HTML}}</div>
{{end}}{{end}}{{end}}

{{define "msg"}}<div class="msg{{if .Ephemeral}} eph{{end}}">
<div class="meta">{{.At}} · ts {{.TS}}{{if .Updated}} · edited {{.Updated}}×{{end}}{{if .Ephemeral}} · only visible to {{.For}}{{end}}</div>
{{template "lines" .Lines}}
{{$m := .}}{{range .Buttons}}<form class="button" method="post" action="/ui/click">
<input type="hidden" name="channel" value="{{$m.Channel}}"><input type="hidden" name="ts" value="{{$m.TS}}"><input type="hidden" name="action_id" value="{{.ActionID}}">
<label>as <select name="user" required>{{if not $m.Chosen}}<option value="" selected>choose…</option>{{end}}{{range $m.Options}}<option value="{{.ID}}"{{if .Selected}} selected{{end}}>{{.Label}}</option>{{end}}</select></label>
<button type="submit" class="{{.Style}}">{{.Label}}</button></form>
{{end}}{{if .Replies}}<div class="replies">{{range .Replies}}{{template "msg" .}}{{end}}</div>{{end}}
</div>{{end}}

{{define "index"}}{{template "head" .}}
<h1>Slack stand-in</h1>
{{range .Views}}<section class="modal"><h2>{{.Title}} <span class="meta">dialog open for {{.For}} · {{.ID}}</span></h2>
{{template "lines" .Lines}}
<form method="post" action="/ui/submit"><input type="hidden" name="view_id" value="{{.ID}}">
{{range .Inputs}}<p><label>{{.Label}}<br><input type="text" name="input_{{.BlockID}}" size="60"{{if not .Optional}} required{{end}}></label>{{if .Error}}<br><span class="bad">{{.Error}}</span>{{end}}</p>
{{end}}<button type="submit" class="danger">{{.Submit}}</button></form>
<form method="post" action="/ui/submit"><input type="hidden" name="view_id" value="{{.ID}}"><input type="hidden" name="cancel" value="1"><button type="submit">{{.Close}}</button></form>
</section>{{end}}
{{with .Click}}<div class="flash">
<div>Clicked <b>{{.Label}}</b> as <b>{{.UserName}}</b> on {{.TS}} at {{human .At}}:
{{if .Err}}<span class="bad">{{.Err}}</span>{{else}}Vigil answered HTTP {{.Status}}{{if .Body}} <code>{{.Body}}</code>{{end}}{{end}}</div>
{{if .Replies}}<div>Replies only {{.UserName}} sees:</div>{{range .Replies}}{{template "msg" .}}{{end}}{{else}}<div class="meta">No ephemeral reply yet (the page refreshes every 5 s).</div>{{end}}
</div>{{end}}
{{range .Channels}}<section class="channel"><h2>{{.Title}} <span class="meta">{{.ID}}</span></h2>
{{range .Messages}}{{template "msg" .}}{{end}}</section>
{{else}}<p class="meta">No messages yet.</p>{{end}}
</body></html>{{end}}

{{define "confirm"}}{{template "head" .}}
<h1>{{.Dialog.Title}}</h1>
<p class="text">{{.Dialog.Text}}</p>
<p class="who">{{.Dialog.Confirm}} as <b>{{.Who}}</b>?</p>
{{if .IsRequester}}<p class="bad">{{.Who}} opened this request: Vigil refuses a decision by the requester.</p>{{end}}
<form method="post" action="/ui/click">
<input type="hidden" name="channel" value="{{.Channel}}"><input type="hidden" name="ts" value="{{.TS}}"><input type="hidden" name="action_id" value="{{.ActionID}}">
<input type="hidden" name="user" value="{{.User}}"><input type="hidden" name="confirmed" value="1">
<button type="submit" class="{{.Style}}">{{.Dialog.Confirm}}</button> <a href="/?as={{.User}}">{{.Dialog.Deny}}</a>
</form>
</body></html>{{end}}`))

// lineView is one rendered part of a message; HTML is escaped already.
type lineView struct {
	Kind   string
	HTML   template.HTML
	Fields []template.HTML
}

type buttonView struct{ ActionID, Label, Style string }

type messageView struct {
	Channel, TS, At string
	Updated         int
	Ephemeral       bool
	For             string
	Lines           []lineView
	Buttons         []buttonView
	Replies         []messageView
	Options         []userOption // the "as" menu of the buttons
	Chosen          string       // the member it starts at; "" starts at "choose…"
}

type userOption struct {
	ID, Label string
	Selected  bool
}

type channelView struct {
	ID, Name string
	Messages []messageView
}

// Title heads the channel's section: "#vigil-approvals", or "Direct messages with @bob".
func (c channelView) Title() string {
	if strings.HasPrefix(c.Name, "@") {
		return "Direct messages with " + c.Name
	}
	return "#" + c.Name
}

type clickView struct {
	clickResult
	UserName string
	Replies  []messageView
}

type indexView struct {
	Title    string
	Refresh  bool
	Views    []modalView
	Channels []channelView
	Click    *clickView
}

// modalView is an open modal as the page shows it, with a form for its inputs.
type modalView struct {
	ID, Title, For, Submit, Close string
	Lines                         []lineView
	Inputs                        []inputView
}

type inputView struct {
	BlockID, Label, Error string
	Optional              bool
}

// modalViews renders the open modals.
func (s *Server) modalViews(views []View) []modalView {
	var out []modalView
	for _, v := range views {
		mv := modalView{ID: v.ID, Title: s.display(v.Title), For: s.who(v.User), Submit: s.display(v.Submit), Close: s.display(v.Close),
			Lines: s.lines(v.Blocks, "")}
		if mv.Close == "" {
			mv.Close = "Cancel"
		}
		// The input blocks are the form; lines shows the rest.
		kept := mv.Lines[:0]
		for _, l := range mv.Lines {
			if !strings.HasPrefix(string(l.HTML), "[input block]") {
				kept = append(kept, l)
			}
		}
		mv.Lines = kept
		for _, in := range inputs(v.Blocks) {
			mv.Inputs = append(mv.Inputs, inputView{BlockID: in.BlockID, Label: s.display(in.Label), Error: s.display(v.Errors[in.BlockID]), Optional: in.Optional})
		}
		out = append(out, mv)
	}
	return out
}

type confirmView struct {
	Title, Channel, TS, ActionID, User, Style string
	Refresh                                   bool
	Dialog                                    struct{ Title, Text, Confirm, Deny string }
	Who                                       string // "Bob Lindqvist (ag_bob)"
	IsRequester                               bool
}

func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	as := r.URL.Query().Get("as")
	s.mu.Lock()
	msgs := make([]Message, 0, len(s.messages))
	for _, m := range s.messages {
		msgs = append(msgs, copyMessage(m))
	}
	ephs := make([]Message, 0, len(s.ephemerals))
	for _, m := range s.ephemerals {
		ephs = append(ephs, copyMessage(m))
	}
	names := make(map[string]string, len(s.names))
	for k, v := range s.names {
		names[k] = v
	}
	var click *clickResult
	if id, err := strconv.Atoi(r.URL.Query().Get("click")); err == nil {
		for i := range s.clicks {
			if s.clicks[i].ID == id {
				c := s.clicks[i]
				click = &c
			}
		}
	}
	s.mu.Unlock()

	view := indexView{Title: "Channels", Views: s.modalViews(s.Views())}
	// Refreshing would wipe a reason being typed into an open dialog.
	view.Refresh = len(view.Views) == 0
	byChannel := map[string]*channelView{}
	var order []string
	channel := func(id string) *channelView {
		if c, ok := byChannel[id]; ok {
			return c
		}
		byChannel[id] = &channelView{ID: id, Name: names[id]}
		order = append(order, id)
		return byChannel[id]
	}
	tops := map[string]*messageView{} // channel+" "+ts -> top-level view, for attaching replies
	var topKeys []string
	for _, m := range msgs {
		channel(m.Channel)
		v := s.messageView(m, as)
		if m.ThreadTS != "" && m.ThreadTS != m.TS {
			if parent, ok := tops[m.Channel+" "+m.ThreadTS]; ok {
				parent.Replies = append(parent.Replies, v)
				continue
			}
		}
		key := m.Channel + " " + m.TS
		tops[key] = &v
		topKeys = append(topKeys, key)
	}
	for _, key := range topKeys {
		v := tops[key]
		channel(v.Channel).Messages = append(channel(v.Channel).Messages, *v)
	}
	for _, m := range ephs {
		c := channel(m.Channel)
		c.Messages = append(c.Messages, s.messageView(m, as))
	}
	for _, id := range order {
		view.Channels = append(view.Channels, *byChannel[id])
	}
	if click != nil {
		cv := &clickView{clickResult: *click, UserName: s.userName(click.User)}
		for _, m := range ephs {
			if m.User == click.User && !m.At.Before(click.At) {
				cv.Replies = append(cv.Replies, s.messageView(m, as))
			}
		}
		view.Click = cv
	}
	render(w, "index", view)
}

func (s *Server) userName(id string) string {
	if u, ok := s.users[id]; ok {
		return "@" + u.Name
	}
	return id
}

func (s *Server) messageView(m Message, as string) messageView {
	v := messageView{Channel: m.Channel, TS: m.TS, At: humanTime(m.At), Updated: m.Updated,
		Ephemeral: m.Ephemeral, For: s.userName(m.User), Lines: s.lines(m.Blocks, m.Text)}
	if !m.Ephemeral {
		for _, b := range buttons(m.Blocks) {
			var t textObject
			_ = json.Unmarshal(b.Text, &t)
			v.Buttons = append(v.Buttons, buttonView{ActionID: b.ActionID, Label: s.display(t.Text), Style: b.Style})
		}
	}
	if len(v.Buttons) > 0 {
		requester := requesterOf(m.Blocks)
		v.Chosen = s.defaultClicker(as, requester)
		for _, u := range s.cfg.Users {
			label := u.Name
			if u.RealName != "" {
				label += " (" + u.RealName + ")"
			}
			if s.isSenior(u.ID) {
				label += " · senior"
			}
			if u.ID == requester {
				label += " · requester"
			}
			v.Options = append(v.Options, userOption{ID: u.ID, Label: label, Selected: u.ID == v.Chosen})
		}
	}
	return v
}

// humanTime is how the page shows a time, as Vigil's messages do: "2026-12-03 14:05 UTC".
func humanTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// requestedBy matches the field of Vigil's approval message naming who opened the request.
var requestedBy = regexp.MustCompile(`^\*Requested by\*\s*<@([UW][A-Z0-9]{2,})[|>]`)

// requesterOf returns the Slack user who opened the request a message is
// about, from its "Requested by" field; "" when it has none.
func requesterOf(blocks json.RawMessage) string {
	var parsed []struct {
		Text   *textObject  `json:"text"`
		Fields []textObject `json:"fields"`
	}
	if json.Unmarshal(blocks, &parsed) != nil {
		return ""
	}
	for _, b := range parsed {
		texts := b.Fields
		if b.Text != nil {
			texts = append(texts, *b.Text)
		}
		for _, t := range texts {
			if m := requestedBy.FindStringSubmatch(strings.TrimSpace(t.Text)); m != nil {
				return m[1]
			}
		}
	}
	return ""
}

// isSenior says whether a member is a senior: by their agent's role when
// the stand-in knows the agents, else by membership of a usergroup.
func (s *Server) isSenior(id string) bool {
	if len(s.agents) > 0 {
		return s.agents[id].Role == "senior"
	}
	for _, members := range s.cfg.Groups {
		if slices.Contains(members, id) {
			return true
		}
	}
	return false
}

// defaultClicker picks the member a message's "as" menu starts at: the one
// chosen for the last click unless they opened this request, else the first
// senior who did not, else nobody (the menu then asks). Never the requester,
// so a first click is not a self-approval.
func (s *Server) defaultClicker(last, requester string) string {
	if _, ok := s.users[last]; ok && last != requester {
		return last
	}
	for _, u := range s.cfg.Users {
		if u.ID != requester && s.isSenior(u.ID) {
			return u.ID
		}
	}
	return ""
}

// who names a member for the confirm step: "Bob Lindqvist (ag_bob)", or
// "Bob Lindqvist (@bob)" when the stand-in does not know their agent.
func (s *Server) who(id string) string {
	u, ok := s.users[id]
	if !ok {
		return id
	}
	name := u.RealName
	if name == "" {
		name = u.Name
	}
	if a, ok := s.agents[id]; ok {
		return name + " (" + a.ID + ")"
	}
	return name + " (@" + u.Name + ")"
}

// lines renders the readable parts of a message: the blocks when it has
// them, else its text (mrkdwn, as Slack formats a message's text).
func (s *Server) lines(blocks json.RawMessage, text string) []lineView {
	var raws []json.RawMessage
	if len(blocks) == 0 || json.Unmarshal(blocks, &raws) != nil {
		return []lineView{{Kind: "text", HTML: s.mrkdwn(text)}}
	}
	render := func(t textObject) template.HTML {
		if t.Type == "mrkdwn" {
			return s.mrkdwn(t.Text)
		}
		return template.HTML(template.HTMLEscapeString(s.display(t.Text))) // plain_text: no formatting
	}
	var out []lineView
	for _, raw := range raws {
		var b struct {
			Type     string            `json:"type"`
			Text     *textObject       `json:"text"`
			Fields   []textObject      `json:"fields"`
			Elements []json.RawMessage `json:"elements"`
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			out = append(out, lineView{Kind: "context", HTML: template.HTML(template.HTMLEscapeString("[" + b.Type + " block]"))})
			continue
		}
		switch b.Type {
		case "header":
			if b.Text != nil {
				out = append(out, lineView{Kind: "header", HTML: render(*b.Text)})
			}
		case "section":
			if b.Text != nil {
				out = append(out, lineView{Kind: "text", HTML: render(*b.Text)})
			}
			if len(b.Fields) > 0 {
				l := lineView{Kind: "fields"}
				for _, f := range b.Fields {
					l.Fields = append(l.Fields, render(f))
				}
				out = append(out, l)
			}
		case "context":
			var parts []string
			for _, el := range b.Elements {
				var e textObject
				if json.Unmarshal(el, &e) == nil && e.Text != "" {
					parts = append(parts, string(render(e)))
				}
			}
			out = append(out, lineView{Kind: "context", HTML: template.HTML(strings.Join(parts, " · "))})
		case "divider":
			out = append(out, lineView{Kind: "divider"})
		case "actions": // rendered as forms
		default:
			out = append(out, lineView{Kind: "context", HTML: template.HTML(template.HTMLEscapeString("[" + b.Type + " block]"))})
		}
	}
	return out
}

var slackMarkup = regexp.MustCompile(`<([^<>]*)>`)

// display turns Slack markup (<@U…>, <!subteam^S…>, <!date^…|fallback>,
// <url|label>) and its &amp; &lt; &gt; escapes into plain text; the template
// escapes the result for HTML.
func (s *Server) display(text string) string {
	out := slackMarkup.ReplaceAllStringFunc(text, func(tok string) string {
		inner, label, _ := strings.Cut(tok[1:len(tok)-1], "|")
		switch {
		case strings.HasPrefix(inner, "@"):
			if u, ok := s.users[inner[1:]]; ok {
				return "@" + u.Name
			}
			if label != "" {
				return "@" + label
			}
			return inner
		case strings.HasPrefix(inner, "!subteam^"):
			if label != "" {
				return label
			}
			return "@" + strings.TrimPrefix(inner, "!subteam^")
		case strings.HasPrefix(inner, "!date^"):
			return label
		case strings.HasPrefix(inner, "!"):
			return "@" + inner[1:]
		case strings.HasPrefix(inner, "#"):
			if label != "" {
				return "#" + label
			}
			return inner
		case label != "":
			return label + " (" + inner + ")"
		}
		return inner
	})
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(out)
}

func render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTemplates.ExecuteTemplate(w, name, data); err != nil {
		// Headers are gone by now; the truncated page is the best signal left.
		_, _ = io.WriteString(w, "\n<!-- render error -->")
	}
}

// sameOrigin refuses form posts another site makes a browser send.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// findButton returns a button of a message and the message's requester.
func (s *Server) findButton(channel, ts, actionID string) (b button, requester string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.existingChannelLocked(channel)
	if !ok {
		return button{}, "", false
	}
	m := s.findLocked(id, ts)
	if m == nil {
		return button{}, "", false
	}
	for _, b := range buttons(m.Blocks) {
		if b.ActionID == actionID {
			return b, requesterOf(m.Blocks), true
		}
	}
	return button{}, "", false
}

func (s *Server) serveUIClick(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-site form post refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	f := r.PostForm
	channel, ts, actionID, user := f.Get("channel"), f.Get("ts"), f.Get("action_id"), f.Get("user")
	if _, ok := s.users[user]; !ok {
		http.Error(w, `choose who is clicking in the "as" menu`, http.StatusBadRequest)
		return
	}
	b, requester, ok := s.findButton(channel, ts, actionID)
	if !ok {
		http.Error(w, "no such button (the message may have been updated)", http.StatusNotFound)
		return
	}
	var label textObject
	_ = json.Unmarshal(b.Text, &label)
	if b.Confirm != nil && f.Get("confirmed") != "1" {
		v := confirmView{Title: "Confirm", Channel: channel, TS: ts, ActionID: actionID, User: user, Style: b.Style,
			Who: s.who(user), IsRequester: user == requester}
		v.Dialog.Title = s.display(b.Confirm.Title.Text)
		v.Dialog.Text = s.display(b.Confirm.Text.Text)
		v.Dialog.Confirm = s.display(b.Confirm.Confirm.Text)
		v.Dialog.Deny = s.display(b.Confirm.Deny.Text)
		if v.Dialog.Deny == "" {
			v.Dialog.Deny = "Cancel"
		}
		render(w, "confirm", v)
		return
	}

	res := clickResult{Channel: channel, TS: ts, ActionID: actionID, User: user, Label: s.display(label.Text), At: time.Now().UTC()}
	resp, err := s.Click(r.Context(), channel, ts, actionID, user)
	if err != nil {
		res.Err = err.Error()
	} else {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		_ = resp.Body.Close()
		res.Status, res.Body = resp.StatusCode, strings.TrimSpace(string(body))
	}
	s.mu.Lock()
	res.ID = 1
	if n := len(s.clicks); n > 0 {
		res.ID = s.clicks[n-1].ID + 1
	}
	s.clicks = append(s.clicks, res)
	if len(s.clicks) > maxClicksKept {
		s.clicks = s.clicks[len(s.clicks)-maxClicksKept:]
	}
	s.mu.Unlock()
	http.Redirect(w, r, "/?as="+url.QueryEscape(user)+"&click="+strconv.Itoa(res.ID), http.StatusSeeOther)
}

func (s *Server) serveMessagesJSON(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	ephs := make([]Message, 0, len(s.ephemerals))
	for _, m := range s.ephemerals {
		ephs = append(ephs, copyMessage(m))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"messages": s.Messages(), "ephemerals": ephs})
}

func (s *Server) serveCalls(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	calls := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		calls[k] = v
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, calls)
}

// isJSON guards the script endpoints: a cross-site page cannot make a browser
// send application/json without a CORS preflight, which the stand-in never grants.
func isJSON(r *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return ct == "application/json"
}

func (s *Server) serveFail(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Method   string `json:"method"`
		Statuses []int  `json:"statuses"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if !isJSON(r) || dec.Decode(&req) != nil || req.Method == "" || len(req.Statuses) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want JSON {"method":"chat.postMessage","statuses":[429,500]}`})
		return
	}
	for _, st := range req.Statuses {
		if st < 400 || st > 599 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "statuses must be 400-599"})
			return
		}
	}
	s.FailNext(req.Method, req.Statuses...)
	writeJSON(w, http.StatusOK, req)
}

func (s *Server) serveScriptDelete(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Channel string `json:"channel"`
		TS      string `json:"ts"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if !isJSON(r) || dec.Decode(&req) != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want JSON {"channel","ts"}`})
		return
	}
	if !s.DeleteMessage(req.Channel, req.TS) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such message"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deleted": true})
}

func (s *Server) serveScriptClick(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Channel  string `json:"channel"`
		TS       string `json:"ts"`
		ActionID string `json:"action_id"`
		User     string `json:"user"`
		Stale    bool   `json:"stale"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if !isJSON(r) || dec.Decode(&req) != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want JSON {"channel","ts","action_id","user"}`})
		return
	}
	resp, err := s.click(r.Context(), req.Channel, req.TS, req.ActionID, req.User, req.Stale)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	writeJSON(w, http.StatusOK, map[string]any{"status": resp.StatusCode, "body": string(body)})
}
