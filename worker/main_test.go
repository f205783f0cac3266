package main

import (
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/vigil-oss/vigil/internal/config"
)

// TestWorkerOptions checks that each tuning setting reaches the SDK option
// it names, and that every value config accepts, the bounds included, is
// one the SDK's worker.New takes (it panics on some, such as 1 workflow
// poller). The lazy client never dials: worker.New only validates here.
func TestWorkerOptions(t *testing.T) {
	defaults, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   config.WorkerTuning
	}{
		{"defaults", defaults.Worker},
		{"lowest accepted", config.WorkerTuning{StickyCacheSize: 0, WorkflowTaskPollers: 2, ActivityTaskPollers: 1,
			MaxConcurrentWorkflowTasks: 2, MaxConcurrentActivities: 1}},
		{"highest accepted", config.WorkerTuning{StickyCacheSize: 100_000, WorkflowTaskPollers: 64, ActivityTaskPollers: 64,
			MaxConcurrentWorkflowTasks: 10_000, MaxConcurrentActivities: 10_000}},
		{"distinct values", config.WorkerTuning{StickyCacheSize: 7, WorkflowTaskPollers: 3, ActivityTaskPollers: 5,
			MaxConcurrentWorkflowTasks: 11, MaxConcurrentActivities: 13}},
	}
	tc, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := workerOptions(tt.in)
			if o.MaxConcurrentWorkflowTaskPollers != tt.in.WorkflowTaskPollers ||
				o.MaxConcurrentActivityTaskPollers != tt.in.ActivityTaskPollers ||
				o.MaxConcurrentWorkflowTaskExecutionSize != tt.in.MaxConcurrentWorkflowTasks ||
				o.MaxConcurrentActivityExecutionSize != tt.in.MaxConcurrentActivities {
				t.Fatalf("options %+v do not carry %+v", o, tt.in)
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("worker.New refused %+v: %v", tt.in, r)
					}
				}()
				worker.New(tc, "vigil-options-test", o)
			}()
		})
	}
}
