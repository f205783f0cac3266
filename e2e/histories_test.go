package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"github.com/lib/pq"

	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/workflows"
)

// The payload key of the stack that records the replay fixtures. It is fixed
// so that workflows/replay_test.go can decode the recorded histories; it is a
// test-only key that protects nothing and must never be used anywhere else.
// The same value is in workflows/replay_test.go.
const (
	replayCodecKeyID = "replay"
	replayCodecKey   = "dmlnaWwtcmVwbGF5LWZpeHR1cmVzLXRlc3Qtb25seSE=" // base64("vigil-replay-fixtures-test-only!")
)

// recordHistoriesEnv set to 1 makes TestEveryEndStateOnRealProcesses write
// the fixtures that workflows/replay_test.go replays.
const recordHistoriesEnv = "VIGIL_RECORD_HISTORIES"

// changeIDs are the workflow's change ids (workflows/request.go). A
// fixture is named after its case and every change id whose version marker
// its history carries, in this order: <case>.<change-id>....json, so a new
// version's fixtures land next to the old ones and never over them.
var changeIDs = []string{"cancel-stops-notice", "fail-on-permanent-error", "pin-verdict-before-start", "policy-from-worker", "standing-checks", "notice-newly-established"}

// recordOnlyEnv, a comma-separated list of case fixture names (without
// suffix), records only those cases; the others are still driven and
// checked. A new case gets its fixture without asking every old case for a
// new one (which the recorder would refuse anyway: it never writes over a
// file).
const recordOnlyEnv = "VIGIL_RECORD_HISTORIES_ONLY"

// fixtureDir is where the fixtures go, relative to this package.
const fixtureDir = "../workflows/testdata/histories"

// A second customer, locked out by wrong PINs; and the wrong PINs used.
const (
	lockoutCustomerID = "C-5150"
	lockoutPIN        = "604251"
	lockoutWrongPIN   = "990077"
	wrongPIN          = "118833"
)

// The customer whose request the database refuses in "failed on a data
// error".
const (
	refusedCustomerID = "C-2202"
	refusedPIN        = "731946"
)

// allPINs are every PIN typed in the test, right or wrong: none may appear in
// a history in clear.
var allPINs = []string{customerPIN, lockoutPIN, lockoutWrongPIN, wrongPIN, noticePIN, refusedPIN}

// recorder says which histories are written as fixtures, and keeps track.
type recorder struct {
	on    bool
	only  map[string]bool // nil: every case
	mu    sync.Mutex
	wrote map[string]bool
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	r := &recorder{on: os.Getenv(recordHistoriesEnv) == "1", wrote: map[string]bool{}}
	if only := os.Getenv(recordOnlyEnv); only != "" {
		r.only = map[string]bool{}
		for _, name := range strings.Split(only, ",") {
			r.only[strings.TrimSpace(name)] = true
		}
	}
	return r
}

// wants reports whether the case's history is to be written.
func (r *recorder) wants(fixture string) bool {
	return r.on && (r.only == nil || r.only[fixture])
}

func (r *recorder) done(fixture string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wrote[fixture] = true
}

// check fails the test for a name in VIGIL_RECORD_HISTORIES_ONLY that no
// case recorded (a typo would otherwise record nothing, silently).
func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for name := range r.only {
		if r.on && !r.wrote[name] {
			t.Errorf("%s names %q, but no case of that fixture name was recorded", recordOnlyEnv, name)
		}
	}
}

// endCase is one request driven into an end state, and what its history
// must show.
type endCase struct {
	fixture   string // file name without .json
	requestID string
	status    string // the end state the workflow returned
	cancelBy  string // who cancelled, for cancelled and withdrawn requests
	// wantActs must all have been scheduled; noActs none of them.
	wantActs, noActs []string
	// secrets must not be in the history either (e.g. a mailed password).
	secrets []string
	// versions are change ids the history must have taken, with the
	// version each must carry (pin-verdict-before-start at 1 always: the
	// web front starts every request without the PIN).
	versions map[string]workflow.Version
	// workflowID is the run's workflow id when it is not the request's own
	// (a forged run).
	workflowID string
	// failedOnce are activities that must have failed, on their first
	// attempt: classified as permanent, not retried.
	failedOnce []string
}

