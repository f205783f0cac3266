//go:build crash

package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/workflows"
)

// observerApp names the test's own Postgres connections. The simulated
// outage spares them: they watch the system, they are not part of it.
const observerApp = "vigil-e2e-observer"

// crashSlackUsers are the Slack stand-in's members: the seeded agents plus
// the extra requesters, so every approval message can mention its requester.
const crashSlackUsers = "U0ALICE:alice:Alice Moreau,U0BOB:bob:Bob Lindqvist,U0CAROL:carol:Carol Ng," +
	"U0REQ1:req1:Rhea One,U0REQ2:req2:Remy Two,U0REQ3:req3:Rita Three,U0REQ4:req4:Ravi Four,U0REQ5:req5:Rosa Five"

// allActions are the five sensitive actions, in the order batches cycle
// through them.
var allActions = []string{"resend_credentials", "reinstall_vps", "add_contact_email", "change_account_email", "disable_2fa"}

// coolingEnv turns per-action cooling periods into the stack's environment.
func coolingEnv(c map[string]time.Duration) []string {
	var env []string
	for a, d := range c {
		env = append(env, "VIGIL_COOLING_"+strings.ToUpper(a)+"="+d.String())
	}
	sort.Strings(env)
	return env
}

// sameCooling gives every action the same cooling period.
func sameCooling(d time.Duration) map[string]time.Duration {
	m := map[string]time.Duration{}
	for _, a := range allActions {
		m[a] = d
	}
	return m
}

// Planned outcomes of a request, as the test drives it.
const (
	outExec          = "exec"             // approved, runs after the cooling period
	outReject        = "reject"           // a senior rejects it in Slack
	outWithdraw      = "withdraw"         // the requester withdraws it while it waits for approval
	outCancelCooling = "cancel-cooling"   // approved, the customer cancels from the emailed link during the cooling period
	outCancelNotify  = "cancel-notifying" // approved, the customer cancels from the emailed link before Vigil saw the notice accepted
)

// plan is one request the test opened and the outcome it steers it to.
type plan struct {
	ID, Batch, Action, Customer, Requester, Token string
	Outcome                                       string

	// armed lets the driver act on the request; a batch is armed once its
	// crash point has passed.
	armed atomic.Bool

	// seq numbers the plans; the customer's browser for this request uses
	// its own loopback address (the cancel pages limit requests per address).
	seq int

	mu         sync.Mutex
	acted      int       // decision or cancel attempts the driver made
	lastTry    time.Time // when the driver last tried
	linkNext   int       // which notice link to try next
	manual     bool      // decided by the test itself: the driver must not decide again
	busy       bool      // the driver is acting on it right now
	cancelDone bool      // the workflow holds the customer's cancellation
	cancelErr  error     // what the cancel page last answered, if it failed
}

// want is the end state the outcome leads to.
func (p *plan) want() string {
	switch p.Outcome {
	case outReject:
		return "rejected"
	case outWithdraw:
		return "withdrawn"
	case outCancelCooling, outCancelNotify:
		return "cancelled"
	}
	return "executed"
}

// cancelIn is the status in which the customer cancels, if they do.
func (p *plan) cancelIn() string {
	switch p.Outcome {
	case outCancelCooling:
		return "cooling"
	case outCancelNotify:
		return "notifying"
	}
	return ""
}

// wantEvents lists the audit events the request must hold exactly once and
// those it must not hold at all.
func (p *plan) wantEvents() (once, never []string) {
	once = []string{"request.opened", "gate.pin.verified", "gate.pin.verdict_consumed", "gate.approval.waiting", "request." + p.want()}
	rest := []string{"gate.approval.passed", "gate.notice.sent", "gate.cooling.elapsed", "execution.done"}
	n := 0
	switch p.Outcome {
	case outExec:
		n = 4
	case outCancelCooling:
		n = 2
	case outCancelNotify:
		n = 1
	}
	return append(once, rest[:n]...), rest[n:]
}

func (p *plan) String() string { return p.Batch + "/" + p.ID + "/" + p.Action + "/" + p.Outcome }

// spec asks for one request.
type spec struct {
	batch, action, customer, outcome, requester string
}

// batchSpecs spreads n requests of a batch over the five actions and the
// given outcomes, in order. Their customers are given out by ownCustomers.
func batchSpecs(batch string, outcomes []string, requesters ...string) []spec {
	out := make([]spec, len(outcomes))
	for i, o := range outcomes {
		out[i] = spec{batch: batch, action: allActions[i%len(allActions)], outcome: o, requester: requesters[i%len(requesters)]}
	}
	return out
}

// repeat returns o n times, for building outcome lists.
func repeat(o string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = o
	}
	return out
}

// crashRig drives and watches one stack through crashes: it opens planned
// requests, decides and cancels them as people would, kills and restarts
// processes, and checks where everything ended.
type crashRig struct {
	t       *testing.T
	s       *stack
	db      *sql.DB
	tc      client.Client
	mails   *mailIndex
	cooling map[string]time.Duration
	servers map[string][]string // customer -> servers

	mu     sync.Mutex
	plans  []*plan
	tokens map[string]string // agent id -> API token
	serial int
	// customers counts the customers ownCustomers imported.
	customers int
	// live is when the current worker started: activities started before it
	// ran on a dead one.
	live time.Time
	// deadLogs keeps what killed processes wrote, for a failing test's report.
	deadLogs []string
	// findings are things a person would notice that the assertions do not
	// cover; the test logs them at the end.
	findings []string
	began    time.Time

	// down is held for writing while a process is dead, so that the driver
	// never acts into the gap (what it does then would only time out).
	down sync.RWMutex
}

