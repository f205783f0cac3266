//go:build crash

package e2e

import (
	"bytes"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
)

// TestReplicas runs Vigil as production scales it out: Temporal on Postgres
// (the devserver with Temporal's postgres12 plugin), two workers and two web
// fronts behind a balancer. Requests spread over both of each; a worker
// SIGKILLed while the panel holds back its answer to an action it already
// performed for that worker, and a web front SIGKILLed
// while decisions and cancels flow through the balancer lose nothing: every
// request still ends as planned and each executed one was performed by the
// panel exactly once (verifyAll). The survivors are not restarted.
func TestReplicas(t *testing.T) {
	t.Parallel()
	began := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%6.1fs "+format, append([]any{time.Since(began).Seconds()}, args...)...)
	}
	cooling := sameCooling(12 * time.Second)
	s := startStack(t, stackOptions{temporalPostgres: true, replicas: true,
		extraEnv: append(coolingEnv(cooling), "VIGIL_SLACK_STANDIN_USERS="+crashSlackUsers)})
	r := newCrashRig(t, s, cooling, 4)
	stopDriver := r.startDriver()
	defer stopDriver()
	rq := []string{"ag_alice", "ag_req1", "ag_req2", "ag_req3", "ag_req4"}
	step("stack up: devserver on Postgres, worker+worker2, web+web2 behind the balancer %s", s.webURL)

	// The worker replica dies at the most ambiguous point: the panel has
	// performed one of W's actions for it and holds the answer back, so
	// the survivor must retry the Execute with the same idempotency key and
	// the panel must not act twice.
	W := r.openAll(batchSpecs("W", append(repeat(outExec, 8), outCancelCooling, outReject, outExec, outWithdraw), rq...), "awaiting_approval")
	s.panelFault(t, `{"hang_after_perform":"15s"}`)
	arm(W)
	s.mu.Lock()
	pid2 := s.procs["worker2"].cmd.Process.Pid
	s.mu.Unlock()
	identity2 := fmt.Sprintf("%d@", pid2)
	var hit *plan
	eventually(t, 2*time.Minute, "worker2 running an Execute the panel has already performed", func() (bool, string) {
		performed := map[string]bool{}
		for _, c := range s.panelList(t, "performed") {
			performed[c.IdempotencyKey] = true
		}
		for _, p := range W {
			if !performed["vigil-"+p.ID] {
				continue
			}
			acts, err := r.pending(p.ID)
			if err != nil {
				continue
			}
			for _, a := range acts {
				if a.GetActivityType().GetName() == "Execute" && a.GetState() == enums.PENDING_ACTIVITY_STATE_STARTED &&
					strings.HasPrefix(a.GetLastWorkerIdentity(), identity2) {
					hit = p
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%d actions performed, none of them outstanding on worker2", len(performed))
	})
	logs2 := s.logs("worker2")
	s.kill("worker2")
	s.panelFault(t, `{}`)
	step("worker2 (pid %d) SIGKILLed while the panel held back its answer for %s; not restarted", pid2, hit)

	// The web replica dies while the driver's clicks and cancels, and the
	// Slack stand-in's interactions, go through the balancer.
	V := r.openAll(batchSpecs("V", append(repeat(outExec, 5), outCancelCooling, outReject), rq...), "awaiting_approval")
	arm(V)
	web2 := s.webAddrs[1]
	before := s.front.servedBy()[web2]
	eventually(t, 60*time.Second, "web2 serving batch V's decisions", func() (bool, string) {
		n := s.front.servedBy()[web2]
		return n > before+3, fmt.Sprintf("%d requests since the open", n-before)
	})
	// Someone between Slack and Vigil copies a senior's signed Approve for
	// one of V and sends it again, to each replica: the one that took the
	// original refuses it (its replay cache), the other one accepts it (the
	// cache is per replica, see the README), and the workflow, which takes
	// one decision per request, ignores it: verifyAll finds the approval in
	// the audit trail once.
	var orig interaction
	eventually(t, 60*time.Second, "a Slack Approve of batch V through the balancer", func() (bool, string) {
		for _, in := range s.front.interactions() {
			for _, p := range V {
				if p.Outcome == outExec && bytes.Contains(in.body, []byte(p.ID)) && bytes.Contains(in.body, []byte("approve")) {
					orig = in
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%d interactions, none an Approve of V", len(s.front.interactions()))
	})
	for _, backend := range s.webAddrs {
		req, err := http.NewRequest("POST", "http://"+backend+"/slack/interactions", bytes.NewReader(orig.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = orig.header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("replay to %s: %v", backend, err)
		}
		resp.Body.Close()
		want := http.StatusOK
		if backend == orig.backend {
			want = http.StatusUnauthorized
		}
		step("a copied Slack click replayed to %s (original answered by %s): %d", backend, orig.backend, resp.StatusCode)
		if resp.StatusCode != want {
			t.Errorf("replayed click to %s answered %d, want %d", backend, resp.StatusCode, want)
		}
	}

	servedBefore := s.front.servedBy()
	webLogs2 := s.logs("web2")
	s.kill("web2")
	step("web2 SIGKILLed after serving %d requests; not restarted", servedBefore[web2])

	r.verifyAll(5 * time.Minute)

	// The killed Execute was really retried by the survivor, and the panel
	// answered the retry from its record instead of acting again.
	var calls, replayed int
	for _, c := range s.panelList(t, "calls") {
		if c.IdempotencyKey == "vigil-"+hit.ID {
			calls++
			if c.Replayed {
				replayed++
			}
		}
	}
	step("%s: %d panel calls, %d answered as a replay", hit, calls, replayed)
	if calls < 2 || replayed == 0 {
		t.Errorf("%s: the panel saw %d calls (%d replayed), want worker2's and the survivor's replayed retry", hit, calls, replayed)
	}

	// Both replicas of each did work.
	served := s.front.servedBy()
	step("balancer: web served %d requests, web2 %d (before its kill)", served[s.webAddrs[0]], servedBefore[web2])
	if servedBefore[web2] == 0 || served[s.webAddrs[0]] == 0 {
		t.Errorf("requests did not spread over both web replicas: %v", served)
	}
	if n := strings.Count(webLogs2, "http request"); n == 0 {
		t.Errorf("web2's log holds no served request")
	}
	moved1, moved2 := strings.Count(s.logs("worker"), "request moved"), strings.Count(logs2, "request moved")
	step("activities logged: worker %d request moves, worker2 %d before its kill", moved1, moved2)
	if moved1 == 0 || moved2 == 0 {
		t.Errorf("activities did not spread over both workers: worker %d, worker2 %d", moved1, moved2)
	}

	// And Temporal's state really is in Postgres.
	db, err := sql.Open("postgres", s.temporalDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var executions int
	if err := db.QueryRow(`SELECT count(*) FROM executions`).Scan(&executions); err != nil {
		t.Fatalf("count Temporal's executions in Postgres: %v", err)
	}
	if executions < len(W)+len(V) {
		t.Errorf("Temporal's Postgres store holds %d executions, want at least the %d requests", executions, len(W)+len(V))
	}
	step("Temporal's Postgres store holds %d executions", executions)
}
