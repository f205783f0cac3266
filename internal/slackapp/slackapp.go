// Package slackapp serves POST /slack/interactions, where Slack reports clicks
// on the Approve and Reject buttons of Vigil's approval messages. It accepts a
// click only if it is signed with the app's signing secret, fresh, not a
// replay, from Vigil's own workspace and app, made by a Slack user linked to
// an active agent, on the very message Vigil posted for the request, by a
// member of the approvers' group; it then acks Slack at once and sends the
// decision to the request in the background. A senior's Reject click opens
// a dialog asking for the reason first; its submission passes the same
// checks and carries the reason (reject.go). Everything it refuses, it
// refuses before anything changes.
package slackapp

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/textrule"
	"github.com/vigil-oss/vigil/workflows"
)

// Decider records a senior's decision on a request; *requests.Service is one.
type Decider interface {
	Decide(ctx context.Context, requestID string, d workflows.DecideInput) (workflows.Status, error)
}

// Slack is what the endpoint needs from Slack; *approvals.Client is one.
type Slack interface {
	Ephemeral(ctx context.Context, channel, user, text string) error
	Security(ctx context.Context, text string) error
	IsGroupMember(ctx context.Context, userID string) (bool, error)
	RetireApproval(ctx context.Context, channel, ts, requestID string) error
	OpenView(ctx context.Context, triggerID string, view slack.ModalViewRequest) error
}

// Defaults for the zero fields of Config.
const (
	DefaultMaxBody           = 1 << 20
	DefaultDecideTimeout     = 2 * time.Minute
	DefaultWorkers           = 16
	DefaultQueuePerWorker    = 16
	DefaultGroupCheckTimeout = 2 * time.Second
)

// Limits that are not worth configuring.
const (
	// signatureWindow is how far a request's timestamp may be from our clock.
	// slack-go v0.35.0's NewSecretsVerifier enforces the same five minutes;
	// we check again so that the replay cache, which relies on it, never
	// depends on a library default.
	signatureWindow = 5 * time.Minute
	// replayCapacity bounds the replay cache: over 300 clicks a second for
	// five minutes, far beyond any support team.
	replayCapacity = 100_000
	// noticeTimeout bounds one ephemeral reply, security alert or audit write.
	noticeTimeout = 30 * time.Second
	// maxRequestIDLen matches what requests.Service accepts.
	maxRequestIDLen = 64
	// Audit event written for every refused click.
	eventClickRefused = "slack.click_refused"
)

// Signature headers Slack sends.
const (
	headerSignature = "X-Slack-Signature"
	headerTimestamp = "X-Slack-Request-Timestamp"
)

// Config is the endpoint's identity and limits.
type Config struct {
	SigningSecret string        // the Slack app's signing secret
	TeamID        string        // the only workspace (team.id) accepted
	AppID         string        // the only app (api_app_id) accepted
	MaxBody       int64         // largest body read; default 1 MiB
	DecideTimeout time.Duration // bound on one background decision; default 2m
	Workers       int           // background decisions run at once; default 16
	// QueueSize is how many acked clicks may wait for a worker; default
	// 16 per worker. Beyond it a click is refused with "Vigil is busy".
	QueueSize int
	// GroupCheckTimeout bounds the usergroup lookup made before the ack,
	// which Slack expects within 3 seconds; default 2s.
	GroupCheckTimeout time.Duration
}

// String describes the config without the signing secret.
func (c Config) String() string {
	return fmt.Sprintf("slackapp.Config{team=%s app=%s max_body=%d decide_timeout=%s workers=%d queue=%d group_check_timeout=%s signing_secret=[redacted]}",
		c.TeamID, c.AppID, c.MaxBody, c.DecideTimeout, c.Workers, c.QueueSize, c.GroupCheckTimeout)
}

// GoString keeps %#v from printing the signing secret.
func (c Config) GoString() string { return c.String() }

// LogValue logs the config without the signing secret.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("team", c.TeamID),
		slog.String("app", c.AppID),
		slog.Int64("max_body", c.MaxBody),
		slog.Duration("decide_timeout", c.DecideTimeout),
		slog.Int("workers", c.Workers),
		slog.Int("queue", c.QueueSize),
		slog.Duration("group_check_timeout", c.GroupCheckTimeout),
		slog.String("signing_secret", "[redacted]"),
	)
}

