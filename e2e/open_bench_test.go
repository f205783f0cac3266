package e2e

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkOpen measures what the agent waits for: POST /api/v1/requests
// with the right PIN, on one stack of real processes (devserver, worker, web,
// Postgres, stand-ins), until the API answers. Each open adds a new contact
// address, so no two opens meet on the same open slot; the opens are spread
// over enough agents that the per-agent open rate limit never answers 429.
// It reports the open call's p50 and p99 next to ns/op. Run it with a fixed
// count, e.g.
//
//	VIGIL_DEVSERVER_BIN=.bin/devserver go test -run '^$' -bench BenchmarkOpen -benchtime 200x ./e2e/
func BenchmarkOpen(b *testing.B) {
	s := startStack(b, stackOptions{})
	seed(b, s)
	var seq atomic.Int64
	for _, conc := range []int{1, 20} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			// The open limit's burst is 10 per agent: at most 8 opens each,
			// by agents of this run alone.
			var tokens []string
			for i := 0; len(tokens)*8 < b.N; i++ {
				tokens = append(tokens, benchAgent(b, s, fmt.Sprintf("ag_bench_%d_%d_%d", conc, b.N, i)))
			}
			var (
				mu    sync.Mutex
				took  []time.Duration
				next  atomic.Int64
				fails atomic.Int64
			)
			work := make(chan int, b.N)
			for i := range b.N {
				work <- i
			}
			close(work)
			b.ResetTimer()
			var wg sync.WaitGroup
			for range conc {
				wg.Go(func() {
					for i := range work {
						token := tokens[i%len(tokens)]
						n := seq.Add(1)
						start := time.Now()
						var r request
						code, raw := s.call("POST", "/api/v1/requests", token, map[string]any{
							"action": "add_contact_email", "customer_id": customerID,
							"email": fmt.Sprintf("bench-%d@whitfield.example", n), "reason": "load test of the open call",
							"pin": customerPIN,
						}, &r)
						d := time.Since(start)
						if code != 201 || (r.Status != "awaiting_approval" && r.Status != "pin_check") {
							fails.Add(1)
							b.Errorf("open %d: %d %s", n, code, raw)
							continue
						}
						mu.Lock()
						took = append(took, d)
						mu.Unlock()
						next.Add(1)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if len(took) == 0 {
				b.Fatal("no open succeeded")
			}
			slices.Sort(took)
			b.ReportMetric(float64(percentile(took, 50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(percentile(took, 99).Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
		})
	}
}

// percentile returns the p-th percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}

// benchAgent creates an agent of role agent and returns its token.
func benchAgent(b *testing.B, s *stack, id string) string {
	b.Helper()
	var a agentToken
	if code, body := s.call("POST", "/admin/v1/agents", s.adminToken, map[string]any{
		"id": id, "name": "Bench " + id, "email": id + "@vigil.example", "team": "Support", "role": "agent",
	}, &a); code != 201 {
		b.Fatalf("create %s: %d %s", id, code, body)
	}
	return a.Token
}
