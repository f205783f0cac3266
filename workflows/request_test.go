package workflows_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/mailcatcher"
	"github.com/vigil-oss/vigil/internal/panelstandin"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/workflows"
)

// The audit trail of a request that went through every gate.
var executedTrail = []string{
	"request.opened", "gate.pin.verified", "gate.pin.verdict_consumed", "request.policy", "gate.approval.waiting", "slack.approval_posted", "gate.approval.passed",
	"notice.accepted", "notice.accepted", "gate.notice.sent", "gate.cooling.elapsed",
	"execution.done", "request.executed",
}

// executedTrailOf is executedTrail for an action: resending credentials
// also marks the credentials email, so that a retry never mails them twice.
func executedTrailOf(a domain.Action) []string {
	if a != domain.ActionResendCredentials {
		return executedTrail
	}
	i := slices.Index(executedTrail, "execution.done")
	return slices.Insert(slices.Clone(executedTrail), i, "credentials.mailed")
}

// The activities of a request that went through every gate, Slack aside, and
// what its Slack side did.
var (
	executedGates = []string{"ConsumePINVerdict", "Open", "Record", "CheckStanding", "Record", "NotifyCustomer", "Record", "UnnotifiedEstablished", "Record", "CheckStanding", "Execute", "Record", "NotifyOutcome"}
	executedSlack = slackWant{posted: true, updates: []string{activities.MessageApproved, activities.MessageNotified, string(domain.StatusExecuted)}}
)

var cancelLink = regexp.MustCompile(regexp.QuoteMeta(cancelBaseURL) + `/c/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)`)

// TestExecuted drives each action through all five gates with the real
// activities and checks every side effect, the panel call above all.
func TestExecuted(t *testing.T) {
	t.Parallel()
	cases := []struct {
		action     domain.Action
		method     string
		path       string
		httpStatus int
		refPrefix  string
	}{
		{domain.ActionResendCredentials, http.MethodPost, "/v1/customers/cus_ada/servers/srv-1/credentials", http.StatusOK, "ref-"},
		{domain.ActionReinstallVPS, http.MethodPost, "/v1/customers/cus_ada/servers/srv-1/reinstall", http.StatusAccepted, "job-"},
		{domain.ActionAddContactEmail, http.MethodPost, "/v1/customers/cus_ada/contacts", http.StatusCreated, "ref-"},
		{domain.ActionChangeAccountEmail, http.MethodPut, "/v1/customers/cus_ada/email", http.StatusOK, "ref-"},
		{domain.ActionDisable2FA, http.MethodDelete, "/v1/customers/cus_ada/2fa", http.StatusOK, "ref-"},
	}
	if len(cases) != len(domain.Actions) {
		t.Fatalf("table covers %d actions, domain has %d", len(cases), len(domain.Actions))
	}
	for _, tc := range cases {
		t.Run(string(tc.action), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			reqID := "req-exec-" + string(tc.action)
			env := h.env(reqID)
			waiting := h.queryAt(env, 30*time.Minute)
			dec := h.decide(env, time.Hour, approve())
			cooling := h.queryAt(env, 2*time.Hour)
			st := h.run(env, input(reqID, tc.action))

			dec.mustAccept(t, "approval")
			if dec.status.Decision == nil || dec.status.Decision.ApproverID != seniorID {
				t.Fatalf("decide update answered %+v, want the senior's approval", dec.status.Decision)
			}
			if st.Status != domain.StatusExecuted {
				t.Fatalf("status = %s (failure %q), want executed", st.Status, st.Failure)
			}
			if !strings.HasPrefix(st.Reference, tc.refPrefix) {
				t.Fatalf("reference %q, want prefix %q", st.Reference, tc.refPrefix)
			}
			if st.Decision == nil || st.Decision.Decision != domain.DecisionApprove || st.Decision.ApproverID != seniorID {
				t.Fatalf("decision %+v, want approve by %s", st.Decision, seniorID)
			}
			if st.Cancellation != nil {
				t.Fatalf("cancellation %+v on an executed request", st.Cancellation)
			}

			// The cooling period ran in full, measured from the accepted notice.
			if got := st.ExecutedAt.Sub(st.NotifiedAt); got < testPolicy.CoolingPeriod {
				t.Fatalf("executed %v after the notice, want at least the cooling period %v", got, testPolicy.CoolingPeriod)
			}
			if !st.CoolingEndsAt.Equal(st.NotifiedAt.Add(testPolicy.CoolingPeriod)) || st.ExecutedAt.Before(st.CoolingEndsAt) {
				t.Fatalf("notified %v, cooling ends %v, executed %v", st.NotifiedAt, st.CoolingEndsAt, st.ExecutedAt)
			}
			if st.NotifiedAt.Before(st.Decision.At) || st.Decision.At.Before(st.PINVerifiedAt) {
				t.Fatalf("gates out of order: pin %v, decided %v, notified %v", st.PINVerifiedAt, st.Decision.At, st.NotifiedAt)
			}
			if st.Recipients != 2 {
				t.Fatalf("recipients = %d, want 2 (primary and the established contact)", st.Recipients)
			}
			waiting.check(t, domain.StatusAwaitingApproval)
			cooling.check(t, domain.StatusCooling)

			// Postgres projection and audit trail.
			row := h.projection(reqID)
			if row.Status != domain.StatusExecuted || row.ApproverID != seniorID || row.Decision != string(domain.DecisionApprove) {
				t.Fatalf("projection status %s approver %q decision %q", row.Status, row.ApproverID, row.Decision)
			}
			if row.NotifiedAt == nil || !sameMicro(*row.NotifiedAt, st.NotifiedAt) ||
				row.CoolingEndsAt == nil || !sameMicro(*row.CoolingEndsAt, st.CoolingEndsAt) || row.EndedAt == nil {
				t.Fatalf("projection times notified %v cooling %v ended %v; workflow notified %v cooling %v",
					row.NotifiedAt, row.CoolingEndsAt, row.EndedAt, st.NotifiedAt, st.CoolingEndsAt)
			}
			h.wantEvents(reqID, executedTrailOf(tc.action)...)
			trail := h.trail(reqID)
			if ref := trail[len(trail)-2].Details["reference"]; ref != st.Reference {
				t.Fatalf("execution.done reference %v, want %q", ref, st.Reference)
			}
			if got := eventNamed(t, trail, "gate.approval.passed").Actor; got != "agent:"+seniorID {
				t.Fatalf("gate.approval.passed actor %q, want the approver", got)
			}

			// The panel got exactly one call, on the right endpoint, and acted once.
			calls := h.panelCalls()
			if len(calls) != 1 {
				t.Fatalf("panel received %d calls, want 1: %+v", len(calls), calls)
			}
			c := calls[0]
			if c.Method != tc.method || c.Path != tc.path || c.Status != tc.httpStatus || c.Replayed ||
				c.IdempotencyKey != activities.IdempotencyKey(reqID) || c.Action != string(tc.action) || c.CustomerID != customerID {
				t.Fatalf("panel call %+v, want %s %s -> %d with key %s", c, tc.method, tc.path, tc.httpStatus, activities.IdempotencyKey(reqID))
			}
			if tc.action.NeedsEmail() && c.Email != newEmailTarget {
				t.Fatalf("panel call email %q, want %q", c.Email, newEmailTarget)
			}
			if done := h.performed(); len(done) != 1 {
				t.Fatalf("panel performed %d actions, want exactly 1", len(done))
			}

			// The notice reached the established addresses only, each with
			// its own signed link for this request.
			notices := h.mails(reqID, "notice")
			if got, want := recipients(notices), []string{primaryEmail, establishedEmail}; !slices.Equal(got, want) {
				t.Fatalf("notice recipients %v, want %v (never the day-old %s)", got, want, freshEmail)
			}
			seen := map[string]bool{}
			for _, m := range notices {
				match := cancelLink.FindStringSubmatch(m.Text)
				if match == nil {
					t.Fatalf("notice to %v has no cancel link:\n%s", m.To, m.Text)
				}
				claims, err := h.acts.Tokens.Parse(match[1], time.Now())
				if err != nil || claims.RequestID != reqID {
					t.Fatalf("cancel link of notice to %v: claims %+v, err %v", m.To, claims, err)
				}
				if seen[claims.ID] {
					t.Fatalf("two notices share cancel token %s", claims.ID)
				}
				seen[claims.ID] = true
				if !strings.Contains(m.Text, "Rita") {
					t.Fatalf("notice does not say who asked:\n%s", m.Text)
				}
			}

			// The outcome email went out.
			outcome := h.mails(reqID, "outcome")
			if len(outcome) == 0 {
				t.Fatal("no outcome email")
			}
			outTo := recipients(outcome)
			if !slices.Contains(outTo, establishedEmail) || slices.Contains(outTo, freshEmail) {
				t.Fatalf("outcome recipients %v", outTo)
			}
			if strings.HasPrefix(outcome[0].Subject, "Cancelled") || strings.HasPrefix(outcome[0].Subject, "We could not") {
				t.Fatalf("outcome subject %q for an executed request", outcome[0].Subject)
			}

			// What the action changed on Vigil's side.
			cust, err := h.db.Customer(h.ctx, customerID)
			if err != nil {
				t.Fatalf("customer: %v", err)
			}
			creds := h.mails(reqID, "credentials")
			switch tc.action {
			case domain.ActionResendCredentials:
				if len(creds) != 1 || !slices.Equal(creds[0].To, []string{primaryEmail}) {
					t.Fatalf("credentials emails %d to %v, want one to the primary address", len(creds), recipients(creds))
				}
				m := regexp.MustCompile(`Password: (\S+)`).FindStringSubmatch(creds[0].Text)
				if m == nil || !strings.Contains(creds[0].Text, "Username: root") {
					t.Fatalf("credentials email carries no login details:\n%s", creds[0].Text)
				}
				password := m[1]
				h.assertNowhere(password, "the server password", []workflows.Status{st, dec.status}, []*queryResult{waiting, cooling},
					func(m sentMail) bool { return m.Kind == "credentials" })
			case domain.ActionAddContactEmail:
				if !hasContact(cust.Contacts, newEmailTarget) {
					t.Fatalf("contact %s not added: %+v", newEmailTarget, cust.Contacts)
				}
				if slices.Contains(recipients(notices), newEmailTarget) {
					t.Fatal("the address being added was sent a cancel link for its own addition")
				}
			case domain.ActionChangeAccountEmail:
				if cust.PrimaryEmail != newEmailTarget {
					t.Fatalf("primary email %q, want %q", cust.PrimaryEmail, newEmailTarget)
				}
			}
			if tc.action != domain.ActionResendCredentials && len(creds) != 0 {
				t.Fatalf("%d credentials emails for %s", len(creds), tc.action)
			}
			if tc.action != domain.ActionAddContactEmail && hasContact(cust.Contacts, newEmailTarget) {
				t.Fatalf("%s added a contact", tc.action)
			}

			h.wantActivities(executedGates, executedSlack)
			if m := h.approvalMessage(reqID, st); len(buttons(t, m)) != 0 || !strings.Contains(shown(t, m), "Executed at") {
				t.Fatalf("approval message of an executed request still shows buttons %v or lacks \"Executed at\":\n%s", buttons(t, m), shown(t, m))
			}
			if n := len(h.securityPosts()); n != 0 {
				t.Fatalf("%d security alerts for an ordinary request", n)
			}
			h.assertNowhere(rightPIN, "the PIN", []workflows.Status{st, dec.status}, []*queryResult{waiting, cooling}, nil)
		})
	}
}