// job is an acked click waiting for a worker.
type job struct {
	click
	agent store.Agent
}

// click is a well-formed Approve or Reject click from a signed payload.
type click struct {
	requestID string
	decision  domain.Decision
	userID    string // the signed payload's user.id: the only identity used
	channel   string // where the clicked message is, and where replies go
	messageTS string
	// channelsDisagree is set when channel.id and container.channel_id
	// name different channels: such a click matches no message.
	channelsDisagree bool
	triggerID        string // opens the reject dialog; good for 3 s
	// reason is a rejection's reason, from the reject dialog's submission.
	reason string
	// actionTS names the click in the decisions table: Slack's action_ts,
	// or "view:" and the reject dialog's view id.
	actionTS string
}

// Handler serves POST /slack/interactions. Build it with New; stop it with
// Shutdown.
type Handler struct {
	decider Decider
	store   *store.Store
	slack   Slack
	cfg     Config
	log     *slog.Logger
	replay  *replayCache
	now     func() time.Time

	base   context.Context // background work; cancelled when Shutdown gives up
	cancel context.CancelFunc

	jobs    chan job
	notices chan struct{} // bounds ephemeral replies sent outside the workers

	mu       sync.RWMutex // guards closed against sends on jobs and notice starts
	closed   bool
	workers  sync.WaitGroup
	inFlight sync.WaitGroup // ephemeral replies started by ServeHTTP
}

// New checks cfg, fills its defaults and starts the background workers.
func New(d Decider, st *store.Store, sl Slack, cfg Config, logger *slog.Logger) (*Handler, error) {
	switch {
	case d == nil || st == nil || sl == nil:
		return nil, errors.New("slackapp: decider, store and Slack client are required")
	case cfg.SigningSecret == "":
		return nil, errors.New("slackapp: the Slack signing secret is required")
	case cfg.TeamID == "" || cfg.AppID == "":
		return nil, errors.New("slackapp: the Slack team id and app id are required")
	case cfg.MaxBody < 0 || cfg.DecideTimeout < 0 || cfg.Workers < 0 || cfg.QueueSize < 0 || cfg.GroupCheckTimeout < 0:
		return nil, errors.New("slackapp: limits must not be negative")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.DecideTimeout == 0 {
		cfg.DecideTimeout = DefaultDecideTimeout
	}
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueuePerWorker * cfg.Workers
	}
	if cfg.GroupCheckTimeout == 0 {
		cfg.GroupCheckTimeout = DefaultGroupCheckTimeout
	}
	base, cancel := context.WithCancel(context.Background())
	h := &Handler{
		decider: d, store: st, slack: sl, cfg: cfg, log: logger,
		replay: newReplayCache(signatureWindow, replayCapacity),
		now:    time.Now,
		base:   base, cancel: cancel,
		jobs:    make(chan job, cfg.QueueSize),
		notices: make(chan struct{}, 4*cfg.Workers),
	}
	h.workers.Add(cfg.Workers)
	for range cfg.Workers {
		go h.work()
	}
	return h, nil
}

// Shutdown stops taking clicks (later ones get 503), then waits until every
// acked decision and reply has finished or ctx ends; in the latter case it
// cancels what is still running and returns ctx's error. It may be called
// more than once.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.jobs)
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		h.workers.Wait()
		h.inFlight.Wait()
		close(done)
	}()
	select {
	case <-done:
		h.cancel()
		return nil
	case <-ctx.Done():
		h.cancel()
		return fmt.Errorf("slackapp: shutdown: %w", ctx.Err())
	}
}

var (
	requestIDPattern = regexp.MustCompile(`^req_[A-Za-z0-9_-]+$`)
	slackUserPattern = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
)

