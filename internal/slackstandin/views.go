package slackstandin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Slack's rules for modals: a trigger_id is good for one views.open within
// three seconds of the interaction that carried it; a modal's title and
// buttons are short plain text.
const (
	triggerTTL           = 3 * time.Second
	maxViewTitleRunes    = 24
	maxViewButtonRunes   = 24
	maxPrivateMetadata   = 3000
	maxCallbackIDRunes   = 255
	maxInputLabelRunes   = 2000
	maxInputValueRunes   = 3000
	maxViewBlocks        = 100
	maxViewSubmitBody    = 64 << 10
	viewSubmissionFormat = "view_submission"
)

// trigger is a trigger_id handed out with a click.
type trigger struct {
	user    string
	created time.Time
	used    bool
}

// View is a modal open in the workspace, as views.open opened it (the
// stand-in keeps modals in memory only: a restart closes them, as a Slack
// client that reconnects does).
type View struct {
	ID              string          `json:"id"`
	User            string          `json:"user"` // the member it is open for
	Type            string          `json:"type"`
	CallbackID      string          `json:"callback_id"`
	PrivateMetadata string          `json:"private_metadata"`
	Title           string          `json:"title"`
	Submit          string          `json:"submit,omitempty"`
	Close           string          `json:"close,omitempty"`
	Blocks          json.RawMessage `json:"blocks"`
	Hash            string          `json:"hash"`
	// Errors are the last submission's errors by block_id (response_action
	// "errors"), shown under the inputs.
	Errors map[string]string `json:"errors,omitempty"`
	At     time.Time         `json:"at"`
}

// input is one input block of a modal.
type input struct {
	BlockID, ActionID, Label, Type string
	Optional                       bool
}

// inputs lists the input blocks of a view's blocks.
func inputs(blocks json.RawMessage) []input {
	var parsed []struct {
		Type     string     `json:"type"`
		BlockID  string     `json:"block_id"`
		Label    textObject `json:"label"`
		Optional bool       `json:"optional"`
		Element  struct {
			Type     string `json:"type"`
			ActionID string `json:"action_id"`
		} `json:"element"`
	}
	if json.Unmarshal(blocks, &parsed) != nil {
		return nil
	}
	var out []input
	for _, b := range parsed {
		if b.Type == "input" {
			out = append(out, input{BlockID: b.BlockID, ActionID: b.Element.ActionID, Label: b.Label.Text, Type: b.Element.Type, Optional: b.Optional})
		}
	}
	return out
}