// newCrashRig seeds the stack (customer C-4711, alice, bob and requesters
// ag_req1..n) and connects the observers.
func newCrashRig(t *testing.T, s *stack, cooling map[string]time.Duration, requesters int) *crashRig {
	t.Helper()
	r := &crashRig{t: t, s: s, cooling: cooling, tokens: map[string]string{}, live: time.Now(), began: time.Now(),
		servers: map[string][]string{customerID: {"srv-1", "srv-2"}}}
	alice, bob := seed(t, s)
	r.tokens["ag_alice"], r.tokens["ag_bob"] = alice, bob
	for i := 1; i <= requesters; i++ {
		var a agentToken
		id := fmt.Sprintf("ag_req%d", i)
		if code, body := s.call("POST", "/admin/v1/agents", s.adminToken, map[string]any{
			"id": id, "name": fmt.Sprintf("Requester %d", i), "email": id + "@vigil.example", "team": "Support",
			"role": "agent", "slack_user_id": fmt.Sprintf("U0REQ%d", i),
		}, &a); code != 201 {
			t.Fatalf("create %s: %d %s", id, code, body)
		}
		r.tokens[id] = a.Token
	}
	dsn := s.dsn + "&application_name=" + observerApp
	if !strings.Contains(s.dsn, "?") {
		dsn = s.dsn + "?application_name=" + observerApp
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r.db = db
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tc, err := client.DialContext(ctx, client.Options{HostPort: s.temporal, Namespace: "default",
		Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	r.tc = tc
	r.mails = &mailIndex{s: s, byID: map[int]indexedMail{}}
	// Registered after startStack's cleanup, so it runs first, while the
	// processes (and their logs) are still there.
	t.Cleanup(func() {
		r.mu.Lock()
		for _, f := range r.findings {
			t.Logf("FINDING: %s", f)
		}
		r.mu.Unlock()
		if t.Failed() {
			r.saveLogs()
		}
	})
	return r
}

// finding notes something a person would notice that no assertion covers.
func (r *crashRig) finding(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.findings = append(r.findings, fmt.Sprintf(format, args...))
}

// saveLogs writes every process's whole log, the killed ones' included, to
// files for a failing test's reader.
func (r *crashRig) saveLogs() {
	dir, err := os.MkdirTemp("", "vigil-crash-logs-")
	if err != nil {
		r.t.Logf("save logs: %v", err)
		return
	}
	r.mu.Lock()
	dead := slices.Clone(r.deadLogs)
	r.mu.Unlock()
	for i, l := range dead {
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("killed-%02d.log", i+1)), []byte(l), 0o644)
	}
	for _, n := range []string{"devserver", "worker", "web", "panel", "mail", "slack"} {
		_ = os.WriteFile(filepath.Join(dir, n+".log"), []byte(r.s.logs(n)), 0o644)
	}
	r.t.Logf("full logs of every process (killed ones included) are in %s", dir)
}

// failureText is a failure's message and causes, decrypted: the payload
// codec encodes failure messages, so Temporal only shows "Encoded failure".
func (r *crashRig) failureText(f *failurepb.Failure) string {
	var parts []string
	for ; f != nil; f = f.GetCause() {
		msg := f.GetMessage()
		if enc := f.GetEncodedAttributes(); enc != nil {
			var attrs struct {
				Message string `json:"message"`
			}
			if err := json.Unmarshal(r.s.decode(r.t, []*commonpb.Payload{enc}), &attrs); err == nil {
				msg = attrs.Message
			}
		}
		parts = append(parts, msg)
	}
	return strings.Join(parts, ": ")
}

// importCustomer adds a customer with the test PIN, an established contact
// and the given servers.
func (r *crashRig) importCustomer(id, primary string, servers ...string) {
	r.t.Helper()
	hash, err := pinhash.Hash(customerPIN, pinhash.TestParams())
	if err != nil {
		r.t.Fatal(err)
	}
	old := time.Now().Add(-60 * 24 * time.Hour).UTC().Format(time.RFC3339)
	if code, body := r.s.call("PUT", "/admin/v1/customers/"+id, r.s.adminToken, map[string]any{
		"name": "Customer " + id, "primary_email": primary, "pin_hash": hash,
		"contacts": []map[string]any{{"email": "it-" + strings.ToLower(id) + "@example.org", "added_at": old, "verified_at": old}},
		"servers":  servers,
	}, nil); code != 200 {
		r.t.Fatalf("import customer %s: %d %s", id, code, body)
	}
	r.mu.Lock()
	r.servers[id] = servers
	r.mu.Unlock()
}

// api calls the web front without failing the test, so goroutines can use it.
func (r *crashRig) api(method, path, token string, body, out any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, r.s.webURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("decode %s: %w", raw, err)
		}
	}
	return resp.StatusCode, raw, nil
}

// ownCustomers gives every spec without a customer one of its own, imported
// now. Vigil keeps one open request per target (customer, action, server,
// address), so requests that are meant to wait side by side need targets of
// their own; a customer each keeps them apart whatever the action.
func (r *crashRig) ownCustomers(specs []spec) []spec {
	r.t.Helper()
	out := slices.Clone(specs)
	for i := range out {
		if out[i].customer != "" {
			continue
		}
		r.mu.Lock()
		r.customers++
		id := fmt.Sprintf("C-%s%d", out[i].batch, r.customers)
		r.mu.Unlock()
		r.importCustomer(id, strings.ToLower(id)+"@example.net", "srv-"+strings.ToLower(id[2:]))
		out[i].customer = id
	}
	return out
}