// eventNamed returns the one audit event called name.
func eventNamed(t *testing.T, trail []store.AuditEvent, name string) store.AuditEvent {
	t.Helper()
	var found []store.AuditEvent
	for _, e := range trail {
		if e.Event == name {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d audit events %s, want 1", len(found), name)
	}
	return found[0]
}

// sameMicro compares at Postgres's precision, which rounds to microseconds.
func sameMicro(a, b time.Time) bool {
	return a.Round(time.Microsecond).Equal(b.Round(time.Microsecond))
}

func hasContact(cs []store.Contact, email string) bool {
	for _, c := range cs {
		if strings.EqualFold(c.Email, email) {
			return true
		}
	}
	return false
}

// TestPINRejected: in a request started with the PIN in its input (before
// change pin-verdict-before-start: the path old histories replay), a wrong
// PIN ends the request and nothing else happens.
func TestPINRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	env := h.env("req-wrong-pin")
	oldPath(env)
	in := input("req-wrong-pin", domain.ActionReinstallVPS)
	in.PIN = wrongPIN
	st := h.run(env, in)

	if st.Status != domain.StatusPINRejected || st.PINFailures != 1 || !st.PINVerifiedAt.IsZero() || !st.LockedUntil.IsZero() {
		t.Fatalf("result %+v, want pin_rejected after 1 failure", st)
	}
	if st.EndedAt.IsZero() || st.Decision != nil || !st.NotifiedAt.IsZero() {
		t.Fatalf("result %+v", st)
	}
	if row := h.projection("req-wrong-pin"); row.Status != domain.StatusPINRejected || row.EndedAt == nil {
		t.Fatalf("projection %s ended %v", row.Status, row.EndedAt)
	}
	h.wantEvents("req-wrong-pin", "request.opened", "gate.pin.rejected", "request.pin_rejected")
	h.wantActivities([]string{"Open", "VerifyPIN", "Record"}, slackWant{})
	if n := len(h.catcher.Messages()); n != 0 {
		t.Fatalf("%d emails sent after a wrong PIN", n)
	}
	if msgs := h.slack.Messages(); len(msgs) != 0 || h.slack.Calls("chat.postMessage") != 0 {
		t.Fatalf("Slack got %d postMessage calls after a wrong PIN: %+v", h.slack.Calls("chat.postMessage"), msgs)
	}
	if calls := h.panelCalls(); len(calls) != 0 {
		t.Fatalf("panel called after a wrong PIN: %+v", calls)
	}
	h.assertNowhere(wrongPIN, "the wrong PIN", []workflows.Status{st}, nil, nil)
}

