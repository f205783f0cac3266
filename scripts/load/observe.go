package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lib/pq"
)

// row is what the driver reads of a request in the projection: where its
// approval message is, and how far it got. The driver reads it from
// Postgres, not through the status endpoint: that endpoint answers with a
// Temporal Query, and polling it would add load that is not the request's
// own. The web front itself maps a click to its request through the same
// columns.
type row struct {
	channel, ts string
	status      string
	endedAt     time.Time
}

// observer polls the requests table for the rows someone waits on, in one
// query per tick.
type observer struct {
	db   *sql.DB
	tick time.Duration

	mu      sync.Mutex
	waiters map[string][]*rowWaiter
}

type rowWaiter struct {
	cond func(row) bool
	ch   chan row
}

func newObserver(db *sql.DB, tick time.Duration) *observer {
	return &observer{db: db, tick: tick, waiters: map[string][]*rowWaiter{}}
}

// wait blocks until request id's row satisfies cond.
func (o *observer) wait(ctx context.Context, id string, cond func(row) bool) (row, error) {
	w := &rowWaiter{cond: cond, ch: make(chan row, 1)}
	o.mu.Lock()
	o.waiters[id] = append(o.waiters[id], w)
	o.mu.Unlock()
	select {
	case r := <-w.ch:
		return r, nil
	case <-ctx.Done():
		o.mu.Lock()
		ws := o.waiters[id]
		for i, x := range ws {
			if x == w {
				o.waiters[id] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(o.waiters[id]) == 0 {
			delete(o.waiters, id)
		}
		o.mu.Unlock()
		return row{}, ctx.Err()
	}
}

// run polls until ctx ends; a failing query is reported once per minute
// at most and retried.
func (o *observer) run(ctx context.Context, logf func(string, ...any)) {
	t := time.NewTicker(o.tick)
	defer t.Stop()
	var lastErr time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := o.poll(ctx); err != nil && ctx.Err() == nil && time.Since(lastErr) > time.Minute {
			lastErr = time.Now()
			logf("reading the requests table: %v", err)
		}
	}
}

func (o *observer) poll(ctx context.Context) error {
	o.mu.Lock()
	ids := make([]string, 0, len(o.waiters))
	for id := range o.waiters {
		ids = append(ids, id)
	}
	o.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	rows, err := o.db.QueryContext(ctx, `SELECT id, COALESCE(slack_channel, ''), COALESCE(slack_ts, ''), status, ended_at
		FROM requests WHERE id = ANY($1)`, pq.Array(ids))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var r row
		var ended sql.NullTime
		if err := rows.Scan(&id, &r.channel, &r.ts, &r.status, &ended); err != nil {
			return err
		}
		r.endedAt = ended.Time
		o.mu.Lock()
		ws := o.waiters[id]
		kept := ws[:0]
		for _, w := range ws {
			if w.cond(r) {
				w.ch <- r
			} else {
				kept = append(kept, w)
			}
		}
		if len(kept) == 0 {
			delete(o.waiters, id)
		} else {
			o.waiters[id] = kept
		}
		o.mu.Unlock()
	}
	return rows.Err()
}

// caughtMail is a message as the mail catcher's JSON API lists it.
type caughtMail struct {
	ID      int      `json:"id"`
	To      []string `json:"to"`
	Subject string   `json:"subject"`
	Text    string   `json:"text"`
}

// mailbox reads the mail catcher while someone waits for a notice: the
// catcher lists every message it holds, so it is asked only then.
type mailbox struct {
	url  string
	hc   *http.Client
	tick time.Duration

	mu      sync.Mutex
	seen    map[int]bool
	waiters map[string]chan caughtMail // by the address the request adds
	early   map[string]caughtMail      // notices nobody waited for yet
}

func newMailbox(url string, tick time.Duration) *mailbox {
	return &mailbox{url: url, hc: &http.Client{Timeout: 30 * time.Second}, tick: tick,
		seen: map[int]bool{}, waiters: map[string]chan caughtMail{}, early: map[string]caughtMail{}}
}

// expect registers interest in the notice about address before it can
// arrive; wait then returns it.
func (m *mailbox) expect(address string) func(ctx context.Context) (caughtMail, error) {
	ch := make(chan caughtMail, 1)
	m.mu.Lock()
	if msg, ok := m.early[address]; ok {
		delete(m.early, address)
		ch <- msg
	} else {
		m.waiters[address] = ch
	}
	m.mu.Unlock()
	return func(ctx context.Context) (caughtMail, error) {
		select {
		case msg := <-ch:
			return msg, nil
		case <-ctx.Done():
			m.mu.Lock()
			delete(m.waiters, address)
			m.mu.Unlock()
			return caughtMail{}, ctx.Err()
		}
	}
}

func (m *mailbox) run(ctx context.Context, logf func(string, ...any)) {
	t := time.NewTicker(m.tick)
	defer t.Stop()
	var lastErr time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		idle := len(m.waiters) == 0
		m.mu.Unlock()
		if idle {
			continue
		}
		if err := m.poll(ctx); err != nil && ctx.Err() == nil && time.Since(lastErr) > time.Minute {
			lastErr = time.Now()
			logf("reading the mail catcher: %v", err)
		}
	}
}

func (m *mailbox) poll(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url+"/api/messages", nil)
	if err != nil {
		return err
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /api/messages: %s", resp.Status)
	}
	var msgs []caughtMail
	if err := json.NewDecoder(resp.Body).Decode(&msgs); err != nil {
		return fmt.Errorf("decode the mail list: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, msg := range msgs {
		if m.seen[msg.ID] {
			continue
		}
		m.seen[msg.ID] = true
		address, ok := noticeAddress(msg)
		if !ok {
			continue
		}
		if ch, ok := m.waiters[address]; ok {
			delete(m.waiters, address)
			ch <- msg
		} else if _, dup := m.early[address]; !dup {
			m.early[address] = msg
		}
	}
	return nil
}

// noticeAddress returns the load address a notice is about: a notice has a
// cancel link, and its subject names the address the request adds.
func noticeAddress(msg caughtMail) (string, bool) {
	if !strings.Contains(msg.Text, "/c/") {
		return "", false
	}
	for f := range strings.FieldsSeq(msg.Subject) {
		f = strings.Trim(f, ".,;:()")
		if strings.HasPrefix(f, "r") && strings.HasSuffix(f, loadMailDomain) {
			return f, true
		}
	}
	return "", false
}

// loadMailDomain ends every address a load request adds.
const loadMailDomain = ".load.example"

// errNotExecuted is a request that ended otherwise.
var errNotExecuted = errors.New("not executed")