// TestEveryEndStateOnRealProcesses drives one request into each end state on
// one stack of real processes, checks each end state from the outside and in
// the workflow's own history, and — with VIGIL_RECORD_HISTORIES=1 — writes
// the histories as the replay fixtures of workflows/replay_test.go (never over
// an existing one; workflows/testdata/histories/README.md says why).
func TestEveryEndStateOnRealProcesses(t *testing.T) {
	began := time.Now()
	s := startStack(t, stackOptions{extraEnv: []string{
		"VIGIL_CODEC_KEYS=" + replayCodecKeyID + ":" + replayCodecKey,
		// Short enough for the expired request; every other request is
		// decided within a few seconds of being opened.
		"VIGIL_APPROVAL_TIMEOUT=20s",
		"VIGIL_COOLING_RESEND_CREDENTIALS=3s",
		"VIGIL_COOLING_DISABLE_2FA=3s",
		"VIGIL_COOLING_REINSTALL_VPS=30m",
		"VIGIL_COOLING_ADD_CONTACT_EMAIL=30m",
		"VIGIL_COOLING_CHANGE_ACCOUNT_EMAIL=30m",
		// Dave, a senior of his own, approves the request whose approver
		// is then disabled.
		"VIGIL_SLACK_STANDIN_USERS=U0ALICE:alice:Alice Moreau,U0BOB:bob:Bob Lindqvist,U0CAROL:carol:Carol Ng,U0DAVE:dave:Dave Okoye",
	}})
	alice, bob := seed(t, s)
	carol := seedCarol(t, s)
	if code, body := s.call("POST", "/admin/v1/agents", s.adminToken, map[string]any{
		"id": "ag_dave", "name": "Dave Okoye", "email": "dave@vigil.example", "role": "senior", "slack_user_id": "U0DAVE",
	}, nil); code != 201 {
		t.Fatalf("create dave: %d %s", code, body)
	}
	importLockoutCustomer(t, s)
	t.Logf("stack up and seeded after %s", time.Since(began).Round(time.Millisecond))

	gates := []string{"ConsumePINVerdict", "Open", "Record"}
	approved := append(slices.Clone(gates), "PostApproval", "UpdateApprovalMessage", "NotifyCustomer", "NotifyOutcome")
	record := newRecorder(t)

	t.Run("drive", func(t *testing.T) {
		// First, so that its wait for the approval timeout overlaps the rest
		// however few subtests run at once (-parallel).
		t.Run("expired", func(t *testing.T) {
			t.Parallel()
			r := s.open(t, alice, map[string]any{
				"action": "change_account_email", "customer_id": customerID, "email": "dana.new@example.com",
				"reason": "customer moved to a new mail provider", "pin": customerPIN,
			})
			s.waitStatus(t, alice, r.ID, "expired", time.Minute)
			checkHistory(t, s, record, endCase{
				fixture: "expired", requestID: r.ID, status: "expired",
				wantActs: append(slices.Clone(gates), "PostApproval", "RemindApprovers", "UpdateApprovalMessage"),
				noActs:   []string{"NotifyCustomer", "Execute"},
			})
		})

		t.Run("executed then failed", func(t *testing.T) {
			t.Parallel()
			ok := s.open(t, alice, map[string]any{
				"action": "resend_credentials", "customer_id": customerID, "server_id": "srv-1",
				"reason": "customer asked in live chat", "pin": customerPIN,
			})
			s.click(t, ok.ID, "approve", "U0BOB")
			done := s.waitStatus(t, alice, ok.ID, "executed", time.Minute)
			if done.Reference == "" {
				t.Error("executed request has no panel reference")
			}
			password := credentialsPassword(t, s, ok.ID)

			// Only now does the panel refuse, and only once: the executed
			// request is done, the one that fails not yet approved.
			bad := s.open(t, alice, map[string]any{
				"action": "disable_2fa", "customer_id": customerID,
				"reason": "customer lost their phone", "pin": customerPIN,
			})
			s.panelFault(t, `{"fail_next":1,"status":422}`)
			s.click(t, bad.ID, "approve", "U0BOB")
			s.waitStatus(t, alice, bad.ID, "failed", time.Minute)
			s.panelFault(t, `{}`)

			performed := s.performed(t)
			if len(performed) != 1 || performed[0].IdempotencyKey != "vigil-"+ok.ID {
				t.Fatalf("panel performed %+v, want exactly the executed request's action", performed)
			}
			refused := 0
			for _, c := range s.panelCalls(t) {
				if c.IdempotencyKey == "vigil-"+bad.ID {
					refused++
				}
			}
			if refused != 1 {
				t.Fatalf("the failed request reached the panel %d times, want once (a 422 is not retried)", refused)
			}
			checkHistory(t, s, record, endCase{
				fixture: "executed", requestID: ok.ID, status: "executed",
				wantActs: append(slices.Clone(approved), "CheckStanding", "UnnotifiedEstablished", "Execute"), noActs: []string{"RemindApprovers", "AlertSecurity"},
				secrets: []string{password},
			})
			checkHistory(t, s, record, endCase{
				fixture: "failed", requestID: bad.ID, status: "failed",
				wantActs: append(slices.Clone(approved), "Execute"), noActs: []string{"AlertSecurity"},
			})
		})

		t.Run("pin_rejected and locked", func(t *testing.T) {
			t.Parallel()
			// The web front checks the PIN before any start: these end at
			// the open, with no workflow and so no history. Their fixtures
			// (pin_rejected, pin_rejected_lockout, locked) are from before
			// change pin-verdict-before-start and are only replayed.
			// Bob opens these: the open rate limit is per agent.
			r := s.open(t, bob, map[string]any{
				"action": "resend_credentials", "customer_id": customerID, "server_id": "srv-2",
				"reason": "caller says they are the customer", "pin": wrongPIN,
			})
			checkEndedAtOpen(t, s, bob, r, "pin_rejected", "request.opened", "gate.pin.rejected", "request.pin_rejected")
			var last request
			for i := 1; i <= 5; i++ {
				last = s.open(t, bob, map[string]any{
					"action": "resend_credentials", "customer_id": lockoutCustomerID, "server_id": "srv-9",
					"reason": fmt.Sprintf("caller insists, attempt %d", i), "pin": lockoutWrongPIN,
				})
				want := []string{"request.opened", "gate.pin.rejected", "request.pin_rejected"}
				if i == 5 {
					want = []string{"request.opened", "gate.pin.rejected", "customer.locked", "request.pin_rejected"}
				}
				checkEndedAtOpen(t, s, bob, last, "pin_rejected", want...)
			}
			// The fifth wrong PIN locks the customer; the worker relays the
			// alert the web front queued.
			eventually(t, 30*time.Second, "the lockout alert", func() (bool, string) {
				msgs, _ := s.slackMessages(t)
				for _, m := range msgs {
					if m.Channel == "C0VIGILSECURITY" && strings.Contains(m.Text, "Customer "+lockoutCustomerID+" is locked until") &&
						strings.Contains(m.Text, last.ID) {
						return true, ""
					}
				}
				return false, fmt.Sprintf("%d messages", len(msgs))
			})
			locked := s.open(t, bob, map[string]any{
				"action": "resend_credentials", "customer_id": lockoutCustomerID, "server_id": "srv-9",
				"reason": "caller found the right PIN", "pin": lockoutPIN,
			})
			checkEndedAtOpen(t, s, bob, locked, "locked", "request.opened", "gate.pin.locked_out", "request.locked")
		})

		t.Run("verdict refused", func(t *testing.T) {
			t.Parallel()
			// A run started directly, with the codec key, that reuses a
			// verified request's id for another customer: refused at the PIN
			// gate (TestPINNeverEntersTemporal has the other replays).
			r := s.open(t, carol, map[string]any{
				"action": "add_contact_email", "customer_id": customerID, "email": "second@whitfield.example",
				"reason": "customer wants a second contact", "pin": customerPIN,
			})
			s.approvalMessage(t, r.ID)
			in := workflows.Input{RequestID: r.ID, Action: domain.ActionAddContactEmail, CustomerID: lockoutCustomerID,
				RequesterID: "ag_carol", Email: "attacker@evil.example", Reason: "customer wants a second contact",
				Policy: workflows.DefaultPolicy(domain.ActionAddContactEmail, domain.CoolingPeriods{domain.ActionAddContactEmail: time.Second})}
			wid := workflows.WorkflowID(r.ID) + "-replay"
			got := startForged(t, s, wid, in)
			if got.Status != "failed" || !strings.Contains(got.Failure, "(mismatch)") {
				t.Fatalf("forged run: %s %q", got.Status, got.Failure)
			}
			checkHistory(t, s, record, endCase{
				fixture: "verdict_refused", requestID: r.ID, workflowID: wid, status: "failed",
				wantActs: []string{"ConsumePINVerdict"}, noActs: []string{"Open", "Record", "RecordFailure", "PostApproval", "Execute"},
			})
			if code, raw := s.call("POST", "/api/v1/requests/"+r.ID+"/withdraw", carol, map[string]any{"reason": "test over"}, nil); code != 200 {
				t.Fatalf("withdraw the real request: %d %s", code, raw)
			}
		})

		t.Run("forged policy", func(t *testing.T) {
			t.Parallel()
			// An insider with Temporal access (and the codec key) starts a
			// request's workflow directly, with timings of a nanosecond. Its
			// PIN was checked as the web front checks it, so only the
			// policy is forged: the run must take the worker's.
			id := "req_forgedpolicy"
			in := workflows.Input{RequestID: id, Action: domain.ActionAddContactEmail, CustomerID: customerID, RequesterID: "ag_alice",
				Email: "third@whitfield.example", Reason: "customer wants a third contact",
				Policy: workflows.Policy{ApprovalTimeout: time.Nanosecond, CoolingPeriod: time.Nanosecond, NoticeTimeout: time.Nanosecond, ExecuteMaxAttempts: 1}}
			recordVerdict(t, s, in, customerPIN)
			startRaw(t, s, workflows.WorkflowID(id), in)
			s.click(t, id, "approve", "U0BOB")
			st := s.waitStatus(t, alice, id, "cooling", time.Minute)
			ends, err := time.Parse(time.RFC3339Nano, st.CoolingEndsAt)
			if err != nil {
				t.Fatalf("cooling_ends_at %q: %v", st.CoolingEndsAt, err)
			}
			// The stack's worker cools add_contact_email for 30 minutes.
			if left := time.Until(ends); left < 25*time.Minute {
				t.Fatalf("cooling ends in %v, want the worker's 30 minutes, not the input's nanosecond", left)
			}
			policy := auditEvent(t, s, id, "request.policy")
			if policy.Details["cooling_period"] != "30m0s" || policy.Details["input_policy_ignored"] != "true" ||
				policy.Details["input_cooling_period"] != "1ns" || policy.Details["below_floor"] != "true" {
				t.Fatalf("request.policy %v, want the worker's 30m (below the floor, by the override) and the input's 1ns ignored", policy.Details)
			}
			if code, raw := s.call("POST", "/api/v1/requests/"+id+"/veto", carol, map[string]any{"reason": "started outside Vigil"}, nil); code != 200 {
				t.Fatalf("veto: %d %s", code, raw)
			}
			s.waitStatus(t, alice, id, "cancelled", 30*time.Second)
			for _, c := range s.performed(t) {
				if c.IdempotencyKey == "vigil-"+id {
					t.Fatalf("the panel performed the forged run's action: %+v", c)
				}
			}
			checkHistory(t, s, record, endCase{
				fixture: "forged_policy", requestID: id, status: "cancelled", cancelBy: "senior",
				wantActs: approved, noActs: []string{"Execute"},
			})
		})

		t.Run("approver disabled during cooling", func(t *testing.T) {
			t.Parallel()
			r := s.open(t, alice, map[string]any{
				"action": "change_account_email", "customer_id": customerID, "email": "dana.later@example.com",
				"reason": "customer moved to a new mail provider", "pin": customerPIN,
			})
			s.click(t, r.ID, "approve", "U0DAVE")
			s.waitStatus(t, alice, r.ID, "cooling", time.Minute)
			if code, raw := s.call("POST", "/admin/v1/agents/ag_dave/disable", s.adminToken, nil, nil); code != 200 {
				t.Fatalf("disable dave: %d %s", code, raw)
			}
			s.waitStatus(t, alice, r.ID, "cancelled", 30*time.Second)
			stop := auditEvent(t, s, r.ID, "request.cancelled")
			if stop.Actor != "system" || stop.Details["by"] != "security" || stop.Details["agent"] != "ag_dave" {
				t.Fatalf("request.cancelled %s %v, want by security naming ag_dave", stop.Actor, stop.Details)
			}
			eventually(t, 30*time.Second, "the security alert for "+r.ID, func() (bool, string) {
				msgs, _ := s.slackMessages(t)
				for _, m := range msgs {
					if m.Channel == "C0VIGILSECURITY" && strings.Contains(m.Text, "SECURITY: request "+r.ID) && strings.Contains(m.Text, "ag_dave was disabled") {
						return true, ""
					}
				}
				return false, fmt.Sprintf("%d messages", len(msgs))
			})
			checkHistory(t, s, record, endCase{
				fixture: "approver_disabled", requestID: r.ID, status: "cancelled", cancelBy: "security",
				wantActs: append(slices.Clone(approved), "CheckStanding", "AlertSecurity"), noActs: []string{"Execute"},
				versions: map[string]workflow.Version{"standing-checks": 1},
			})
		})

		t.Run("forged decision", func(t *testing.T) {
			t.Parallel()
			// An insider with Temporal access (and the codec key) sends the
			// decide Update itself, naming Alice, an agent, as a senior.
			r := s.open(t, carol, map[string]any{
				"action": "add_contact_email", "customer_id": customerID, "email": "fourth@whitfield.example",
				"reason": "customer wants another contact", "pin": customerPIN,
			})
			s.approvalMessage(t, r.ID)
			err := updateRaw(t, s, workflows.WorkflowID(r.ID), workflows.UpdateDecide,
				workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: "ag_alice", ApproverRole: domain.RoleSenior})
			if err == nil || !strings.Contains(err.Error(), "is not a senior agent") {
				t.Fatalf("forged decide answered %v, want refused: ag_alice is not a senior", err)
			}
			s.waitStatus(t, carol, r.ID, "cancelled", 30*time.Second)
			if stop := auditEvent(t, s, r.ID, "request.cancelled"); stop.Details["by"] != "security" ||
				stop.Details["standing"] != "ag_alice (approver: not_senior)" {
				t.Fatalf("request.cancelled %v, want by security, ag_alice not a senior", stop.Details)
			}
			checkHistory(t, s, record, endCase{
				fixture: "forged_decision", requestID: r.ID, status: "cancelled", cancelBy: "security",
				wantActs: append(slices.Clone(gates), "PostApproval", "CheckStanding", "AlertSecurity", "UpdateApprovalMessage"),
				noActs:   []string{"NotifyCustomer", "Execute"},
				versions: map[string]workflow.Version{"standing-checks": 1},
			})
		})

		t.Run("rejected", func(t *testing.T) {
			t.Parallel()
			r := s.openWhenFree(t, alice, map[string]any{
				"action": "reinstall_vps", "customer_id": customerID, "server_id": "srv-1",
				"reason": "customer wants a clean system", "pin": customerPIN,
			})
			s.reject(t, r.ID, "U0BOB", "the customer did not ask for a reinstall")
			s.waitStatus(t, alice, r.ID, "rejected", 30*time.Second)
			checkHistory(t, s, record, endCase{
				fixture: "rejected", requestID: r.ID, status: "rejected",
				wantActs: append(slices.Clone(gates), "PostApproval", "UpdateApprovalMessage"),
				noActs:   []string{"NotifyCustomer", "Execute", "RemindApprovers"},
			})
		})

		t.Run("rejected after a repost", func(t *testing.T) {
			t.Parallel()
			// The approval message is deleted in Slack; the requester has it
			// posted again (the repost Update) and a senior rejects on the
			// new one.
			r := s.openWhenFree(t, carol, map[string]any{
				"action": "change_account_email", "customer_id": customerID, "email": "dana.moved@example.com",
				"reason": "customer moved to a new mail provider", "pin": customerPIN,
			})
			old := s.approvalMessage(t, r.ID)
			body, _ := json.Marshal(map[string]string{"channel": old.Channel, "ts": old.TS})
			if err := postJSON(s.slackURL+"/standin/delete", body, &map[string]any{}); err != nil {
				t.Fatal(err)
			}
			if code, raw := s.call("POST", "/api/v1/requests/"+r.ID+"/repost", carol, nil, nil); code != 200 {
				t.Fatalf("repost: %d %s", code, raw)
			}
			if fresh := s.approvalMessage(t, r.ID); fresh.TS == old.TS {
				t.Fatalf("no new approval message after the repost")
			}
			s.reject(t, r.ID, "U0BOB", "the new address was never confirmed by the customer")
			s.waitStatus(t, carol, r.ID, "rejected", 30*time.Second)
			checkHistory(t, s, record, endCase{
				fixture: "reposted_rejected", requestID: r.ID, status: "rejected",
				wantActs: append(slices.Clone(gates), "PostApproval", "RepostApproval", "UpdateApprovalMessage"),
				noActs:   []string{"NotifyCustomer", "Execute", "RemindApprovers"},
			})
		})

		t.Run("cancelled by the customer", func(t *testing.T) {
			t.Parallel()
			r := s.open(t, alice, map[string]any{
				"action": "reinstall_vps", "customer_id": customerID, "server_id": "srv-2",
				"reason": "customer says the server is compromised", "pin": customerPIN,
			})
			s.click(t, r.ID, "approve", "U0BOB")
			s.waitStatus(t, alice, r.ID, "cooling", time.Minute)
			cancelFromBrowser(t, s, noticeLinkFor(t, s, r.ID))
			s.waitStatus(t, alice, r.ID, "cancelled", 30*time.Second)
			checkHistory(t, s, record, endCase{
				fixture: "cancelled_by_customer", requestID: r.ID, status: "cancelled", cancelBy: "customer",
				wantActs: append(slices.Clone(approved), "AlertSecurity"), noActs: []string{"Execute"},
			})
		})

		t.Run("cancelled during the notice", func(t *testing.T) {
			t.Parallel()
			// Its own customer: one of its addresses refuses mail while the
			// other gets the notice, so the notice stays in retry.
			importNoticeCustomer(t, s)
			s.refuseRecipient(t, noticeRefusedEmail, true)
			defer s.refuseRecipient(t, noticeRefusedEmail, false)
			r := s.open(t, alice, map[string]any{
				"action": "disable_2fa", "customer_id": noticeCustomerID,
				"reason": "caller says they lost their phone", "pin": noticePIN,
			})
			s.click(t, r.ID, "approve", "U0BOB")
			link := noticeLinkFor(t, s, r.ID)
			if st := s.waitStatus(t, alice, r.ID, "notifying", 10*time.Second); st.CoolingEndsAt != "" {
				t.Fatalf("cooling ends at %s while one address refuses: the notice is not complete", st.CoolingEndsAt)
			}
			cancelFromBrowser(t, s, link)
			s.waitStatus(t, alice, r.ID, "cancelled", 30*time.Second)
			mailOf(t, s, r.ID, "outcome")
			for _, m := range s.mails(t) {
				if rawMail(t, s, m.ID).Header.Get("X-Vigil-Request") == r.ID && slices.ContainsFunc(m.To, func(to string) bool {
					return strings.EqualFold(to, noticeRefusedEmail)
				}) {
					t.Fatalf("%s got %q although it refused all mail", noticeRefusedEmail, m.Subject)
				}
			}
			checkHistory(t, s, record, endCase{
				fixture: "cancelled_during_notice", requestID: r.ID, status: "cancelled", cancelBy: "customer",
				wantActs: append(slices.Clone(approved), "AlertSecurity"), noActs: []string{"Execute"},
			})
		})

		t.Run("vetoed", func(t *testing.T) {
			t.Parallel()
			r := s.openWhenFree(t, alice, map[string]any{
				"action": "reinstall_vps", "customer_id": customerID, "server_id": "srv-1",
				"reason": "customer reports a broken kernel", "pin": customerPIN,
			})
			s.click(t, r.ID, "approve", "U0BOB")
			s.waitStatus(t, alice, r.ID, "cooling", time.Minute)
			if code, raw := s.call("POST", "/api/v1/requests/"+r.ID+"/veto", carol, map[string]any{"reason": "the ticket history does not fit"}, nil); code != 200 {
				t.Fatalf("veto: %d %s", code, raw)
			}
			s.waitStatus(t, alice, r.ID, "cancelled", 30*time.Second)
			checkHistory(t, s, record, endCase{
				fixture: "vetoed", requestID: r.ID, status: "cancelled", cancelBy: "senior",
				wantActs: approved, noActs: []string{"Execute", "AlertSecurity"},
			})
		})

		t.Run("failed on a data error", func(t *testing.T) {
			t.Parallel()
			// Its own customer and agent: the database refuses only this
			// request's approval, and nobody else's opens count against it.
			importCustomer(t, s, refusedCustomerID, "Ines Duarte", "ines@duarte.example", refusedPIN, []string{"it@duarte.example"}, nil)
			r := s.open(t, carol, map[string]any{
				"action": "disable_2fa", "customer_id": refusedCustomerID,
				"reason": "customer lost their phone", "pin": refusedPIN,
			})
			s.approvalMessage(t, r.ID)
			refuseApproval(t, s, r.ID)
			clicked := time.Now()
			s.click(t, r.ID, "approve", "U0BOB")
			s.waitStatus(t, carol, r.ID, "failed", time.Minute)
			if took := time.Since(clicked); took > time.Minute {
				t.Fatalf("failed %v after the approval, want within a minute", took)
			}
			checkRefusedRequest(t, s, r.ID)
			checkHistory(t, s, record, endCase{
				fixture: "failed_data_error", requestID: r.ID, status: "failed",
				wantActs:   append(slices.Clone(gates), "PostApproval", "UpdateApprovalMessage", "AlertSecurity", "RecordFailure"),
				noActs:     []string{"NotifyCustomer", "Execute", "NotifyOutcome"},
				versions:   map[string]workflow.Version{"fail-on-permanent-error": 1},
				failedOnce: []string{"Record"},
			})
		})

		t.Run("withdrawn", func(t *testing.T) {
			t.Parallel()
			r := s.open(t, alice, map[string]any{
				"action": "add_contact_email", "customer_id": customerID, "email": "backup@whitfield.example",
				"reason": "customer wants a second contact", "pin": customerPIN,
			})
			s.approvalMessage(t, r.ID)
			if code, raw := s.call("POST", "/api/v1/requests/"+r.ID+"/withdraw", alice, map[string]any{"reason": "opened for the wrong customer"}, nil); code != 200 {
				t.Fatalf("withdraw: %d %s", code, raw)
			}
			s.waitStatus(t, alice, r.ID, "withdrawn", 30*time.Second)
			checkHistory(t, s, record, endCase{
				fixture: "withdrawn", requestID: r.ID, status: "withdrawn", cancelBy: "requester",
				wantActs: append(slices.Clone(gates), "PostApproval", "UpdateApprovalMessage"),
				noActs:   []string{"NotifyCustomer", "Execute"},
			})
		})
	})
	record.check(t)
	t.Logf("every end state reached and checked after %s (recording: %v)", time.Since(began).Round(time.Millisecond), record.on)
}