// TestLockout, on the path of requests started with the PIN in their input:
// five wrong PINs in separate requests lock the customer; the sixth request,
// with the right PIN, ends locked without the PIN being checked.
func TestLockout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var results []workflows.Status
	for i := 1; i <= 5; i++ {
		reqID := "req-lock-" + string(rune('0'+i))
		in := input(reqID, domain.ActionDisable2FA)
		in.PIN = wrongPIN
		env := h.env(reqID)
		oldPath(env)
		st := h.run(env, in)
		results = append(results, st)
		if st.Status != domain.StatusPINRejected || st.PINFailures != i {
			t.Fatalf("attempt %d: %s with %d failures, want pin_rejected with %d", i, st.Status, st.PINFailures, i)
		}
		want := []string{"request.opened", "gate.pin.rejected", "request.pin_rejected"}
		if i == 5 {
			want = []string{"request.opened", "gate.pin.rejected", "customer.locked", "request.pin_rejected"}
			if st.LockedUntil.Before(time.Now().Add(50*time.Minute)) || st.LockedUntil.After(time.Now().Add(time.Hour)) {
				t.Fatalf("attempt 5 locked until %v, want about an hour from now", st.LockedUntil)
			}
		}
		h.wantEvents(reqID, want...)
		// Only the attempt that locks the customer alerts security.
		if got, want := len(h.securityPosts()), min(i/5, 1); got != want {
			t.Fatalf("after attempt %d: %d security alerts, want %d", i, got, want)
		}
	}
	trail := h.trail("req-lock-5")
	if lock := trail[2]; lock.Details["customer"] != customerID || lock.Details["failures"] != float64(5) {
		t.Fatalf("customer.locked details %v", lock.Details)
	}

	sixth := input("req-lock-6", domain.ActionDisable2FA)
	sixth.PIN = rightPIN
	env := h.env("req-lock-6")
	oldPath(env)
	st := h.run(env, sixth)
	results = append(results, st)
	if st.Status != domain.StatusLocked || st.LockedUntil.IsZero() || !st.PINVerifiedAt.IsZero() {
		t.Fatalf("sixth request with the right PIN: %+v, want locked", st)
	}
	h.wantEvents("req-lock-6", "request.opened", "gate.pin.locked_out", "request.locked")
	// A checked right PIN would have cleared the lock; it is still the one
	// the fifth attempt set.
	var lockedUntil time.Time
	if err := h.db.DB().QueryRowContext(h.ctx, `SELECT pin_locked_until FROM customers WHERE id = $1`, customerID).Scan(&lockedUntil); err != nil {
		t.Fatalf("read lock: %v", err)
	}
	if !lockedUntil.Equal(results[4].LockedUntil) || !st.LockedUntil.Equal(results[4].LockedUntil) {
		t.Fatalf("locked until %v in Postgres and %v in the result, want %v from the fifth attempt (the PIN must not be checked)",
			lockedUntil, st.LockedUntil, results[4].LockedUntil)
	}
	if row := h.projection("req-lock-6"); row.Status != domain.StatusLocked || row.SlackTS != "" {
		t.Fatalf("projection %s slack ts %q", row.Status, row.SlackTS)
	}
	if msgs := h.approvalMessages(); len(msgs) != 0 || len(h.started("PostApproval")) != 0 {
		t.Fatalf("approval messages for requests that never passed the PIN: %+v", msgs)
	}
	if n := len(h.securityPosts()); n != 1 {
		t.Fatalf("%d security alerts, want only the lockout's", n)
	}
	if n := len(h.catcher.Messages()); n != 0 {
		t.Fatalf("%d emails sent", n)
	}
	if calls := h.panelCalls(); len(calls) != 0 {
		t.Fatalf("panel called: %+v", calls)
	}
	h.assertNowhere(wrongPIN, "the wrong PIN", results, nil, nil)
	h.assertNowhere(rightPIN, "the PIN", results, nil, nil)
}

// TestRejected: a senior's rejection ends the request before anyone is told.
func TestRejected(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	env := h.env("req-reject")
	dec := h.decide(env, time.Hour, workflows.DecideInput{
		Decision: domain.DecisionReject, ApproverID: senior2ID, ApproverRole: domain.RoleSenior, Reason: "caller could not confirm the invoice number",
	})
	st := h.run(env, input("req-reject", domain.ActionChangeAccountEmail))

	dec.mustAccept(t, "rejection")
	if st.Status != domain.StatusRejected || st.Decision == nil || st.Decision.Decision != domain.DecisionReject || st.Decision.ApproverID != senior2ID {
		t.Fatalf("result %+v", st)
	}
	if !st.NotifiedAt.IsZero() || !st.ExecutedAt.IsZero() {
		t.Fatalf("rejected request was notified %v / executed %v", st.NotifiedAt, st.ExecutedAt)
	}
	row := h.projection("req-reject")
	if row.Status != domain.StatusRejected || row.ApproverID != senior2ID || row.Decision != "reject" || row.DecisionReason != "caller could not confirm the invoice number" {
		t.Fatalf("projection %+v", row)
	}
	h.wantEvents("req-reject", "request.opened", "gate.pin.verified", "gate.pin.verdict_consumed", "request.policy", "gate.approval.waiting", "slack.approval_posted", "request.rejected")
	h.wantActivities([]string{"ConsumePINVerdict", "Open", "Record", "CheckStanding", "Record"}, slackWant{posted: true, updates: []string{string(domain.StatusRejected)}})
	last := h.trail("req-reject")[6]
	if last.Actor != "agent:"+senior2ID || last.Details["reason"] != "caller could not confirm the invoice number" {
		t.Fatalf("request.rejected %+v", last)
	}
	if n := len(h.catcher.Messages()); n != 0 {
		t.Fatalf("%d emails sent for a request nobody was told about", n)
	}
	if calls := h.panelCalls(); len(calls) != 0 {
		t.Fatalf("panel called: %+v", calls)
	}
	cust, err := h.db.Customer(h.ctx, customerID)
	if err != nil || cust.PrimaryEmail != primaryEmail {
		t.Fatalf("customer after rejection: %+v, %v", cust, err)
	}
}

// TestExpired: without a decision the request expires at the approval
// deadline, and nothing is notified or executed.
func TestExpired(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	env := h.env("req-expire")
	before := h.queryAt(env, testPolicy.ApprovalTimeout-time.Minute)
	st := h.run(env, input("req-expire", domain.ActionReinstallVPS))

	q := before.check(t, domain.StatusAwaitingApproval)
	if !q.ApprovalDeadline.Equal(q.OpenedAt.Add(testPolicy.ApprovalTimeout)) {
		t.Fatalf("deadline %v, opened %v", q.ApprovalDeadline, q.OpenedAt)
	}
	if st.Status != domain.StatusExpired || st.Decision != nil {
		t.Fatalf("result %+v, want expired", st)
	}
	if got := st.EndedAt.Sub(st.OpenedAt); got != testPolicy.ApprovalTimeout {
		t.Fatalf("expired %v after opening, want exactly the approval timeout %v", got, testPolicy.ApprovalTimeout)
	}
	if row := h.projection("req-expire"); row.Status != domain.StatusExpired || row.EndedAt == nil {
		t.Fatalf("projection %s", row.Status)
	}
	h.wantEvents("req-expire", "request.opened", "gate.pin.verified", "gate.pin.verdict_consumed", "request.policy", "gate.approval.waiting", "slack.approval_posted", "request.expired")
	h.wantActivities([]string{"ConsumePINVerdict", "Open", "Record", "Record"},
		slackWant{posted: true, reminders: 1, updates: []string{string(domain.StatusExpired)}})
	if n := len(h.catcher.Messages()); n != 0 {
		t.Fatalf("%d emails sent", n)
	}
	if calls := h.panelCalls(); len(calls) != 0 {
		t.Fatalf("panel called: %+v", calls)
	}
}

