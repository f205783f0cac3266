package slackapp

import (
	"sync"
	"time"
)

// replayCache remembers the signatures of verified requests until their
// timestamp leaves the acceptance window, so that an exact copy of a request
// Slack sent (the signature covers timestamp and body) is refused. It holds at
// most max entries; when full of live entries it refuses new ones rather than
// forget one, which would let that one be replayed.
type replayCache struct {
	window time.Duration
	max    int

	mu        sync.Mutex
	seen      map[string]time.Time // signature -> when it may be forgotten
	lastPrune time.Time
}

// replayOutcome is what remember found.
type replayOutcome int

const (
	replayFresh replayOutcome = iota // first sighting, now remembered
	replaySeen                       // an exact replay
	replayFull                       // the cache is full of live entries
)

func newReplayCache(window time.Duration, max int) *replayCache {
	return &replayCache{window: window, max: max, seen: make(map[string]time.Time)}
}

// remember records sig, signed at ts, as seen at now.
func (c *replayCache) remember(sig string, ts, now time.Time) replayOutcome {
	// A signature is acceptable while its timestamp is within the window of
	// the clock, so it must be kept until ts+window; a second of slack covers
	// the verifier truncating to whole seconds.
	forget := ts.Add(c.window + time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	if until, ok := c.seen[sig]; ok && now.Before(until) {
		return replaySeen
	}
	if len(c.seen) >= c.max || now.Sub(c.lastPrune) > c.window/10 {
		c.pruneLocked(now)
	}
	if len(c.seen) >= c.max {
		return replayFull
	}
	c.seen[sig] = forget
	return replayFresh
}

func (c *replayCache) pruneLocked(now time.Time) {
	for sig, until := range c.seen {
		if !now.Before(until) {
			delete(c.seen, sig)
		}
	}
	c.lastPrune = now
}

// size reports how many signatures are remembered.
func (c *replayCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
