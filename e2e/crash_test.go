//go:build crash

package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
)

// The crash tests kill and restart the processes of a running stack at the
// moments that matter and check that every request still ends where it
// would have ended without the fault: executed at most once, after every
// gate, with each gate recorded once. They take minutes, so they only build
// with the crash tag. The three run in parallel (each on its own stack);
// -parallel 3 lets them all start at once on a 2-core machine:
//
//	VIGIL_DEVSERVER_BIN=/tmp/devserver go test -tags crash -count=1 -parallel 3 -run 'TestCrash|TestOutages' -v ./e2e/

// started says whether Temporal shows the activity running on a worker.
func started(a *workflowpb.PendingActivityInfo) bool {
	return a.GetState() == enums.PENDING_ACTIVITY_STATE_STARTED
}

// targets says which activity of each plan a kill is meant to hit.
func targets(activity string, ps ...[]*plan) map[string]string {
	m := map[string]string{}
	for _, b := range ps {
		for _, p := range b {
			m[p.ID] = activity
		}
	}
	return m
}

// callsByKey groups the panel's calls by idempotency key, in arrival order.
func callsByKey(calls []standinCall) map[string][]standinCall {
	m := map[string][]standinCall{}
	for _, c := range calls {
		m[c.IdempotencyKey] = append(m[c.IdempotencyKey], c)
	}
	for _, cs := range m {
		sort.Slice(cs, func(i, j int) bool { return cs[i].ID < cs[j].ID })
	}
	return m
}