// TestCancelled covers the three parties that can stop a request.
func TestCancelled(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		at       time.Duration
		cancel   workflows.CancelInput
		want     domain.Status
		event    string
		actor    string
		notified bool
		alerts   int // security alerts: only for the customer
	}{
		{
			name:   "customer during cooling",
			at:     2 * time.Hour,
			cancel: workflows.CancelInput{By: domain.CancelByCustomer, ActorID: customerID, Reason: "this was not me"},
			want:   domain.StatusCancelled, event: "request.cancelled", actor: "customer:" + customerID, notified: true, alerts: 1,
		},
		{
			name:   "requester withdraws during approval",
			at:     30 * time.Minute,
			cancel: workflows.CancelInput{By: domain.CancelByRequester, ActorID: requesterID, ActorRole: domain.RoleAgent, Reason: "wrong server"},
			want:   domain.StatusWithdrawn, event: "request.withdrawn", actor: "agent:" + requesterID,
		},
		{
			name:   "requester withdraws during cooling",
			at:     20 * time.Hour,
			cancel: workflows.CancelInput{By: domain.CancelByRequester, ActorID: requesterID, ActorRole: domain.RoleAgent, Reason: "customer changed their mind"},
			want:   domain.StatusWithdrawn, event: "request.withdrawn", actor: "agent:" + requesterID, notified: true,
		},
		{
			name:   "senior vetoes during cooling",
			at:     24 * time.Hour,
			cancel: workflows.CancelInput{By: domain.CancelBySenior, ActorID: senior2ID, ActorRole: domain.RoleSenior, Reason: "fraud pattern on this account"},
			want:   domain.StatusCancelled, event: "request.cancelled", actor: "agent:" + senior2ID, notified: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			reqID := "req-cancel"
			env := h.env(reqID)
			var dec *updateOutcome
			if tc.notified {
				dec = h.decide(env, time.Hour, approve())
			}
			cu := h.cancel(env, tc.at, tc.cancel)
			st := h.run(env, input(reqID, domain.ActionReinstallVPS))

			if dec != nil {
				dec.mustAccept(t, "approval")
			}
			cu.mustAccept(t, "cancel")
			if cu.status.Cancellation == nil || cu.status.Cancellation.By != tc.cancel.By {
				t.Fatalf("cancel update answered %+v", cu.status.Cancellation)
			}
			if st.Status != tc.want || st.Cancellation == nil || st.Cancellation.By != tc.cancel.By ||
				st.Cancellation.ActorID != tc.cancel.ActorID || st.Cancellation.Reason != tc.cancel.Reason {
				t.Fatalf("result %s cancellation %+v, want %s by %s", st.Status, st.Cancellation, tc.want, tc.cancel.By)
			}
			if !st.ExecutedAt.IsZero() || st.Reference != "" {
				t.Fatalf("cancelled request executed: %+v", st)
			}
			// The request ends when the cancel arrives, not when a timer fires.
			if got := st.EndedAt.Sub(st.OpenedAt); got != tc.at {
				t.Fatalf("ended %v after opening, want %v (when the cancel arrived)", got, tc.at)
			}
			row := h.projection(reqID)
			if row.Status != tc.want || row.CancelledBy != string(tc.cancel.By) || row.CancelReason != tc.cancel.Reason {
				t.Fatalf("projection %s by %q reason %q", row.Status, row.CancelledBy, row.CancelReason)
			}
			trail := h.trail(reqID)
			last := trail[len(trail)-1]
			if last.Event != tc.event || last.Actor != tc.actor || last.Details["by"] != string(tc.cancel.By) {
				t.Fatalf("last audit event %+v, want %s by %s", last, tc.event, tc.actor)
			}
			for _, e := range trail {
				if e.Event == "gate.cooling.elapsed" || e.Event == "execution.done" {
					t.Fatalf("audit has %s on a cancelled request", e.Event)
				}
			}
			if calls := h.panelCalls(); len(calls) != 0 {
				t.Fatalf("panel called for a cancelled request: %+v", calls)
			}
			if slices.Contains(h.calls(), "Execute") {
				t.Fatal("Execute activity ran for a cancelled request")
			}
			gates := []string{"ConsumePINVerdict", "Open", "Record", "Record"}
			updates := []string{string(tc.want)}
			if tc.notified {
				gates = []string{"ConsumePINVerdict", "Open", "Record", "CheckStanding", "Record", "NotifyCustomer", "Record", "Record", "NotifyOutcome"}
				updates = []string{activities.MessageApproved, activities.MessageNotified, string(tc.want)}
			}
			h.wantActivities(gates, slackWant{posted: true, updates: updates, alerts: tc.alerts})
			if n := len(h.securityPosts()); n != tc.alerts {
				t.Fatalf("%d security alerts, want %d", n, tc.alerts)
			}
			outcome := h.mails(reqID, "outcome")
			if !tc.notified {
				if n := len(h.catcher.Messages()); n != 0 {
					t.Fatalf("%d emails for a request withdrawn before anyone was told", n)
				}
				return
			}
			if got := recipients(outcome); !slices.Equal(got, []string{primaryEmail, establishedEmail}) {
				t.Fatalf("outcome recipients %v", got)
			}
			for _, m := range outcome {
				if !strings.HasPrefix(m.Subject, "Cancelled:") || !strings.Contains(m.Text, "Nothing has changed") {
					t.Fatalf("outcome email %q does not say it was cancelled:\n%s", m.Subject, m.Text)
				}
			}
		})
	}
}

// TestCredentialsMailedOnceWhenCommitFails: the classic ambiguous failure on
// Vigil's own side. The panel answered and the credentials were mailed, then
// recording the finished execution failed; the retry gets the same
// credentials from the panel under the same idempotency key and must not
// mail them again.
func TestCredentialsMailedOnceWhenCommitFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// A real Postgres failure, once: the first "done" write of the
	// executions row raises; the sequence is not rolled back with it.
	for _, q := range []string{
		`CREATE SEQUENCE fail_done_once`,
		`CREATE FUNCTION fail_done_once() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.state = 'done' AND nextval('fail_done_once') = 1 THEN
				RAISE EXCEPTION 'test fault: recording the finished execution fails once';
			END IF;
			RETURN NEW;
		END $$`,
		`CREATE TRIGGER fail_done_once BEFORE UPDATE ON executions FOR EACH ROW EXECUTE FUNCTION fail_done_once()`,
	} {
		if _, err := h.db.DB().ExecContext(h.ctx, q); err != nil {
			t.Fatalf("install the fault: %v", err)
		}
	}
	reqID := "req-creds-once"
	env := h.env(reqID)
	dec := h.decide(env, time.Hour, approve())
	st := h.run(env, input(reqID, domain.ActionResendCredentials))

	dec.mustAccept(t, "approval")
	if st.Status != domain.StatusExecuted {
		t.Fatalf("status %s (%s), want executed after the retry", st.Status, st.Failure)
	}
	if n := len(h.started("Execute")); n != 2 {
		t.Fatalf("Execute started %d times, want 2 (the failed commit, then the retry)", n)
	}
	calls := h.panelCalls()
	if len(calls) != 2 || calls[0].Replayed || !calls[1].Replayed || calls[0].IdempotencyKey != calls[1].IdempotencyKey {
		t.Fatalf("panel calls %+v: want the call, then a replay under the same key", calls)
	}
	if done := h.performed(); len(done) != 1 {
		t.Fatalf("panel performed %d actions, want 1", len(done))
	}
	if creds := h.mails(reqID, "credentials"); len(creds) != 1 {
		t.Fatalf("%d credentials emails, want exactly 1", len(creds))
	}
	h.wantEvents(reqID, executedTrailOf(domain.ActionResendCredentials)...)
}