// recordVerdict checks pin for the request in as the web front does before
// it starts a workflow, and records the verdict, bound to the request's own
// workflow id; it writes no row (the run's Open does).
func recordVerdict(t *testing.T, s *stack, in workflows.Input, pin string) {
	t.Helper()
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	row := store.Request{ID: in.RequestID, WorkflowID: workflows.WorkflowID(in.RequestID), Action: in.Action, CustomerID: in.CustomerID,
		RequesterID: in.RequesterID, ServerID: in.ServerID, Email: in.Email, Reason: in.Reason}
	out, err := store.New(db).CheckPINForOpen(context.Background(), row, pin, time.Now(), store.DefaultPINPolicy(), pinhash.Verify)
	if err != nil || !out.Verified {
		t.Fatalf("check the PIN of %s: %+v %v", in.RequestID, out, err)
	}
}

// auditEvent returns the one event named name of a request's audit trail.
func auditEvent(t *testing.T, s *stack, requestID, name string) store.AuditEvent {
	t.Helper()
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	trail, err := store.New(db).AuditTrail(context.Background(), requestID)
	if err != nil {
		t.Fatal(err)
	}
	var found []store.AuditEvent
	var names []string
	for _, e := range trail {
		names = append(names, e.Event)
		if e.Event == name {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d %s events in %q, want one", requestID, len(found), name, names)
	}
	return found[0]
}

// refuseApproval makes Postgres refuse, as it refuses bad data (SQLSTATE
// 22023, a data exception), the update that moves one request past the
// approval gate, on every attempt.
func refuseApproval(t *testing.T, s *stack, requestID string) {
	t.Helper()
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`
		CREATE FUNCTION e2e_refuse_approval() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			RAISE EXCEPTION 'e2e refuses %', row_to_json(NEW)::text USING ERRCODE = 'invalid_parameter_value';
		END $$;
		CREATE TRIGGER e2e_refuse_approval BEFORE UPDATE ON requests FOR EACH ROW
			WHEN (NEW.id = ` + pq.QuoteLiteral(requestID) + ` AND NEW.status = 'notifying')
			EXECUTE FUNCTION e2e_refuse_approval();`); err != nil {
		t.Fatalf("install the refusing trigger: %v", err)
	}
}

