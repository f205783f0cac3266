package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestAllow(t *testing.T) {
	type step struct {
		after     time.Duration
		key       string
		want      bool
		wantRetry time.Duration // checked when !want
	}
	tests := []struct {
		name  string
		limit Limit
		steps []step
	}{
		{"burst then refused", Limit{PerMinute: 60, Burst: 2}, []step{
			{key: "a", want: true},
			{key: "a", want: true},
			{key: "a", want: false, wantRetry: time.Second},
		}},
		{"refills at the rate", Limit{PerMinute: 60, Burst: 1}, []step{
			{key: "a", want: true},
			{after: 500 * time.Millisecond, key: "a", want: false, wantRetry: 500 * time.Millisecond},
			{after: 500 * time.Millisecond, key: "a", want: true},
		}},
		{"never above burst", Limit{PerMinute: 60, Burst: 2}, []step{
			{key: "a", want: true},
			{after: time.Hour, key: "a", want: true},
			{key: "a", want: true},
			{key: "a", want: false, wantRetry: time.Second},
		}},
		{"keys are independent", Limit{PerMinute: 1, Burst: 1}, []step{
			{key: "a", want: true},
			{key: "a", want: false, wantRetry: time.Minute},
			{key: "b", want: true},
		}},
		{"zero limit lets everything through", Limit{}, []step{
			{key: "a", want: true}, {key: "a", want: true}, {key: "a", want: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1_700_000_000, 0)}
			l := New(tt.limit, 0, c.now)
			for i, s := range tt.steps {
				c.add(s.after)
				ok, retry := l.Allow(s.key)
				if ok != s.want {
					t.Fatalf("step %d: Allow(%s) = %v, want %v", i, s.key, ok, s.want)
				}
				if !ok && retry != s.wantRetry {
					t.Fatalf("step %d: retry after %v, want %v", i, retry, s.wantRetry)
				}
			}
		})
	}
}

func TestEvictsLeastRecentlySeen(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(Limit{PerMinute: 1, Burst: 1}, 3, c.now)
	for _, k := range []string{"a", "b", "c"} {
		if ok, _ := l.Allow(k); !ok {
			t.Fatalf("first Allow(%s) refused", k)
		}
	}
	// Touch a so that b is the least recently seen.
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("a allowed twice with burst 1")
	}
	if ok, _ := l.Allow("d"); !ok {
		t.Fatal("new key d refused")
	}
	if n := l.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	// b was forgotten, so it gets a fresh bucket; a and c were kept.
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("evicted key b should start with a full bucket")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("a should still be limited")
	}
}

func TestManyKeysStayBounded(t *testing.T) {
	l := New(Limit{PerMinute: 10, Burst: 1}, 100, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				l.Allow(fmt.Sprintf("%d-%d", g, i))
			}
		}()
	}
	wg.Wait()
	if n := l.Len(); n != 100 {
		t.Fatalf("Len = %d, want 100", n)
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "1"}, {time.Millisecond, "1"}, {time.Second, "1"}, {1001 * time.Millisecond, "2"}, {time.Minute, "60"},
	}
	for _, tt := range tests {
		if got := RetryAfter(tt.d); got != tt.want {
			t.Errorf("RetryAfter(%v) = %s, want %s", tt.d, got, tt.want)
		}
	}
}

// TestExhausted: asking spends nothing, an unseen key is never exhausted,
// and a spent key is until its refill.
func TestExhausted(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(Limit{PerMinute: 60, Burst: 2}, 0, c.now)
	for range 5 {
		if ex, _ := l.Exhausted("a"); ex {
			t.Fatal("an unseen key is exhausted")
		}
	}
	if l.Len() != 0 {
		t.Fatalf("asking tracked %d keys", l.Len())
	}
	l.Allow("a")
	if ex, _ := l.Exhausted("a"); ex {
		t.Fatal("exhausted with one token left")
	}
	l.Allow("a")
	ex, wait := l.Exhausted("a")
	if !ex || wait != time.Second {
		t.Fatalf("after the burst: %v %v, want exhausted for 1s", ex, wait)
	}
	if ex, _ := l.Exhausted("b"); ex {
		t.Fatal("another key is exhausted")
	}
	c.add(time.Second)
	if ex, _ := l.Exhausted("a"); ex {
		t.Fatal("still exhausted after the refill")
	}
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("Exhausted spent the refilled token")
	}
	if ex, _ := New(Limit{}, 0, c.now).Exhausted("a"); ex {
		t.Fatal("an unlimited limiter is exhausted")
	}
}
