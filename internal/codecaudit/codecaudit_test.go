package codecaudit_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"

	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/internal/codecaudit"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/syncbuf"
	"github.com/vigil-oss/vigil/internal/testpg"
)

// TestRefusalsAreLoggedAndAuditedOnce: a plaintext payload offered to a
// request's workflow becomes one log line per offer and one audit event on
// the request's trail per distinct payload, naming neither its content nor
// anything secret.
func TestRefusalsAreLoggedAndAuditedOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := store.New(testpg.New(t))
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	rec := codecaudit.New(st, slog.New(slog.NewJSONHandler(logs, nil)), "worker", codecaudit.TrimPrefix("vigil-request-"))
	done := make(chan struct{})
	go func() { defer close(done); rec.Run(ctx) }()

	c, err := codec.New("k1", map[string][]byte{"k1": bytes.Repeat([]byte{1}, 32)}, rec.Option())
	if err != nil {
		t.Fatal(err)
	}
	forged, err := converter.GetDefaultDataConverter().ToPayload(map[string]string{
		"Decision": "approve", "ApproverID": "ag_bob", "ApproverRole": "senior", "Reason": "pin 482913"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := converter.GetDefaultDataConverter().ToPayload("another")
	if err != nil {
		t.Fatal(err)
	}
	bc := c.WithSerializationContext(converter.WorkflowSerializationContext{WorkflowID: "vigil-request-r1"})
	// The same forged payload twice (a history replayed) and another one.
	for _, p := range []*commonpb.Payload{forged, forged, other} {
		if _, err := bc.Decode([]*commonpb.Payload{p}); err == nil {
			t.Fatal("plaintext decoded")
		}
	}
	var trail []store.AuditEvent
	deadline := time.Now().Add(30 * time.Second)
	for {
		if trail, err = st.AuditTrail(ctx, "r1"); err != nil {
			t.Fatal(err)
		}
		if len(trail) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if trail, err = st.AuditTrail(context.Background(), "r1"); err != nil {
		t.Fatal(err)
	}
	if len(trail) != 2 {
		t.Fatalf("audit trail of r1 has %d events, want 2 (one per distinct payload): %+v", len(trail), trail)
	}
	for _, e := range trail {
		if e.Event != codecaudit.Event || e.Actor != codecaudit.Actor || e.Details["reason"] != codec.ReasonPlaintext ||
			e.Details["workflow_id"] != "vigil-request-r1" || e.Details["scope"] != codec.ScopeWorkflow || e.Details["process"] != "worker" {
			t.Fatalf("audit event = %+v", e)
		}
	}
	if n := strings.Count(logs.String(), "temporal payload refused"); n != 3 {
		t.Fatalf("%d log lines, want 3 (one per offer):\n%s", n, logs)
	}
	for _, secret := range []string{"482913", "ag_bob"} {
		if strings.Contains(logs.String(), secret) || strings.Contains(trailText(trail), secret) {
			t.Fatalf("the log or the audit trail repeats the payload (%s)", secret)
		}
	}
}

func trailText(trail []store.AuditEvent) string {
	var b strings.Builder
	for _, e := range trail {
		for k, v := range e.Details {
			b.WriteString(k)
			if s, ok := v.(string); ok {
				b.WriteString(s)
			}
		}
	}
	return b.String()
}
