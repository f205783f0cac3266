// Package slackstandin is a local stand-in for the parts of the Slack Web API
// Vigil uses, with a page where a person clicks message buttons as any
// configured user. Clicks reach Vigil signed exactly as Slack signs them, so
// Vigil's real verification code runs against them.
package slackstandin

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/vigil-oss/vigil/internal/standin"
)

// The bot the stand-in plays; Slack assigns these when an app is installed.
const (
	botUserID  = "U0VIGILBOT"
	botID      = "B0VIGILBOT"
	teamDomain = "vigil-standin"
)

// Defaults for the workspace and app ids when Config leaves them empty.
const (
	DefaultTeamID = "T0VIGIL"
	DefaultAppID  = "A0VIGIL"
)

// Config describes the workspace the stand-in plays.
type Config struct {
	BotToken       string              // the xoxb- token Vigil must present
	SigningSecret  string              // signs interaction requests sent to Vigil
	TeamID         string              // workspace id (default T0VIGIL)
	AppID          string              // app id (default A0VIGIL)
	InteractionURL string              // Vigil's POST /slack/interactions
	Users          []User              // people who can be looked up and click as
	Groups         map[string][]string // usergroup id -> user ids
	// Agents says which Vigil agent each member is. The page only uses it:
	// its "as" menu defaults to a senior who did not open the request, and
	// the confirm step names the agent who clicks. Without it, members of
	// the usergroups count as the seniors.
	Agents []Agent
	// StatePath, when set, is a JSON file the workspace is kept in across
	// restarts: channels, messages with their ts and edits, DMs, ephemeral
	// replies and live response URLs. It is loaded at start (a corrupt file
	// fails New, naming it) and rewritten atomically after every change.
	StatePath string
}

// String describes the config without its secrets.
func (c Config) String() string {
	return fmt.Sprintf("slackstandin.Config{team=%s app=%s interaction_url=%s users=%d groups=%d state=%s bot_token=[redacted] signing_secret=[redacted]}",
		c.TeamID, c.AppID, c.InteractionURL, len(c.Users), len(c.Groups), c.StatePath)
}

// LogValue logs the config without its secrets.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("team", c.TeamID),
		slog.String("app", c.AppID),
		slog.String("interaction_url", c.InteractionURL),
		slog.Int("users", len(c.Users)),
		slog.Int("groups", len(c.Groups)),
		slog.String("state", c.StatePath),
		slog.String("bot_token", "[redacted]"),
		slog.String("signing_secret", "[redacted]"),
	)
}

// User is a workspace member.
type User struct{ ID, Name, RealName string }

// Agent is the Vigil agent a workspace member is.
type Agent struct {
	ID          string // ag_bob
	Role        string // agent, senior, admin, security
	SlackUserID string
}

// Message is a message as the workspace currently shows it.
type Message struct {
	Channel   string          `json:"channel"`
	TS        string          `json:"ts"`
	ThreadTS  string          `json:"thread_ts,omitempty"`
	Text      string          `json:"text"`
	Blocks    json.RawMessage `json:"blocks,omitempty"`
	Updated   int             `json:"updated"`             // how many times it was edited
	Ephemeral bool            `json:"ephemeral,omitempty"` // visible to User only
	User      string          `json:"user,omitempty"`      // for ephemeral messages: the recipient
	At        time.Time       `json:"at"`
}

// responseTarget is what a response_url handed out with a click points at.
type responseTarget struct {
	channel, ts, user string
	created           time.Time
	uses              int
}

// clickResult is what the page shows after a click from it.
type clickResult struct {
	ID                    int
	Channel, TS, ActionID string
	User, Label           string
	Status                int
	Body, Err             string
	At                    time.Time
}

// Server is the stand-in. Its zero value is not usable; call New.
type Server struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	users  map[string]User
	agents map[string]Agent   // Slack user id -> agent
	state  *standin.StateFile // nil: the workspace lives in memory only

	mu       sync.Mutex
	messages []*Message // channel messages, in post order
	// posted keeps each message's blocks as first posted, for clicks from a
	// client that has not seen an update yet (see ClickStale).
	posted     map[string]json.RawMessage
	ephemerals []*Message
	origins    map[string]string // channel+" "+ts -> base URL the poster used to reach us
	channelIDs map[string]string // name -> id
	names      map[string]string // id -> name
	calls      map[string]int
	failures   map[string][]int
	lastMicros int64
	responses  map[string]*responseTarget
	clicks     []clickResult
	triggers   map[string]*trigger // trigger_id -> the click that carried it
	views      []*View             // open modals, oldest first
}