// ServeHTTP handles one interaction request; see the package comment.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.log.With("remote", r.RemoteAddr)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// The signature covers the body only: anything in the URL is unsigned.
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		log.Warn("slack interaction refused: query string present")
		http.Error(w, "query parameters are not accepted; Slack sends the payload in the body", http.StatusBadRequest)
		return
	}
	if h.isClosed() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			log.Warn("slack interaction refused: body too large", "limit", h.cfg.MaxBody)
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		log.Warn("slack interaction refused: unreadable body", "err", err)
		http.Error(w, "could not read the request body", http.StatusBadRequest)
		return
	}

	now := h.now()
	ts, err := h.verify(r.Header, body, now)
	if err != nil {
		log.Warn("slack interaction refused: signature", "reason", err)
		http.Error(w, "invalid request signature", http.StatusUnauthorized)
		return
	}
	switch h.replay.remember(strings.ToLower(r.Header.Get(headerSignature)), ts, now) {
	case replaySeen:
		log.Warn("slack interaction refused: replayed signature")
		http.Error(w, "request already received", http.StatusUnauthorized)
		return
	case replayFull:
		log.Error("slack interaction refused: replay cache full")
		http.Error(w, "too many requests", http.StatusServiceUnavailable)
		return
	}

	ic, err := parsePayload(body)
	if err != nil {
		log.Warn("slack interaction refused: malformed payload", "reason", err)
		http.Error(w, "malformed interaction payload", http.StatusBadRequest)
		return
	}
	if ic.Team.ID != h.cfg.TeamID || ic.APIAppID != h.cfg.AppID {
		log.Warn("slack interaction refused: foreign workspace or app", "team", clip(ic.Team.ID), "app", clip(ic.APIAppID))
		http.Error(w, "this endpoint serves another Slack workspace or app", http.StatusForbidden)
		return
	}
	// From here on the payload is Slack's, signed, for our workspace and app:
	// refusals are worth an audit event.
	if ic.Type == slack.InteractionTypeViewSubmission {
		h.serveSubmission(w, r, log, ic)
		return
	}
	c, code, err := clickFrom(ic)
	if err != nil {
		log.Warn("slack interaction refused: not an approval click", "code", code, "reason", err, "user", clip(c.userID))
		h.auditRefusal(r.Context(), c, code, "", map[string]any{"type": clip(string(ic.Type))})
		http.Error(w, "not an Approve or Reject click", http.StatusBadRequest)
		return
	}
	log = log.With("user", c.userID, "request", c.requestID, "decision", string(c.decision))
	ctx := r.Context()

	agent, req, ref := h.admit(ctx, log, c)
	if ref != nil {
		h.refuse(ctx, w, log, c, ref.code, ref.requestID, ref.text, ref.details)
		if ref.stray {
			h.retire(log, c.channel, c.messageTS, req.ID)
		}
		return
	}
	log = log.With("agent", agent.ID)

	if c.decision == domain.DecisionReject && wantsReason(req, agent) {
		h.openRejectDialog(log, c, req)
		log.Info("slack reject click accepted: asking for the reason")
		w.WriteHeader(http.StatusOK)
		return
	}
	switch h.enqueue(job{click: c, agent: agent}) {
	case enqueueClosed:
		log.Warn("slack click refused: shutting down")
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	case enqueueFull:
		log.Warn("slack click refused: decision queue full", "queue", h.cfg.QueueSize)
		h.refuse(ctx, w, log, c, "busy", req.ID, "Vigil is busy, click again in a minute.", agentDetails(agent))
		return
	}
	log.Info("slack click accepted")
	w.WriteHeader(http.StatusOK)
}

// strayCopy reports whether the clicked message is recorded for no request,
// so retiring it cannot take the buttons off another request's approval
// message: a button naming one request on another's message changes nothing.
// On a lookup error it answers false, leaving the message alone.
func (h *Handler) strayCopy(ctx context.Context, log *slog.Logger, c click) bool {
	owner, err := h.store.RequestIDBySlackMessage(ctx, c.channel, c.messageTS)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true
	case err != nil:
		log.Warn("slack click: message owner lookup failed; clicked message left as it is", "channel", c.channel, "ts", c.messageTS, "err", err)
		return false
	case owner != c.requestID:
		log.Warn("slack click refused: button names another request than its message; message left as it is",
			"channel", c.channel, "ts", c.messageTS, "message_of", owner)
		return false
	}
	return true
}

