package slackstandin

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	maxBodyBytes   = 1 << 20
	maxTextRunes   = 40000
	retryAfterSecs = 1
)

// params holds a Web API call's arguments, sent form-encoded (as slack-go
// does) or as a JSON object.
type params struct {
	form url.Values
	json map[string]json.RawMessage
}

func (p params) has(name string) bool {
	if p.json != nil {
		_, ok := p.json[name]
		return ok
	}
	_, ok := p.form[name]
	return ok
}

func (p params) get(name string) string {
	if p.json != nil {
		raw, ok := p.json[name]
		if !ok {
			return ""
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return string(bytes.TrimSpace(raw))
	}
	return p.form.Get(name)
}

// rawJSON returns a JSON-valued argument: in a form it is a JSON string, in a
// JSON body either the value itself or a string holding it.
func (p params) rawJSON(name string) []byte {
	if p.json != nil {
		raw := bytes.TrimSpace(p.json[name])
		var s string
		if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
			return []byte(s)
		}
		return raw
	}
	return []byte(p.form.Get(name))
}

func readParams(w http.ResponseWriter, r *http.Request) (params, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Method == http.MethodPost && ct == "application/json" {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return params{}, err
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			return params{}, fmt.Errorf("body is not a JSON object: %w", err)
		}
		if obj == nil {
			obj = map[string]json.RawMessage{}
		}
		return params{json: obj}, nil
	}
	if err := r.ParseForm(); err != nil {
		return params{}, err
	}
	return params{form: r.Form}, nil
}

// apiError is a Slack logical error: HTTP 200, {"ok":false,"error":code}.
type apiError struct {
	code     string
	problems []string
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	s.calls[method]++
	var fail int
	if q := s.failures[method]; len(q) > 0 {
		fail, s.failures[method] = q[0], q[1:]
	}
	s.mu.Unlock()
	if fail != 0 {
		s.log.Info("injected failure", "method", method, "status", fail)
		writeFailure(w, fail)
		return
	}

	p, err := readParams(w, r)
	if err != nil {
		s.log.Debug("unreadable call", "method", method, "err", err)
		writeAPIError(w, apiError{code: "invalid_form_data"})
		return
	}
	if code := s.checkToken(r, p); code != "" {
		s.log.Info("refused call", "method", method, "error", code)
		writeAPIError(w, apiError{code: code})
		return
	}

	var (
		resp map[string]any
		aerr *apiError
	)
	switch method {
	case "auth.test":
		resp = map[string]any{
			"url": "https://" + teamDomain + ".slack.com/", "team": "Vigil stand-in", "user": "vigil",
			"team_id": s.cfg.TeamID, "user_id": botUserID, "bot_id": botID, "app_id": s.cfg.AppID,
		}
	case "chat.postMessage":
		resp, aerr = s.postMessage(r, p)
	case "chat.update":
		resp, aerr = s.update(p)
	case "chat.delete":
		resp, aerr = s.deleteMessage(p)
	case "chat.postEphemeral":
		resp, aerr = s.postEphemeral(p)
	case "conversations.open":
		resp, aerr = s.openConversation(p)
	case "users.info":
		resp, aerr = s.userInfo(p)
	case "usergroups.users.list":
		resp, aerr = s.groupMembers(p)
	case "views.open":
		resp, aerr = s.openView(p)
	default:
		aerr = &apiError{code: "unknown_method"}
	}
	if aerr != nil {
		s.log.Info("call failed", "method", method, "error", aerr.code)
		writeAPIError(w, *aerr)
		return
	}
	s.log.Debug("call", "method", method)
	resp["ok"] = true
	writeJSON(w, http.StatusOK, resp)
}

// checkToken returns "" when the call carries the bot token, else Slack's error code.
func (s *Server) checkToken(r *http.Request, p params) string {
	token := ""
	if h := r.Header.Get("Authorization"); h != "" {
		var ok bool
		if token, ok = strings.CutPrefix(h, "Bearer "); !ok {
			return "invalid_auth"
		}
	} else {
		token = p.get("token")
	}
	if token == "" {
		return "not_authed"
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.BotToken)) != 1 {
		return "invalid_auth"
	}
	return ""
}