// openView is views.open: it spends a click's trigger_id on a modal for the
// member who clicked.
func (s *Server) openView(p params) (map[string]any, *apiError) {
	var req struct {
		Type            string          `json:"type"`
		Title           *textObject     `json:"title"`
		Submit          *textObject     `json:"submit"`
		Close           *textObject     `json:"close"`
		Blocks          json.RawMessage `json:"blocks"`
		PrivateMetadata string          `json:"private_metadata"`
		CallbackID      string          `json:"callback_id"`
	}
	raw := p.rawJSON("view")
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, &apiError{code: "invalid_arguments", problems: []string{"missing required field: view"}}
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, &apiError{code: "invalid_arguments", problems: []string{"view must be a JSON object: " + err.Error()}}
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if req.Type != "modal" {
		bad("view.type must be modal [json-pointer:/view/type]")
	}
	checkViewText := func(name string, t *textObject, required bool) string {
		switch {
		case t == nil && required:
			bad("missing required field: %s [json-pointer:/view/%s]", name, name)
		case t == nil:
		case t.Type != "plain_text":
			bad("%s must be plain_text [json-pointer:/view/%s/type]", name, name)
		case t.Text == "" || utf8.RuneCountInString(t.Text) > maxViewTitleRunes:
			bad("%s must be 1 to %d characters [json-pointer:/view/%s/text]", name, maxViewTitleRunes, name)
		default:
			return t.Text
		}
		return ""
	}
	title := checkViewText("title", req.Title, true)
	var blocks json.RawMessage
	if len(bytes.TrimSpace(req.Blocks)) > 0 {
		var bp []string
		blocks, bp = normaliseBlocks(req.Blocks)
		problems = append(problems, bp...)
	}
	if len(blocks) == 0 && len(problems) == 0 {
		bad("no blocks: a modal needs at least one [json-pointer:/view/blocks]")
	}
	ins := inputs(blocks)
	submit := checkViewText("submit", req.Submit, len(ins) > 0)
	closeText := checkViewText("close", req.Close, false)
	var n []any
	if json.Unmarshal(blocks, &n) == nil && len(n) > maxViewBlocks {
		bad("no more than %d blocks allowed [json-pointer:/view/blocks]", maxViewBlocks)
	}
	for i, in := range ins {
		switch {
		case in.Type != "plain_text_input":
			bad("input %d: the stand-in supports plain_text_input elements only [json-pointer:/view/blocks]", i)
		case in.ActionID == "":
			bad("input %d: element needs an action_id [json-pointer:/view/blocks]", i)
		case in.Label == "" || utf8.RuneCountInString(in.Label) > maxInputLabelRunes:
			bad("input %d: label must be 1 to %d characters [json-pointer:/view/blocks]", i, maxInputLabelRunes)
		}
	}
	if len(req.PrivateMetadata) > maxPrivateMetadata {
		bad("private_metadata must be at most %d characters [json-pointer:/view/private_metadata]", maxPrivateMetadata)
	}
	if utf8.RuneCountInString(req.CallbackID) > maxCallbackIDRunes {
		bad("callback_id must be at most %d characters [json-pointer:/view/callback_id]", maxCallbackIDRunes)
	}
	if len(problems) > 0 {
		return nil, &apiError{code: "invalid_arguments", problems: problems}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.triggers[p.get("trigger_id")]
	switch {
	case !ok:
		return nil, &apiError{code: "invalid_trigger_id"}
	case t.used:
		return nil, &apiError{code: "exchanged_trigger_id"}
	case time.Since(t.created) > triggerTTL:
		return nil, &apiError{code: "expired_trigger_id"}
	}
	t.used = true
	v := &View{
		ID: "V" + strings.ToUpper(randomHex(5)), User: t.user, Type: req.Type, CallbackID: req.CallbackID,
		PrivateMetadata: req.PrivateMetadata, Title: title, Submit: submit, Close: closeText,
		Blocks: blocks, Hash: fmt.Sprintf("%d.%s", time.Now().Unix(), randomHex(4)), At: time.Now().UTC(),
	}
	s.views = append(s.views, v)
	return map[string]any{"view": s.viewJSON(v, nil)}, nil
}

// viewJSON is a view as views.open answers and view_submission payloads
// carry it; values is the submitted state (nil: none yet).
func (s *Server) viewJSON(v *View, values map[string]map[string]any) map[string]any {
	if values == nil {
		values = map[string]map[string]any{}
	}
	text := func(t string) any {
		if t == "" {
			return nil
		}
		return map[string]any{"type": "plain_text", "text": t, "emoji": true}
	}
	return map[string]any{
		"id": v.ID, "team_id": s.cfg.TeamID, "type": v.Type, "blocks": v.Blocks,
		"private_metadata": v.PrivateMetadata, "callback_id": v.CallbackID,
		"state": map[string]any{"values": values}, "hash": v.Hash,
		"title": text(v.Title), "submit": text(v.Submit), "close": text(v.Close),
		"clear_on_close": false, "notify_on_close": false, "root_view_id": v.ID, "previous_view_id": nil,
		"app_id": s.cfg.AppID, "external_id": "", "app_installed_team_id": s.cfg.TeamID, "bot_id": botID,
	}
}

// Views returns the modals open now, oldest first.
func (s *Server) Views() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]View, 0, len(s.views))
	for _, v := range s.views {
		out = append(out, copyView(v))
	}
	return out
}