// TestFailed: the panel's failures end the request failed, retried only
// when retrying can help.
func TestFailed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		opts        harnessOptions
		fault       panelstandin.Fault
		wantCalls   int
		wantStatus  int
		wantFailure string
	}{
		{name: "server errors exhaust the retries", fault: panelstandin.Fault{FailNext: 100, Status: http.StatusInternalServerError}, wantCalls: 3, wantStatus: http.StatusInternalServerError,
			wantFailure: "the action failed after retries"},
		{name: "bad panel token is permanent", opts: harnessOptions{panelToken: "not-the-panel-token"}, wantCalls: 1, wantStatus: http.StatusUnauthorized,
			wantFailure: "the action failed: the control panel refused Vigil's access (check the panel token)"},
		{name: "unknown customer is permanent", fault: panelstandin.Fault{FailNext: 1, Status: http.StatusNotFound}, wantCalls: 1, wantStatus: http.StatusNotFound,
			wantFailure: "the action failed: the control panel refused the request (customer or server not found)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarnessWith(t, tc.opts)
			h.panel.SetFault(tc.fault)
			reqID := "req-fail"
			env := h.env(reqID)
			dec := h.decide(env, time.Hour, approve())
			st := h.run(env, input(reqID, domain.ActionDisable2FA))

			dec.mustAccept(t, "approval")
			if st.Status != domain.StatusFailed || st.Failure == "" || !st.ExecutedAt.IsZero() {
				t.Fatalf("result %s failure %q executed %v, want failed", st.Status, st.Failure, st.ExecutedAt)
			}
			if st.Failure != tc.wantFailure {
				t.Fatalf("failure text %q, want %q", st.Failure, tc.wantFailure)
			}
			if strings.Contains(st.Failure, "127.0.0.1") || strings.Contains(st.Failure, panelToken) {
				t.Fatalf("failure text leaks details: %q", st.Failure)
			}
			calls := h.panelCalls()
			if len(calls) != tc.wantCalls {
				t.Fatalf("panel received %d calls, want %d", len(calls), tc.wantCalls)
			}
			for _, c := range calls {
				if c.Status != tc.wantStatus || c.IdempotencyKey != activities.IdempotencyKey(reqID) {
					t.Fatalf("panel call %+v, want status %d with the request's key", c, tc.wantStatus)
				}
			}
			if done := h.performed(); len(done) != 0 {
				t.Fatalf("panel performed %d actions", len(done))
			}
			n := 0
			for _, c := range h.calls() {
				if c == "Execute" {
					n++
				}
			}
			if n != tc.wantCalls {
				t.Fatalf("Execute ran %d times, want %d", n, tc.wantCalls)
			}
			gates := []string{"ConsumePINVerdict", "Open", "Record", "CheckStanding", "Record", "NotifyCustomer", "Record", "UnnotifiedEstablished", "Record", "CheckStanding"}
			for range tc.wantCalls {
				gates = append(gates, "Execute")
			}
			h.wantActivities(append(gates, "Record", "NotifyOutcome"), slackWant{posted: true,
				updates: []string{activities.MessageApproved, activities.MessageNotified, string(domain.StatusFailed)}})
			row := h.projection(reqID)
			if row.Status != domain.StatusFailed || row.OutcomeDetail != st.Failure {
				t.Fatalf("projection %s detail %q", row.Status, row.OutcomeDetail)
			}
			trail := h.events(reqID)
			if trail[len(trail)-1] != "request.failed" || slices.Contains(trail, "execution.done") {
				t.Fatalf("audit %q", trail)
			}
			outcome := h.mails(reqID, "outcome")
			if len(outcome) == 0 || !strings.HasPrefix(outcome[0].Subject, "We could not") {
				t.Fatalf("outcome emails %+v, want a failure notice", outcome)
			}
		})
	}
}

// TestDecideRefusals: a refused decision changes nothing, and a valid
// decision afterwards still carries the request through.
func TestDecideRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		bad     workflows.DecideInput
		badAt   time.Duration
		typ     string
		msg     string
		earlier bool // a valid approval is accepted before the bad one
	}{
		{name: "self approval", bad: workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: requesterID, ApproverRole: domain.RoleSenior},
			typ: workflows.RefusedSelfApproval, msg: "another senior agent must approve"},
		{name: "not a senior", bad: workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: juniorID, ApproverRole: domain.RoleAgent},
			typ: workflows.RefusedNotSenior, msg: "only senior agents"},
		{name: "admin is not senior", bad: workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: juniorID, ApproverRole: domain.RoleAdmin},
			typ: workflows.RefusedNotSenior, msg: "only senior agents"},
		{name: "invalid decision", bad: workflows.DecideInput{Decision: "maybe", ApproverID: senior2ID, ApproverRole: domain.RoleSenior},
			typ: workflows.RefusedInvalid, msg: "approve or reject"},
		{name: "reject without reason", bad: workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: senior2ID, ApproverRole: domain.RoleSenior},
			typ: workflows.RefusedInvalid, msg: "needs a reason"},
		{name: "no approver", bad: workflows.DecideInput{Decision: domain.DecisionApprove, ApproverRole: domain.RoleSenior},
			typ: workflows.RefusedInvalid, msg: "approver is missing"},
		{name: "reason with a NUL", bad: workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: senior2ID, ApproverRole: domain.RoleSenior, Reason: "no\x00pe"},
			typ: workflows.RefusedInvalid, msg: "reason: contains a NUL character (U+0000) at character 3"},
		{name: "reason with a bidi override", bad: workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: senior2ID, ApproverRole: domain.RoleSenior, Reason: "verified \u202eenohp yb"},
			typ: workflows.RefusedInvalid, msg: "reason: contains a bidi control character (U+202E)"},
		// The JSON payload converter turns invalid UTF-8 into U+FFFD on the
		// way in, which the rule refuses as damaged text.
		{name: "reason with invalid UTF-8", bad: workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: senior2ID, ApproverRole: domain.RoleSenior, Reason: "bad \xff"},
			typ: workflows.RefusedInvalid, msg: "reason: contains a replacement character (U+FFFD) at character 5"},
		{name: "reason too long", bad: workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: senior2ID, ApproverRole: domain.RoleSenior, Reason: strings.Repeat("é", 2001)},
			typ: workflows.RefusedInvalid, msg: "the limit is 2000"},
		{name: "break glass by the same senior twice", bad: breakGlass(seniorID, seniorID, domain.RoleSenior),
			typ: workflows.RefusedInvalid, msg: "two different seniors"},
		{name: "break glass with the requester as second", bad: breakGlass(seniorID, requesterID, domain.RoleSenior),
			typ: workflows.RefusedSelfApproval, msg: "requester cannot be one of the two"},
		{name: "break glass with a non-senior second", bad: breakGlass(seniorID, juniorID, domain.RoleAgent),
			typ: workflows.RefusedNotSenior, msg: "both break-glass approvers must be senior"},
		{name: "break glass without a second", bad: breakGlass(seniorID, "", ""),
			typ: workflows.RefusedInvalid, msg: "needs a second senior"},
		{name: "second approver without break glass",
			bad: workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: seniorID, ApproverRole: domain.RoleSenior, SecondApproverID: senior2ID, SecondApproverRole: domain.RoleSenior},
			typ: workflows.RefusedInvalid, msg: "only counts for a break-glass"},
		{name: "second decision", earlier: true, badAt: 2 * time.Hour,
			bad: workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: senior2ID, ApproverRole: domain.RoleSenior, Reason: "second thoughts"},
			typ: workflows.RefusedAlreadyDecided, msg: "already approved by " + seniorID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			reqID := "req-refuse"
			env := h.env(reqID)
			badAt, goodAt := 30*time.Minute, time.Hour
			if tc.earlier {
				goodAt = 30 * time.Minute
			}
			if tc.badAt != 0 {
				badAt = tc.badAt
			}
			good := h.decide(env, goodAt, approve())
			bad := h.decide(env, badAt, tc.bad)
			after := h.queryAt(env, badAt+time.Minute)
			st := h.run(env, input(reqID, domain.ActionReinstallVPS))

			bad.mustReject(t, tc.name, tc.typ, tc.msg)
			good.mustAccept(t, "valid approval")
			q := after.status
			if after.err != nil || !after.taken {
				t.Fatalf("query after refusal: %v", after.err)
			}
			if tc.earlier {
				if q.Decision == nil || q.Decision.ApproverID != seniorID || q.Decision.Decision != domain.DecisionApprove {
					t.Fatalf("decision after refused second decision: %+v", q.Decision)
				}
			} else if q.Decision != nil || q.Status != domain.StatusAwaitingApproval {
				t.Fatalf("refused decision changed the request: status %s decision %+v", q.Status, q.Decision)
			}
			if st.Status != domain.StatusExecuted || st.Decision.ApproverID != seniorID || st.Decision.Decision != domain.DecisionApprove {
				t.Fatalf("result %s decision %+v, want executed on %s's approval", st.Status, st.Decision, seniorID)
			}
			h.wantEvents(reqID, executedTrail...)
			if row := h.projection(reqID); row.ApproverID != seniorID || row.Decision != "approve" {
				t.Fatalf("projection approver %q decision %q", row.ApproverID, row.Decision)
			}
			if passed := eventNamed(t, h.trail(reqID), "gate.approval.passed"); passed.Details["break_glass"] != nil {
				t.Fatalf("a refused break-glass decision left %+v", passed.Details)
			}
			if n := len(h.securityPosts()); n != 0 {
				t.Fatalf("%d security alerts after a refused decision", n)
			}
			if done := h.performed(); len(done) != 1 {
				t.Fatalf("panel performed %d actions", len(done))
			}
		})
	}
}

