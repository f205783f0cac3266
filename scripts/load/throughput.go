package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/vigil-oss/vigil/internal/cliclient"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/loadbare"
	"github.com/vigil-oss/vigil/internal/loadstack"
	"github.com/vigil-oss/vigil/workflows"
)

// requestTimeout bounds one request's whole way; a request still open then
// counts as failed.
const requestTimeout = 5 * time.Minute

// policy is the bare workflow's timings, and Vigil's through stackEnv.
func policy(cfg settings) loadbare.Policy {
	return loadbare.Policy{ApprovalTimeout: 30 * time.Minute, CoolingPeriod: cfg.cooling, NoticeTimeout: 24 * time.Hour, ExecuteMaxAttempts: 10}
}

// drive runs do(i) for i in [from, to) with c at a time and returns the
// samples in order and how long they all took.
func drive(ctx context.Context, from, to, c int, do func(ctx context.Context, i int) sample) ([]sample, time.Duration) {
	out := make([]sample, to-from)
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Go(func() {
			for i := range work {
				rctx, cancel := context.WithTimeout(ctx, requestTimeout)
				out[i-from] = do(rctx, i)
				cancel()
			}
		})
	}
	for i := from; i < to; i++ {
		select {
		case work <- i:
		case <-ctx.Done():
			for j := i; j < to; j++ {
				out[j-from] = sample{err: ctx.Err()}
			}
			i = to
		}
	}
	close(work)
	wg.Wait()
	return out, time.Since(start)
}

// driver holds what both modes drive Vigil with.
type driver struct {
	st     *loadstack.Stack
	seeds  *seeded
	prefix string
	db     *sql.DB
	obs    *observer
	mail   *mailbox
	hc     *http.Client
	tc     client.Client
}