// messageWait bounds how long a click waits for the approval message's
// location to be stored: the worker stores it just after Slack accepted the
// post, so a very fast click can arrive first. Well inside Slack's 3 s.
const messageWait = time.Second

// requestWithMessage loads the request, re-reading it for a moment while the
// approval message's location is not stored yet.
func (h *Handler) requestWithMessage(ctx context.Context, id string) (store.Request, error) {
	deadline := time.Now().Add(messageWait)
	for {
		req, err := h.store.Request(ctx, id)
		if err != nil || (req.SlackChannel != "" && req.SlackTS != "") || time.Now().After(deadline) {
			return req, err
		}
		select {
		case <-ctx.Done():
			return req, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// verify checks the signature over body with slack-go's verifier, then the
// timestamp window, and returns the signed timestamp.
func (h *Handler) verify(header http.Header, body []byte, now time.Time) (time.Time, error) {
	sv, err := slack.NewSecretsVerifier(header, h.cfg.SigningSecret)
	if err != nil {
		return time.Time{}, fmt.Errorf("verifier: %w", err)
	}
	if _, err := sv.Write(body); err != nil {
		return time.Time{}, fmt.Errorf("hash body: %w", err)
	}
	if err := sv.Ensure(); err != nil {
		return time.Time{}, err
	}
	secs, err := strconv.ParseInt(header.Get(headerTimestamp), 10, 64)
	if err != nil {
		return time.Time{}, errors.New("timestamp is not a number")
	}
	ts := time.Unix(secs, 0)
	if d := now.Sub(ts); d > signatureWindow || d < -signatureWindow {
		return time.Time{}, slack.ErrExpiredTimestamp
	}
	return ts, nil
}

// parsePayload reads the form body (never the URL) and decodes its payload.
func parsePayload(body []byte) (slack.InteractionCallback, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return slack.InteractionCallback{}, errors.New("body is not form-encoded")
	}
	p := form["payload"]
	if len(p) != 1 || p[0] == "" {
		return slack.InteractionCallback{}, errors.New("body needs exactly one payload field")
	}
	var ic slack.InteractionCallback
	if err := json.Unmarshal([]byte(p[0]), &ic); err != nil {
		return slack.InteractionCallback{}, errors.New("payload is not a valid interaction")
	}
	return ic, nil
}

// clickFrom extracts an Approve or Reject click, or says why ic is not one.
// The returned click carries the user id even on error, for the audit.
func clickFrom(ic slack.InteractionCallback) (click, string, error) {
	c := click{userID: ic.User.ID, channel: ic.Channel.ID, messageTS: ic.Container.MessageTs, triggerID: ic.TriggerID}
	if c.channel == "" {
		c.channel = ic.Container.ChannelID
	} else if ic.Container.ChannelID != "" && ic.Container.ChannelID != c.channel {
		c.channelsDisagree = true
	}
	// Ids that go to the database, the audit trail and replies pass the text
	// rule first (a NUL would fail every query; bidi would disguise the trail).
	for _, f := range []struct{ name, v string }{{"user.id", c.userID}, {"channel.id", c.channel}, {"container.message_ts", c.messageTS}} {
		if err := textrule.Check(f.name, f.v, textrule.Options{MaxLen: maxRequestIDLen}); err != nil {
			return c, "malformed_click", err
		}
	}
	if ic.Type != slack.InteractionTypeBlockActions {
		return c, "unsupported_interaction", errors.New("not a block_actions interaction")
	}
	acts := ic.ActionCallback
	if len(acts.BlockActions) != 1 || len(acts.AttachmentActions) != 0 {
		return c, "malformed_click", errors.New("not exactly one block action")
	}
	a := acts.BlockActions[0]
	c.actionTS = cmp.Or(a.ActionTs, ic.ActionTs)
	switch a.ActionID {
	case approvals.ActionApprove:
		c.decision = domain.DecisionApprove
	case approvals.ActionReject:
		c.decision = domain.DecisionReject
	default:
		return c, "unknown_action", errors.New("action_id is neither approve nor reject")
	}
	if len(a.Value) > maxRequestIDLen || !requestIDPattern.MatchString(a.Value) {
		return c, "malformed_request_id", errors.New("button value is not a request id")
	}
	c.requestID = a.Value
	return c, "", nil
}

type enqueueResult int

const (
	enqueued enqueueResult = iota
	enqueueFull
	enqueueClosed
)

// isClosed reports whether Shutdown has begun.
func (h *Handler) isClosed() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.closed
}

// enqueue hands j to the workers without waiting.
func (h *Handler) enqueue(j job) enqueueResult {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return enqueueClosed
	}
	select {
	case h.jobs <- j:
		return enqueued
	default:
		return enqueueFull
	}
}