// checkRefusedRequest checks from the outside what a request refused by the
// database left: request.failed in the audit trail naming the gate and the
// class of the cause, a security alert, and the approval message showing the
// failure without its buttons.
func checkRefusedRequest(t *testing.T, s *stack, requestID string) {
	t.Helper()
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	trail, err := store.New(db).AuditTrail(context.Background(), requestID)
	if err != nil {
		t.Fatal(err)
	}
	// The requester's direct messages go out beside the gates, so their
	// audit events (slack.requester_told) land anywhere after a decision or
	// the end; the gates' own events are what this checks.
	var events []string
	var last store.AuditEvent
	for _, e := range trail {
		events = append(events, e.Event)
		if e.Event != "slack.requester_told" {
			last = e
		}
	}
	if last.Event != "request.failed" || last.Details["gate"] != "approval" || last.Details["cause"] != "DataError" ||
		last.Details["step"] != "gate.approval.passed" || slices.Contains(events, "gate.approval.passed") {
		t.Fatalf("audit trail %q ends with %s %v, want request.failed at the approval gate, cause DataError", events, last.Event, last.Details)
	}
	eventually(t, 30*time.Second, "the security alert and the message update for "+requestID, func() (bool, string) {
		msgs, _ := s.slackMessages(t)
		alerted, shown := false, ""
		for _, m := range msgs {
			if m.Channel == "C0VIGILSECURITY" && strings.Contains(m.Text, requestID) && strings.Contains(m.Text, "DataError") {
				alerted = true
			}
			if m.Channel == approvalsChannel && m.ThreadTS == "" && bytes.Contains(m.Blocks, []byte(requestID)) {
				shown = string(m.Blocks)
			}
		}
		updated := strings.Contains(shown, "Failed: stopped at the approval gate: DataError") && !strings.Contains(shown, `"button"`)
		return alerted && updated, fmt.Sprintf("alerted %v, message %s", alerted, shown)
	})
}

