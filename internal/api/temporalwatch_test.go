package api

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"

	"github.com/vigil-oss/vigil/internal/temporaltest"
)

// temporalWatch is a real Temporal client that counts the calls that would
// change something in Temporal (start, signal, update, cancel, terminate),
// attempted or not: a test that sees the count unchanged knows no workflow
// was started or touched, whether Temporal is reachable or not.
type temporalWatch struct {
	client client.Client
	writes atomic.Int64
}

// watchTemporal dials addr lazily; "" is an address nobody listens on, so
// every call fails as Temporal being down.
func watchTemporal(t testing.TB, logger *slog.Logger, addr string) *temporalWatch {
	t.Helper()
	if addr == "" {
		addr = temporaltest.ClosedAddr(t)
	}
	w := &temporalWatch{}
	c, err := client.NewLazyClient(client.Options{
		HostPort:     addr,
		Logger:       tlog.NewStructuredLogger(logger),
		Interceptors: []interceptor.ClientInterceptor{&writeCounter{n: &w.writes}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	w.client = c
	return w
}

// Writes is how many changing calls were made so far.
func (w *temporalWatch) Writes() int64 { return w.writes.Load() }

type writeCounter struct {
	interceptor.ClientInterceptorBase
	n *atomic.Int64
}

func (c *writeCounter) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	return &writeCounterOut{ClientOutboundInterceptorBase: interceptor.ClientOutboundInterceptorBase{Next: next}, n: c.n}
}

type writeCounterOut struct {
	interceptor.ClientOutboundInterceptorBase
	n *atomic.Int64
}

func (c *writeCounterOut) ExecuteWorkflow(ctx context.Context, in *interceptor.ClientExecuteWorkflowInput) (client.WorkflowRun, error) {
	c.n.Add(1)
	return c.Next.ExecuteWorkflow(ctx, in)
}

func (c *writeCounterOut) SignalWorkflow(ctx context.Context, in *interceptor.ClientSignalWorkflowInput) error {
	c.n.Add(1)
	return c.Next.SignalWorkflow(ctx, in)
}

func (c *writeCounterOut) SignalWithStartWorkflow(ctx context.Context, in *interceptor.ClientSignalWithStartWorkflowInput) (client.WorkflowRun, error) {
	c.n.Add(1)
	return c.Next.SignalWithStartWorkflow(ctx, in)
}

func (c *writeCounterOut) UpdateWorkflow(ctx context.Context, in *interceptor.ClientUpdateWorkflowInput) (client.WorkflowUpdateHandle, error) {
	c.n.Add(1)
	return c.Next.UpdateWorkflow(ctx, in)
}

func (c *writeCounterOut) UpdateWithStartWorkflow(ctx context.Context, in *interceptor.ClientUpdateWithStartWorkflowInput) (client.WorkflowUpdateHandle, error) {
	c.n.Add(1)
	return c.Next.UpdateWithStartWorkflow(ctx, in)
}

func (c *writeCounterOut) CancelWorkflow(ctx context.Context, in *interceptor.ClientCancelWorkflowInput) error {
	c.n.Add(1)
	return c.Next.CancelWorkflow(ctx, in)
}

func (c *writeCounterOut) TerminateWorkflow(ctx context.Context, in *interceptor.ClientTerminateWorkflowInput) error {
	c.n.Add(1)
	return c.Next.TerminateWorkflow(ctx, in)
}
