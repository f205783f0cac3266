package slackstandin

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// stateVersion is the layout of the state file; a file of another version is refused.
const stateVersion = 1

// snapshot is what the state file holds: the workspace as Vigil left it.
// Call counts, injected failures and the page's click log are not kept: they
// belong to one run (a test or a session at the page), not to the workspace.
type snapshot struct {
	Version      int                        `json:"version"`
	Channels     map[string]string          `json:"channels"` // id -> name; DMs are "@name"
	Messages     []*Message                 `json:"messages"`
	Posted       map[string]json.RawMessage `json:"posted"`  // channel+" "+ts -> blocks as first posted
	Origins      map[string]string          `json:"origins"` // channel+" "+ts -> poster's base URL
	Ephemerals   []*Message                 `json:"ephemerals"`
	LastTSMicros int64                      `json:"last_ts_micros"`
	ResponseURLs map[string]savedResponse   `json:"response_urls"` // id -> target, until it expires
}

type savedResponse struct {
	Channel string    `json:"channel"`
	TS      string    `json:"ts"`
	User    string    `json:"user"`
	Created time.Time `json:"created"`
	Uses    int       `json:"uses"`
}

// snapshotLocked copies the state to save. Response URLs past their lifetime are dropped.
func (s *Server) snapshotLocked(now time.Time) snapshot {
	snap := snapshot{
		Version: stateVersion, Channels: s.names, Messages: s.messages, Posted: s.posted,
		Origins: s.origins, Ephemerals: s.ephemerals, LastTSMicros: s.lastMicros,
		ResponseURLs: map[string]savedResponse{},
	}
	for id, t := range s.responses {
		if now.Sub(t.created) > responseURLTTL {
			delete(s.responses, id)
			continue
		}
		snap.ResponseURLs[id] = savedResponse{Channel: t.channel, TS: t.ts, User: t.user, Created: t.created, Uses: t.uses}
	}
	return snap
}

// saveLocked writes the state file after a change, when the stand-in has one.
// A failed write is logged and the call still succeeds: the workspace in
// memory is right, only a restart would lose the change.
func (s *Server) saveLocked() {
	if s.state == nil {
		return
	}
	if err := s.state.Save(s.snapshotLocked(time.Now())); err != nil {
		s.log.Error("state not saved: a restart would lose the latest change", "err", err)
	}
}

// loadState fills a new server from its state file and checks the result
// hangs together, so a hand-edited or damaged file fails at start rather
// than as odd answers later.
func (s *Server) loadState() error {
	var snap snapshot
	found, err := s.state.Load(&snap)
	if err != nil || !found {
		return err
	}
	if snap.Version != stateVersion {
		return s.state.Corrupt(fmt.Errorf("version %d, this stand-in reads version %d", snap.Version, stateVersion))
	}
	bad := func(format string, args ...any) error { return s.state.Corrupt(fmt.Errorf(format, args...)) }
	for id, name := range snap.Channels {
		if !channelIDPattern.MatchString(id) || name == "" {
			return bad("channel %q named %q", id, name)
		}
		if other, dup := s.channelIDs[name]; dup {
			return bad("channels %s and %s are both named %q", other, id, name)
		}
		s.names[id], s.channelIDs[name] = name, id
	}
	last := snap.LastTSMicros
	seen := map[string]bool{}
	check := func(m *Message, ephemeral bool) error {
		if m == nil {
			return bad("a null message")
		}
		if _, ok := s.names[m.Channel]; !ok {
			return bad("message %s is in channel %q, which the file does not list", m.TS, m.Channel)
		}
		micros, ok := tsMicros(m.TS)
		if !ok {
			return bad("message ts %q is not <seconds>.<6 digits>", m.TS)
		}
		if m.Ephemeral != ephemeral {
			return bad("message %s is listed with the wrong kind (ephemeral=%v)", m.TS, m.Ephemeral)
		}
		key := m.Channel + " " + m.TS
		if seen[key] {
			return bad("message %s in %s is listed twice", m.TS, m.Channel)
		}
		seen[key] = true
		if len(m.Blocks) > 0 && !json.Valid(m.Blocks) {
			return bad("message %s has blocks that are not JSON", m.TS)
		}
		last = max(last, micros)
		return nil
	}
	for _, m := range snap.Messages {
		if err := check(m, false); err != nil {
			return err
		}
	}
	for _, m := range snap.Ephemerals {
		if err := check(m, true); err != nil {
			return err
		}
	}
	s.messages, s.ephemerals, s.lastMicros = snap.Messages, snap.Ephemerals, last
	if snap.Posted != nil {
		s.posted = snap.Posted
	}
	if snap.Origins != nil {
		s.origins = snap.Origins
	}
	for id, r := range snap.ResponseURLs {
		s.responses[id] = &responseTarget{channel: r.Channel, ts: r.TS, user: r.User, created: r.Created, uses: r.Uses}
	}
	s.log.Info("state loaded", "file", s.state.Path(), "channels", len(s.names), "messages", len(s.messages), "ephemerals", len(s.ephemerals))
	return nil
}

// tsMicros reads a message timestamp "<unix>.<micros>".
func tsMicros(ts string) (int64, bool) {
	sec, frac, ok := strings.Cut(ts, ".")
	if !ok || len(frac) != 6 || sec == "" {
		return 0, false
	}
	s, err1 := strconv.ParseInt(sec, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if errors.Join(err1, err2) != nil || s < 0 || f < 0 {
		return 0, false
	}
	return s*1_000_000 + f, true
}
