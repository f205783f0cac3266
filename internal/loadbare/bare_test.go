package loadbare

import (
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
)

// updateCallbacks records the outcome of an Update sent in a test.
type updateCallbacks struct {
	mu       sync.Mutex
	rejected error
	result   string
	done     bool
}

func (u *updateCallbacks) Accept() {}
func (u *updateCallbacks) Reject(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.rejected = err
}
func (u *updateCallbacks) Complete(success any, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.done = true
	if s, ok := success.(string); ok {
		u.result = s
	}
	if err != nil {
		u.rejected = err
	}
}

var policy = Policy{ApprovalTimeout: 30 * time.Minute, CoolingPeriod: time.Second, NoticeTimeout: 24 * time.Hour, ExecuteMaxAttempts: 10}

// TestBareRunsTheExecutedPath runs the bare workflow through its one Update
// and counts its activities: those of Vigil's executed path, 14 when no
// message update merges into the next (they may, as Vigil's do).
func TestBareRunsTheExecutedPath(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	var posted []string
	a := &Activities{Posted: func(id string) { posted = append(posted, id) }}
	env.RegisterWorkflowWithOptions(Workflow, registerOptions())
	env.RegisterActivity(a)
	var order []string
	env.SetOnActivityCompletedListener(func(info *activity.Info, _ converter.EncodedValue, err error) {
		if err == nil {
			order = append(order, info.ActivityType.Name)
		}
	})
	early, approve := &updateCallbacks{}, &updateCallbacks{}
	// Before the approval message is posted, the Update is refused, as
	// Vigil's is before awaiting_approval.
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateDecide, "early", early, Decision{Approve: true})
	}, 0)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateDecide, "approve", approve, Decision{Approve: true})
	}, time.Minute)
	env.ExecuteWorkflow(WorkflowName, Input{RequestID: "req_1", Action: "add_contact_email", CustomerID: "C-1", RequesterID: "ag_1", Policy: policy})
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("completed %v, error %v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	var res Result
	if err := env.GetWorkflowResult(&res); err != nil || res.ExecutedAt.IsZero() {
		t.Fatalf("result %+v, %v; want an execution time", res, err)
	}
	if early.rejected == nil {
		t.Error("an Update before the approval message was accepted")
	}
	if approve.rejected != nil || approve.result != "notifying" {
		t.Errorf("approval: result %q, error %v; want notifying", approve.result, approve.rejected)
	}
	if len(posted) != 1 || posted[0] != "req_1" {
		t.Errorf("posted = %v, want [req_1]", posted)
	}
	want := []string{"ConsumePINVerdict", "Open", "Record", "PostApproval", "Record", "UpdateApprovalMessage",
		"NotifyCustomer", "Record", "UpdateApprovalMessage", "Record", "Execute", "Record", "UpdateApprovalMessage", "NotifyOutcome"}
	counts := map[string]int{}
	for _, n := range order {
		counts[n]++
	}
	wantCounts := map[string]int{}
	for _, n := range want {
		wantCounts[n]++
	}
	for n, c := range wantCounts {
		if n == "UpdateApprovalMessage" {
			if counts[n] < 1 || counts[n] > 3 {
				t.Errorf("%s ran %d times, want 1 to 3", n, counts[n])
			}
			continue
		}
		if counts[n] != c {
			t.Errorf("%s ran %d times, want %d (order %v)", n, counts[n], c, order)
		}
	}
}

func TestBareRefusesBadInput(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Workflow, registerOptions())
	env.RegisterActivity(&Activities{})
	env.ExecuteWorkflow(WorkflowName, Input{RequestID: "req_1", Policy: Policy{}})
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("a bare request without timings ran")
	}
}