// importLockoutCustomer adds the customer whose PIN gets guessed at.
func importLockoutCustomer(t *testing.T, s *stack) {
	importCustomer(t, s, lockoutCustomerID, "Rui Okafor", "rui@example.net", lockoutPIN, []string{"it@okafor.example"}, []string{"srv-9"})
}

// The customer whose second address refuses mail in "cancelled during the
// notice".
const (
	noticeCustomerID   = "C-7007"
	noticePIN          = "270415"
	noticeRefusedEmail = "billing@tanaka.example"
)

func importNoticeCustomer(t *testing.T, s *stack) {
	importCustomer(t, s, noticeCustomerID, "Mei Tanaka", "mei@tanaka.example", noticePIN, []string{noticeRefusedEmail}, nil)
}

// importCustomer adds a customer whose contacts were added and verified
// long ago, so every address on file gets notices.
func importCustomer(t *testing.T, s *stack, id, name, primary, pin string, contacts, servers []string) {
	t.Helper()
	hash, err := pinhash.Hash(pin, pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-90 * 24 * time.Hour).UTC().Format(time.RFC3339)
	cs := []map[string]any{}
	for _, c := range contacts {
		cs = append(cs, map[string]any{"email": c, "added_at": old, "verified_at": old})
	}
	body := map[string]any{"name": name, "primary_email": primary, "pin_hash": hash, "contacts": cs}
	if len(servers) > 0 {
		body["servers"] = servers
	}
	if code, raw := s.call("PUT", "/admin/v1/customers/"+id, s.adminToken, body, nil); code != 200 {
		t.Fatalf("import customer %s: %d %s", id, code, raw)
	}
}