// refuse records a refused click, shows text to the clicking user in the
// background and answers Slack 200: the click was received, nothing changed.
func (h *Handler) refuse(ctx context.Context, w http.ResponseWriter, log *slog.Logger, c click, code, knownRequestID, text string, details map[string]any) {
	log.Info("slack click refused", "code", code)
	h.auditRefusal(ctx, c, code, knownRequestID, details)
	h.notify(c.channel, c.userID, text)
	w.WriteHeader(http.StatusOK)
}

// knownRequest returns id if such a request exists, so that a refusal shows
// in its audit trail; otherwise "".
func (h *Handler) knownRequest(ctx context.Context, id string) string {
	if id == "" {
		return ""
	}
	if _, err := h.store.Request(ctx, id); err != nil {
		return ""
	}
	return id
}

// auditRefusal appends a slack.click_refused event. Only call it for
// payloads that passed the signature, team and app checks.
func (h *Handler) auditRefusal(ctx context.Context, c click, code, knownRequestID string, extra map[string]any) {
	details := map[string]any{"code": code, "slack_user": clip(c.userID)}
	for k, v := range extra {
		details[k] = v
	}
	if c.requestID != "" {
		details["request"] = c.requestID
		details["decision"] = string(c.decision)
	}
	actor := "slack:" + clip(c.userID)
	if c.userID == "" {
		actor = "slack:unknown"
	}
	// Detached from the HTTP request so that a client hanging up does not
	// lose the event.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), noticeTimeout)
	defer cancel()
	if err := h.store.Audit(ctx, store.AuditEvent{RequestID: knownRequestID, Actor: actor, Event: eventClickRefused, Details: details}); err != nil {
		h.log.Error("audit slack refusal", "code", code, "request", c.requestID, "err", err)
	}
}

// notify shows text to user in channel without holding up the ack.
func (h *Handler) notify(channel, user, text string) {
	if channel == "" || user == "" {
		h.log.Warn("no channel or user to reply to; ephemeral reply not sent")
		return
	}
	if !h.background(func() { h.ephemeral(channel, user, text) }) {
		h.log.Warn("too many Slack calls in flight; ephemeral reply dropped", "user", user)
	}
}

// retire replaces a stray approval message without holding up the ack.
func (h *Handler) retire(log *slog.Logger, channel, ts, requestID string) {
	started := h.background(func() {
		ctx, cancel := context.WithTimeout(h.base, noticeTimeout)
		defer cancel()
		if err := h.slack.RetireApproval(ctx, channel, ts, requestID); err != nil {
			log.Warn("stray approval message not retired", "channel", channel, "ts", ts, "err", err)
			return
		}
		log.Info("stray approval message retired", "channel", channel, "ts", ts)
	})
	if !started {
		log.Warn("too many Slack calls in flight; stray approval message left as it is", "channel", channel, "ts", ts)
	}
}

// background runs fn on its own goroutine, which Shutdown waits for. Under
// a flood of refusals it declines (false) rather than pile up goroutines;
// after Shutdown began it does nothing and reports true.
func (h *Handler) background(fn func()) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		return true
	}
	select {
	case h.notices <- struct{}{}:
	default:
		return false
	}
	h.inFlight.Add(1)
	go func() {
		defer func() { <-h.notices; h.inFlight.Done() }()
		fn()
	}()
	return true
}

// ephemeral sends one reply and logs a failure.
func (h *Handler) ephemeral(channel, user, text string) {
	ctx, cancel := context.WithTimeout(h.base, noticeTimeout)
	defer cancel()
	if err := h.slack.Ephemeral(ctx, channel, user, text); err != nil {
		h.log.Warn("ephemeral reply failed", "user", user, "channel", channel, "err", err)
	}
}