// breakGlass is an approval outside Slack by first with second as the second senior.
func breakGlass(first, second string, secondRole domain.Role) workflows.DecideInput {
	return workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: first, ApproverRole: domain.RoleSenior,
		BreakGlass: true, SecondApproverID: second, SecondApproverRole: secondRole}
}

// TestCancelRefusals: a cancel from someone not entitled to it changes
// nothing; the request still executes.
func TestCancelRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		bad  workflows.CancelInput
		typ  string
		msg  string
	}{
		{"withdraw by someone else", workflows.CancelInput{By: domain.CancelByRequester, ActorID: seniorID, ActorRole: domain.RoleSenior},
			workflows.RefusedNotRequester, "only the agent who opened"},
		{"veto by a non-senior", workflows.CancelInput{By: domain.CancelBySenior, ActorID: juniorID, ActorRole: domain.RoleAgent},
			workflows.RefusedNotSenior, "only senior agents"},
		{"veto without an actor", workflows.CancelInput{By: domain.CancelBySenior, ActorRole: domain.RoleSenior},
			workflows.RefusedNotSenior, "only senior agents"},
		{"another customer's link", workflows.CancelInput{By: domain.CancelByCustomer, ActorID: otherCustomerID},
			workflows.RefusedNotCustomer, "another customer"},
		{"unknown party", workflows.CancelInput{By: "billing", ActorID: seniorID, ActorRole: domain.RoleSenior},
			workflows.RefusedInvalid, "unknown cancelling party"},
		{"reason too long", workflows.CancelInput{By: domain.CancelByCustomer, ActorID: customerID, Reason: strings.Repeat("x", 2001)},
			workflows.RefusedInvalid, "reason: is 2001 characters long; the limit is 2000"},
		{"reason with a NUL", workflows.CancelInput{By: domain.CancelBySenior, ActorID: seniorID, ActorRole: domain.RoleSenior, Reason: "stop\x00"},
			workflows.RefusedInvalid, "reason: contains a NUL character (U+0000) at character 5"},
		{"reason with a line break", workflows.CancelInput{By: domain.CancelByRequester, ActorID: requesterID, Reason: "stop\nApproved by ag_bob"},
			workflows.RefusedInvalid, "reason: contains a line break"},
		{"reason with a zero-width space", workflows.CancelInput{By: domain.CancelByRequester, ActorID: requesterID, Reason: "st\u200bop"},
			workflows.RefusedInvalid, "reason: contains an invisible character (U+200B)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			reqID := "req-cancel-refused"
			env := h.env(reqID)
			dec := h.decide(env, time.Hour, approve())
			bad := h.cancel(env, 2*time.Hour, tc.bad)
			after := h.queryAt(env, 3*time.Hour)
			st := h.run(env, input(reqID, domain.ActionReinstallVPS))

			dec.mustAccept(t, "approval")
			bad.mustReject(t, tc.name, tc.typ, tc.msg)
			q := after.check(t, domain.StatusCooling)
			if q.Cancellation != nil {
				t.Fatalf("refused cancel left %+v", q.Cancellation)
			}
			if st.Status != domain.StatusExecuted || st.Cancellation != nil {
				t.Fatalf("result %s cancellation %+v, want executed", st.Status, st.Cancellation)
			}
			h.wantEvents(reqID, executedTrail...)
			if done := h.performed(); len(done) != 1 {
				t.Fatalf("panel performed %d actions", len(done))
			}
		})
	}
}