func newDriver(ctx context.Context, st *loadstack.Stack, n int, logf func(string, ...any)) (*driver, error) {
	prefix := "l" + randomHex(3)
	seeds, err := seed(ctx, st.WebURL, st.AdminURL, st.AdminToken, prefix, n)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("postgres", st.DSN)
	if err != nil {
		return nil, err
	}
	tc, err := client.Dial(client.Options{HostPort: st.Temporal, Namespace: st.Namespace,
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to Temporal: %w", err)
	}
	d := &driver{st: st, seeds: seeds, prefix: prefix, db: db, obs: newObserver(db, 100*time.Millisecond),
		mail: newMailbox(st.MailURL, 300*time.Millisecond), hc: &http.Client{Timeout: time.Minute}, tc: tc}
	go d.obs.run(ctx, logf)
	go d.mail.run(ctx, logf)
	return d, nil
}

func (d *driver) close() {
	d.tc.Close()
	d.db.Close()
}

// address is the contact address request i adds.
func (d *driver) address(i int) string { return fmt.Sprintf("r%d@%s%s", i, d.prefix, loadMailDomain) }

// openAndApprove opens request i as its agent, and clicks Approve on its
// Slack message as the senior. readNotice also waits for the notice.
func (d *driver) openAndApprove(ctx context.Context, i int, readNotice bool) (string, sample) {
	var s sample
	start := time.Now()
	r, err := d.seeds.agentOf(i).OpenRequest(ctx, cliclient.NewRequest{
		Action: domain.ActionAddContactEmail, CustomerID: d.seeds.customerOf(i), Email: d.address(i),
		Reason: "load test: a new on-call address", PIN: []byte(loadPIN),
	})
	s.open = time.Since(start)
	if err != nil {
		s.err = fmt.Errorf("open %d: %w", i, err)
		return "", s
	}
	if r.Status != domain.StatusPINCheck && r.Status != domain.StatusAwaitingApproval {
		s.err = fmt.Errorf("open %d: answered %s, want pin_check or awaiting_approval", i, r.Status)
		return r.ID, s
	}
	msg, err := d.obs.wait(ctx, r.ID, func(x row) bool { return x.ts != "" || !x.endedAt.IsZero() })
	if err != nil || msg.ts == "" {
		s.err = fmt.Errorf("request %s: no approval message (%v, status %s)", r.ID, err, msg.status)
		return r.ID, s
	}
	var notice func(context.Context) (caughtMail, error)
	if readNotice {
		notice = d.mail.expect(d.address(i))
	}
	clicked := time.Now()
	if err := d.click(ctx, msg.channel, msg.ts); err != nil {
		s.err = fmt.Errorf("request %s: %w", r.ID, err)
		return r.ID, s
	}
	s.click = time.Since(clicked)
	if readNotice {
		m, err := notice(ctx)
		if err != nil {
			s.err = fmt.Errorf("request %s: no notice: %w", r.ID, err)
			return r.ID, s
		}
		if !strings.Contains(m.Text, d.st.WebURL+"/c/") {
			s.err = fmt.Errorf("request %s: the notice has no cancel link to %s", r.ID, d.st.WebURL)
		}
	}
	s.toExecuted = time.Since(start) // until the caller knows better
	return r.ID, s
}

// click presses Approve as the senior through the Slack stand-in, which
// signs the interaction as Slack does and returns Vigil's answer.
func (d *driver) click(ctx context.Context, channel, ts string) error {
	body, _ := json.Marshal(map[string]any{"channel": channel, "ts": ts, "action_id": "approve", "user": approverSlackID})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.st.SlackURL+"/standin/click", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.hc.Do(req)
	if err != nil {
		return fmt.Errorf("click: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var out struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil {
		return fmt.Errorf("click through the Slack stand-in: %s %s", resp.Status, raw)
	}
	if out.Status != http.StatusOK {
		return fmt.Errorf("the web front answered the click with %d %s", out.Status, out.Body)
	}
	return nil
}

// vigilRequest drives request i all the way to its end.
func (d *driver) vigilRequest(ctx context.Context, i int) (string, sample) {
	start := time.Now()
	id, s := d.openAndApprove(ctx, i, true)
	if s.err != nil {
		return id, s
	}
	end, err := d.obs.wait(ctx, id, func(x row) bool { return !x.endedAt.IsZero() })
	switch {
	case err != nil:
		s.err = fmt.Errorf("request %s: not ended: %w", id, err)
	case end.status != string(domain.StatusExecuted):
		s.err = fmt.Errorf("request %s: ended %s: %w", id, end.status, errNotExecuted)
	default:
		s.toExecuted = end.endedAt.Sub(start)
	}
	return id, s
}

func runThroughput(ctx context.Context, cfg settings, st *loadstack.Stack, out io.Writer, logf func(string, ...any)) error {
	d, err := newDriver(ctx, st, cfg.n, logf)
	if err != nil {
		return err
	}
	defer d.close()
	var phases []phase

	logf("driving %d requests through Vigil, %d at a time", cfg.n, cfg.c)
	var mu sync.Mutex
	var vigilID string
	before := cpuSnapshot(st)
	samples, wall := drive(ctx, 0, cfg.n, cfg.c, func(ctx context.Context, i int) sample {
		id, s := d.vigilRequest(ctx, i)
		if s.err == nil {
			mu.Lock()
			vigilID = id
			mu.Unlock()
		}
		return s
	})
	phases = append(phases, phase{name: "Vigil", n: cfg.n, wall: wall, samples: samples, cpu: cpuDelta(before, cpuSnapshot(st))})
	if err := ctx.Err(); err != nil {
		return err
	}

	var bareID string
	if !cfg.skipBare {
		b, err := startBare(ctx, st)
		if err != nil {
			return err
		}
		logf("driving %d bare workflows on the same devserver, %d at a time", cfg.n, cfg.c)
		before := cpuSnapshot(st)
		run := randomHex(3)
		samples, wall := drive(ctx, 0, cfg.n, cfg.c, func(ctx context.Context, i int) sample {
			id := fmt.Sprintf("load-bare-%s-%d", run, i)
			s := b.request(ctx, d.tc, id, policy(cfg))
			if s.err == nil {
				mu.Lock()
				bareID = id
				mu.Unlock()
			}
			return s
		})
		phases = append(phases, phase{name: "bare", n: cfg.n, wall: wall, samples: samples, cpu: cpuDelta(before, cpuSnapshot(st))})
	}
	var sh *shapes
	if vigilID != "" {
		if sh, err = compareShapes(ctx, d.tc, workflows.WorkflowID(vigilID), bareID); err != nil {
			logf("comparing the histories' shapes: %v", err)
		}
	}
	printThroughput(out, cfg, phases, sh)
	for _, p := range phases {
		if len(p.failures()) > 0 {
			return fmt.Errorf("%d of %s's %d requests did not end executed", len(p.failures()), p.name, p.n)
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