func copyView(v *View) View {
	c := *v
	c.Blocks = append(json.RawMessage(nil), v.Blocks...)
	if v.Errors != nil {
		c.Errors = make(map[string]string, len(v.Errors))
		for k, e := range v.Errors {
			c.Errors[k] = e
		}
	}
	return c
}

// SubmitResult is how the app answered a modal's submission.
type SubmitResult struct {
	Status int               `json:"status"` // the app's HTTP status
	Body   string            `json:"body"`
	Closed bool              `json:"closed"`           // the modal closed (an empty 200, or response_action clear)
	Errors map[string]string `json:"errors,omitempty"` // response_action errors, by block_id
}

// SubmitView presses a modal's submit button as the member it is open for,
// with values (block_id -> text) in its inputs: it sends the view_submission
// payload Slack would send, signed, to the interaction URL. An answer of
// response_action "errors" keeps the modal open with the errors shown; an
// empty 200 or response_action "clear" closes it; anything else keeps it
// open, as Slack does when an app fails to answer.
func (s *Server) SubmitView(ctx context.Context, viewID string, values map[string]string) (SubmitResult, error) {
	body, err := s.submissionBody(viewID, values)
	if err != nil {
		return SubmitResult{}, err
	}
	req, err := s.SignedRequest(ctx, body, time.Now())
	if err != nil {
		return SubmitResult{}, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return SubmitResult{}, fmt.Errorf("slackstandin: post view submission to %s: %w", s.cfg.InteractionURL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxViewSubmitBody))
	res := SubmitResult{Status: resp.StatusCode, Body: strings.TrimSpace(string(raw))}
	var answer struct {
		ResponseAction string            `json:"response_action"`
		Errors         map[string]string `json:"errors"`
	}
	if res.Status == http.StatusOK {
		switch {
		case res.Body == "":
			res.Closed = true
		case json.Unmarshal(raw, &answer) != nil:
		case answer.ResponseAction == "clear":
			res.Closed = true
		case answer.ResponseAction == "errors" && len(answer.Errors) > 0:
			res.Errors = answer.Errors
		}
	}
	s.mu.Lock()
	if i := s.viewIndexLocked(viewID); i >= 0 {
		if res.Closed {
			s.views = slices.Delete(s.views, i, i+1)
		} else {
			s.views[i].Errors = res.Errors
		}
	}
	s.mu.Unlock()
	s.log.Info("view submitted", "view", viewID, "status", res.Status, "closed", res.Closed, "errors", len(res.Errors))
	return res, nil
}

// CloseView closes a modal without submitting it (its Cancel button): Slack
// tells the app only when the view asked for notify_on_close, which Vigil's
// do not.
func (s *Server) CloseView(viewID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.viewIndexLocked(viewID)
	if i < 0 {
		return false
	}
	s.views = slices.Delete(s.views, i, i+1)
	return true
}

func (s *Server) viewIndexLocked(id string) int {
	return slices.IndexFunc(s.views, func(v *View) bool { return v.ID == id })
}

// viewSubmissionPayload mirrors what Slack sends when a modal is submitted.
type viewSubmissionPayload struct {
	Type string `json:"type"`
	Team struct {
		ID     string `json:"id"`
		Domain string `json:"domain"`
	} `json:"team"`
	User                payloadUser    `json:"user"`
	APIAppID            string         `json:"api_app_id"`
	TriggerID           string         `json:"trigger_id"`
	View                map[string]any `json:"view"`
	ResponseURLs        []any          `json:"response_urls"`
	Enterprise          *struct{}      `json:"enterprise"`
	IsEnterpriseInstall bool           `json:"is_enterprise_install"`
}