// openBody is the API body for a spec: the customer's servers in turn for
// server actions, a fresh address for email actions.
func (r *crashRig) openBody(sp spec) map[string]any {
	r.mu.Lock()
	r.serial++
	n := r.serial
	servers := r.servers[sp.customer]
	r.mu.Unlock()
	b := map[string]any{"action": sp.action, "customer_id": sp.customer, "pin": customerPIN,
		"reason": fmt.Sprintf("crash test %s #%d: customer asked on the phone", sp.batch, n)}
	switch sp.action {
	case "resend_credentials", "reinstall_vps":
		b["server_id"] = servers[n%len(servers)]
	case "add_contact_email":
		b["email"] = fmt.Sprintf("contact-%d@whitfield.example", n)
	case "change_account_email":
		b["email"] = fmt.Sprintf("dana-%d@mail.example", n)
	}
	return b
}

// openOne opens one request; it does not fail the test.
func (r *crashRig) openOne(sp spec) (*plan, request, error) {
	var got request
	if sp.customer == "" {
		return nil, got, fmt.Errorf("open %s %s: the spec has no customer; give it one with ownCustomers first", sp.batch, sp.action)
	}
	code, raw, err := r.api("POST", "/api/v1/requests", r.tokens[sp.requester], r.openBody(sp), &got)
	if err != nil {
		return nil, got, err
	}
	if code != 201 {
		return nil, got, fmt.Errorf("open %s %s: %d %s", sp.batch, sp.action, code, raw)
	}
	p := &plan{ID: got.ID, Batch: sp.batch, Action: sp.action, Customer: sp.customer, Requester: sp.requester,
		Token: r.tokens[sp.requester], Outcome: sp.outcome}
	r.mu.Lock()
	p.seq = len(r.plans)
	r.plans = append(r.plans, p)
	r.mu.Unlock()
	return p, got, nil
}

// openAll opens the specs, twenty at a time, and checks the status each open
// answered. Open answers right after the start, with the PIN verified by the
// web front (pin_check) or, rarely, already past the gate, so for
// awaiting_approval the API is asked again until every request is there.
func (r *crashRig) openAll(specs []spec, want string) []*plan {
	r.t.Helper()
	specs = r.ownCustomers(specs)
	out := make([]*plan, len(specs))
	errs := make([]error, len(specs))
	early := make([]bool, len(specs))
	sem := make(chan struct{}, 20)
	var wg sync.WaitGroup
	for i, sp := range specs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			p, got, err := r.openOne(sp)
			if err == nil && got.Status != want {
				if want == "awaiting_approval" && got.Status == "pin_check" {
					early[i] = true
				} else {
					err = fmt.Errorf("open %s %s answered status %s, want %s", sp.batch, got.ID, got.Status, want)
				}
			}
			out[i], errs[i] = p, err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		r.t.Fatal(err)
	}
	if n := len(slices.DeleteFunc(slices.Clone(early), func(b bool) bool { return !b })); n > 0 {
		r.t.Logf("%d of %d opens answered before their workflow consumed the PIN verdict", n, len(specs))
	}
	if want == "awaiting_approval" {
		r.confirmAPI(out, want, time.Minute)
	}
	return out
}

// apiRequest is the part of the API's request view the crash tests read.
type apiRequest struct {
	ID            string     `json:"id"`
	Action        string     `json:"action"`
	Status        string     `json:"status"`
	Final         bool       `json:"final"`
	NotifiedAt    *time.Time `json:"notified_at"`
	CoolingEndsAt *time.Time `json:"cooling_ends_at"`
	ExecutedAt    *time.Time `json:"executed_at"`
	Reference     string     `json:"reference"`
	Decision      *struct {
		Decision   string     `json:"decision"`
		ApproverID string     `json:"approver_id"`
		At         *time.Time `json:"at"`
	} `json:"decision"`
	Cancellation *struct {
		By string     `json:"by"`
		At *time.Time `json:"at"`
	} `json:"cancellation"`
}

// apiStatus reads a request through the agent API, which asks the workflow.
func (r *crashRig) apiStatus(p *plan) (apiRequest, error) {
	var got apiRequest
	code, raw, err := r.api("GET", "/api/v1/requests/"+p.ID, p.Token, nil, &got)
	if err != nil {
		return got, err
	}
	if code != 200 {
		return got, fmt.Errorf("GET %s: %d %s", p.ID, code, raw)
	}
	return got, nil
}

// confirmAPI waits until the API reports want for every plan.
func (r *crashRig) confirmAPI(ps []*plan, want string, within time.Duration) {
	r.t.Helper()
	for _, p := range ps {
		eventually(r.t, within, "API status of "+p.String()+" = "+want, func() (bool, string) {
			got, err := r.apiStatus(p)
			if err != nil {
				return false, err.Error()
			}
			return got.Status == want, got.Status
		})
	}
}

// projRow is a request as Postgres's projection holds it.
type projRow struct {
	Status        string
	NotifiedAt    sql.NullTime
	CoolingEndsAt sql.NullTime
}

// projection reads every planned request's row.
func (r *crashRig) projection() (map[string]projRow, error) {
	ids := r.ids(r.all())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := r.db.QueryContext(ctx, `SELECT id, status, notified_at, cooling_ends_at FROM requests WHERE id = ANY($1)`, pq.Array(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]projRow{}
	for rows.Next() {
		var id string
		var row projRow
		if err := rows.Scan(&id, &row.Status, &row.NotifiedAt, &row.CoolingEndsAt); err != nil {
			return nil, err
		}
		out[id] = row
	}
	return out, rows.Err()
}

func (r *crashRig) all() []*plan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.plans)
}

func (r *crashRig) ids(ps []*plan) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

// pending lists the workflow's pending activities as Temporal sees them.
func (r *crashRig) pending(id string) ([]*workflowpb.PendingActivityInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := r.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(id), "")
	if err != nil {
		return nil, err
	}
	return d.GetPendingActivities(), nil
}