// TestCancelWhileExecuting holds the panel call and tries to cancel while
// the action runs: the cancel is refused and the action completes.
func TestCancelWhileExecuting(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.panel.SetFault(panelstandin.Fault{Hold: true})
	t.Cleanup(h.panel.Release)
	reqID := "req-executing"
	env := h.env(reqID)
	dec := h.decide(env, time.Hour, approve())

	// The cooling period ends at 25h of workflow time. While an activity runs
	// the test clock follows the wall clock, so this fires a second after
	// Execute started.
	var executing *queryResult
	late := &updateOutcome{}
	env.RegisterDelayedCallback(func() {
		waitCtx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
		defer cancel()
		if err := h.panel.WaitHeld(waitCtx); err != nil {
			t.Errorf("the panel call was never held: %v", err)
			h.panel.Release()
			return
		}
		executing = &queryResult{taken: true, at: env.Now()}
		v, err := env.QueryWorkflow(workflows.QueryStatus)
		if err == nil {
			err = v.Get(&executing.status)
		}
		executing.err = err
		late.sent = true
		env.UpdateWorkflow(workflows.UpdateCancel, "", &testsuite.TestUpdateCallback{
			OnAccept:   func() { late.accepted = true; h.panel.Release() },
			OnReject:   func(err error) { late.rejected = err; h.panel.Release() },
			OnComplete: func(_ any, err error) { late.done = true; late.err = err },
		}, workflows.CancelInput{By: domain.CancelByCustomer, ActorID: customerID, Reason: "too late"})
	}, time.Hour+testPolicy.CoolingPeriod+time.Second)
	st := h.run(env, input(reqID, domain.ActionResendCredentials))

	dec.mustAccept(t, "approval")
	if executing == nil {
		t.Fatal("the callback during execution never ran")
	}
	if e := executing.check(t, domain.StatusExecuting); executing.at.Before(e.CoolingEndsAt) {
		t.Fatalf("executing at %v, before the cooling period ended at %v", executing.at, e.CoolingEndsAt)
	}
	late.mustReject(t, "cancel while executing", workflows.RefusedExecuting, "already running")
	if st.Status != domain.StatusExecuted || st.Cancellation != nil {
		t.Fatalf("result %s cancellation %+v, want executed", st.Status, st.Cancellation)
	}
	if done := h.performed(); len(done) != 1 {
		t.Fatalf("panel performed %d actions", len(done))
	}
	h.wantEvents(reqID, executedTrailOf(domain.ActionResendCredentials)...)
}

// TestNoticeRetried: while the mail server refuses, the request stays in
// notifying and the cooling period starts only once the notice is accepted.
func TestNoticeRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.catcher.Refuse(1, 0)
	reqID := "req-notice-retry"
	env := h.env(reqID)
	dec := h.decide(env, time.Hour, approve())
	// The first delivery is refused at 1h; the retry waits a few seconds of
	// workflow time, during which this query runs.
	notifying := h.queryAt(env, time.Hour+time.Second)
	st := h.run(env, input(reqID, domain.ActionReinstallVPS))

	dec.mustAccept(t, "approval")
	if q := notifying.check(t, domain.StatusNotifying); !q.NotifiedAt.IsZero() || !q.CoolingEndsAt.IsZero() {
		t.Fatalf("notifying: notified %v cooling ends %v, want neither yet", q.NotifiedAt, q.CoolingEndsAt)
	}
	if st.Status != domain.StatusExecuted {
		t.Fatalf("status %s (%s), want executed", st.Status, st.Failure)
	}
	if !st.NotifiedAt.After(st.Decision.At.Add(time.Second)) || !st.CoolingEndsAt.Equal(st.NotifiedAt.Add(testPolicy.CoolingPeriod)) ||
		st.ExecutedAt.Sub(st.NotifiedAt) < testPolicy.CoolingPeriod {
		t.Fatalf("decided %v, notified %v, cooling ends %v, executed %v: the cooling period must run from the accepted notice",
			st.Decision.At, st.NotifiedAt, st.CoolingEndsAt, st.ExecutedAt)
	}
	if got := recipients(h.mails(reqID, "notice")); !slices.Equal(got, []string{primaryEmail, establishedEmail}) {
		t.Fatalf("notices delivered to %v", got)
	}
	h.wantEvents(reqID, executedTrail...)
	n := 0
	for _, c := range h.calls() {
		if c == "NotifyCustomer" {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("NotifyCustomer ran %d times, want 2 (one refused, one accepted)", n)
	}
}

// TestCancelDuringNotice: a cancel accepted while the notice is being
// retried stops the retries; the request ends cancelled, never failed, and
// whoever already got a notice is told it was cancelled.
func TestCancelDuringNotice(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		refuse func(c *mailcatcher.Catcher)
		cancel workflows.CancelInput
		want   domain.Status
		// notices is who got a notice before the cancel (each attempt
		// resends to the addresses it reaches), outcome who is told.
		notices, outcome []string
		alerts           int
	}{
		{
			name:    "customer cancels from the notice that arrived while the other address refuses",
			refuse:  func(c *mailcatcher.Catcher) { c.RefuseRecipient(establishedEmail, true) },
			cancel:  workflows.CancelInput{By: domain.CancelByCustomer, ActorID: customerID, Reason: "this was not me"},
			want:    domain.StatusCancelled,
			notices: []string{primaryEmail, primaryEmail, primaryEmail}, outcome: []string{primaryEmail}, alerts: 1,
		},
		{
			name:   "requester withdraws while every address refuses",
			refuse: func(c *mailcatcher.Catcher) { c.Refuse(1_000_000, 0) },
			cancel: workflows.CancelInput{By: domain.CancelByRequester, ActorID: requesterID, ActorRole: domain.RoleAgent, Reason: "wrong server"},
			want:   domain.StatusWithdrawn,
		},
		{
			name:   "senior vetoes while every address refuses",
			refuse: func(c *mailcatcher.Catcher) { c.Refuse(1_000_000, 0) },
			cancel: workflows.CancelInput{By: domain.CancelBySenior, ActorID: senior2ID, ActorRole: domain.RoleSenior, Reason: "fraud pattern"},
			want:   domain.StatusCancelled,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			tc.refuse(h.catcher)
			reqID := "req-cancel-notice"
			env := h.env(reqID)
			dec := h.decide(env, time.Hour, approve())
			// Attempts run at +0s, +5s and +15s after the approval; the
			// cancel lands in the backoff before the fourth (+35s).
			cu := h.cancel(env, time.Hour+20*time.Second, tc.cancel)
			st := h.run(env, input(reqID, domain.ActionReinstallVPS))

			dec.mustAccept(t, "approval")
			cu.mustAccept(t, "cancel during the notice")
			if st.Status != tc.want || st.Failure != "" || st.Cancellation == nil || st.Cancellation.By != tc.cancel.By {
				t.Fatalf("result %s (failure %q, cancellation %+v), want %s", st.Status, st.Failure, st.Cancellation, tc.want)
			}
			if !st.NotifiedAt.IsZero() || !st.CoolingEndsAt.IsZero() {
				t.Fatalf("notified %v, cooling ends %v: the notice never completed", st.NotifiedAt, st.CoolingEndsAt)
			}
			if got := st.EndedAt.Sub(st.Decision.At); got != 20*time.Second {
				t.Fatalf("ended %v after the approval, want 20s (when the cancel arrived)", got)
			}
			if n := len(h.started("NotifyCustomer")); n != 3 {
				t.Fatalf("NotifyCustomer started %d times, want 3: none after the cancel", n)
			}
			if got := recipients(h.mails(reqID, "notice")); !slices.Equal(got, tc.notices) {
				t.Fatalf("notices to %v, want %v", got, tc.notices)
			}
			if got := recipients(h.mails(reqID, "outcome")); !slices.Equal(got, tc.outcome) {
				t.Fatalf("outcome emails to %v, want %v", got, tc.outcome)
			}
			for _, m := range h.mails(reqID, "outcome") {
				if !strings.HasPrefix(m.Subject, "Cancelled:") {
					t.Fatalf("outcome email %q does not say it was cancelled", m.Subject)
				}
			}
			if calls := h.panelCalls(); len(calls) != 0 {
				t.Fatalf("panel called for a cancelled request: %+v", calls)
			}
			events := h.events(reqID)
			if slices.Contains(events, "gate.notice.sent") || slices.Contains(events, "request.failed") {
				t.Fatalf("audit trail %v: a cancelled notice is neither sent nor failed", events)
			}
			if row := h.projection(reqID); row.Status != tc.want || row.NotifiedAt != nil || row.CancelledBy != string(tc.cancel.By) {
				t.Fatalf("projection %s notified %v cancelled by %q", row.Status, row.NotifiedAt, row.CancelledBy)
			}
			if n := len(h.securityPosts()); n != tc.alerts {
				t.Fatalf("%d security alerts, want %d", n, tc.alerts)
			}
		})
	}
}

