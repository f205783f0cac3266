package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
)

// shape is what one request's history is made of.
type shape struct {
	events, workflowTasks, activities, timers, updates, upserts, markers int
	// options lists each scheduled activity with its options, in order.
	options []string
}

// shapes puts Vigil's history next to the bare workflow's.
type shapes struct {
	vigil, bare *shape
}

func readShape(ctx context.Context, tc client.Client, workflowID string) (*shape, error) {
	it := tc.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	s := &shape{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", workflowID, err)
		}
		s.add(e)
	}
	return s, nil
}

func (s *shape) add(e *historypb.HistoryEvent) {
	s.events++
	switch e.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
		s.workflowTasks++
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		s.activities++
		a := e.GetActivityTaskScheduledEventAttributes()
		r := a.GetRetryPolicy()
		s.options = append(s.options, fmt.Sprintf("%s start-to-close=%s schedule-to-close=%s heartbeat=%s retry=%s×%.0f≤%s max=%d non-retryable=%v",
			a.GetActivityType().GetName(), a.GetStartToCloseTimeout().AsDuration(), a.GetScheduleToCloseTimeout().AsDuration(),
			a.GetHeartbeatTimeout().AsDuration(), r.GetInitialInterval().AsDuration(), r.GetBackoffCoefficient(),
			r.GetMaximumInterval().AsDuration(), r.GetMaximumAttempts(), r.GetNonRetryableErrorTypes()))
	case enumspb.EVENT_TYPE_TIMER_STARTED:
		s.timers++
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
		s.updates++
	case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
		s.upserts++
	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		s.markers++
	}
}

// compareShapes reads both histories (bareID may be empty: no bare run).
func compareShapes(ctx context.Context, tc client.Client, vigilID, bareID string) (*shapes, error) {
	v, err := readShape(ctx, tc, vigilID)
	if err != nil {
		return nil, err
	}
	out := &shapes{vigil: v}
	if bareID != "" {
		if out.bare, err = readShape(ctx, tc, bareID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// differences lists the scheduled activities whose options one history
// has and the other has not; the message updates may merge in either.
func (s *shapes) differences() []string {
	count := func(opts []string) map[string]int {
		m := map[string]int{}
		for _, o := range opts {
			m[o]++
		}
		return m
	}
	v, b := count(s.vigil.options), count(s.bare.options)
	var out []string
	for _, o := range s.vigil.options {
		if v[o] != b[o] {
			out = append(out, fmt.Sprintf("%s: Vigil %d, bare %d", o, v[o], b[o]))
			v[o] = b[o] // once
		}
	}
	for _, o := range s.bare.options {
		if v[o] != b[o] {
			out = append(out, fmt.Sprintf("%s: Vigil %d, bare %d", o, v[o], b[o]))
			v[o] = b[o]
		}
	}
	return out
}

func (s *shapes) print(out io.Writer) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "one request's history\tVigil\t"
	if s.bare != nil {
		head += "bare\t"
	}
	fmt.Fprintln(tw, head)
	row := func(name string, f func(*shape) int) {
		line := fmt.Sprintf("%s\t%d\t", name, f(s.vigil))
		if s.bare != nil {
			line += fmt.Sprintf("%d\t", f(s.bare))
		}
		fmt.Fprintln(tw, line)
	}
	row("events", func(x *shape) int { return x.events })
	row("workflow tasks", func(x *shape) int { return x.workflowTasks })
	row("activities", func(x *shape) int { return x.activities })
	row("timers", func(x *shape) int { return x.timers })
	row("updates", func(x *shape) int { return x.updates })
	row("search attribute upserts", func(x *shape) int { return x.upserts })
	row("markers (GetVersion)", func(x *shape) int { return x.markers })
	tw.Flush()
	if s.bare == nil {
		return
	}
	if d := s.differences(); len(d) > 0 {
		fmt.Fprintf(out, "activities whose options differ:\n  %s\n", strings.Join(d, "\n  "))
	} else {
		fmt.Fprintln(out, "activity types and options: the same in both")
	}
}
