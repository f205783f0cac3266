// Package codecaudit records every payload the codec refuses: a log line
// and an audit event, so that a forged or replayed payload sent to Temporal
// is seen, not only dropped.
package codecaudit

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/internal/store"
)

// Event is the audit event of a refused payload.
const Event = "temporal.payload_refused"

// Actor names who sent a refused payload: nobody Vigil knows; whoever can
// write to the Temporal namespace without the codec key or the web front.
const Actor = "temporal-client"

// queueSize bounds the refusals waiting for the database: a flood of forged
// payloads is logged in full but cannot make a worker hold them all.
const queueSize = 256

// Auditor appends an audit event once per dedupe key.
type Auditor interface {
	AuditOnce(ctx context.Context, e store.AuditEvent, dedupeKey string) error
}

// Recorder takes refusals from the codec (Report, which never blocks) and
// writes them to the audit trail (Run).
type Recorder struct {
	audit     Auditor
	logger    *slog.Logger
	process   string
	requestOf func(workflowID string) string
	queue     chan codec.Refusal
	dropped   atomic.Int64
}

// New builds a Recorder for process ("worker", "web"); requestOf maps a
// workflow id to the request id it carries ("" if none).
func New(audit Auditor, logger *slog.Logger, process string, requestOf func(workflowID string) string) *Recorder {
	return &Recorder{audit: audit, logger: logger, process: process, requestOf: requestOf,
		queue: make(chan codec.Refusal, queueSize)}
}

// TrimPrefix maps a workflow id that starts with prefix to the rest of it,
// any other to "": the request id of a Vigil workflow id.
func TrimPrefix(prefix string) func(workflowID string) string {
	return func(workflowID string) string {
		if id, ok := strings.CutPrefix(workflowID, prefix); ok {
			return id
		}
		return ""
	}
}

// Option installs the recorder in a codec.
func (r *Recorder) Option() codec.Option { return codec.OnRefusal(r.Report) }

// Report logs a refusal and queues it for the audit trail. It is called
// from inside the SDK's payload decoding, so it never waits.
func (r *Recorder) Report(ref codec.Refusal) {
	r.logger.Warn("temporal payload refused", "reason", ref.Reason, "workflow_id", ref.WorkflowID,
		"scope", ref.Scope, "sealed_for", ref.SealedFor, "sealed_scope", ref.SealedScope,
		"encoding", ref.Encoding, "key_id", ref.KeyID, "fingerprint", ref.Fingerprint)
	select {
	case r.queue <- ref:
	default:
		r.dropped.Add(1)
		r.logger.Error("temporal payload refusal not audited: too many waiting", "fingerprint", ref.Fingerprint)
	}
}

// Run writes queued refusals to the audit trail until ctx ends. A refusal
// the SDK meets again (a workflow's history replayed) has the same
// fingerprint and is recorded once.
func (r *Recorder) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ref := <-r.queue:
			r.write(ctx, ref)
		}
	}
}

func (r *Recorder) write(ctx context.Context, ref codec.Refusal) {
	e := store.AuditEvent{RequestID: r.requestOf(ref.WorkflowID), Actor: Actor, Event: Event,
		Details: map[string]any{
			"reason": ref.Reason, "workflow_id": ref.WorkflowID, "scope": ref.Scope,
			"encoding": ref.Encoding, "key_id": ref.KeyID, "fingerprint": ref.Fingerprint,
			"process": r.process,
		}}
	if ref.SealedFor != "" || ref.SealedScope != "" {
		e.Details["sealed_for"], e.Details["sealed_scope"] = ref.SealedFor, ref.SealedScope
	}
	// Retried briefly: the database may be restarting; the log line is
	// already written either way.
	for attempt := range 5 {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := r.audit.AuditOnce(wctx, e, ref.Reason+":"+ref.Fingerprint)
		cancel()
		if err == nil {
			return
		}
		r.logger.Error("audit a refused temporal payload", "error", err, "attempt", attempt+1, "fingerprint", ref.Fingerprint)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(attempt+1) * time.Second):
		}
	}
}