// origin is the base URL the caller used to reach the stand-in, which is where
// it can reach response URLs too.
func origin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// messageBody reads text and blocks; blocksGiven is false when the call had no blocks argument.
func messageBody(p params) (text string, blocks json.RawMessage, blocksGiven bool, aerr *apiError) {
	text = p.get("text")
	if len([]rune(text)) > maxTextRunes {
		return "", nil, false, &apiError{code: "msg_too_long"}
	}
	if raw := p.rawJSON("blocks"); p.has("blocks") && len(bytes.TrimSpace(raw)) > 0 {
		b, problems := normaliseBlocks(raw)
		if len(problems) > 0 {
			return "", nil, false, &apiError{code: "invalid_blocks", problems: problems}
		}
		return text, b, true, nil
	}
	return text, nil, false, nil
}

func (s *Server) postMessage(r *http.Request, p params) (map[string]any, *apiError) {
	text, blocks, _, aerr := messageBody(p)
	if aerr != nil {
		return nil, aerr
	}
	if text == "" && len(blocks) == 0 {
		return nil, &apiError{code: "no_text"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	channel, _, ok := s.resolveChannelLocked(p.get("channel"))
	if !ok {
		return nil, &apiError{code: "channel_not_found"}
	}
	thread := p.get("thread_ts")
	if thread != "" {
		parent := s.findLocked(channel, thread)
		switch {
		case parent == nil:
			// Slack posts the reply to the channel when its parent is gone.
			s.log.Warn("thread_ts names no message; posting to the channel as Slack does", "channel", channel, "thread_ts", thread)
			thread = ""
		case parent.ThreadTS != "":
			thread = parent.ThreadTS // replies to replies land in the same thread
		}
	}
	now := time.Now().UTC()
	m := &Message{Channel: channel, TS: s.nextTSLocked(now), ThreadTS: thread, Text: text, Blocks: blocks, At: now}
	s.messages = append(s.messages, m)
	s.posted[channel+" "+m.TS] = append(json.RawMessage(nil), blocks...)
	s.origins[channel+" "+m.TS] = origin(r)
	s.saveLocked()
	return map[string]any{"channel": channel, "ts": m.TS, "message": s.messageJSON(m)}, nil
}

func (s *Server) update(p params) (map[string]any, *apiError) {
	text, blocks, blocksGiven, aerr := messageBody(p)
	if aerr != nil {
		return nil, aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	channel, ok := s.existingChannelLocked(p.get("channel"))
	if !ok {
		return nil, &apiError{code: "channel_not_found"}
	}
	m := s.findLocked(channel, p.get("ts"))
	if m == nil {
		return nil, &apiError{code: "message_not_found"}
	}
	// Slack keeps what an update leaves out; an empty blocks array clears them.
	newText, newBlocks := m.Text, m.Blocks
	if p.has("text") {
		newText = text
	}
	if blocksGiven {
		newBlocks = blocks
	}
	if newText == "" && len(newBlocks) == 0 {
		return nil, &apiError{code: "no_text"}
	}
	m.Text, m.Blocks = newText, newBlocks
	m.Updated++
	s.saveLocked()
	return map[string]any{"channel": channel, "ts": m.TS, "text": m.Text, "message": s.messageJSON(m)}, nil
}

// deleteMessage is chat.delete: the message goes, its thread replies stay
// (as in Slack, where they then hang off a deleted parent).
func (s *Server) deleteMessage(p params) (map[string]any, *apiError) {
	channel, found, known := s.delete(p.get("channel"), p.get("ts"))
	switch {
	case !known:
		return nil, &apiError{code: "channel_not_found"}
	case !found:
		return nil, &apiError{code: "message_not_found"}
	}
	return map[string]any{"channel": channel, "ts": p.get("ts")}, nil
}

// DeleteMessage deletes a channel message as a person can in Slack,
// reporting whether there was one.
func (s *Server) DeleteMessage(channel, ts string) bool {
	_, found, _ := s.delete(channel, ts)
	return found
}

func (s *Server) delete(channelRef, ts string) (channel string, found, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	channel, known = s.existingChannelLocked(channelRef)
	if !known {
		return "", false, false
	}
	for i, m := range s.messages {
		if m.Channel == channel && m.TS == ts {
			s.messages = append(s.messages[:i], s.messages[i+1:]...)
			s.saveLocked()
			return channel, true, true
		}
	}
	return channel, false, true
}

func (s *Server) postEphemeral(p params) (map[string]any, *apiError) {
	text, blocks, _, aerr := messageBody(p)
	if aerr != nil {
		return nil, aerr
	}
	if text == "" && len(blocks) == 0 {
		return nil, &apiError{code: "no_text"}
	}
	user := p.get("user")
	if _, ok := s.users[user]; !ok {
		return nil, &apiError{code: "user_not_found"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	channel, _, ok := s.resolveChannelLocked(p.get("channel"))
	if !ok {
		return nil, &apiError{code: "channel_not_found"}
	}
	now := time.Now().UTC()
	m := &Message{Channel: channel, TS: s.nextTSLocked(now), ThreadTS: p.get("thread_ts"), Text: text, Blocks: blocks,
		Ephemeral: true, User: user, At: now}
	s.ephemerals = append(s.ephemerals, m)
	s.saveLocked()
	return map[string]any{"message_ts": m.TS}, nil
}

// openConversation opens (or finds) the bot's direct message channel with
// one member; the stand-in has no group DMs.
func (s *Server) openConversation(p params) (map[string]any, *apiError) {
	users := strings.Split(p.get("users"), ",")
	if p.get("channel") != "" || len(users) != 1 || users[0] == "" {
		return nil, &apiError{code: "invalid_arguments", problems: []string{"the stand-in opens a DM with exactly one user (users=U…)"}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, existed := s.existingChannelLocked(users[0])
	id, _, ok := s.dmLocked(strings.TrimSpace(users[0]))
	if !ok {
		return nil, &apiError{code: "user_not_found"}
	}
	if !existed {
		s.saveLocked()
	}
	return map[string]any{"no_op": existed, "already_open": existed, "channel": map[string]any{"id": id, "is_im": true}}, nil
}

func (s *Server) userInfo(p params) (map[string]any, *apiError) {
	u, ok := s.users[p.get("user")]
	if !ok {
		return nil, &apiError{code: "user_not_found"}
	}
	return map[string]any{"user": s.userJSON(u)}, nil
}

func (s *Server) userJSON(u User) map[string]any {
	return map[string]any{
		"id": u.ID, "team_id": s.cfg.TeamID, "name": u.Name, "real_name": u.RealName,
		"deleted": false, "is_bot": false, "is_admin": false, "tz": "Etc/UTC",
		"profile": map[string]any{"real_name": u.RealName, "display_name": u.Name, "team": s.cfg.TeamID},
	}
}

func (s *Server) groupMembers(p params) (map[string]any, *apiError) {
	members, ok := s.cfg.Groups[p.get("usergroup")]
	if !ok {
		return nil, &apiError{code: "no_such_subteam"}
	}
	return map[string]any{"users": append([]string{}, members...)}, nil
}

// messageJSON is a message as chat.postMessage and interaction payloads show it.
func (s *Server) messageJSON(m *Message) map[string]any {
	out := map[string]any{
		"type": "message", "user": botUserID, "bot_id": botID, "app_id": s.cfg.AppID, "team": s.cfg.TeamID,
		"text": m.Text, "ts": m.TS,
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	}
	if len(m.Blocks) > 0 {
		out["blocks"] = m.Blocks
	}
	if m.Updated > 0 {
		out["edited"] = map[string]any{"user": botUserID, "ts": m.TS}
	}
	return out
}

func writeAPIError(w http.ResponseWriter, e apiError) {
	body := map[string]any{"ok": false, "error": e.code}
	if len(e.problems) > 0 {
		body["errors"] = e.problems
	}
	writeJSON(w, http.StatusOK, body)
}

func writeFailure(w http.ResponseWriter, status int) {
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSecs))
		writeJSON(w, status, map[string]any{"ok": false, "error": "ratelimited"})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<html><head><title>%d %s</title></head><body><h1>%d %s</h1><p>The stand-in failed this call on purpose.</p></body></html>\n",
		status, http.StatusText(status), status, http.StatusText(status))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // <@U…> and &amp; are Slack markup; keep them readable as Slack does
	_ = enc.Encode(v)
}
