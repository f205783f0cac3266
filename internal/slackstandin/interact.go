package slackstandin

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Slack lets a response_url be used five times within thirty minutes.
const (
	responseURLUses = 5
	responseURLTTL  = 30 * time.Minute
)

// button is one clickable element found in a message's blocks.
type button struct {
	ActionID string          `json:"action_id"`
	BlockID  string          `json:"block_id"`
	Text     json.RawMessage `json:"text"`
	Value    string          `json:"value,omitempty"`
	Style    string          `json:"style,omitempty"`
	Confirm  *confirmDialog  `json:"-"`
}

type textObject struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type confirmDialog struct {
	Title   textObject `json:"title"`
	Text    textObject `json:"text"`
	Confirm textObject `json:"confirm"`
	Deny    textObject `json:"deny"`
}

// buttons lists the buttons of a blocks array in order.
func buttons(blocks json.RawMessage) []button {
	var parsed []struct {
		Type     string `json:"type"`
		BlockID  string `json:"block_id"`
		Elements []struct {
			Type     string          `json:"type"`
			ActionID string          `json:"action_id"`
			Text     json.RawMessage `json:"text"`
			Value    string          `json:"value"`
			Style    string          `json:"style"`
			Confirm  *confirmDialog  `json:"confirm"`
		} `json:"elements"`
	}
	if json.Unmarshal(blocks, &parsed) != nil {
		return nil
	}
	var out []button
	for _, b := range parsed {
		if b.Type != "actions" {
			continue
		}
		for _, e := range b.Elements {
			if e.Type == "button" {
				out = append(out, button{ActionID: e.ActionID, BlockID: b.BlockID, Text: e.Text, Value: e.Value, Style: e.Style, Confirm: e.Confirm})
			}
		}
	}
	return out
}

// Click presses the button with actionID on the message at channel/ts as
// userID: it builds the block_actions payload Slack would send, signs it with
// the signing secret and POSTs it to the interaction URL. The payload's
// response_url points at this stand-in through the address the message's
// poster used to reach it, so Vigil can reach it too. The caller closes the
// response body.
func (s *Server) Click(ctx context.Context, channel, ts, actionID, userID string) (*http.Response, error) {
	return s.click(ctx, channel, ts, actionID, userID, false)
}

// ClickStale clicks a button as it was when the message was first posted:
// what a person sees whose client has not received an update yet, or who
// clicks at the same moment as a colleague. Real Slack delivers such clicks.
func (s *Server) ClickStale(ctx context.Context, channel, ts, actionID, userID string) (*http.Response, error) {
	return s.click(ctx, channel, ts, actionID, userID, true)
}

func (s *Server) click(ctx context.Context, channel, ts, actionID, userID string, stale bool) (*http.Response, error) {
	body, err := s.clickBody(channel, ts, actionID, userID, stale)
	if err != nil {
		return nil, err
	}
	req, err := s.SignedRequest(ctx, body, time.Now())
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("slackstandin: post interaction to %s: %w", s.cfg.InteractionURL, err)
	}
	s.log.Info("click delivered", "channel", channel, "ts", ts, "action_id", actionID, "user", userID, "status", resp.StatusCode)
	return resp, nil
}

// SignedRequest returns a POST of body to the interaction URL carrying the
// X-Slack-Request-Timestamp and X-Slack-Signature headers Slack would send at ts.
func (s *Server) SignedRequest(ctx context.Context, body []byte, ts time.Time) (*http.Request, error) {
	if s.cfg.InteractionURL == "" {
		return nil, errors.New("slackstandin: no interaction URL configured")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.InteractionURL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("slackstandin: build interaction request: %w", err)
	}
	stamp := strconv.FormatInt(ts.Unix(), 10)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", Sign(s.cfg.SigningSecret, stamp, body))
	return req, nil
}

// Sign returns Slack's v0 signature of body sent at timestamp (unix seconds).
func Sign(secret, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + timestamp + ":"))
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

type payloadUser struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Name     string `json:"name"`
	TeamID   string `json:"team_id"`
}

type payloadAction struct {
	ActionID string          `json:"action_id"`
	BlockID  string          `json:"block_id"`
	Text     json.RawMessage `json:"text,omitempty"`
	Value    string          `json:"value,omitempty"`
	Style    string          `json:"style,omitempty"`
	Type     string          `json:"type"`
	ActionTS string          `json:"action_ts"`
}