// TestCrashWorkerAtEveryGate SIGKILLs the worker at each point of a request
// where a crash could lose, repeat or skip something, with 52 requests over
// the five actions, and restarts it each time:
//
//	(f) the executor call in flight: the panel holds the calls, the worker dies
//	(g) the action performed, the panel's answer outstanding (the ambiguous failure)
//	(d) the notice delivered to the mail server, its "250" not yet seen
//	(c) the notice refused (451), the retry pending
//	(a) the PIN gate in flight: the verdicts are held, so ConsumePINVerdict blocks
//	(b) waiting for approval, with two clicks made while the worker is dead
//	(e) the cooling period
//
// Each point is reached and confirmed (API status, the activity Temporal
// shows in flight, the panel's or mail server's view) before the kill, and
// nothing else runs on the worker at that moment.
func TestCrashWorkerAtEveryGate(t *testing.T) {
	t.Parallel()
	began := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%6.1fs "+format, append([]any{time.Since(began).Seconds()}, args...)...)
	}
	gate := newSMTPGate(t)
	// Long enough for the customers of batch E to cancel after the restart
	// that follows their approval, even while every first Update after a
	// restart waits out the dead worker's sticky queue.
	cooling := sameCooling(30 * time.Second)
	s := startStack(t, stackOptions{extraEnv: append(coolingEnv(cooling),
		"VIGIL_SMTP_ADDR="+gate.addr(), // the worker's mail goes through the gate
		"VIGIL_SLACK_STANDIN_USERS="+crashSlackUsers)})
	gate.setUpstream(s.smtpAddr)
	r := newCrashRig(t, s, cooling, 5)
	stopDriver := r.startDriver()
	defer stopDriver()

	rq := []string{"ag_alice", "ag_req1", "ag_req2", "ag_req3", "ag_req4", "ag_req5"}
	var specs []spec
	specs = append(specs, batchSpecs("F", repeat(outExec, 5), rq...)...)
	specs = append(specs, spec{batch: "G", action: "resend_credentials", outcome: outExec, requester: "ag_req5"})
	specs = append(specs, batchSpecs("D", []string{outExec, outExec, outCancelNotify, outExec, outExec, outCancelNotify}, rq[1:]...)...)
	specs = append(specs, batchSpecs("C", []string{outExec, outCancelCooling, outExec, outExec, outCancelCooling, outExec, outExec, outCancelCooling}, rq[2:]...)...)
	specs = append(specs, batchSpecs("E", []string{outExec, outExec, outCancelCooling, outExec, outCancelCooling, outExec, outCancelCooling, outExec, outCancelCooling, outExec}, rq...)...)
	specs = append(specs, batchSpecs("B", []string{outExec, outReject, outWithdraw, outExec, outExec, outReject, outWithdraw, outExec, outExec, outReject, outWithdraw, outExec}, rq...)...)
	step("stack up; opening %d requests (batches F, G, D, C, E, B)", len(specs))
	opened := r.openAll(specs, "awaiting_approval")
	batch := func(name string) []*plan {
		var out []*plan
		for _, p := range opened {
			if p.Batch == name {
				out = append(out, p)
			}
		}
		return out
	}
	F, G, D, C, E, B := batch("F"), batch("G"), batch("D"), batch("C"), batch("E"), batch("B")

	// (f) + (g) first, because their retries wait longest (Execute's 2 min
	// start-to-close timeout). One kill hits both executor points:
	//   (g) G's action performed by the panel, its answer outstanding (the
	//       panel hangs after performing: the ambiguous failure);
	//   (f) F's calls in flight, held by the panel before performing.
	// G goes first, with the panel hanging after each action; F is approved
	// 5 s into G's cooling period, so G reaches the panel well before F,
	// and the panel switches to holding (still hanging G's call) in between.
	s.panelFault(t, `{"hang_after_perform":"5m"}`)
	r.decideNow(G)
	r.confirmAPI(G, "cooling", 30*time.Second)
	g, err := r.apiStatus(G[0])
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(g.NotifiedAt.Add(5 * time.Second)))
	r.decideNow(F)
	r.confirmAPI(F, "cooling", 30*time.Second)
	for _, p := range F {
		got, err := r.apiStatus(p)
		if err != nil {
			t.Fatal(err)
		}
		if lead := got.CoolingEndsAt.Sub(*g.CoolingEndsAt); lead < 4*time.Second {
			t.Fatalf("%s runs only %s after G; the kill could not tell them apart", p, lead)
		}
	}
	step("(f)+(g) G approved, F approved 5 s into G's cooling; waiting for G to be performed")
	gKey := "vigil-" + G[0].ID
	eventually(t, 60*time.Second, "the panel performing G", func() (bool, string) {
		for _, c := range s.panelList(t, "performed") {
			if c.IdempotencyKey == gKey {
				return true, ""
			}
		}
		return false, "not performed yet"
	})
	s.panelFault(t, `{"hold":true,"hang_after_perform":"5m"}`)
	fKeys := map[string]bool{}
	for _, p := range F {
		fKeys["vigil-"+p.ID] = true
	}
	eventually(t, 60*time.Second, "F's panel calls held in flight", func() (bool, string) {
		n := 0
		for _, c := range s.panelList(t, "calls") {
			if fKeys[c.IdempotencyKey] && c.Status == 0 {
				n++
			}
		}
		return n == len(F), fmt.Sprintf("%d of %d held", n, len(F))
	})
	if first := callsByKey(s.panelList(t, "calls"))[gKey][0]; first.Status != 0 {
		t.Fatalf("G's performed call ended (%d) before the kill", first.Status)
	}
	r.confirmAPI(F, "executing", 10*time.Second)
	r.confirmAPI(G, "executing", 10*time.Second)
	r.waitPending(append(F, G...), "Execute", 10*time.Second, started)
	r.crashWorker("(f) executor calls held + (g) action performed, answer outstanding",
		func() { r.quiesce(targets("Execute", F, G)) }, nil)
	s.panelFault(t, `{}`) // stop holding and hanging
	eventually(t, 30*time.Second, "F's and G's abandoned calls recorded as 499", func() (bool, string) {
		n := 0
		for _, c := range s.panelList(t, "calls") {
			if (fKeys[c.IdempotencyKey] || c.IdempotencyKey == gKey) && c.Status == 499 {
				n++
			}
		}
		return n == len(F)+1, fmt.Sprintf("%d of %d", n, len(F)+1)
	})
	for _, c := range s.panelList(t, "performed") {
		if fKeys[c.IdempotencyKey] {
			t.Fatalf("the panel performed %s although its only call was abandoned while held", c.IdempotencyKey)
		}
	}

	// (d) The notice reaches the mail server, which accepts it, but the
	// worker never hears the "250": the gate withholds it.
	gate.holdNotices(r.ids(D))
	r.decideNow(D)
	step("(d) D approved; waiting for the notices to be delivered with their acceptance withheld")
	eventually(t, 30*time.Second, "D's notices delivered with their acceptance withheld", func() (bool, string) {
		n := gate.heldFor(r.ids(D))
		return n == len(D), fmt.Sprintf("%d of %d", n, len(D))
	})
	r.confirmAPI(D, "notifying", 10*time.Second)
	r.waitPending(D, "NotifyCustomer", 10*time.Second, started)
	if err := r.mails.refresh(); err != nil {
		t.Fatal(err)
	}
	for _, p := range D {
		if len(r.mails.of(p.ID, "notice")) == 0 {
			t.Fatalf("%s: the mail server holds no notice although the gate withholds its acceptance", p)
		}
	}
	r.crashWorker("(d) notice delivered, acceptance not seen", func() { r.quiesce(targets("NotifyCustomer", D)) }, gate.releaseAll)
	arm(D)

	// (c) The mail server refuses every notice: the requests sit in
	// notifying, their NotifyCustomer waiting for its next attempt.
	s.refuseMail(t, 1_000_000)
	r.decideNow(C)
	step("(c) C approved with mail refused; waiting for each notice to fail and wait for its retry")
	r.waitPending(C, "NotifyCustomer", 30*time.Second, func(a *workflowpb.PendingActivityInfo) bool {
		return a.GetState() == enums.PENDING_ACTIVITY_STATE_SCHEDULED && a.GetAttempt() >= 2 &&
			strings.Contains(r.failureText(a.GetLastFailure()), "451")
	})
	r.confirmAPI(C, "notifying", 10*time.Second)
	step("(c) confirmed: every C notice refused with 451, retry scheduled, status notifying")
	r.crashWorker("(c) notice refused, retry pending", func() { r.quiesce(targets("NotifyCustomer", C)) }, nil)
	s.refuseMail(t, 0)
	arm(C)

	// (a) The PIN gate in flight: the web front checked the PINs and
	// answered at once (pin_check, PIN verified); the workflows' consumption
	// of their verdicts is held in Postgres, inside ConsumePINVerdict.
	aSpecs := r.ownCustomers(batchSpecs("A", []string{outExec, outReject, outCancelCooling, outExec, outWithdraw, outExec, outCancelCooling, outExec, outReject, outExec}, rq[2:]...))
	step("(a) holding the PIN gates and opening batch A")
	release := r.holdVerdictConsumption()
	A := r.openAll(aSpecs, "pin_check")
	r.confirmAPI(A, "pin_check", 10*time.Second)
	eventually(t, 10*time.Second, "A's PIN gates blocked in Postgres", func() (bool, string) {
		n, err := r.consumesWaiting()
		if err != nil {
			return false, err.Error()
		}
		return n >= len(A), fmt.Sprintf("%d waiting", n)
	})
	r.waitPending(A, "ConsumePINVerdict", 10*time.Second, started)
	r.crashWorker("(a) PIN gate in flight", func() { r.quiesce(targets("ConsumePINVerdict", A)) }, release)
	arm(A)

	// (b) + (e): B waits for approval, E is in its cooling period. Two of B
	// are approved while the worker is dead.
	r.decideNow(E)
	r.confirmAPI(E, "cooling", 30*time.Second)
	r.confirmAPI(B, "awaiting_approval", 10*time.Second)
	var msgs map[string]slackMessage
	eventually(t, 30*time.Second, "B's approval messages", func() (bool, string) {
		m, _, err := r.approvalMessages()
		if err != nil {
			return false, err.Error()
		}
		msgs = m
		for _, p := range B {
			if _, ok := m[p.ID]; !ok {
				return false, p.ID + " not posted"
			}
		}
		return true, ""
	})
	var whileDown []*plan
	for _, p := range B {
		if p.Outcome == outExec && len(whileDown) < 2 {
			whileDown = append(whileDown, p)
		}
	}
	r.crashWorker("(b) awaiting approval + (e) cooling", func() { r.quiesce(nil) }, func() {
		for _, p := range whileDown {
			if err := r.tryClick(p.ID, "approve", "U0BOB", msgs); err != nil {
				t.Errorf("click while the worker is down: %v", err)
			}
			p.mu.Lock()
			p.manual, p.acted, p.lastTry = true, 1, time.Now()
			p.mu.Unlock()
		}
	})
	arm(B, E)
	for _, p := range whileDown {
		eventually(t, 90*time.Second, p.String()+": the approval clicked while the worker was dead landing", func() (bool, string) {
			got, err := r.apiStatus(p)
			if err != nil {
				return false, err.Error()
			}
			return got.Decision != nil && got.Decision.ApproverID == "ag_bob", got.Status
		})
	}
	step("all seven crash points passed; %d requests in flight; waiting for every one to end", len(r.all()))

	r.verifyAll(4 * time.Minute)
	step("every request ended as planned")

	// (f): the retried call carried the same key, the held one was abandoned.
	calls := callsByKey(s.panelList(t, "calls"))
	for _, p := range F {
		cs := calls["vigil-"+p.ID]
		performed := 0
		for _, c := range cs {
			if !c.Replayed && c.Status >= 200 && c.Status < 300 {
				performed++
			}
		}
		if len(cs) < 2 || cs[0].Status != 499 || cs[0].Replayed || performed != 1 {
			t.Errorf("%s: panel calls %+v, want the held call abandoned (499) then one performing call under the same key", p, cs)
		}
	}
	// (g): performed once, the retry replayed under the same key.
	if cs := calls[gKey]; len(cs) < 2 || cs[0].Status != 499 || cs[0].Replayed || !cs[len(cs)-1].Replayed {
		t.Errorf("G: panel calls %+v, want the performed call the dead worker never heard back from (499), then a replay", cs)
	}
	// (d): the worker never saw the first notice accepted, so it sent
	// again and measured the cooling period from the second.
	for _, p := range D {
		n := r.mails.of(p.ID, "notice")
		if p.Outcome == outExec && len(n) < 3 {
			t.Errorf("%s: %d notices, want the withheld one and a full resend to both addresses", p, len(n))
		}
		if p.Outcome != outCancelNotify {
			continue
		}
		got, err := r.apiStatus(p)
		if err != nil || got.Cancellation == nil || got.Cancellation.At == nil {
			t.Errorf("%s: no cancellation time (%v)", p, err)
			continue
		}
		var late []int
		for _, m := range n {
			if m.ReceivedAt.After(*got.Cancellation.At) {
				late = append(late, m.ID)
			}
		}
		// The attempt that was killed hung on the first address's 250, so a
		// notice after the cancel can only come from a new attempt, which
		// the cancel must have stopped.
		if len(late) > 0 {
			t.Errorf("%s: cancelled by the customer at %s, yet %d more notices (%v) reached them afterwards, each with a fresh cancel link",
				p, got.Cancellation.At.Format("15:04:05.000"), len(late), late)
		}
	}
	step("done")
}