// submissionBody builds the form-encoded payload=… body of a submission.
func (s *Server) submissionBody(viewID string, values map[string]string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.viewIndexLocked(viewID)
	if i < 0 {
		return nil, fmt.Errorf("slackstandin: submit: no open view %q", viewID)
	}
	v := s.views[i]
	state := map[string]map[string]any{}
	known := map[string]bool{}
	for _, in := range inputs(v.Blocks) {
		known[in.BlockID] = true
		val, given := values[in.BlockID]
		if utf8.RuneCountInString(val) > maxInputValueRunes {
			return nil, fmt.Errorf("slackstandin: submit: %s is longer than %d characters", in.BlockID, maxInputValueRunes)
		}
		// Slack's client itself refuses to submit a required input left
		// empty; an app sees such a value only when a client sends spaces.
		if !given && !in.Optional {
			return nil, fmt.Errorf("slackstandin: submit: the required input %s has no value (Slack's client would not submit it)", in.BlockID)
		}
		el := map[string]any{"type": in.Type, "value": val}
		if !given {
			el["value"] = nil
		}
		state[in.BlockID] = map[string]any{in.ActionID: el}
	}
	for b := range values {
		if !known[b] {
			return nil, fmt.Errorf("slackstandin: submit: view %s has no input %q", viewID, b)
		}
	}
	u := s.users[v.User]
	now := time.Now()
	var p viewSubmissionPayload
	p.Type = viewSubmissionFormat
	p.Team.ID, p.Team.Domain = s.cfg.TeamID, teamDomain
	p.User = payloadUser{ID: u.ID, Username: u.Name, Name: u.Name, TeamID: s.cfg.TeamID}
	p.APIAppID = s.cfg.AppID
	p.TriggerID = fmt.Sprintf("%d.%d.%s", now.Unix(), now.Nanosecond(), randomHex(16))
	p.View = s.viewJSON(v, state)
	p.ResponseURLs = []any{}
	js, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("slackstandin: encode view submission: %w", err)
	}
	return []byte(url.Values{"payload": {string(js)}}.Encode()), nil
}

// serveViews lists the open modals: GET /standin/views.
func (s *Server) serveViews(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"views": s.Views()})
}

// serveScriptSubmit submits a modal: POST /standin/submit
// {"view_id":"V…","values":{"block_id":"text"}} -> SubmitResult.
func (s *Server) serveScriptSubmit(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ViewID string            `json:"view_id"`
		Values map[string]string `json:"values"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxViewSubmitBody))
	dec.DisallowUnknownFields()
	if !isJSON(r) || dec.Decode(&req) != nil || req.ViewID == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want JSON {"view_id":"V…","values":{"block_id":"text"}}`})
		return
	}
	res, err := s.SubmitView(r.Context(), req.ViewID, req.Values)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// serveUISubmit submits (or, with cancel=1, closes) a modal from the page.
func (s *Server) serveUISubmit(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-site form post refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxViewSubmitBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	f := r.PostForm
	id := f.Get("view_id")
	var owner string
	var ins []input
	s.mu.Lock()
	if i := s.viewIndexLocked(id); i >= 0 {
		owner, ins = s.views[i].User, inputs(s.views[i].Blocks)
	}
	s.mu.Unlock()
	if owner == "" {
		http.Error(w, "no such dialog (it may have been closed)", http.StatusNotFound)
		return
	}
	back := "/?as=" + url.QueryEscape(owner)
	if f.Get("cancel") == "1" {
		s.CloseView(id)
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	values := map[string]string{}
	for _, in := range ins {
		if v, ok := f["input_"+in.BlockID]; ok && len(v) == 1 && (v[0] != "" || !in.Optional) {
			values[in.BlockID] = v[0]
		}
	}
	if _, err := s.SubmitView(r.Context(), id, values); err != nil && !errors.Is(err, context.Canceled) {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// rememberTriggerLocked records a trigger_id handed out at now, and forgets
// those past their lifetime.
func (s *Server) rememberTriggerLocked(id, user string, now time.Time) {
	for k, t := range s.triggers {
		if now.Sub(t.created) > triggerTTL {
			delete(s.triggers, k)
		}
	}
	s.triggers[id] = &trigger{user: user, created: now}
}