// waitPending waits until every plan has a pending activity of that name
// for which ok holds.
func (r *crashRig) waitPending(ps []*plan, activity string, within time.Duration, ok func(*workflowpb.PendingActivityInfo) bool) {
	r.t.Helper()
	for _, p := range ps {
		eventually(r.t, within, p.String()+": pending "+activity, func() (bool, string) {
			acts, err := r.pending(p.ID)
			if err != nil {
				return false, err.Error()
			}
			var seen []string
			for _, a := range acts {
				if a.GetActivityType().GetName() == activity && ok(a) {
					return true, ""
				}
				seen = append(seen, fmt.Sprintf("%s %s attempt %d", a.GetActivityType().GetName(), a.GetState(), a.GetAttempt()))
			}
			return false, strings.Join(seen, "; ")
		})
	}
}

// quiesce waits (up to 15 s) until the only activities running on the live
// worker are the targeted ones (request id -> activity name), so that a kill
// hits exactly the point under test and not, by chance, something else.
func (r *crashRig) quiesce(target map[string]string) {
	r.t.Helper()
	r.mu.Lock()
	live := r.live
	r.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	var busy []string
	for time.Now().Before(deadline) {
		busy = busy[:0]
		proj, err := r.projection()
		if err != nil {
			busy = append(busy, err.Error())
		}
		for _, p := range r.all() {
			if row, ok := proj[p.ID]; ok && isFinal(row.Status) {
				continue
			}
			acts, err := r.pending(p.ID)
			if err != nil {
				continue // not started yet, or Temporal is busy: not an activity of ours
			}
			for _, a := range acts {
				if a.GetState() != enums.PENDING_ACTIVITY_STATE_STARTED || a.GetLastStartedTime().AsTime().Before(live) {
					continue
				}
				if target[p.ID] == a.GetActivityType().GetName() {
					continue
				}
				busy = append(busy, p.ID+":"+a.GetActivityType().GetName())
			}
		}
		if len(busy) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Logf("quiesce: still running besides the target after 15s: %v (the kill hits them too; they retry after their timeouts)", busy)
}

func isFinal(status string) bool {
	switch status {
	case "executed", "pin_rejected", "locked", "rejected", "expired", "cancelled", "withdrawn", "failed":
		return true
	}
	return false
}

// crashWorker stops the driver from acting, runs settle (which makes sure
// the kill hits exactly the point under test), SIGKILLs the worker, runs
// whileDown, and starts a new one with the same environment.
func (r *crashRig) crashWorker(why string, settle, whileDown func()) {
	r.t.Helper()
	r.down.Lock()
	defer r.down.Unlock()
	if settle != nil {
		settle()
	}
	began := time.Now()
	logs := r.s.logs("worker")
	r.s.kill("worker")
	r.mu.Lock()
	r.deadLogs = append(r.deadLogs, logs)
	r.mu.Unlock()
	if whileDown != nil {
		whileDown()
	}
	r.s.start("worker", bins["worker"], nil, "worker ready")
	r.mu.Lock()
	r.live = time.Now()
	r.mu.Unlock()
	r.t.Logf("%6.1fs crash %q: worker SIGKILLed and restarted in %s", time.Since(r.began).Seconds(), why, time.Since(began).Round(time.Millisecond))
}

// crashDevserver SIGKILLs the Temporal devserver and starts it again on the
// same address and database file; worker and web are left alone.
func (r *crashRig) crashDevserver(whileDown func()) time.Duration {
	r.t.Helper()
	r.down.Lock()
	defer r.down.Unlock()
	logs := r.s.logs("devserver")
	r.s.kill("devserver")
	r.mu.Lock()
	r.deadLogs = append(r.deadLogs, logs)
	r.mu.Unlock()
	began := time.Now()
	if whileDown != nil {
		whileDown()
	}
	r.s.start("devserver", bins["devserver"], []string{"-addr", r.s.temporal, "-db-file", filepath.Join(r.s.dir, "temporal.db")}, "devserver ready")
	return time.Since(began)
}

// arm lets the driver act on these plans.
func arm(ps ...[]*plan) {
	for _, b := range ps {
		for _, p := range b {
			p.armed.Store(true)
		}
	}
}

// approvalMessages maps request ids to their approval message and counts
// how many approval messages each has.
func (r *crashRig) approvalMessages() (map[string]slackMessage, map[string]int, error) {
	resp, err := http.Get(r.s.slackURL + "/api/messages")
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Messages []slackMessage `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, nil, err
	}
	byID, count := map[string]slackMessage{}, map[string]int{}
	ps := r.all()
	for _, m := range out.Messages {
		if m.Channel != approvalsChannel || m.ThreadTS != "" {
			continue
		}
		for _, p := range ps {
			if bytes.Contains(m.Blocks, []byte(p.ID)) {
				byID[p.ID] = m
				count[p.ID]++
			}
		}
	}
	return byID, count, nil
}

// tryClick presses a button on the request's approval message as user.
func (r *crashRig) tryClick(id, action, user string, msgs map[string]slackMessage) error {
	m, ok := msgs[id]
	if !ok {
		return fmt.Errorf("no approval message for %s yet", id)
	}
	body, _ := json.Marshal(map[string]any{"channel": m.Channel, "ts": m.TS, "action_id": action, "user": user})
	resp, err := http.Post(r.s.slackURL+"/standin/click", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != 200 {
		return fmt.Errorf("click through the stand-in: %d %s", resp.StatusCode, raw)
	}
	if out.Status != 200 {
		return fmt.Errorf("Vigil answered the click on %s with %d %s", id, out.Status, out.Body)
	}
	return nil
}

// decide applies the plan's decision now: a Slack click by bob, or the
// requester's withdrawal through the API.
func (r *crashRig) decide(p *plan, msgs map[string]slackMessage) error {
	switch p.Outcome {
	case outReject:
		m, ok := msgs[p.ID]
		if !ok {
			return fmt.Errorf("no approval message for %s yet", p.ID)
		}
		return rejectViaDialog(r.s.slackURL, m, "U0BOB", "the customer did not ask for this")
	case outWithdraw:
		code, raw, err := r.api("POST", "/api/v1/requests/"+p.ID+"/withdraw", p.Token, map[string]any{"reason": "opened for the wrong customer"}, nil)
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("withdraw %s: %d %s", p.ID, code, raw)
		}
		return nil
	}
	return r.tryClick(p.ID, "approve", "U0BOB", msgs)
}

// decideNow decides every plan from the test goroutine, waiting for the
// approval messages first.
func (r *crashRig) decideNow(ps []*plan) {
	r.t.Helper()
	for _, p := range ps {
		var msgs map[string]slackMessage
		eventually(r.t, 30*time.Second, "approval message of "+p.String(), func() (bool, string) {
			m, _, err := r.approvalMessages()
			if err != nil {
				return false, err.Error()
			}
			msgs = m
			_, ok := m[p.ID]
			return ok, "not posted"
		})
		if err := r.decide(p, msgs); err != nil {
			r.t.Fatalf("decide %s: %v", p, err)
		}
		p.mu.Lock()
		p.manual, p.acted, p.lastTry = true, p.acted+1, time.Now()
		p.mu.Unlock()
	}
}

// startDriver acts on armed plans as the people around a request would: a
// senior decides when it waits for approval, the customer cancels from the
// emailed link when it reaches the planned status. Failed attempts (say, in
// an outage) are tried again a few seconds later, as a person would.
func (r *crashRig) startDriver() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var acting sync.WaitGroup
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			r.driveOnce(&acting)
		}
	}()
	return func() { cancel(); <-done; acting.Wait() }
}

const retryAfter = 6 * time.Second

// driveOnce starts what is due, each in its own goroutine: people act at
// the same time, and one slow answer (an Update waiting for a restarted
// worker) must not hold up another customer's cancel.
func (r *crashRig) driveOnce(acting *sync.WaitGroup) {
	proj, err := r.projection()
	if err != nil {
		return
	}
	var msgs map[string]slackMessage
	for _, p := range r.all() {
		if !p.armed.Load() {
			continue
		}
		row, ok := proj[p.ID]
		if !ok {
			continue
		}
		p.mu.Lock()
		due := !p.busy && (p.acted == 0 || time.Since(p.lastTry) > retryAfter)
		manual := p.manual
		p.mu.Unlock()
		if !due {
			continue
		}
		var act func() error
		switch {
		case row.Status == "awaiting_approval" && !manual:
			if msgs == nil {
				if msgs, _, err = r.approvalMessages(); err != nil {
					return
				}
			}
			if _, posted := msgs[p.ID]; !posted && p.Outcome != outWithdraw {
				continue // a senior can only click once the message is there
			}
			act = func() error { return r.decide(p, msgs) }
		case p.cancelIn() != "" && row.Status == p.cancelIn():
			act = func() error { return r.customerCancels(p) }
		default:
			continue
		}
		p.mu.Lock()
		p.busy = true
		p.mu.Unlock()
		acting.Go(func() {
			// Not into the gap while a process is dead: a kill waits for
			// actions under way, and none starts until the restart.
			r.down.RLock()
			err := act()
			r.down.RUnlock()
			p.mu.Lock()
			p.busy = false
			p.acted++
			p.lastTry = time.Now()
			p.mu.Unlock()
			if err != nil {
				r.t.Logf("driver: %s (status %s): %v (will try again)", p, row.Status, err)
			}
		})
	}
}

// customerCancels cancels from the emailed link unless the workflow already
// holds the cancellation (the page may have failed although it landed).
func (r *crashRig) customerCancels(p *plan) error {
	p.mu.Lock()
	done, lastErr := p.cancelDone, p.cancelErr
	p.mu.Unlock()
	if done {
		return nil
	}
	if got, err := r.apiStatus(p); err == nil && got.Cancellation != nil {
		p.mu.Lock()
		p.cancelDone = true
		p.mu.Unlock()
		if lastErr != nil {
			r.finding("%s: the customer's cancel was recorded, yet the cancel page answered them: %v", p, lastErr)
		}
		return nil
	}
	err := r.cancelFromLink(p)
	p.mu.Lock()
	p.cancelErr = err
	p.mu.Unlock()
	return err
}

// cancelFromLink cancels as the customer, from the request's notices in
// arrival order, moving to the next link when one fails.
func (r *crashRig) cancelFromLink(p *plan) error {
	if err := r.mails.refresh(); err != nil {
		return err
	}
	var links []string
	for _, m := range r.mails.of(p.ID, "notice") {
		if l := cancelLink.FindString(m.Text); l != "" {
			links = append(links, l)
		}
	}
	if len(links) == 0 {
		return errors.New("no notice with a cancel link yet")
	}
	p.mu.Lock()
	link := links[p.linkNext%len(links)]
	p.mu.Unlock()
	err := tryCancel(r.s, link, net.IPv4(127, 0, 1+byte(p.seq/250), 2+byte(p.seq%250)))
	if err != nil {
		p.mu.Lock()
		p.linkNext++
		p.mu.Unlock()
	}
	return err
}

var (
	inputTag   = regexp.MustCompile(`<input[^>]*>`)
	attrPair   = regexp.MustCompile(`([a-zA-Z-]+)="([^"]*)"`)
	formAction = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
)