// TestCrashNeighbours restarts what Vigil depends on while requests are in
// flight: the Temporal devserver (SIGKILL, then the same address and
// database file; worker and web must find it again by themselves) and
// Postgres (a server of the test's own: immediate shutdown, as in a crash,
// down for six seconds, then started again on the same data, while
// executions, notices, decisions and opens are under way).
func TestCrashNeighbours(t *testing.T) {
	t.Parallel()
	began := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%6.1fs "+format, append([]any{time.Since(began).Seconds()}, args...)...)
	}
	cooling := map[string]time.Duration{
		"resend_credentials": 8 * time.Second, "add_contact_email": 8 * time.Second, "disable_2fa": 8 * time.Second,
		"reinstall_vps": 25 * time.Second, "change_account_email": 25 * time.Second,
	}
	pg := startPGServer(t)
	s := startStack(t, stackOptions{dsn: pg.DSN(), extraEnv: append(coolingEnv(cooling), "VIGIL_SLACK_STANDIN_USERS="+crashSlackUsers)})
	r := newCrashRig(t, s, cooling, 4)
	stopDriver := r.startDriver()
	defer stopDriver()
	one := func(batch, action, outcome, requester string) spec {
		return spec{batch: batch, action: action, outcome: outcome, requester: requester}
	}

	// The devserver restart, with requests waiting for approval and cooling.
	NA := r.openAll([]spec{
		one("NA", "resend_credentials", outExec, "ag_alice"), one("NA", "add_contact_email", outExec, "ag_req1"),
		one("NA", "disable_2fa", outExec, "ag_req2"), one("NA", "reinstall_vps", outReject, "ag_req3"),
		one("NA", "change_account_email", outWithdraw, "ag_req4"), one("NA", "reinstall_vps", outCancelCooling, "ag_alice"),
	}, "awaiting_approval")
	NC := r.openAll([]spec{
		one("NC", "reinstall_vps", outExec, "ag_req1"), one("NC", "change_account_email", outExec, "ag_req2"),
		one("NC", "reinstall_vps", outCancelCooling, "ag_req3"), one("NC", "change_account_email", outExec, "ag_req4"),
		one("NC", "reinstall_vps", outExec, "ag_alice"), one("NC", "change_account_email", outCancelCooling, "ag_req1"),
	}, "awaiting_approval")
	r.decideNow(NC)
	r.confirmAPI(NC, "cooling", 30*time.Second)
	r.confirmAPI(NA, "awaiting_approval", 10*time.Second)
	r.quiesce(nil)
	down := r.crashDevserver(nil)
	back := time.Now()
	step("devserver SIGKILLed and back on %s with the same database in %s", s.temporal, down.Round(time.Millisecond))
	// Worker and web must find it by themselves: nothing else is restarted.
	eventually(t, 90*time.Second, "the web front answering from the restarted devserver", func() (bool, string) {
		got, err := r.apiStatus(NC[0])
		if err != nil {
			return false, err.Error()
		}
		return got.Status == "cooling", got.Status
	})
	step("web answers again %s after the devserver came back", time.Since(back).Round(time.Millisecond))
	arm(NA, NC)
	eventually(t, 90*time.Second, "the worker acting on the restarted devserver (decisions and cancels landing)", func() (bool, string) {
		proj, err := r.projection()
		if err != nil {
			return false, err.Error()
		}
		var waiting []string
		for _, p := range append(append([]*plan{}, NA...), NC...) {
			st := proj[p.ID].Status
			if st == "awaiting_approval" || (p.cancelIn() != "" && st != "cancelled") {
				waiting = append(waiting, p.String()+"="+st)
			}
		}
		return len(waiting) == 0, fmt.Sprint(waiting)
	})
	step("worker and web reconnected by themselves; decisions and cancellations after the restart landed")

	// The Postgres outage. PE's executions are held at the panel, so that
	// they are in flight (their transaction open) when the cuts begin; the
	// hold is released during the outage.
	PE := r.openAll([]spec{
		one("PE", "resend_credentials", outExec, "ag_req2"), one("PE", "add_contact_email", outExec, "ag_req3"),
		one("PE", "disable_2fa", outExec, "ag_req4"),
	}, "awaiting_approval")
	PN := r.openAll([]spec{
		one("PN", "resend_credentials", outExec, "ag_alice"), one("PN", "disable_2fa", outExec, "ag_req1"),
		one("PN", "reinstall_vps", outCancelCooling, "ag_req2"),
	}, "awaiting_approval")
	PW := r.openAll([]spec{
		one("PW", "add_contact_email", outExec, "ag_req3"), one("PW", "resend_credentials", outReject, "ag_req4"),
		one("PW", "disable_2fa", outWithdraw, "ag_alice"), one("PW", "change_account_email", outCancelCooling, "ag_req1"),
	}, "awaiting_approval")
	s.panelFault(t, `{"hold":true}`)
	r.decideNow(PE)
	peKeys := map[string]bool{}
	for _, p := range PE {
		peKeys["vigil-"+p.ID] = true
	}
	eventually(t, 60*time.Second, "PE's executor calls held", func() (bool, string) {
		n := 0
		for _, c := range s.panelList(t, "calls") {
			if peKeys[c.IdempotencyKey] && c.Status == 0 {
				n++
			}
		}
		return n == len(PE), fmt.Sprintf("%d of %d", n, len(PE))
	})
	r.waitPending(PE, "Execute", 10*time.Second, started)

	// PO's customers are imported now: the admin API needs the database too.
	poSpecs := r.ownCustomers([]spec{
		one("PO", "resend_credentials", outExec, "ag_req2"), one("PO", "add_contact_email", outExec, "ag_req3"),
		one("PO", "disable_2fa", outReject, "ag_req4"), one("PO", "reinstall_vps", outCancelCooling, "ag_alice"),
	})
	step("Postgres crash: immediate shutdown, down for 6s, then a restart on the same data")
	outage := make(chan time.Duration, 1)
	go func() { outage <- pg.crash(6 * time.Second) }()
	time.Sleep(300 * time.Millisecond)
	arm(PN) // bob clicks during the outage; a refused click is clicked again
	time.Sleep(700 * time.Millisecond)
	s.panelRelease(t) // the held executions go on against a database that keeps dropping them
	// Agents open requests during the outage and try again when refused.
	var PO []*plan
	refusals, samples := map[string]int{}, map[string]string{}
	type opened struct {
		p    *plan
		errs []string
	}
	results := make(chan opened, len(poSpecs))
	for _, sp := range poSpecs {
		go func() {
			var errs []string
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				p, _, err := r.openOne(sp)
				if err == nil {
					results <- opened{p, errs}
					return
				}
				errs = append(errs, err.Error())
				time.Sleep(500 * time.Millisecond)
			}
			results <- opened{nil, errs}
		}()
	}
	for range poSpecs {
		o := <-results
		for _, e := range o.errs {
			code := e
			if i := strings.Index(e, ": "); i >= 0 {
				code = strings.Fields(e[i+2:])[0]
			}
			refusals[code]++
			samples[code] = e
		}
		if o.p == nil {
			t.Fatalf("an open kept failing for a minute after the outage began: %v", o.errs)
		}
		PO = append(PO, o.p)
	}
	unreachable := <-outage
	step("Postgres back after %s; opens refused during the outage, by answer: %v", unreachable.Round(time.Millisecond), refusals)
	for code, e := range samples {
		t.Logf("an open refused during the outage with %s: %.300s", code, e)
		if !strings.Contains(e, "database_unavailable") {
			t.Errorf("an open during the Postgres outage was refused with %s, want 503 database_unavailable: %.300s", code, e)
		}
	}
	arm(PE, PW, PO)

	r.verifyAll(3 * time.Minute)

	// No open that failed left a request behind, in Postgres or Temporal.
	var rows int
	if err := r.db.QueryRow(`SELECT count(*) FROM requests`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if want := len(r.all()); rows != want {
		t.Errorf("Postgres holds %d requests, want the %d that were opened", rows, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wfs := 0
	var token []byte
	for {
		resp, err := r.tc.ListWorkflow(ctx, listRequest(token))
		if err != nil {
			t.Fatalf("list workflows: %v", err)
		}
		wfs += len(resp.GetExecutions())
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	if want := len(r.all()); wfs != want {
		t.Errorf("Temporal holds %d request workflows, want the %d that were opened", wfs, want)
	}
	step("done")
}

// TestOutages: the mail server refusing for a while, Slack answering 5xx and
// 429, and the panel performing an action and then not answering until the
// worker gives up — none of it may lose, repeat or shorten anything.
func TestOutages(t *testing.T) {
	t.Parallel()
	began := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%6.1fs "+format, append([]any{time.Since(began).Seconds()}, args...)...)
	}
	cooling := sameCooling(3 * time.Second)
	cooling["disable_2fa"] = 5 * time.Second
	// The worker gives up on a panel call after 10 s, so the hung call
	// below is retried within seconds instead of after the default 60 s.
	s := startStack(t, stackOptions{extraEnv: append(coolingEnv(cooling), "VIGIL_SLACK_STANDIN_USERS="+crashSlackUsers, "VIGIL_PANEL_TIMEOUT=10s")})
	r := newCrashRig(t, s, cooling, 2)
	stopDriver := r.startDriver()
	defer stopDriver()
	one := func(batch, action, outcome, requester string) []spec {
		return []spec{{batch: batch, action: action, outcome: outcome, requester: requester}}
	}

	// 1. The panel performs, then hangs longer than the worker's panel
	// client waits (VIGIL_PANEL_TIMEOUT, 10 s here). Only this call hangs:
	// the fault is cleared as soon as it was performed.
	hang := r.openAll(one("hang", "resend_credentials", outExec, "ag_alice"), "awaiting_approval")
	s.panelFault(t, `{"hang_after_perform":"20s"}`)
	r.decideNow(hang)
	hangKey := "vigil-" + hang[0].ID
	eventually(t, 60*time.Second, "the panel performing "+hangKey, func() (bool, string) {
		for _, c := range s.panelList(t, "performed") {
			if c.IdempotencyKey == hangKey {
				return true, ""
			}
		}
		return false, "not yet"
	})
	s.panelFault(t, `{}`)
	step("panel performed %s and hangs before answering", hangKey)

	// 2. The mail server refuses: the request stays in notifying, with no
	// cooling period, until a notice is accepted.
	s.refuseMail(t, 1_000_000)
	smtp := r.openAll(one("smtp", "disable_2fa", outExec, "ag_req1"), "awaiting_approval")
	r.decideNow(smtp)
	refusedFrom := time.Now()
	for time.Since(refusedFrom) < 8*time.Second {
		got, err := r.apiStatus(smtp[0])
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != "notifying" && got.Status != "awaiting_approval" || got.CoolingEndsAt != nil || got.NotifiedAt != nil {
			t.Fatalf("while mail is refused: status %s, notified %v, cooling ends %v; want notifying with neither set", got.Status, got.NotifiedAt, got.CoolingEndsAt)
		}
		proj, err := r.projection()
		if err != nil {
			t.Fatal(err)
		}
		if row := proj[smtp[0].ID]; row.CoolingEndsAt.Valid || row.NotifiedAt.Valid {
			t.Fatalf("while mail is refused the projection has notified_at %v, cooling_ends_at %v", row.NotifiedAt, row.CoolingEndsAt)
		}
		time.Sleep(time.Second)
	}
	r.confirmAPI(smtp, "notifying", time.Second)
	r.waitPending(smtp, "NotifyCustomer", 5*time.Second, func(a *workflowpb.PendingActivityInfo) bool {
		return a.GetAttempt() >= 2 && strings.Contains(r.failureText(a.GetLastFailure()), "451")
	})
	s.refuseMail(t, 0)
	step("mail refused for 8s: the request stayed in notifying without a cooling period; mail let through")
	r.confirmAPI(smtp, "cooling", 60*time.Second)
	got, err := r.apiStatus(smtp[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := r.mails.refresh(); err != nil {
		t.Fatal(err)
	}
	notices := r.mails.of(smtp[0].ID, "notice")
	if len(notices) != 2 {
		t.Fatalf("%d notices for the refused request, want one to each of the two established addresses", len(notices))
	}
	var accepted time.Time
	for _, m := range notices {
		if m.ReceivedAt.After(accepted) {
			accepted = m.ReceivedAt
		}
	}
	if got.NotifiedAt == nil || got.NotifiedAt.Before(accepted) {
		t.Errorf("notified at %v, before the mail server accepted the last notice at %v", got.NotifiedAt, accepted)
	}
	if got.CoolingEndsAt == nil || got.CoolingEndsAt.Before(accepted.Add(cooling["disable_2fa"])) {
		t.Errorf("cooling ends at %v, earlier than acceptance %v + %s", got.CoolingEndsAt, accepted, cooling["disable_2fa"])
	}
	// The Query answers cooling as soon as the workflow set it; the
	// projection follows once the Record activity ran. Postgres keeps
	// microseconds.
	eventually(t, 30*time.Second, "the projection's cooling_ends_at", func() (bool, string) {
		proj, err := r.projection()
		if err != nil {
			return false, err.Error()
		}
		row := proj[smtp[0].ID]
		return row.CoolingEndsAt.Valid && row.CoolingEndsAt.Time.Sub(*got.CoolingEndsAt).Abs() <= time.Microsecond,
			fmt.Sprintf("projection cooling_ends_at %v, workflow says %v", row.CoolingEndsAt, got.CoolingEndsAt)
	})
	step("accepted %s, cooling ends %s (+%s)", accepted.Format(time.RFC3339Nano), got.CoolingEndsAt.Format(time.RFC3339Nano), got.CoolingEndsAt.Sub(accepted).Round(time.Millisecond))

	// 3. Slack answers chat.postMessage with 5xx and 429 eight times: more
	// than the client's six attempts, so the activity is retried too.
	before := s.slackCalls(t)["chat.postMessage"]
	s.slackFail(t, "chat.postMessage", 500, 429, 500, 502, 429, 500, 503, 500)
	sl := r.openAll(one("slack", "reinstall_vps", outExec, "ag_req2"), "awaiting_approval")
	eventually(t, 60*time.Second, "the approval message posted despite the failures", func() (bool, string) {
		_, n, err := r.approvalMessages()
		if err != nil {
			return false, err.Error()
		}
		return n[sl[0].ID] > 0, "not posted"
	})
	if n := s.slackCalls(t)["chat.postMessage"] - before; n < 9 {
		t.Errorf("chat.postMessage called %d times, want the 8 failures and the success", n)
	}
	s.slackFail(t, "chat.update", 500, 429, 503)
	r.decideNow(sl)
	rej := r.openAll(one("slack", "add_contact_email", outReject, "ag_req1"), "awaiting_approval")
	r.approvalMessagesOf(rej)
	s.slackFail(t, "chat.update", 500, 500, 500, 500, 500, 500, 500)
	r.decideNow(rej)
	eventually(t, 90*time.Second, "both approval messages showing the decisions", func() (bool, string) {
		m, _, err := r.approvalMessages()
		if err != nil {
			return false, err.Error()
		}
		a, b := string(m[sl[0].ID].Blocks), string(m[rej[0].ID].Blocks)
		return strings.Contains(a, "Executed at") && strings.Contains(b, "Rejected by") && !strings.Contains(b, `"approve"`), a + " | " + b
	})
	_, count, err := r.approvalMessages()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.all() {
		if count[p.ID] != 1 {
			t.Errorf("%s: %d approval messages, want exactly one", p, count[p.ID])
		}
	}
	step("Slack failures absorbed: one approval message each, decisions recorded and shown")

	// 4. Everything ends; the hung execution was retried under its key.
	r.verifyAll(3 * time.Minute)
	cs := callsByKey(s.panelList(t, "calls"))[hangKey]
	if len(cs) < 2 || cs[0].Status != 499 || cs[0].Replayed || !cs[len(cs)-1].Replayed || cs[len(cs)-1].Status >= 300 {
		t.Fatalf("calls for %s: %+v; want the performed call the worker gave up on (499), then a replay under the same key", hangKey, cs)
	}
	step("hung call at %s, replayed at %s (%s later): performed once, executed",
		cs[0].ReceivedAt.Format("15:04:05"), cs[len(cs)-1].ReceivedAt.Format("15:04:05"), cs[len(cs)-1].ReceivedAt.Sub(cs[0].ReceivedAt).Round(time.Second))
}

// approvalMessagesOf waits for the plans' approval messages.
func (r *crashRig) approvalMessagesOf(ps []*plan) {
	r.t.Helper()
	for _, p := range ps {
		eventually(r.t, 30*time.Second, "approval message of "+p.String(), func() (bool, string) {
			m, _, err := r.approvalMessages()
			if err != nil {
				return false, err.Error()
			}
			_, ok := m[p.ID]
			return ok, "not posted"
		})
	}
}

// listRequest lists every SensitiveRequest workflow.
func listRequest(token []byte) *workflowservice.ListWorkflowExecutionsRequest {
	return &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", Query: "WorkflowType = 'SensitiveRequest'", NextPageToken: token, PageSize: 100}
}