var (
	userIDPattern    = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	groupIDPattern   = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
	channelIDPattern = regexp.MustCompile(`^[CGD][A-Z0-9]{2,}$`)
	channelNameChars = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,79}$`)
)

// New checks cfg and returns a stand-in with the workspace its state file
// holds, or with no messages when it has none.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BotToken == "" {
		return nil, errors.New("slackstandin: bot token is required")
	}
	if cfg.SigningSecret == "" {
		return nil, errors.New("slackstandin: signing secret is required")
	}
	if cfg.TeamID == "" {
		cfg.TeamID = DefaultTeamID
	}
	if cfg.AppID == "" {
		cfg.AppID = DefaultAppID
	}
	if cfg.InteractionURL != "" {
		u, err := url.Parse(cfg.InteractionURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("slackstandin: interaction URL %q is not an http(s) URL", cfg.InteractionURL)
		}
	}
	users := make(map[string]User, len(cfg.Users))
	for _, u := range cfg.Users {
		if !userIDPattern.MatchString(u.ID) {
			return nil, fmt.Errorf("slackstandin: user id %q does not look like a Slack user id (U…)", u.ID)
		}
		if u.Name == "" {
			return nil, fmt.Errorf("slackstandin: user %s has no name", u.ID)
		}
		if _, dup := users[u.ID]; dup {
			return nil, fmt.Errorf("slackstandin: user %s is listed twice", u.ID)
		}
		users[u.ID] = u
	}
	for g := range cfg.Groups {
		if !groupIDPattern.MatchString(g) {
			return nil, fmt.Errorf("slackstandin: usergroup id %q does not look like a Slack usergroup id (S…)", g)
		}
	}
	agents := make(map[string]Agent, len(cfg.Agents))
	for _, a := range cfg.Agents {
		if _, ok := users[a.SlackUserID]; !ok {
			return nil, fmt.Errorf("slackstandin: agent %s is Slack user %q, who is not a member of the workspace", a.ID, a.SlackUserID)
		}
		agents[a.SlackUserID] = a
	}
	s := &Server{
		cfg:        cfg,
		log:        logger,
		client:     &http.Client{Timeout: 30 * time.Second},
		users:      users,
		agents:     agents,
		origins:    map[string]string{},
		posted:     map[string]json.RawMessage{},
		channelIDs: map[string]string{},
		names:      map[string]string{},
		calls:      map[string]int{},
		failures:   map[string][]int{},
		responses:  map[string]*responseTarget{},
		triggers:   map[string]*trigger{},
	}
	if cfg.StatePath != "" {
		state, err := standin.OpenStateFile(cfg.StatePath)
		if err != nil {
			return nil, fmt.Errorf("slackstandin: %w", err)
		}
		s.state = state
		if err := s.loadState(); err != nil {
			return nil, fmt.Errorf("slackstandin: %w", err)
		}
		// Write once now, so a file that cannot be written fails at start, not at the first post.
		if err := state.Save(s.snapshotLocked(time.Now())); err != nil {
			return nil, fmt.Errorf("slackstandin: %w", err)
		}
	}
	return s, nil
}

// Handler serves the Web API, response URLs, the page and the script API:
//
//	GET|POST /api/{method}    Slack Web API methods (auth.test, chat.postMessage, chat.update,
//	                          chat.delete, chat.postEphemeral, conversations.open, users.info,
//	                          usergroups.users.list, views.open)
//	POST     /response/{id}   response_url posts from Vigil
//	GET      /                channels and messages, one form per button
//	POST     /ui/click        click a button from the page (then back to /)
//	GET      /api/messages    {"messages":[…],"ephemerals":[…]}
//	GET      /standin/calls   {"chat.postMessage":n,…}
//	POST     /standin/fail    {"method":"chat.postMessage","statuses":[429,500]}
//	POST     /standin/click   {"channel","ts","action_id","user","stale"} -> {"status","body"}
//	POST     /standin/delete  {"channel","ts"}: a person deletes a message
//	GET      /standin/views   {"views":[…]}: the modals open now
//	POST     /standin/submit  {"view_id","values":{"block_id":"text"}} -> {"status","body","closed","errors"}
//	POST     /ui/submit       submit (or cancel) a modal from the page
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/{method}", s.serveAPI)
	mux.HandleFunc("POST /response/{id}", s.serveResponseURL)
	mux.HandleFunc("GET /{$}", s.servePage)
	mux.HandleFunc("POST /ui/click", s.serveUIClick)
	mux.HandleFunc("GET /api/messages", s.serveMessagesJSON)
	mux.HandleFunc("GET /standin/calls", s.serveCalls)
	mux.HandleFunc("POST /standin/fail", s.serveFail)
	mux.HandleFunc("POST /standin/click", s.serveScriptClick)
	mux.HandleFunc("POST /standin/delete", s.serveScriptDelete)
	mux.HandleFunc("GET /standin/views", s.serveViews)
	mux.HandleFunc("POST /standin/submit", s.serveScriptSubmit)
	mux.HandleFunc("POST /ui/submit", s.serveUISubmit)
	return securityHeaders(mux)
}

// Messages returns the channel messages as they stand now, in post order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.messages))
	for _, m := range s.messages {
		out = append(out, copyMessage(m))
	}
	return out
}

// Ephemerals returns the ephemeral messages shown to user, in post order.
func (s *Server) Ephemerals(user string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.ephemerals {
		if m.User == user {
			out = append(out, copyMessage(m))
		}
	}
	return out
}

// Calls reports how many calls of a Web API method arrived, failed ones included.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// FailNext makes the next calls of method answer these HTTP statuses, in
// order, without doing anything: 429 comes with Retry-After: 1 and a
// ratelimited body, other statuses with an HTML body as Slack's front sends.
func (s *Server) FailNext(method string, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[method] = append(s.failures[method], statuses...)
}

func copyMessage(m *Message) Message {
	c := *m
	c.Blocks = append(json.RawMessage(nil), m.Blocks...)
	return c
}

// nextTSLocked returns a message timestamp in Slack's "<unix>.<micros>" form,
// strictly greater than every one handed out before.
func (s *Server) nextTSLocked(now time.Time) string {
	m := now.UnixMicro()
	if m <= s.lastMicros {
		m = s.lastMicros + 1
	}
	s.lastMicros = m
	return fmt.Sprintf("%d.%06d", m/1_000_000, m%1_000_000)
}

// resolveChannelLocked maps a channel id, name or #name to its id and name,
// creating the channel on first use. A workspace member's user id is their
// direct message channel with the bot, as in Slack.
func (s *Server) resolveChannelLocked(ref string) (id, name string, ok bool) {
	ref = strings.TrimSpace(ref)
	if userIDPattern.MatchString(ref) {
		return s.dmLocked(ref)
	}
	if channelIDPattern.MatchString(ref) {
		if name, ok := s.names[ref]; ok {
			return ref, name, true
		}
		name = strings.ToLower(ref)
		s.names[ref] = name
		s.channelIDs[name] = ref
		return ref, name, true
	}
	name = strings.TrimPrefix(ref, "#")
	if !channelNameChars.MatchString(name) {
		return "", "", false
	}
	if id, ok := s.channelIDs[name]; ok {
		return id, name, true
	}
	base := "C0" + strings.ToUpper(strings.NewReplacer("-", "", "_", "").Replace(name))
	if len(base) > 20 {
		base = base[:20]
	}
	id = base
	for n := 2; ; n++ {
		if _, taken := s.names[id]; !taken {
			break
		}
		id = fmt.Sprintf("%s%d", base, n)
	}
	s.names[id] = name
	s.channelIDs[name] = id
	return id, name, true
}

// dmLocked returns the direct message channel between the bot and a
// workspace member, opening it on first use: id D…, name "@name".
func (s *Server) dmLocked(userID string) (id, name string, ok bool) {
	u, known := s.users[userID]
	if !known {
		return "", "", false
	}
	id, name = "D"+strings.TrimLeft(userID, "UW"), "@"+u.Name
	if other, taken := s.names[id]; taken && other != name {
		id = "D" + userID // a channel id was taken by hand; stay unique
	}
	s.names[id], s.channelIDs[name] = name, id
	return id, name, true
}

// existingChannelLocked maps a channel reference to an id without creating it.
func (s *Server) existingChannelLocked(ref string) (string, bool) {
	ref = strings.TrimSpace(ref)
	if u, ok := s.users[ref]; ok {
		id, ok := s.channelIDs["@"+u.Name]
		return id, ok
	}
	if _, ok := s.names[ref]; ok {
		return ref, true
	}
	id, ok := s.channelIDs[strings.TrimPrefix(ref, "#")]
	return id, ok
}

func (s *Server) findLocked(channelID, ts string) *Message {
	for _, m := range s.messages {
		if m.Channel == channelID && m.TS == ts {
			return m
		}
	}
	return nil
}
