package workflows_test

import (
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/workflows"
)

// TestUnboundHistoriesNeedTheMigrationSwitch is the control of the replay
// test's codec: a history recorded before payloads were bound to their
// workflow does not replay on a strict codec (so the switch is what lets it),
// and the refusal says why.
func TestUnboundHistoriesNeedTheMigrationSwitch(t *testing.T) {
	keys, err := codec.ParseKeys(replayKeyID + ":" + replayKey)
	if err != nil {
		t.Fatal(err)
	}
	var refusals []codec.Refusal
	strict, err := codec.New(replayKeyID, keys, codec.OnRefusal(func(r codec.Refusal) { refusals = append(refusals, r) }))
	if err != nil {
		t.Fatal(err)
	}
	r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		DataConverter: strict.DataConverter(), FailureConverter: strict.FailureConverter(),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.RegisterWorkflowWithOptions(workflows.SensitiveRequest, workflow.RegisterOptions{Name: workflows.WorkflowName})
	logger, _ := replayLogger()
	err = r.ReplayWorkflowHistoryFromJSONFile(logger, filepath.Join(historiesDir, "executed.cancel-stops-notice.pin-verdict-before-start.json"))
	// The strict codec refuses the input, the run ends there, and the
	// rest of the history no longer matches: what an upgraded worker
	// without the switch would make of a running request.
	if err == nil || !strings.Contains(err.Error(), "TMPRL1100") {
		t.Fatalf("an unbound history on a strict codec: replay err = %v, want a nondeterminism failure", err)
	}
	if len(refusals) == 0 || refusals[0].Reason != codec.ReasonUnbound || refusals[0].Scope != codec.ScopeWorkflow {
		t.Fatalf("refusals = %+v, want the input refused as unbound", refusals)
	}
}

// TestBoundHistoriesReplayOnlyAsTheirWorkflow: a history whose payloads are
// bound to their workflow does not replay under another workflow id; every
// payload the run decodes is refused as sealed for the recorded one.
func TestBoundHistoriesReplayOnlyAsTheirWorkflow(t *testing.T) {
	keys, err := codec.ParseKeys(replayKeyID + ":" + replayKey)
	if err != nil {
		t.Fatal(err)
	}
	var refusals []codec.Refusal
	strict, err := codec.New(replayKeyID, keys, codec.OnRefusal(func(r codec.Refusal) { refusals = append(refusals, r) }))
	if err != nil {
		t.Fatal(err)
	}
	r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		DataConverter: strict.DataConverter(), FailureConverter: strict.FailureConverter(),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.RegisterWorkflowWithOptions(workflows.SensitiveRequest, workflow.RegisterOptions{Name: workflows.WorkflowName})
	logger, _ := replayLogger()
	// The replayer's own workflow id, not the recorded one.
	err = r.ReplayWorkflowHistoryFromJSONFile(logger, filepath.Join(historiesDir, "executed.cancel-stops-notice.pin-verdict-before-start.bound.json"))
	if err == nil {
		t.Fatal("a bound history replayed under another workflow id")
	}
	if len(refusals) == 0 || refusals[0].Reason != codec.ReasonMisbound || !strings.HasPrefix(refusals[0].SealedFor, "vigil-request-") ||
		refusals[0].WorkflowID == refusals[0].SealedFor {
		t.Fatalf("refusals = %+v, want the input refused as another workflow's", refusals)
	}
}