// tryCancel does what cancelFromBrowser does, without failing the test,
// from the given loopback address (one customer's phone).
func tryCancel(s *stack, link string, from net.IP) error {
	jar, _ := cookiejar.New(nil)
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: from}, Timeout: 10 * time.Second}
	c := &http.Client{Jar: jar, Timeout: 40 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext}}
	resp, err := c.Get(link)
	if err != nil {
		return err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET cancel page: %d %q", resp.StatusCode, pageHeading(page))
	}
	form := url.Values{}
	for _, tag := range inputTag.FindAllString(string(page), -1) {
		attrs := map[string]string{}
		for _, m := range attrPair.FindAllStringSubmatch(tag, -1) {
			attrs[strings.ToLower(m[1])] = html.UnescapeString(m[2])
		}
		if attrs["name"] != "" {
			form.Set(attrs["name"], attrs["value"])
		}
	}
	action := link
	if m := formAction.FindStringSubmatch(string(page)); m != nil {
		u, err := url.Parse(link)
		if err != nil {
			return err
		}
		ref, err := u.Parse(html.UnescapeString(m[1]))
		if err != nil {
			return err
		}
		action = ref.String()
	}
	req, _ := http.NewRequest("POST", action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.webURL)
	resp, err = c.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("POST cancel: %d %q", resp.StatusCode, pageHeading(body))
	}
	return nil
}

