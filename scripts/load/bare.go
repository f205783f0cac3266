package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/vigil-oss/vigil/internal/config"
	"github.com/vigil-oss/vigil/internal/loadbare"
	"github.com/vigil-oss/vigil/internal/loadstack"
)

const (
	// bareWorkerCommand runs this binary as the bare workflow's worker: a
	// child of its own, so that its CPU is counted apart from the driver's.
	bareWorkerCommand = "bare-worker"
	bareWorkerName    = "bare-worker"
	postedPrefix      = "posted "
)

// bareRunner drives bare workflows through the bare worker.
type bareRunner struct {
	mu      sync.Mutex
	waiters map[string]chan struct{}
	early   map[string]bool
}

// startBare starts the bare worker, with the worker's own tuning settings
// (the stack's environment), and returns a runner fed by its stdout.
func startBare(ctx context.Context, st *loadstack.Stack) (*bareRunner, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	b := &bareRunner{waiters: map[string]chan struct{}{}, early: map[string]bool{}}
	if _, err := st.Run(ctx, bareWorkerName, self, []string{bareWorkerCommand}, st.Env(), "bare-worker ready", b.line); err != nil {
		return nil, err
	}
	return b, nil
}

// line takes one line of the bare worker's stdout: "posted <workflow id>"
// is its approval message.
func (b *bareRunner) line(l string) {
	id, ok := strings.CutPrefix(l, postedPrefix)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ch, ok := b.waiters[id]; ok {
		delete(b.waiters, id)
		close(ch)
		return
	}
	b.early[id] = true
}

func (b *bareRunner) expect(id string) <-chan struct{} {
	ch := make(chan struct{})
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.early[id] {
		delete(b.early, id)
		close(ch)
	} else {
		b.waiters[id] = ch
	}
	return ch
}

// request runs one bare workflow: start, the Update once its message is
// "posted", then its result.
func (b *bareRunner) request(ctx context.Context, tc client.Client, id string, p loadbare.Policy) sample {
	var s sample
	posted := b.expect(id)
	start := time.Now()
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: loadbare.TaskQueue}, loadbare.WorkflowName,
		loadbare.Input{RequestID: id, Action: "add_contact_email", CustomerID: "C-bare", RequesterID: "ag_bare", Policy: p})
	s.open = time.Since(start)
	if err != nil {
		s.err = fmt.Errorf("start %s: %w", id, err)
		return s
	}
	select {
	case <-posted:
	case <-ctx.Done():
		s.err = fmt.Errorf("%s: never posted: %w", id, ctx.Err())
		return s
	}
	clicked := time.Now()
	h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: loadbare.UpdateDecide,
		Args: []any{loadbare.Decision{Approve: true}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err == nil {
		var status string
		err = h.Get(ctx, &status)
	}
	s.click = time.Since(clicked)
	if err != nil {
		s.err = fmt.Errorf("update %s: %w", id, err)
		return s
	}
	var res loadbare.Result
	if err := run.Get(ctx, &res); err != nil {
		s.err = fmt.Errorf("%s: %w", id, err)
		return s
	}
	s.toExecuted = res.ExecutedAt.Sub(start)
	return s
}

// runBareWorker is the bare-worker command: it reads the Temporal address
// and the worker tuning from the environment, as Vigil's worker does.
func runBareWorker(args []string) error {
	fs := flag.NewFlagSet(bareWorkerCommand, flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tc, err := client.Dial(client.Options{HostPort: cfg.TemporalAddress, Namespace: cfg.TemporalNamespace, Logger: tlog.NewStructuredLogger(logger)})
	if err != nil {
		return err
	}
	defer tc.Close()
	worker.SetStickyWorkflowCacheSize(cfg.Worker.StickyCacheSize)
	w := worker.New(tc, loadbare.TaskQueue, worker.Options{
		MaxConcurrentWorkflowTaskPollers:       cfg.Worker.WorkflowTaskPollers,
		MaxConcurrentActivityTaskPollers:       cfg.Worker.ActivityTaskPollers,
		MaxConcurrentWorkflowTaskExecutionSize: cfg.Worker.MaxConcurrentWorkflowTasks,
		MaxConcurrentActivityExecutionSize:     cfg.Worker.MaxConcurrentActivities,
	})
	var out sync.Mutex
	loadbare.Register(w, &loadbare.Activities{Posted: func(id string) {
		out.Lock()
		defer out.Unlock()
		fmt.Println(postedPrefix + id)
	}})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	fmt.Println("bare-worker ready task_queue=" + loadbare.TaskQueue)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	w.Stop()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}