// work runs acked clicks until Shutdown closes the queue.
func (h *Handler) work() {
	defer h.workers.Done()
	for j := range h.jobs {
		h.decide(j)
	}
}

// decide sends one decision and tells the clicker about a refusal.
func (h *Handler) decide(j job) {
	log := h.log.With("user", j.userID, "agent", j.agent.ID, "request", j.requestID, "decision", string(j.decision))
	in := workflows.DecideInput{Decision: j.decision, ApproverID: j.agent.ID, ApproverRole: j.agent.Role}
	if j.decision == domain.DecisionReject {
		in.Reason = j.reason
		if in.Reason == "" {
			// A Reject click sent on without the dialog (see wantsReason):
			// the workflow refuses it in its own words, so this text is
			// never recorded.
			in.Reason = "rejected in Slack"
		}
	}
	ctx, cancel := context.WithTimeout(h.base, h.cfg.DecideTimeout)
	defer cancel()
	// Recorded before the Update: the worker lets a decision through the
	// approval gate only if this web front recorded its verified click, so
	// a decide Update sent around it names no one who did not click.
	if err := h.store.RecordSlackDecision(ctx, store.SlackDecision{RequestID: j.requestID, AgentID: j.agent.ID, Decision: j.decision,
		SlackUser: j.userID, ActionTS: cmp.Or(clip(j.actionTS), "message:"+j.messageTS), RecordedAt: h.now()}); err != nil {
		log.Error("slack decision not recorded; not sent", "err", err)
		h.ephemeral(j.channel, j.userID, "Vigil could not record your decision on "+j.requestID+"; try again in a minute.")
		return
	}
	st, err := h.decider.Decide(ctx, j.requestID, in)
	if err == nil {
		// The workflow wrote the audit event and updates the message.
		log.Info("slack decision recorded", "status", string(st.Status))
		return
	}
	r, ok := requests.AsRefusal(err)
	if !ok {
		log.Error("slack decision failed", "err", err)
		h.ephemeral(j.channel, j.userID, "Vigil could not record your decision on "+j.requestID+"; try again in a minute.")
		return
	}
	log.Info("slack decision refused", "code", string(r.Code))
	h.auditRefusal(h.base, j.click, string(r.Code), j.requestID,
		map[string]any{"agent": j.agent.ID, "role": string(j.agent.Role), "message": r.Message})
	if r.Code == requests.CodeNotSenior {
		sctx, cancel := context.WithTimeout(h.base, noticeTimeout)
		alert := fmt.Sprintf("%s (%s, role %s) tried to %s %s — refused",
			mention(j.userID), inert(j.agent.ID), inert(string(j.agent.Role)), j.decision, j.requestID)
		if err := h.slack.Security(sctx, alert); err != nil {
			log.Warn("security alert failed", "err", err)
		}
		cancel()
	}
	h.ephemeral(j.channel, j.userID, refusalText(r))
}

// refusalText words a refusal for the person who clicked.
func refusalText(r *requests.Refusal) string {
	switch r.Code {
	case requests.CodeSelfApproval:
		return "You opened this request yourself; another senior must approve it."
	case requests.CodeNotSenior:
		return "Only senior agents can approve or reject."
	}
	// already_decided, request_ended, not_awaiting_approval and the rest
	// already say it in words ("already approved by ag_bob at 14:05 UTC").
	return inert(r.Message)
}

// mention is a Slack mention of a well-formed user id, else the id as text.
func mention(userID string) string {
	if slackUserPattern.MatchString(userID) {
		return "<@" + userID + ">"
	}
	return inert(userID)
}

// inert escapes the characters that make mrkdwn mention or link.
func inert(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// clip bounds a payload-supplied string before it reaches logs or audit,
// with what the text rule refuses written out as [U+202E].
func clip(s string) string {
	if len(s) > maxRequestIDLen {
		n := maxRequestIDLen
		for n > 0 && !utf8.RuneStart(s[n]) {
			n-- // never cut a character in two
		}
		s = s[:n] + "…"
	}
	return textrule.Escape(s)
}