var heading = regexp.MustCompile(`(?s)<h1>(.*?)</h1>(.*?)</main>`)

// pageHeading is what a cancel page tells the customer, without markup.
func pageHeading(page []byte) string {
	m := heading.FindSubmatch(page)
	if m == nil {
		return tail(string(page), 3)
	}
	text := regexp.MustCompile(`<[^>]*>`).ReplaceAllString(string(m[1])+" — "+string(m[2]), " ")
	return html.UnescapeString(strings.Join(strings.Fields(text), " "))
}

// mailIndex remembers each caught message with the request and kind its
// headers name, so that each raw message is fetched once.
type mailIndex struct {
	s    *stack
	mu   sync.Mutex
	byID map[int]indexedMail
}

// indexedMail is one caught message.
type indexedMail struct {
	ID         int       `json:"id"`
	To         []string  `json:"to"`
	Subject    string    `json:"subject"`
	Text       string    `json:"text"`
	ReceivedAt time.Time `json:"received_at"`
	Request    string    `json:"-"`
	Kind       string    `json:"-"`
}

func (m *mailIndex) refresh() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	resp, err := http.Get(m.s.mailURL + "/api/messages")
	if err != nil {
		return err
	}
	var list []indexedMail
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("decode mail list: %w", err)
	}
	for _, msg := range list {
		if _, ok := m.byID[msg.ID]; ok {
			continue
		}
		resp, err := http.Get(m.s.mailURL + "/messages/" + strconv.Itoa(msg.ID) + ".eml")
		if err != nil {
			return err
		}
		parsed, err := mail.ReadMessage(resp.Body)
		if err != nil {
			resp.Body.Close()
			return fmt.Errorf("parse message %d: %w", msg.ID, err)
		}
		msg.Request, msg.Kind = parsed.Header.Get("X-Vigil-Request"), parsed.Header.Get("X-Vigil-Kind")
		resp.Body.Close()
		m.byID[msg.ID] = msg
	}
	return nil
}

// of returns the request's messages of one kind, oldest first.
func (m *mailIndex) of(requestID, kind string) []indexedMail {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []indexedMail
	for _, msg := range m.byID {
		if msg.Request == requestID && msg.Kind == kind {
			out = append(out, msg)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// refuseMail makes the mail catcher refuse the next n deliveries with 451
// (0 lets mail through again).
func (s *stack) refuseMail(t *testing.T, n int) {
	t.Helper()
	resp, err := http.Post(s.mailURL+"/api/refuse", "application/json", strings.NewReader(fmt.Sprintf(`{"temporary":%d}`, n)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("mail catcher refuse: %d", resp.StatusCode)
	}
}

// panelRelease lets held panel calls go on and stops holding.
func (s *stack) panelRelease(t *testing.T) {
	t.Helper()
	resp, err := http.Post(s.panelURL+"/_standin/release", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("panel release: %d", resp.StatusCode)
	}
}

// standinCall is one call the stand-in panel received or performed.
type standinCall struct {
	ID             int64     `json:"id"`
	IdempotencyKey string    `json:"idempotency_key"`
	Action         string    `json:"action"`
	Status         int       `json:"status"`
	Replayed       bool      `json:"replayed"`
	ReceivedAt     time.Time `json:"received_at"`
}

// panelList reads /_standin/calls or /_standin/performed.
func (s *stack) panelList(t *testing.T, what string) []standinCall {
	t.Helper()
	resp, err := http.Get(s.panelURL + "/_standin/" + what)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []standinCall
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode panel %s: %v", what, err)
	}
	return out
}

// slackFail makes the Slack stand-in answer the next calls of method with
// these HTTP statuses.
func (s *stack) slackFail(t *testing.T, method string, statuses ...int) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"method": method, "statuses": statuses})
	resp, err := http.Post(s.slackURL+"/standin/fail", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("slack stand-in fail: %d", resp.StatusCode)
	}
}

// slackCalls counts the Web API calls the Slack stand-in received, by method.
func (s *stack) slackCalls(t *testing.T) map[string]int {
	t.Helper()
	resp, err := http.Get(s.slackURL + "/standin/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]int{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode slack calls: %v", err)
	}
	return out
}