// refuseRecipient makes the mail catcher refuse (or accept again) one address.
func (s *stack) refuseRecipient(t *testing.T, addr string, refuse bool) {
	t.Helper()
	body := fmt.Sprintf(`{"recipient":%q,"refuse":%v}`, addr, refuse)
	resp, err := http.Post(s.mailURL+"/api/refuse-recipient", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mail catcher refuse-recipient: %d", resp.StatusCode)
	}
}

// panelFault replaces the stand-in panel's injected faults.
func (s *stack) panelFault(t *testing.T, body string) {
	t.Helper()
	resp, err := http.Post(s.panelURL+"/_standin/faults", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("set panel fault %s: %d", body, resp.StatusCode)
	}
}

// performed lists the actions the stand-in panel actually performed.
func (s *stack) performed(t *testing.T) []panelCall {
	t.Helper()
	resp, err := http.Get(s.panelURL + "/_standin/performed")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var calls []panelCall
	if err := json.NewDecoder(resp.Body).Decode(&calls); err != nil {
		t.Fatalf("decode performed actions: %v", err)
	}
	return calls
}

// rawMail fetches one caught message as it was received and parses its
// headers.
func rawMail(t *testing.T, s *stack, id int) *mail.Message {
	t.Helper()
	resp, err := http.Get(s.mailURL + "/messages/" + strconv.Itoa(id) + ".eml")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	if _, err := raw.ReadFrom(resp.Body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET raw message %d: %d %v", id, resp.StatusCode, err)
	}
	msg, err := mail.ReadMessage(&raw)
	if err != nil {
		t.Fatalf("parse message %d: %v", id, err)
	}
	return msg
}

// mailOf waits for the request's message of one kind ("notice",
// "credentials"), matched on the X-Vigil-Request header because several
// requests of the same customer run at once.
func mailOf(t *testing.T, s *stack, requestID, kind string) caughtMail {
	t.Helper()
	var found caughtMail
	eventually(t, 30*time.Second, kind+" mail for "+requestID, func() (bool, string) {
		for _, m := range s.mails(t) {
			h := rawMail(t, s, m.ID).Header
			if h.Get("X-Vigil-Request") == requestID && h.Get("X-Vigil-Kind") == kind {
				found = m
				return true, ""
			}
		}
		return false, "not sent yet"
	})
	return found
}