// blockActionsPayload mirrors what Slack sends when a message button is pressed.
type blockActionsPayload struct {
	Type      string      `json:"type"`
	User      payloadUser `json:"user"`
	APIAppID  string      `json:"api_app_id"`
	Container struct {
		Type        string `json:"type"`
		MessageTS   string `json:"message_ts"`
		ThreadTS    string `json:"thread_ts,omitempty"`
		ChannelID   string `json:"channel_id"`
		IsEphemeral bool   `json:"is_ephemeral"`
	} `json:"container"`
	TriggerID string `json:"trigger_id"`
	Team      struct {
		ID     string `json:"id"`
		Domain string `json:"domain"`
	} `json:"team"`
	Enterprise          *struct{} `json:"enterprise"`
	IsEnterpriseInstall bool      `json:"is_enterprise_install"`
	Channel             struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"channel"`
	Message map[string]any `json:"message"`
	State   struct {
		Values map[string]any `json:"values"`
	} `json:"state"`
	ResponseURL string          `json:"response_url"`
	Actions     []payloadAction `json:"actions"`
}

// clickBody builds the form-encoded payload=… body of a click and registers
// its response_url.
func (s *Server) clickBody(channel, ts, actionID, userID string, stale bool) ([]byte, error) {
	u, ok := s.users[userID]
	if !ok {
		return nil, fmt.Errorf("slackstandin: click as %q: no such user in the workspace", userID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	channelID, ok := s.existingChannelLocked(channel)
	if !ok {
		return nil, fmt.Errorf("slackstandin: click: no channel %q", channel)
	}
	m := s.findLocked(channelID, ts)
	if m == nil {
		return nil, fmt.Errorf("slackstandin: click: no message %s in %s", ts, channelID)
	}
	var pressed *button
	shown := m.Blocks
	if stale {
		shown = s.posted[channelID+" "+m.TS]
	}
	for _, b := range buttons(shown) {
		if b.ActionID == actionID {
			pressed = &b
			break
		}
	}
	if pressed == nil {
		return nil, fmt.Errorf("slackstandin: click: message %s has no button %q", ts, actionID)
	}
	base := s.origins[channelID+" "+m.TS]
	if base == "" {
		return nil, fmt.Errorf("slackstandin: click: message %s has no known poster address", ts)
	}
	now := time.Now()
	id := randomHex(16)
	s.responses[id] = &responseTarget{channel: channelID, ts: m.TS, user: userID, created: now}
	s.saveLocked() // a click made just before a restart can still be answered after it

	var p blockActionsPayload
	p.Type = "block_actions"
	p.User = payloadUser{ID: u.ID, Username: u.Name, Name: u.Name, TeamID: s.cfg.TeamID}
	p.APIAppID = s.cfg.AppID
	p.Container.Type = "message"
	p.Container.MessageTS = m.TS
	p.Container.ThreadTS = m.ThreadTS
	p.Container.ChannelID = channelID
	p.TriggerID = fmt.Sprintf("%d.%d.%s", now.Unix(), now.Nanosecond(), randomHex(16))
	s.rememberTriggerLocked(p.TriggerID, userID, now)
	p.Team.ID = s.cfg.TeamID
	p.Team.Domain = teamDomain
	p.Channel.ID = channelID
	p.Channel.Name = s.names[channelID]
	p.Message = s.messageJSON(m)
	p.State.Values = map[string]any{}
	p.ResponseURL = base + "/response/" + id
	p.Actions = []payloadAction{{
		ActionID: pressed.ActionID, BlockID: pressed.BlockID, Text: pressed.Text, Value: pressed.Value,
		Style: pressed.Style, Type: "button", ActionTS: fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000),
	}}
	js, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("slackstandin: encode payload: %w", err)
	}
	return []byte(url.Values{"payload": {string(js)}}.Encode()), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serveResponseURL takes a message Vigil sends to a click's response_url: it
// replaces or deletes the original, posts in the channel, or (the default)
// shows an ephemeral reply to the user who clicked.
func (s *Server) serveResponseURL(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Text            string          `json:"text"`
		Blocks          json.RawMessage `json:"blocks"`
		ResponseType    string          `json:"response_type"`
		ReplaceOriginal bool            `json:"replace_original"`
		DeleteOriginal  bool            `json:"delete_original"`
		ThreadTS        string          `json:"thread_ts"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err := dec.Decode(&msg); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": "invalid_payload"})
		return
	}
	var blocks json.RawMessage
	if raw := bytes.TrimSpace(msg.Blocks); len(raw) > 0 && string(raw) != "null" {
		var problems []string
		if blocks, problems = normaliseBlocks(raw); len(problems) > 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": "invalid_blocks", "errors": problems})
			return
		}
	}
	if !msg.DeleteOriginal && msg.Text == "" && len(blocks) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": "no_text"})
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.responses[r.PathValue("id")]
	switch {
	case !ok || time.Since(t.created) > responseURLTTL:
		writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "expired_url"})
		return
	case t.uses >= responseURLUses:
		writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "used_url"})
		return
	}
	t.uses++
	now := time.Now().UTC()
	switch {
	case msg.DeleteOriginal:
		for i, m := range s.messages {
			if m.Channel == t.channel && m.TS == t.ts {
				s.messages = append(s.messages[:i], s.messages[i+1:]...)
				break
			}
		}
	case msg.ReplaceOriginal:
		m := s.findLocked(t.channel, t.ts)
		if m == nil {
			writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "message_not_found"})
			return
		}
		m.Text, m.Blocks = msg.Text, blocks
		m.Updated++
	case msg.ResponseType == "in_channel":
		m := &Message{Channel: t.channel, TS: s.nextTSLocked(now), ThreadTS: msg.ThreadTS, Text: msg.Text, Blocks: blocks, At: now}
		s.messages = append(s.messages, m)
		s.origins[m.Channel+" "+m.TS] = origin(r)
	default:
		m := &Message{Channel: t.channel, TS: s.nextTSLocked(now), Text: msg.Text, Blocks: blocks, Ephemeral: true, User: t.user, At: now}
		s.ephemerals = append(s.ephemerals, m)
	}
	s.saveLocked()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}