// verifyAll waits until every plan has ended, then checks the end state
// (through the API, which asks the workflow), the completed workflow, the
// panel (performed exactly once per executed request, never for the
// others, every call under the request's own key), the audit trail (each
// gate event once) and the credentials mail (once per executed resend).
func (r *crashRig) verifyAll(within time.Duration) {
	r.t.Helper()
	t := r.t
	ps := r.all()
	eventually(t, within, fmt.Sprintf("all %d requests reaching an end state", len(ps)), func() (bool, string) {
		proj, err := r.projection()
		if err != nil {
			return false, err.Error()
		}
		var open []string
		for _, p := range ps {
			if !isFinal(proj[p.ID].Status) {
				open = append(open, p.String()+"="+proj[p.ID].Status)
			}
		}
		return len(open) == 0, fmt.Sprintf("%d not ended: %v", len(open), open)
	})

	executed := map[string]*plan{}
	for _, p := range ps {
		got, err := r.apiStatus(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if got.Status != p.want() || !got.Final {
			t.Errorf("%s ended %s (final %v), want %s", p, got.Status, got.Final, p.want())
			continue
		}
		if p.want() == "executed" {
			executed["vigil-"+p.ID] = p
			if got.Reference == "" {
				t.Errorf("%s: executed without a panel reference", p)
			}
		}
		if got.NotifiedAt != nil && got.CoolingEndsAt != nil {
			if d := got.CoolingEndsAt.Sub(*got.NotifiedAt); d != r.cooling[p.Action] {
				t.Errorf("%s: cooling ends %s after the notice was accepted, want the full %s", p, d, r.cooling[p.Action])
			}
		}
		if got.ExecutedAt != nil && (got.CoolingEndsAt == nil || got.ExecutedAt.Before(*got.CoolingEndsAt)) {
			t.Errorf("%s: executed at %v, before the cooling period ended (%v)", p, got.ExecutedAt, got.CoolingEndsAt)
		}
		// The end state is final before the workflow closes: it still sends
		// the outcome mail and updates the Slack message.
		eventually(t, time.Minute, p.String()+": workflow completing", func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d, err := r.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(p.ID), "")
			if err != nil {
				return false, err.Error()
			}
			st := d.GetWorkflowExecutionInfo().GetStatus()
			return st == enums.WORKFLOW_EXECUTION_STATUS_COMPLETED, st.String()
		})
	}

	// The panel: one performed action per executed request, none for the others.
	performed := map[string]int{}
	for _, c := range r.s.panelList(t, "performed") {
		performed[c.IdempotencyKey]++
		if executed[c.IdempotencyKey] == nil {
			t.Errorf("panel performed %s (%s), which is not an executed request's key", c.IdempotencyKey, c.Action)
		}
	}
	for key, p := range executed {
		if performed[key] != 1 {
			t.Errorf("%s: panel performed it %d times, want exactly 1", p, performed[key])
		}
	}
	known := map[string]bool{}
	for _, p := range ps {
		known["vigil-"+p.ID] = true
	}
	for _, c := range r.s.panelList(t, "calls") {
		if !known[c.IdempotencyKey] {
			t.Errorf("panel call %d carries key %q, which is no request's", c.ID, c.IdempotencyKey)
		}
	}

	// The audit trail.
	counts := r.auditCounts(t, ps)
	for _, p := range ps {
		once, never := p.wantEvents()
		for _, ev := range once {
			if n := counts[p.ID][ev]; n != 1 {
				t.Errorf("%s: audit holds %s %d times, want once", p, ev, n)
			}
		}
		for _, ev := range never {
			if n := counts[p.ID][ev]; n != 0 {
				t.Errorf("%s: audit holds %s %d times, want none for a request that ends %s", p, ev, n, p.want())
			}
		}
		if n := counts[p.ID]["request.policy"]; n > 1 {
			t.Errorf("%s: audit holds request.policy %d times, want at most once (the worker's timings, recorded by Open)", p, n)
		}
		for ev, n := range counts[p.ID] {
			// request.opened and request.policy say how it began, not how it ended.
			if strings.HasPrefix(ev, "request.") && ev != "request.opened" && ev != "request.policy" && ev != "request."+p.want() {
				t.Errorf("%s: audit holds a second end %s (%d)", p, ev, n)
			}
		}
	}

	// The credentials went out once per executed resend, never otherwise.
	if err := r.mails.refresh(); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		mails := r.mails.of(p.ID, "credentials")
		if p.Action != "resend_credentials" || p.want() != "executed" {
			if len(mails) != 0 {
				t.Errorf("%s: %d credentials mails for a request that was not executed", p, len(mails))
			}
			continue
		}
		if len(mails) == 0 {
			t.Errorf("%s: executed, but no credentials mail reached the customer", p)
			continue
		}
		// A retried Execute replays the panel's answer; two passwords would
		// mean two resets, two mails of one password a missing mark.
		passwords := map[string]bool{}
		for _, m := range mails {
			if pw := passwordLine.FindStringSubmatch(m.Text); pw != nil {
				passwords[pw[1]] = true
			}
		}
		if len(passwords) != 1 {
			t.Errorf("%s: credentials mails carry %d distinct passwords, want exactly one", p, len(passwords))
		}
		if len(mails) > 1 {
			t.Errorf("%s: the customer got the same credentials %d times (mails %v)", p, len(mails), mailIDs(mails))
		}
	}
	if !t.Failed() {
		tally := map[string]int{}
		for _, p := range ps {
			tally[p.want()]++
		}
		t.Logf("verified %d requests: %v; panel performed %d actions, each once", len(ps), tally, len(executed))
	}
}

