package slackapp

import (
	"context"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"
)

// BenchmarkInteractionAck measures how long Slack waits for the 200 ack of a
// valid signed click: signature and replay checks, payload parsing, the agent
// and request lookups in the real Postgres and the usergroup check against the
// Slack stand-in. The decider double returns at once; the decision itself
// runs after the ack by design and is not timed.
//
//	go test -run '^$' -bench BenchmarkInteractionAck -benchtime 2000x ./internal/slackapp/
func BenchmarkInteractionAck(b *testing.B) {
	dec := &recordingDecider{}
	e := newEnv(b, Config{}, dec)
	// Every click Slack sends is distinct (trigger_id, action_ts), so each
	// passes the replay check; build them before timing.
	bodies := make([][]byte, b.N)
	for i := range bodies {
		bodies[i] = e.capture(e.channel, e.ts, "approve", userBob).body
	}
	client := &http.Client{Timeout: 10 * time.Second}
	durs := make([]time.Duration, 0, b.N)
	ctx := context.Background()

	b.ResetTimer()
	for i := range b.N {
		req, err := e.standin.SignedRequest(ctx, bodies[i], time.Now())
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		durs = append(durs, time.Since(start))
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("click %d: status %d", i, resp.StatusCode)
		}
	}
	b.StopTimer()

	slices.Sort(durs)
	pct := func(p float64) float64 {
		return float64(durs[min(len(durs)-1, int(p*float64(len(durs))))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(durs[len(durs)-1].Microseconds()), "max-µs")

	e.drain()
	if n := len(dec.Calls()); n != b.N {
		b.Errorf("decider called %d times for %d acked clicks", n, b.N)
	}
}
