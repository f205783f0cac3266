// Package ratelimit is a token-bucket rate limiter keyed by string (an agent
// id, a client address) that keeps at most a fixed number of keys.
package ratelimit

import (
	"container/list"
	"math"
	"strconv"
	"sync"
	"time"
)

// Limit is a bucket's shape: it holds Burst tokens and refills at PerMinute
// tokens a minute. The zero Limit means no limit at all.
type Limit struct {
	PerMinute float64
	Burst     int
}

// Unlimited reports whether l lets everything through.
func (l Limit) Unlimited() bool { return l.PerMinute <= 0 || l.Burst <= 0 }

// DefaultMaxKeys bounds memory when New is given no cap.
const DefaultMaxKeys = 10000

// Limiter hands out tokens per key. When it tracks maxKeys keys and meets a
// new one, it forgets the least recently seen key; that key starts again
// with a full bucket, which is the price of bounded memory (an idle key has
// usually refilled anyway). It is safe for concurrent use.
type Limiter struct {
	limit   Limit
	maxKeys int
	now     func() time.Time

	mu    sync.Mutex
	lru   *list.List // of *bucket, most recently seen at the front
	items map[string]*list.Element
}

type bucket struct {
	key    string
	tokens float64
	last   time.Time
}

// New returns a limiter for l keeping at most maxKeys keys (DefaultMaxKeys
// when maxKeys <= 0). now is the clock; nil means time.Now.
func New(l Limit, maxKeys int, now func() time.Time) *Limiter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{limit: l, maxKeys: maxKeys, now: now, lru: list.New(), items: map[string]*list.Element{}}
}

// Allow takes one token from key's bucket. When the bucket is empty it
// returns false and how long until a token is back.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if l.limit.Unlimited() {
		return true, 0
	}
	now := l.now()
	rate := l.limit.PerMinute / float64(time.Minute) // tokens per nanosecond
	burst := float64(l.limit.Burst)

	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if el, found := l.items[key]; found {
		l.lru.MoveToFront(el)
		b = el.Value.(*bucket)
		if elapsed := now.Sub(b.last); elapsed > 0 {
			b.tokens = math.Min(burst, b.tokens+float64(elapsed)*rate)
		}
		b.last = now
	} else {
		for l.lru.Len() >= l.maxKeys {
			oldest := l.lru.Back()
			delete(l.items, oldest.Value.(*bucket).key)
			l.lru.Remove(oldest)
		}
		b = &bucket{key: key, tokens: burst, last: now}
		l.items[key] = l.lru.PushFront(b)
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration(math.Ceil((1 - b.tokens) / rate))
}

// Exhausted reports, without taking a token, whether key's bucket has none
// left, and how long until one is back. A caller that spends tokens only on
// failures (a wrong password) asks it first, so that an exhausted key is
// refused before its next attempt is even judged.
func (l *Limiter) Exhausted(key string) (bool, time.Duration) {
	if l.limit.Unlimited() {
		return false, 0
	}
	now := l.now()
	rate := l.limit.PerMinute / float64(time.Minute)
	l.mu.Lock()
	defer l.mu.Unlock()
	el, found := l.items[key]
	if !found {
		return false, 0
	}
	b := el.Value.(*bucket)
	tokens := b.tokens
	if elapsed := now.Sub(b.last); elapsed > 0 {
		tokens = math.Min(float64(l.limit.Burst), tokens+float64(elapsed)*rate)
	}
	if tokens >= 1 {
		return false, 0
	}
	return true, time.Duration(math.Ceil((1 - tokens) / rate))
}

// Len returns how many keys the limiter tracks.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// RetryAfter renders d as a Retry-After header value: whole seconds, rounded
// up, at least 1.
func RetryAfter(d time.Duration) string {
	s := int64(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