func mailIDs(ms []indexedMail) []int {
	out := make([]int, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// auditCounts counts audit events per request and event name.
func (r *crashRig) auditCounts(t *testing.T, ps []*plan) map[string]map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := r.db.QueryContext(ctx, `SELECT request_id, event, count(*) FROM audit_events WHERE request_id = ANY($1) GROUP BY 1, 2`, pq.Array(r.ids(ps)))
	if err != nil {
		t.Fatalf("read audit_events: %v", err)
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var id, ev string
		var n int
		if err := rows.Scan(&id, &ev, &n); err != nil {
			t.Fatal(err)
		}
		if out[id] == nil {
			out[id] = map[string]int{}
		}
		out[id][ev] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// verdictGateKey is the advisory lock holdVerdictConsumption holds.
const verdictGateKey = 0x56494749_4c50494e // "VIGILPIN"

// holdVerdictConsumption makes every PIN gate (ConsumePINVerdict's UPDATE of
// pin_verdicts) wait inside the worker until release is called, while the
// web front still checks PINs and records verdicts (INSERTs pass): a trigger
// on the UPDATE waits for an advisory lock the returned connection holds.
func (r *crashRig) holdVerdictConsumption() (release func()) {
	r.t.Helper()
	ctx := context.Background()
	if _, err := r.db.ExecContext(ctx, fmt.Sprintf(`
		CREATE OR REPLACE FUNCTION crash_hold_verdict() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM pg_advisory_xact_lock_shared(%d);
			RETURN NEW;
		END $$;
		DROP TRIGGER IF EXISTS crash_hold_verdict ON pin_verdicts;
		CREATE TRIGGER crash_hold_verdict BEFORE UPDATE ON pin_verdicts FOR EACH ROW
			WHEN (NEW.consumed_at IS NOT NULL) EXECUTE FUNCTION crash_hold_verdict();`, int64(verdictGateKey))); err != nil {
		r.t.Fatalf("install the verdict hold: %v", err)
	}
	conn, err := r.db.Conn(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(verdictGateKey)); err != nil {
		r.t.Fatalf("hold the verdict lock: %v", err)
	}
	return func() {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, int64(verdictGateKey)); err != nil {
			r.t.Errorf("release the verdict lock: %v", err)
		}
		_ = conn.Close()
		if _, err := r.db.ExecContext(ctx, `DROP TRIGGER crash_hold_verdict ON pin_verdicts`); err != nil {
			r.t.Errorf("drop the verdict hold: %v", err)
		}
	}
}

// consumesWaiting counts PIN gates waiting on holdVerdictConsumption.
func (r *crashRig) consumesWaiting() (int, error) {
	var n int
	err := r.db.QueryRow(`SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock'
		AND query LIKE '%UPDATE pin_verdicts SET consumed_at%'`).Scan(&n)
	return n, err
}

// smtpGate sits between the worker and the mail catcher. For the requests
// it is told to hold, it lets a notice through to the catcher but withholds
// the catcher's "250 accepted" from the worker: the mail is delivered and
// the sender does not know it — the ambiguous moment of sending mail.
type smtpGate struct {
	ln net.Listener

	mu       sync.Mutex
	upstream string
	hold     map[string]bool // request ids whose notice replies are withheld
	held     map[string]int  // request id -> replies withheld now
	release  chan struct{}
}

var vigilRequestHeader = regexp.MustCompile(`(?m)^X-Vigil-Request: (req_[a-z0-9]+)\r$`)

// newSMTPGate listens on a free loopback port until the test ends.
func newSMTPGate(t *testing.T) *smtpGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &smtpGate{ln: ln, hold: map[string]bool{}, held: map[string]int{}, release: make(chan struct{})}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go g.serve(c)
		}
	}()
	return g
}

func (g *smtpGate) addr() string { return g.ln.Addr().String() }

func (g *smtpGate) setUpstream(a string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.upstream = a
}

// holdNotices starts withholding the replies to these requests' notices.
func (g *smtpGate) holdNotices(ids []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.release = make(chan struct{})
	for _, id := range ids {
		g.hold[id] = true
	}
}

// releaseAll stops withholding and lets held replies through.
func (g *smtpGate) releaseAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold = map[string]bool{}
	select {
	case <-g.release:
	default:
		close(g.release)
	}
}

// heldFor says how many of ids have a withheld reply right now.
func (g *smtpGate) heldFor(ids []string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, id := range ids {
		if g.held[id] > 0 {
			n++
		}
	}
	return n
}

func (g *smtpGate) serve(c net.Conn) {
	defer c.Close()
	g.mu.Lock()
	upstream := g.upstream
	g.mu.Unlock()
	up, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer up.Close()
	var holdFor atomic.Value // request id whose reply to the end of DATA is withheld
	clientGone := make(chan struct{})
	go func() {
		defer close(clientGone)
		defer up.Close()
		var convo []byte
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				convo = append(convo, buf[:n]...)
				// The end of DATA is the only "\r\n.\r\n" (dot-stuffing), and
				// the reply to it comes only after it is forwarded.
				if holdFor.Load() == nil && bytes.Contains(convo, []byte("\r\n.\r\n")) && bytes.Contains(convo, []byte("\r\nX-Vigil-Kind: notice\r\n")) {
					if m := vigilRequestHeader.FindSubmatch(convo); m != nil {
						g.mu.Lock()
						if g.hold[string(m[1])] {
							holdFor.Store(string(m[1]))
						}
						g.mu.Unlock()
					}
				}
				if _, err := up.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	waited := false
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if id, ok := holdFor.Load().(string); ok && !waited {
				waited = true
				g.mu.Lock()
				g.held[id]++
				release := g.release
				g.mu.Unlock()
				select {
				case <-release:
				case <-clientGone:
				}
				g.mu.Lock()
				g.held[id]--
				g.mu.Unlock()
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