// noticeLinkFor returns the cancel link of the request's notice.
func noticeLinkFor(t *testing.T, s *stack, requestID string) string {
	t.Helper()
	link := cancelLink.FindString(mailOf(t, s, requestID, "notice").Text)
	if !strings.HasPrefix(link, s.webURL+"/c/") {
		t.Fatalf("notice for %s has no cancel link to %s (got %q)", requestID, s.webURL, link)
	}
	return link
}

var passwordLine = regexp.MustCompile(`(?i)password:\s*(\S+)`)

// credentialsPassword returns the server password mailed for a request.
func credentialsPassword(t *testing.T, s *stack, requestID string) string {
	t.Helper()
	pw := passwordLine.FindStringSubmatch(mailOf(t, s, requestID, "credentials").Text)
	if pw == nil {
		t.Fatalf("the credentials mail for %s carries no password", requestID)
	}
	return pw[1]
}

// endResult is the part of the workflow's result this test checks.
type endResult struct {
	RequestID    string
	Status       string
	Cancellation *struct{ By string }
}

// openWhenFree opens like open, waiting while another request for the same
// customer, action and target is open (duplicate_request): "rejected" and
// "vetoed" both reinstall srv-1 and run in parallel, and only one of them
// may be open at a time.
func (s *stack) openWhenFree(t *testing.T, token string, body map[string]any) request {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var r request
		code, raw := s.call("POST", "/api/v1/requests", token, body, &r)
		if code == 201 {
			return r
		}
		if code != 409 || !bytes.Contains(raw, []byte(`"duplicate_request"`)) || time.Now().After(deadline) {
			t.Fatalf("open request: %d %s", code, raw)
		}
		time.Sleep(2 * time.Second) // within the open rate limit
	}
}

// checkHistory waits until the request's workflow has completed, then checks
// its history from the inside: the result is the end state, the input carries
// the PIN (so the absence checks mean something) yet no PIN or other secret is
// anywhere in the raw history, the expected activities ran, the history
// survives the JSON round trip and replays against the code that made it.
// With record set it writes the history as a fixture.
func checkHistory(t *testing.T, s *stack, record *recorder, c endCase) {
	t.Helper()
	keys, err := codec.ParseKeys(replayCodecKeyID + ":" + replayCodecKey)
	if err != nil {
		t.Fatal(err)
	}
	cdc, err := codec.New(replayCodecKeyID, keys)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// No codec: this client sees what anyone with read access to Temporal sees.
	tc, err := client.DialContext(ctx, client.Options{HostPort: s.temporal, Namespace: "default", Logger: tlog.NewStructuredLogger(histDiscardLogger())})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	wid := workflows.WorkflowID(c.requestID)
	if c.workflowID != "" {
		wid = c.workflowID
	}
	eventually(t, 30*time.Second, "workflow "+wid+" completing", func() (bool, string) {
		d, err := tc.DescribeWorkflowExecution(ctx, wid, "")
		if err != nil {
			return false, err.Error()
		}
		st := d.GetWorkflowExecutionInfo().GetStatus()
		return st == enums.WORKFLOW_EXECUTION_STATUS_COMPLETED, st.String()
	})

	hist := &historypb.History{}
	it := tc.GetWorkflowHistory(ctx, wid, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", wid, err)
		}
		hist.Events = append(hist.Events, ev)
	}
	evs := hist.GetEvents()
	if len(evs) < 10 {
		t.Fatalf("%s: history of %s has only %d events", c.fixture, wid, len(evs))
	}

	// The input, encrypted with the fixed key, is the request's, without a
	// PIN; no PIN typed in this test, nor any other secret, is anywhere in
	// the history, raw or decoded.
	if evs[0].GetWorkflowExecutionStartedEventAttributes() == nil {
		t.Fatalf("%s: first event is %s", c.fixture, evs[0].GetEventType())
	}
	assertNoSecretInHistory(t, cdc, hist, c.requestID, append(slices.Clone(allPINs), c.secrets...)...)

	// The result is the end state.
	last := evs[len(evs)-1]
	done := last.GetWorkflowExecutionCompletedEventAttributes()
	if done == nil {
		t.Fatalf("%s: last event is %s, want a completed workflow", c.fixture, last.GetEventType())
	}
	var res endResult
	if err := cdc.DataConverter().FromPayloads(done.GetResult(), &res); err != nil {
		t.Fatalf("%s: decode result: %v", c.fixture, err)
	}
	if res.Status != c.status {
		t.Fatalf("%s: workflow ended %q, want %q", c.fixture, res.Status, c.status)
	}
	by := ""
	if res.Cancellation != nil {
		by = res.Cancellation.By
	}
	if by != c.cancelBy {
		t.Fatalf("%s: cancelled by %q, want %q", c.fixture, by, c.cancelBy)
	}

	// The activities the end state implies, and none it excludes.
	ran := map[string]bool{}
	for _, ev := range evs {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			ran[a.GetActivityType().GetName()] = true
		}
	}
	for _, a := range c.wantActs {
		if !ran[a] {
			t.Errorf("%s: activity %s was never scheduled (scheduled: %v)", c.fixture, a, histSortedKeys(ran))
		}
	}
	if ran["VerifyPIN"] {
		t.Errorf("%s: VerifyPIN was scheduled: the PIN was checked inside the workflow", c.fixture)
	}
	for _, a := range c.noActs {
		if ran[a] {
			t.Errorf("%s: activity %s was scheduled but must not be for this end state", c.fixture, a)
		}
	}
	checkFailedOnce(t, c, evs)

	// The change ids the history must have taken.
	versions := map[string]workflow.Version{"pin-verdict-before-start": 1, "policy-from-worker": 1}
	for id, v := range c.versions {
		versions[id] = v
	}
	for id, want := range versions {
		if got := historyVersion(t, cdc, evs, id); got != want {
			t.Errorf("%s: recorded version %d of %s, want %d", c.fixture, got, id, want)
		}
	}
	if t.Failed() {
		t.Fatalf("%s: not recording a history that failed its checks", c.fixture)
	}

	// As `temporal workflow show --output json` writes it; the SDK must read
	// back exactly what was fetched.
	js, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	back, err := client.HistoryFromJSON(bytes.NewReader(js), client.HistoryJSONOptions{})
	if err != nil {
		t.Fatalf("%s: HistoryFromJSON: %v", c.fixture, err)
	}
	if !proto.Equal(back, hist) {
		t.Fatalf("%s: history changed in the JSON round trip", c.fixture)
	}

	// It replays against the workflow code that produced it.
	rep, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		DataConverter: cdc.DataConverter(), FailureConverter: cdc.FailureConverter(),
	})
	if err != nil {
		t.Fatal(err)
	}
	rep.RegisterWorkflowWithOptions(workflows.SensitiveRequest, workflow.RegisterOptions{Name: workflows.WorkflowName})
	// Under its own workflow id: its payloads are bound to it, and the
	// replayer's default id would be refused as another workflow's.
	if err := rep.ReplayWorkflowHistoryWithOptions(tlog.NewStructuredLogger(histDiscardLogger()), hist,
		worker.ReplayWorkflowHistoryOptions{OriginalExecution: workflow.Execution{ID: wid}}); err != nil {
		t.Fatalf("%s: the fresh history does not replay: %v", c.fixture, err)
	}

	t.Logf("%s: request %s, %d events, %d bytes as JSON", c.fixture, c.requestID, len(evs), len(js))
	if !record.wants(c.fixture) {
		return
	}
	name := c.fixture
	for _, id := range changeIDs {
		if historyVersion(t, cdc, evs, id) >= 1 {
			name += "." + id
		}
	}
	// Payloads bound to their workflow: such a fixture replays on a strict
	// codec, the older ones only with the migration switch.
	if in := evs[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads(); len(in) > 0 &&
		string(in[0].GetMetadata()[codec.MetadataWorkflowID]) == wid {
		name += ".bound"
	}
	if err := os.MkdirAll(fixtureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(fixtureDir, name+".json")
	// Never over an existing fixture: running requests still replay it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatalf("%s: not recording over %s (%v); fixtures are kept, not re-recorded — "+
			"a new version's markers give its fixtures new names (see %s/README.md)", c.fixture, path, err, fixtureDir)
	}
	if _, err := f.Write(append(js, '\n')); err != nil {
		f.Close()
		t.Fatalf("write fixture: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("write fixture: %v", err)
	}
	record.done(c.fixture)
	t.Logf("%s: recorded %s", c.fixture, path)
}

