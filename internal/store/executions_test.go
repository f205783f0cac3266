package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
)

func TestExecuteOnceConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Run the race twice: once with no execution row yet (callers queue on
	// the INSERT) and once on the 'started' row a failed attempt leaves
	// (callers queue on SELECT ... FOR UPDATE).
	for _, afterFailure := range []bool{false, true} {
		t.Run(fmt.Sprintf("after failure %v", afterFailure), func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			f := seed(t, s)
			if afterFailure {
				if _, err := s.ExecuteOnce(ctx, f.request, domain.ActionReinstallVPS, "idem-"+f.request,
					func(context.Context) (string, error) { return "", errors.New("transient") }); err == nil {
					t.Fatal("failing run reported success")
				}
			}
			raceExecuteOnce(t, s, f)
		})
	}
}

// raceExecuteOnce starts 16 concurrent ExecuteOnce calls for f's request.
func raceExecuteOnce(t *testing.T, s *Store, f fixture) {
	ctx := context.Background()
	var runs atomic.Int32
	run := func(ctx context.Context) (string, error) {
		n := runs.Add(1)
		time.Sleep(50 * time.Millisecond) // widen the race window
		return fmt.Sprintf("job-%d", n), nil
	}
	const n = 16
	warmPool(t, s, n)
	results := make([]ExecutionResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = s.ExecuteOnce(ctx, f.request, domain.ActionReinstallVPS, "idem-"+f.request, run)
		})
	}
	close(start)
	wg.Wait()
	if got := runs.Load(); got != 1 {
		t.Fatalf("run called %d times, want 1", got)
	}
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if results[i].Reference != "job-1" {
			t.Fatalf("call %d: reference %q, want job-1", i, results[i].Reference)
		}
		if !results[i].AlreadyDone {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d calls report a fresh execution, want 1", fresh)
	}
	if c := countRows(t, s, "SELECT count(*) FROM executions"); c != 1 {
		t.Fatalf("%d execution rows, want 1", c)
	}
	if c := countRows(t, s, "SELECT count(*) FROM executions WHERE request_id = $1 AND state = 'done' AND finished_at IS NOT NULL", f.request); c != 1 {
		t.Fatalf("%d done rows for the request, want 1", c)
	}
}

// permanentError stands in for an executor's typed error.
type permanentError struct{ code int }

func (e *permanentError) Error() string { return fmt.Sprintf("permanent %d", e.code) }

func TestExecuteOnceRetryAfterErrorThenDone(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	key := "idem-" + f.request
	var runs atomic.Int32

	failing := &permanentError{code: 42}
	_, err := s.ExecuteOnce(ctx, f.request, domain.ActionReinstallVPS, key, func(context.Context) (string, error) {
		runs.Add(1)
		return "", failing
	})
	var pe *permanentError
	if !errors.As(err, &pe) || pe != failing {
		t.Fatalf("run error = %v, want the run's own error", err)
	}
	if err != error(failing) {
		t.Fatalf("run error was wrapped (%v); Temporal needs its dynamic type", err)
	}
	var state string
	var attempts int
	if err := s.DB().QueryRow("SELECT state, attempts FROM executions WHERE request_id = $1", f.request).Scan(&state, &attempts); err != nil || state != "started" || attempts != 1 {
		t.Fatalf("after a failed run state = %q, attempts = %d, err = %v; want started, 1", state, attempts, err)
	}

	got, err := s.ExecuteOnce(ctx, f.request, domain.ActionReinstallVPS, key, func(context.Context) (string, error) {
		runs.Add(1)
		return "job-ok", nil
	})
	if err != nil || got != (ExecutionResult{Reference: "job-ok"}) {
		t.Fatalf("retry = %+v, %v; want fresh job-ok", got, err)
	}
	if runs.Load() != 2 {
		t.Fatalf("run called %d times, want 2 (failed, then retried)", runs.Load())
	}
	if c := countRows(t, s, "SELECT attempts FROM executions WHERE request_id = $1 AND state = 'done'", f.request); c != 2 {
		t.Fatalf("attempts = %d after a failure and a success, want 2", c)
	}

	got, err = s.ExecuteOnce(ctx, f.request, domain.ActionReinstallVPS, key, func(context.Context) (string, error) {
		runs.Add(1)
		return "job-again", nil
	})
	if err != nil || got != (ExecutionResult{Reference: "job-ok", AlreadyDone: true}) {
		t.Fatalf("after done = %+v, %v; want job-ok already done", got, err)
	}
	if runs.Load() != 2 {
		t.Fatalf("run called again after done: %d calls", runs.Load())
	}
}

func TestExecuteOnceRejects(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	if err := s.CreateRequest(ctx, Request{ID: "req_2", WorkflowID: "wf-req_2", Action: domain.ActionDisable2FA,
		CustomerID: f.customer, RequesterID: f.requester, Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	run := func(context.Context) (string, error) { runs.Add(1); return "ref", nil }
	if _, err := s.ExecuteOnce(ctx, f.request, domain.ActionReinstallVPS, "key-1", run); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, request string
		action        domain.Action
		key           string
		want          error
	}{
		{"unknown request", "nope", domain.ActionDisable2FA, "key-9", ErrNotFound},
		{"key of another request", "req_2", domain.ActionDisable2FA, "key-1", ErrConflict},
		{"other key for a done request", f.request, domain.ActionReinstallVPS, "key-2", ErrConflict},
		{"other action for a done request", f.request, domain.ActionDisable2FA, "key-1", ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.ExecuteOnce(ctx, tt.request, tt.action, tt.key, run); !errors.Is(err, tt.want) {
				t.Fatalf("ExecuteOnce = %v, want %v", err, tt.want)
			}
		})
	}
	if runs.Load() != 1 {
		t.Fatalf("run called %d times, want only the first", runs.Load())
	}
	if c := countRows(t, s, "SELECT count(*) FROM executions"); c != 1 {
		t.Fatalf("%d execution rows, want 1", c)
	}
}
