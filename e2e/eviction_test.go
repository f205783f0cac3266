package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/lib/pq"
	enums "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/vigil-oss/vigil/internal/metrics/metricstest"
	"github.com/vigil-oss/vigil/workflows"
)

// TestEvictedCoolingTimersFire is bounded worker memory on real processes:
// with a sticky cache of two workflows, requests waiting out their cooling
// period fall out of the worker's memory, and each timer still fires, the
// workflow is rebuilt from its history and the action runs once, never
// before the cooling period's end. Nothing here is timed: it asserts which
// workflows the worker holds, what its cache counted, and the order of each
// request's events.
func TestEvictedCoolingTimersFire(t *testing.T) {
	const (
		n = 4
		// The SDK's cache keeps one workflow fewer than its size besides
		// the one being run (a size of 1 caches nothing at all): 2 is the
		// smallest that caches, and evicts.
		cacheSize = 2
		// Long enough that all n are in cooling before the first ends,
		// even on a busy machine; the test waits for it once.
		cooling = 40 * time.Second
	)
	s := startStack(t, stackOptions{extraEnv: []string{
		fmt.Sprintf("VIGIL_WORKER_STICKY_CACHE_SIZE=%d", cacheSize),
		"VIGIL_COOLING_ADD_CONTACT_EMAIL=" + cooling.String(),
	}})
	alice, _ := seed(t, s)
	var ids []string
	for i := range n {
		r := s.open(t, alice, map[string]any{
			"action": "add_contact_email", "customer_id": customerID, "email": fmt.Sprintf("evict-%d@whitfield.example", i),
			"reason": "eviction test", "pin": customerPIN,
		})
		ids = append(ids, r.ID)
	}
	for _, id := range ids {
		s.click(t, id, "approve", "U0BOB")
	}
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The status endpoint answers with a Query, which would itself bring a
	// workflow back into the cache: this test reads the projection instead.
	statuses := func() map[string]string {
		rows, err := db.Query(`SELECT id, status FROM requests WHERE id = ANY($1)`, pq.Array(ids))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var id, st string
			if err := rows.Scan(&id, &st); err != nil {
				t.Fatal(err)
			}
			out[id] = st
		}
		return out
	}
	eventually(t, time.Minute, "all requests in cooling at once", func() (bool, string) {
		st := statuses()
		for _, id := range ids {
			if st[id] != "cooling" {
				return false, fmt.Sprint(st)
			}
		}
		return true, ""
	})

	// Wait until nothing but the cooling timers is pending, so every
	// workflow task from here on is one a timer caused.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tc, err := client.DialContext(ctx, client.Options{HostPort: s.temporal, Namespace: "default", Logger: tlog.NewStructuredLogger(histDiscardLogger())})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	eventually(t, time.Minute, "only the cooling timers pending", func() (bool, string) {
		for _, id := range ids {
			d, err := tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(id), "")
			if err != nil {
				return false, err.Error()
			}
			if len(d.GetPendingActivities()) > 0 || d.GetPendingWorkflowTask() != nil {
				return false, fmt.Sprintf("%s: %d activities, workflow task %v pending", id, len(d.GetPendingActivities()), d.GetPendingWorkflowTask() != nil)
			}
		}
		return true, ""
	})
	before := metricstest.Get(t, s.workerMetrics)
	if st := statuses(); len(st) != n {
		t.Fatalf("statuses %v", st)
	}
	for id, st := range statuses() {
		if st != "cooling" {
			t.Fatalf("%s left cooling (%s) before the worker's cache was read: the cooling period is too short for this machine", id, st)
		}
	}
	cached, _ := before.Sum("temporal_sticky_cache_size", nil)
	evicted, _ := before.Sum("temporal_sticky_cache_forced_eviction_total", nil)
	missesBefore, _ := before.Sum("temporal_sticky_cache_miss_total", nil)
	if cached > cacheSize {
		t.Fatalf("the worker holds %v workflows with a sticky cache of %d", cached, cacheSize)
	}
	if evicted < n-cacheSize {
		t.Fatalf("%v forced evictions with %d requests waiting and room for %d; the cooling timers would not be tested after eviction", evicted, n, cacheSize)
	}

	eventually(t, 2*time.Minute, "all requests executed", func() (bool, string) {
		st := statuses()
		for _, id := range ids {
			if st[id] != "executed" {
				return false, fmt.Sprint(st)
			}
		}
		return true, ""
	})
	after := metricstest.Get(t, s.workerMetrics)
	missesAfter, _ := after.Sum("temporal_sticky_cache_miss_total", nil)
	// At most cacheSize of the waiting workflows were in memory when the
	// timers fired: the others' timer tasks found no cached state and the
	// worker rebuilt them from their histories.
	if missesAfter-missesBefore < n-cacheSize {
		t.Errorf("%v sticky cache misses while the timers fired, want at least %d: the evicted workflows were not rebuilt from history", missesAfter-missesBefore, n-cacheSize)
	}

	for _, id := range ids {
		var ended, coolingEnds time.Time
		if err := db.QueryRow(`SELECT ended_at, cooling_ends_at FROM requests WHERE id = $1`, id).Scan(&ended, &coolingEnds); err != nil {
			t.Fatal(err)
		}
		if ended.Before(coolingEnds) {
			t.Errorf("%s executed at %s, before its cooling period ended at %s", id, ended, coolingEnds)
		}
		rows, err := db.Query(`SELECT event FROM audit_events WHERE request_id = $1 ORDER BY id`, id)
		if err != nil {
			t.Fatal(err)
		}
		pos := map[string][]int{}
		i := 0
		for rows.Next() {
			var e string
			if err := rows.Scan(&e); err != nil {
				t.Fatal(err)
			}
			pos[e] = append(pos[e], i)
			i++
		}
		rows.Close()
		for _, e := range []string{"gate.notice.sent", "gate.cooling.elapsed", "request.executed"} {
			if len(pos[e]) != 1 {
				t.Fatalf("%s: %d %s events, want 1 (%v)", id, len(pos[e]), e, pos)
			}
		}
		if !(pos["gate.notice.sent"][0] < pos["gate.cooling.elapsed"][0] && pos["gate.cooling.elapsed"][0] < pos["request.executed"][0]) {
			t.Errorf("%s: audit order %v, want notice, cooling elapsed, executed", id, pos)
		}

		// The history: one cooling timer of the full period, started once
		// (the rebuild did not start another), fired before the executor
		// was scheduled.
		var started, fired, executeAt int64
		for _, ev := range fetchHistory(t, s, workflows.WorkflowID(id)).GetEvents() {
			switch ev.GetEventType() {
			case enums.EVENT_TYPE_TIMER_STARTED:
				if ev.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration() == cooling {
					if started != 0 {
						t.Errorf("%s: a second cooling timer at event %d", id, ev.GetEventId())
					}
					started = ev.GetEventId()
				}
			case enums.EVENT_TYPE_TIMER_FIRED:
				if started != 0 && ev.GetTimerFiredEventAttributes().GetStartedEventId() == started {
					fired = ev.GetEventId()
				}
			case enums.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == "Execute" {
					executeAt = ev.GetEventId()
				}
			}
		}
		if started == 0 || fired == 0 || executeAt == 0 || !(started < fired && fired < executeAt) {
			t.Errorf("%s: cooling timer started at event %d, fired at %d, Execute scheduled at %d; want started < fired < Execute", id, started, fired, executeAt)
		}
	}
	// Each action reached the control panel once.
	keys := map[string]int{}
	for _, c := range s.panelCalls(t) {
		if !c.Replayed {
			keys[c.IdempotencyKey]++
		}
	}
	for _, id := range ids {
		if keys["vigil-"+id] != 1 {
			t.Errorf("%s reached the panel %d times, want once", id, keys["vigil-"+id])
		}
	}
}