// checkEndedAtOpen checks a request the web front ended at the open (a
// wrong PIN, a locked customer): the open answered the end state, final;
// Temporal has no workflow for it; the API reads it from Postgres; and its
// audit trail is events, written by the open.
func checkEndedAtOpen(t *testing.T, s *stack, token string, r request, status string, events ...string) {
	t.Helper()
	if r.Status != status || !r.Final {
		t.Fatalf("%s: open answered %s (final %v), want %s", r.ID, r.Status, r.Final, status)
	}
	assertNoWorkflow(t, s, workflows.WorkflowID(r.ID))
	if got := s.status(t, token, r.ID); got.Status != status || !got.Final {
		t.Fatalf("%s: status %s, want %s", r.ID, got.Status, status)
	}
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	trail, err := store.New(db).AuditTrail(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range trail {
		got = append(got, e.Event)
	}
	if !slices.Equal(got, events) {
		t.Fatalf("%s: audit trail %v, want %v", r.ID, got, events)
	}
}

// checkFailedOnce checks that each of c.failedOnce failed on its first
// attempt: the error was classified as permanent and not retried.
func checkFailedOnce(t *testing.T, c endCase, evs []*historypb.HistoryEvent) {
	t.Helper()
	scheduled := map[int64]string{}
	attempt := map[int64]int32{} // scheduled event id -> attempt that started
	for _, ev := range evs {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			attempt[a.GetScheduledEventId()] = a.GetAttempt()
		}
	}
	for _, name := range c.failedOnce {
		found := false
		for _, ev := range evs {
			f := ev.GetActivityTaskFailedEventAttributes()
			if f == nil || scheduled[f.GetScheduledEventId()] != name {
				continue
			}
			found = true
			if n := attempt[f.GetScheduledEventId()]; n != 1 {
				t.Errorf("%s: %s failed on attempt %d, want its first (not retried)", c.fixture, name, n)
			}
			if !f.GetFailure().GetApplicationFailureInfo().GetNonRetryable() {
				t.Errorf("%s: %s failed with a retryable failure", c.fixture, name)
			}
		}
		if !found {
			t.Errorf("%s: %s never failed", c.fixture, name)
		}
	}
}

// historyVersion is the version a history recorded for a change id, or
// workflow.DefaultVersion without a marker for it.
func historyVersion(t *testing.T, cdc *codec.Codec, evs []*historypb.HistoryEvent, changeID string) workflow.Version {
	t.Helper()
	for _, e := range evs {
		m := e.GetMarkerRecordedEventAttributes()
		if m.GetMarkerName() != "Version" {
			continue
		}
		var id string
		var v workflow.Version
		if err := cdc.DataConverter().FromPayloads(m.GetDetails()["change-id"], &id); err != nil {
			t.Fatalf("version marker without a readable change id: %v", err)
		}
		if id != changeID {
			continue
		}
		if err := cdc.DataConverter().FromPayloads(m.GetDetails()["version"], &v); err != nil {
			t.Fatalf("version marker of %s without a readable version: %v", id, err)
		}
		return v
	}
	return workflow.DefaultVersion
}

func histSortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func histDiscardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