// TestNoticeNeverAccepted: if the notice cannot be delivered within the
// notice timeout the request fails and never executes.
func TestNoticeNeverAccepted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.catcher.Refuse(1_000_000, 0)
	reqID := "req-notice-fails"
	env := h.env(reqID)
	dec := h.decide(env, time.Hour, approve())
	st := h.run(env, input(reqID, domain.ActionReinstallVPS))

	dec.mustAccept(t, "approval")
	if st.Status != domain.StatusFailed || st.Failure != "the customer could not be notified" || !st.NotifiedAt.IsZero() {
		t.Fatalf("result %s failure %q notified %v", st.Status, st.Failure, st.NotifiedAt)
	}
	if waited := st.EndedAt.Sub(st.Decision.At); waited > testPolicy.NoticeTimeout || waited < testPolicy.NoticeTimeout/2 {
		t.Fatalf("gave up on the notice after %v, want about the notice timeout %v", waited, testPolicy.NoticeTimeout)
	}
	if calls := h.panelCalls(); len(calls) != 0 {
		t.Fatalf("panel called without a notice: %+v", calls)
	}
	if n := len(h.catcher.Messages()); n != 0 {
		t.Fatalf("%d messages delivered while the server refused everything", n)
	}
	trail := h.trail(reqID)
	last := trail[len(trail)-1]
	if last.Event != "request.failed" || last.Details["gate"] != "notice" {
		t.Fatalf("last audit event %+v", last)
	}
	if row := h.projection(reqID); row.Status != domain.StatusFailed || row.NotifiedAt != nil {
		t.Fatalf("projection %s notified %v", row.Status, row.NotifiedAt)
	}
	var events []string
	for _, u := range h.messageUpdates() {
		events = append(events, u.Event)
	}
	if want := []string{activities.MessageApproved, string(domain.StatusFailed)}; !slices.Equal(events, want) {
		t.Fatalf("approval message updates %q, want %q (never \"notified\")", events, want)
	}
}

// TestStatusQueryAtEachGate checks the Query's status and deadlines as the
// request moves through the gates.
func TestStatusQueryAtEachGate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	reqID := "req-query"
	env := h.env(reqID)
	start := env.Now()
	approval := h.queryAt(env, 10*time.Minute)
	dec := h.decide(env, 90*time.Minute, approve())
	cooling := h.queryAt(env, 2*time.Hour)
	lateCooling := h.queryAt(env, 25*time.Hour)
	st := h.run(env, input(reqID, domain.ActionAddContactEmail))
	dec.mustAccept(t, "approval")

	a := approval.check(t, domain.StatusAwaitingApproval)
	if !a.OpenedAt.Equal(start) || !a.ApprovalDeadline.Equal(a.OpenedAt.Add(testPolicy.ApprovalTimeout)) {
		t.Fatalf("opened %v (start %v), approval deadline %v", a.OpenedAt, start, a.ApprovalDeadline)
	}
	if a.PINVerifiedAt.IsZero() || a.Decision != nil || !a.NotifiedAt.IsZero() || !a.CoolingEndsAt.IsZero() || !a.EndedAt.IsZero() {
		t.Fatalf("awaiting approval: %+v", a)
	}
	if a.RequestID != reqID || a.Action != domain.ActionAddContactEmail || a.CustomerID != customerID || a.RequesterID != requesterID || a.Email != newEmailTarget {
		t.Fatalf("identity fields: %+v", a)
	}

	c := cooling.check(t, domain.StatusCooling)
	if c.Decision == nil || c.Decision.ApproverID != seniorID || !c.Decision.At.Equal(start.Add(90*time.Minute)) {
		t.Fatalf("cooling decision %+v", c.Decision)
	}
	if !c.NotifiedAt.Equal(start.Add(90*time.Minute)) || !c.CoolingEndsAt.Equal(c.NotifiedAt.Add(testPolicy.CoolingPeriod)) || c.Recipients != 2 {
		t.Fatalf("cooling: notified %v, ends %v, recipients %d", c.NotifiedAt, c.CoolingEndsAt, c.Recipients)
	}
	if !c.ApprovalDeadline.Equal(a.ApprovalDeadline) {
		t.Fatalf("approval deadline moved from %v to %v", a.ApprovalDeadline, c.ApprovalDeadline)
	}
	// One query past the old deadline but still inside the cooling period.
	if l := lateCooling.check(t, domain.StatusCooling); !l.CoolingEndsAt.Equal(c.CoolingEndsAt) {
		t.Fatalf("cooling end moved to %v", l.CoolingEndsAt)
	}

	if st.Status != domain.StatusExecuted || !st.ExecutedAt.Equal(c.CoolingEndsAt) || !st.EndedAt.Equal(st.ExecutedAt) {
		t.Fatalf("final %s executed %v ended %v, want executed at %v", st.Status, st.ExecutedAt, st.EndedAt, c.CoolingEndsAt)
	}
	h.assertNowhere(rightPIN, "the PIN", []workflows.Status{st, dec.status}, []*queryResult{approval, cooling, lateCooling}, nil)
}

// TestInvalidInput: a malformed start is refused before anything is recorded.
func TestInvalidInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cases := []struct {
		name   string
		mutate func(*workflows.Input)
		// inputPolicy: a run from before change policy-from-worker, which
		// takes its policy from the input (new runs ignore it).
		inputPolicy bool
	}{
		{"unknown action", func(in *workflows.Input) { in.Action = "format_disk" }, false},
		{"no customer", func(in *workflows.Input) { in.CustomerID = "" }, false},
		{"no requester", func(in *workflows.Input) { in.RequesterID = "" }, false},
		{"no request id", func(in *workflows.Input) { in.RequestID = "" }, false},
		{"zero cooling period", func(in *workflows.Input) { in.Policy.CoolingPeriod = 0 }, true},
	}
	for _, tc := range cases {
		in := input("req-invalid", domain.ActionReinstallVPS)
		tc.mutate(&in)
		env := h.env("req-invalid")
		if tc.inputPolicy {
			env.OnGetVersion("policy-from-worker", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
		}
		env.ExecuteWorkflow(workflows.WorkflowName, in)
		err := env.GetWorkflowError()
		var app *temporal.ApplicationError
		if !errors.As(err, &app) || app.Type() != workflows.RefusedInvalid || !app.NonRetryable() {
			t.Fatalf("%s: error %v, want a non-retryable %s", tc.name, err, workflows.RefusedInvalid)
		}
		if strings.Contains(err.Error(), rightPIN) {
			t.Fatalf("%s: error mentions the PIN", tc.name)
		}
	}
	if got := h.calls(); len(got) != 0 {
		t.Fatalf("activities ran for invalid input: %v", got)
	}
	if _, err := h.db.Request(h.ctx, "req-invalid"); err == nil {
		t.Fatal("an invalid request was recorded")
	}
}
