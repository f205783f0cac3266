package workflows_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/panelstandin"
	"github.com/vigil-oss/vigil/internal/slackstandin"
	"github.com/vigil-oss/vigil/workflows"
)

// TestApprovalMessage: once the PIN passed, one approval message lands in the
// approvals channel, with Approve / Reject buttons that carry the request id
// and nothing else, and the projection remembers where it is.
func TestApprovalMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	reqID := "req-slack-post"
	env := h.env(reqID)
	waiting := h.slackAt(env, 30*time.Minute)
	q := h.queryAt(env, 30*time.Minute)
	dec := h.decide(env, time.Hour, approve())
	st := h.run(env, input(reqID, domain.ActionReinstallVPS))

	dec.mustAccept(t, "approval")
	if st.Status != domain.StatusExecuted {
		t.Fatalf("status %s (%s), want executed", st.Status, st.Failure)
	}
	m := waiting.approval(t, "while awaiting approval")
	if got, want := buttons(t, m), []msgButton{{"approve", reqID}, {"reject", reqID}}; !slices.Equal(got, want) {
		t.Fatalf("buttons %+v, want %+v (values: the request id only)", got, want)
	}
	text := shown(t, m)
	for _, want := range []string{"Approval needed", "Reinstall VPS", customerID, "a***@customer.test", serverID,
		"<@" + requesterSlackID + ">", "customer called from the number on file", reqID} {
		if !strings.Contains(text, want) {
			t.Fatalf("approval message does not show %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, primaryEmail) {
		t.Fatalf("approval message shows the customer's unmasked email:\n%s", text)
	}
	if s := q.check(t, domain.StatusAwaitingApproval); s.SlackChannel != approvalsChannelID || s.SlackTS != m.TS {
		t.Fatalf("status query points at %q/%q, the message is %s/%s", s.SlackChannel, s.SlackTS, m.Channel, m.TS)
	}

	// Still the same single message at the end, and nothing else was posted.
	final := h.approvalMessage(reqID, st)
	if final.TS != m.TS {
		t.Fatalf("approval message at the end is %s, was %s", final.TS, m.TS)
	}
	// One approval message, plus the requester's two direct messages
	// (approved, executed).
	if n, dms := h.slack.Calls("chat.postMessage"), len(h.requesterDMs()); n != 1+dms || dms != 2 {
		t.Fatalf("chat.postMessage called %d times with %d direct messages to the requester, want 1 + 2", n, dms)
	}
	posts := h.started("PostApproval")
	if len(posts) != 1 {
		t.Fatalf("PostApproval started %d times", len(posts))
	}
	var in activities.ApprovalInput
	decodeJSON(t, posts[0], &in)
	if in.RequestID != reqID || !in.PINVerifiedAt.Equal(st.PINVerifiedAt) || !in.ExpiresAt.Equal(st.ApprovalDeadline) || in.CoolingPeriod != testPolicy.CoolingPeriod {
		t.Fatalf("PostApproval input %+v; PIN verified %v, deadline %v", in, st.PINVerifiedAt, st.ApprovalDeadline)
	}

	// Posted after the PIN passed and the gate opened, and audited with its place.
	h.wantEvents(reqID, executedTrail...)
	posted := eventNamed(t, h.trail(reqID), "slack.approval_posted")
	if posted.Actor != "system" || posted.Details["channel"] != approvalsChannelID || posted.Details["ts"] != m.TS {
		t.Fatalf("slack.approval_posted %+v, want channel %s ts %s", posted, approvalsChannelID, m.TS)
	}
	h.wantActivities(executedGates, executedSlack)
	h.assertNowhere(rightPIN, "the PIN", []workflows.Status{st, dec.status}, []*queryResult{q}, nil)
}

func decodeJSON(t *testing.T, raw string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

// messageWant is what the approval message shows at a workflow time.
type messageWant struct {
	at   time.Duration
	line string
}

// TestApprovalMessageFollowsRequest: the message loses its buttons once a
// senior decided and then says where the request stands, down to its end.
func TestApprovalMessageFollowsRequest(t *testing.T) {
	t.Parallel()
	customerCancel := workflows.CancelInput{By: domain.CancelByCustomer, ActorID: customerID, Reason: "this was not me"}
	withdraw := workflows.CancelInput{By: domain.CancelByRequester, ActorID: requesterID, ActorRole: domain.RoleAgent, Reason: "wrong server"}
	veto := workflows.CancelInput{By: domain.CancelBySenior, ActorID: senior2ID, ActorRole: domain.RoleSenior, Reason: "fraud pattern"}
	reject := workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: senior2ID, ApproverRole: domain.RoleSenior,
		Reason: "caller could not confirm the invoice number"}
	bgReject := breakGlass(seniorID, senior2ID, domain.RoleSenior)
	bgReject.Decision, bgReject.Reason = domain.DecisionReject, "caller failed the callback"
	approved, notified := activities.MessageApproved, activities.MessageNotified
	cases := []struct {
		name    string
		setup   func(h *harness)
		drive   func(h *harness, env *testsuite.TestWorkflowEnvironment) []*updateOutcome
		want    domain.Status
		updates []string
		// along are states the message passes through; the last line is its final state.
		along []messageWant
		final string
	}{
		{
			name: "executed",
			// The first notice delivery is refused, so the request sits
			// approved but not yet notified until the retry 5s later.
			setup: func(h *harness) { h.catcher.Refuse(1, 0) },
			drive: func(h *harness, env *testsuite.TestWorkflowEnvironment) []*updateOutcome {
				return []*updateOutcome{h.decide(env, time.Hour, approve())}
			},
			want: domain.StatusExecuted, updates: []string{approved, notified, "executed"},
			along: []messageWant{
				{time.Hour + 4*time.Second, "Approved by <@" + seniorSlackID + ">"},
				{2 * time.Hour, "Customer notified — runs at"},
			},
			final: "Executed at",
		},
		{
			name: "break-glass",
			drive: func(h *harness, env *testsuite.TestWorkflowEnvironment) []*updateOutcome {
				return []*updateOutcome{h.decide(env, time.Hour, breakGlass(seniorID, senior2ID, domain.RoleSenior))}
			},
			want: domain.StatusExecuted, updates: []string{approved, notified, "executed"},
			along: []messageWant{{time.Hour + 4*time.Second, "Break-glass: approved outside Slack by <@" + seniorSlackID + "> and <@" + senior2SlackID + ">"}},
			final: "Executed at",
		},
		{
			name: "rejected",
			drive: func(h *harness, env *testsuite.TestWorkflowEnvironment) []*updateOutcome {
				return []*updateOutcome{h.decide(env, time.Hour, reject)}
			},
			want: domain.StatusRejected, updates: []string{"rejected"},
			final: "Rejected by <@" + senior2SlackID + ">: caller could not confirm the invoice number",
		},
		{
			// A break-glass rejection says so as loudly as an approval,
			// names both seniors and quotes their reason.
			name: "break-glass rejected",
			drive: func(h *harness, env *testsuite.TestWorkflowEnvironment) []*updateOutcome {
				return []*updateOutcome{h.decide(env, time.Hour, bgReject)}
			},
			want: domain.StatusRejected, updates: []string{"rejected"},
			final: " UTC\n> caller failed the callback",
		},
		{
			name: "cancelled by the customer",
			drive: func(h *harness, env *testsuite.TestWorkflowEnvironment) []*updateOutcome {
				return []*updateOutcome{h.decide(env, time.Hour, approve()), h.cancel(env, 2*time.Hour, customerCancel)}
			},
			want: domain.StatusCancelled, updates: []string{approved, notified, "cancelled"},
			along: []messageWant{{90 * time.Minute, "Customer notified"}},
			final: "Cancelled by the customer\n> this was not me",
		},
		{
			name: "vetoed by a senior",
			drive: func(h *harness, env *testsuite.TestWorkflowEnvironment) []*updateOutcome {
				return []*updateOutcome{h.decide(env, time.Hour, approve()), h.cancel(env, 24*time.Hour, veto)}
			},
			want: domain.StatusCancelled, updates: []string{approved, notified, "cancelled"},
			final: "Cancelled by <@" + senior2SlackID + ">\n> fraud pattern",
		},
		{
			name: "withdrawn",
			drive: func(h *harness, env *testsuite.TestWorkflowEnvironment) []*updateOutcome {
				return []*updateOutcome{h.cancel(env, 30*time.Minute, withdraw)}
			},
			want: domain.StatusWithdrawn, updates: []string{"withdrawn"},
			final: "Withdrawn by the requester <@" + requesterSlackID + ">\n> wrong server",
		},
		{
			name:  "expired",
			drive: func(*harness, *testsuite.TestWorkflowEnvironment) []*updateOutcome { return nil },
			want:  domain.StatusExpired, updates: []string{"expired"},
			final: "Expired: no senior decided in time",
		},
		{
			name:  "failed",
			setup: func(h *harness) { h.panel.SetFault(panelstandin.Fault{FailNext: 1, Status: http.StatusNotFound}) },
			drive: func(h *harness, env *testsuite.TestWorkflowEnvironment) []*updateOutcome {
				return []*updateOutcome{h.decide(env, time.Hour, approve())}
			},
			want: domain.StatusFailed, updates: []string{approved, notified, "failed"},
			final: "Failed: the action failed: the control panel refused the request (customer or server not found)",
		},
	}
	// The final card keeps the steps the request passed, in order, and no
	// longer shows the approval deadline.
	passed := []string{"Approved by <@" + seniorSlackID + ">", "Customer notified at", "cooling period until"}
	// The requester hears of each decision and of the end, once each; not
	// of their own withdrawal.
	dms := map[string]int{"executed": 2, "break-glass": 2, "rejected": 1, "break-glass rejected": 1, "cancelled by the customer": 2,
		"vetoed by a senior": 2, "withdrawn": 0, "expired": 1, "failed": 2}
	history := map[string][]string{
		"break-glass":          {"Break-glass: approved outside Slack by <@" + seniorSlackID + "> and <@" + senior2SlackID + ">", "Customer notified at"},
		"break-glass rejected": {"Break-glass: rejected outside Slack by <@" + seniorSlackID + "> and <@" + senior2SlackID + "> at "},
		"executed":             passed, "cancelled by the customer": passed, "vetoed by a senior": passed, "failed": passed,
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			if tc.setup != nil {
				tc.setup(h)
			}
			reqID := "req-slack-follow"
			env := h.env(reqID)
			waiting := h.slackAt(env, 20*time.Minute)
			snaps := make([]*slackSnapshot, len(tc.along))
			for i, a := range tc.along {
				snaps[i] = h.slackAt(env, a.at)
			}
			sent := tc.drive(h, env)
			st := h.run(env, input(reqID, domain.ActionReinstallVPS))

			for i, u := range sent {
				u.mustAccept(t, "update "+string(rune('0'+i)))
			}
			if st.Status != tc.want {
				t.Fatalf("status %s (%s), want %s", st.Status, st.Failure, tc.want)
			}
			first := waiting.approval(t, "awaiting approval")
			if len(buttons(t, first)) != 2 {
				t.Fatalf("awaiting approval: buttons %+v, want Approve and Reject", buttons(t, first))
			}
			for i, a := range tc.along {
				m := snaps[i].approval(t, a.line)
				if m.TS != first.TS {
					t.Fatalf("at %v the approval message is %s, was %s", a.at, m.TS, first.TS)
				}
				if b := buttons(t, m); len(b) != 0 {
					t.Fatalf("at %v the message still has buttons %+v", a.at, b)
				}
				if text := shown(t, m); !strings.Contains(text, a.line) {
					t.Fatalf("at %v the message does not say %q:\n%s", a.at, a.line, text)
				}
			}
			m := h.approvalMessage(reqID, st)
			if m.TS != first.TS {
				t.Fatalf("final approval message %s, was %s", m.TS, first.TS)
			}
			if b := buttons(t, m); len(b) != 0 {
				t.Fatalf("the ended request's message still has buttons %+v", b)
			}
			text := shown(t, m)
			if !strings.Contains(text, tc.final) || !strings.Contains(text, "Reinstall VPS") {
				t.Fatalf("final message does not say %q:\n%s", tc.final, text)
			}
			last := strings.LastIndex(text, tc.final)
			for _, w := range slices.Backward(history[tc.name]) {
				i := strings.LastIndex(text[:last], w)
				if i < 0 {
					t.Fatalf("final message lacks %q before %q:\n%s", w, tc.final, text)
				}
				last = i
			}
			got := h.requesterDMs()
			if len(got) != dms[tc.name] {
				t.Fatalf("%d direct messages to the requester, want %d: %+v", len(got), dms[tc.name], got)
			}
			all, err := h.db.AuditTrail(h.ctx, reqID)
			if err != nil {
				t.Fatal(err)
			}
			told := 0
			for _, e := range all {
				if e.Event == toldEvent {
					told++
				}
			}
			if told != len(got) {
				t.Fatalf("%d %s events for %d direct messages", told, toldEvent, len(got))
			}
			if n := len(got); n > 0 && (!strings.Contains(got[n-1].Text, tc.final) || !strings.Contains(got[n-1].Text, "Your request "+reqID)) {
				t.Fatalf("last message to the requester %q does not say %q", got[n-1].Text, tc.final)
			}
			if strings.Contains(text, "Approval expires") {
				t.Fatalf("the ended request's message still shows the approval deadline:\n%s", text)
			}
			if m.Updated != len(tc.updates) {
				t.Fatalf("message edited %d times, want %d", m.Updated, len(tc.updates))
			}
			var events []string
			for _, u := range h.messageUpdates() {
				events = append(events, u.Event)
			}
			if !slices.Equal(events, tc.updates) {
				t.Fatalf("message updates %q, want %q", events, tc.updates)
			}
			if n := len(h.approvalMessages()); n != 1 {
				t.Fatalf("%d approval messages", n)
			}
		})
	}
}

// TestReminder: when nobody decided by the reminder time (half the approval
// timeout unless the policy says otherwise) the approvers are reminded once,
// in the approval message's thread.
func TestReminder(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		reminderAfter time.Duration
		decideAt      time.Duration // 0: nobody decides
		remindAt      time.Duration // 0: no reminder
	}{
		{name: "half the approval timeout", remindAt: testPolicy.ApprovalTimeout / 2},
		{name: "the policy's reminder time", reminderAfter: 30 * time.Minute, remindAt: 30 * time.Minute},
		{name: "a reminder time past the deadline falls back to half", reminderAfter: 5 * time.Hour, remindAt: testPolicy.ApprovalTimeout / 2},
		{name: "decided before the reminder", decideAt: time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			reqID := "req-remind"
			env := h.env(reqID)
			check := tc.remindAt
			if check == 0 {
				check = testPolicy.ApprovalTimeout / 2
			}
			before := h.slackAt(env, check-time.Minute)
			after := h.slackAt(env, check+time.Minute)
			var dec *updateOutcome
			if tc.decideAt != 0 {
				dec = h.decide(env, tc.decideAt, approve())
			}
			in := input(reqID, domain.ActionDisable2FA)
			h.acts.Settings.Policy.ReminderAfter = tc.reminderAfter
			st := h.run(env, in)

			approval := before.approval(t, "before the reminder time")
			if r := threadOf(before.msgs, approval.TS); len(r) != 0 {
				t.Fatalf("reminded before %v: %+v", check, r)
			}
			got := threadOf(after.msgs, approval.TS)
			final := h.replies(approvalsChannelID, approval.TS)
			if tc.remindAt == 0 {
				dec.mustAccept(t, "approval")
				if st.Status != domain.StatusExecuted || len(got) != 0 || len(final) != 0 || len(h.started("RemindApprovers")) != 0 {
					t.Fatalf("status %s, replies %+v then %+v: no reminder wanted after an early decision", st.Status, got, final)
				}
				return
			}
			if st.Status != domain.StatusExpired {
				t.Fatalf("status %s, want expired", st.Status)
			}
			if len(got) != 1 || len(final) != 1 || final[0].TS != got[0].TS {
				t.Fatalf("replies at %v: %+v; at the end: %+v; want the one reminder", check+time.Minute, got, final)
			}
			r := got[0]
			if r.Channel != approvalsChannelID || r.ThreadTS != approval.TS || !strings.Contains(r.Text, "Still waiting for a senior") ||
				!strings.Contains(r.Text, st.ApprovalDeadline.UTC().Format("2006-01-02 15:04 UTC")) {
				t.Fatalf("reminder %+v, want a reply in the approval thread naming the deadline %v", r, st.ApprovalDeadline)
			}
			if n := len(h.started("RemindApprovers")); n != 1 {
				t.Fatalf("RemindApprovers started %d times", n)
			}
			if n := len(h.approvalMessages()); n != 1 {
				t.Fatalf("%d top-level approval messages: the reminder must go in the thread", n)
			}
		})
	}
}

// threadOf returns the replies to ts among msgs.
func threadOf(msgs []slackstandin.Message, ts string) []slackstandin.Message {
	var out []slackstandin.Message
	for _, m := range msgs {
		if m.ThreadTS == ts {
			out = append(out, m)
		}
	}
	return out
}

// TestSecurityAlerts: security hears about a lockout, a customer's
// cancellation and a break-glass approval, and about nothing else.
func TestSecurityAlerts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		drive  func(t *testing.T, h *harness) workflows.Status
		status domain.Status
		want   []string // what the one alert says; nil: no alert
	}{
		{
			name: "lockout on the fifth wrong PIN",
			drive: func(t *testing.T, h *harness) workflows.Status {
				for i := 1; i <= 5; i++ {
					reqID := "req-alert-" + string(rune('0'+i))
					in := input(reqID, domain.ActionDisable2FA)
					in.PIN = wrongPIN
					env := h.env(reqID)
					oldPath(env) // the web front alerts on the lockouts it checks
					h.run(env, in)
					if got, want := len(h.securityPosts()), min(i/5, 1); got != want {
						t.Fatalf("after wrong PIN %d: %d alerts, want %d", i, got, want)
					}
				}
				in := input("req-alert-6", domain.ActionDisable2FA)
				in.PIN = rightPIN
				env := h.env("req-alert-6")
				oldPath(env)
				return h.run(env, in)
			},
			status: domain.StatusLocked,
			want:   []string{"Customer " + customerID + " is locked until", "after 5 wrong support PINs", "req-alert-5", requesterID},
		},
		{
			name: "customer cancels",
			drive: func(t *testing.T, h *harness) workflows.Status {
				env := h.env("req-alert")
				h.decide(env, time.Hour, approve())
				h.cancel(env, 2*time.Hour, workflows.CancelInput{By: domain.CancelByCustomer, ActorID: customerID})
				return h.run(env, input("req-alert", domain.ActionChangeAccountEmail))
			},
			status: domain.StatusCancelled,
			want:   []string{"Customer " + customerID + " cancelled request req-alert", "change_account_email", requesterID},
		},
		{
			name: "break-glass approval",
			drive: func(t *testing.T, h *harness) workflows.Status {
				env := h.env("req-alert")
				h.decide(env, time.Hour, breakGlass(seniorID, senior2ID, domain.RoleSenior))
				return h.run(env, input("req-alert", domain.ActionChangeAccountEmail))
			},
			status: domain.StatusExecuted,
			want:   []string{"BREAK-GLASS", "req-alert", seniorID, senior2ID},
		},
		{
			name: "senior veto",
			drive: func(t *testing.T, h *harness) workflows.Status {
				env := h.env("req-alert")
				h.decide(env, time.Hour, approve())
				h.cancel(env, 2*time.Hour, workflows.CancelInput{By: domain.CancelBySenior, ActorID: senior2ID, ActorRole: domain.RoleSenior})
				return h.run(env, input("req-alert", domain.ActionChangeAccountEmail))
			},
			status: domain.StatusCancelled,
		},
		{
			name: "withdrawal",
			drive: func(t *testing.T, h *harness) workflows.Status {
				env := h.env("req-alert")
				h.cancel(env, time.Hour, workflows.CancelInput{By: domain.CancelByRequester, ActorID: requesterID, ActorRole: domain.RoleAgent})
				return h.run(env, input("req-alert", domain.ActionChangeAccountEmail))
			},
			status: domain.StatusWithdrawn,
		},
		{
			name: "rejection",
			drive: func(t *testing.T, h *harness) workflows.Status {
				env := h.env("req-alert")
				h.decide(env, time.Hour, workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: seniorID, ApproverRole: domain.RoleSenior, Reason: "no"})
				return h.run(env, input("req-alert", domain.ActionChangeAccountEmail))
			},
			status: domain.StatusRejected,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			st := tc.drive(t, h)
			if st.Status != tc.status {
				t.Fatalf("request ended %s, want %s", st.Status, tc.status)
			}
			posts := h.securityPosts()
			if tc.want == nil {
				if len(posts) != 0 || len(h.started("AlertSecurity")) != 0 {
					t.Fatalf("security alerts %+v for %s", posts, tc.name)
				}
				return
			}
			if len(posts) != 1 || len(h.started("AlertSecurity")) != 1 {
				t.Fatalf("security alerts %+v (AlertSecurity started %d times), want exactly one", posts, len(h.started("AlertSecurity")))
			}
			for _, w := range tc.want {
				if !strings.Contains(posts[0].Text, w) {
					t.Fatalf("security alert %q does not say %q", posts[0].Text, w)
				}
			}
			h.assertNowhere(rightPIN, "the PIN", []workflows.Status{st}, nil, nil)
			h.assertNowhere(wrongPIN, "the wrong PIN", []workflows.Status{st}, nil, nil)
		})
	}
}

// TestBreakGlassApproval: two distinct seniors approve outside Slack; the
// request executes and the audit trail says it was a break-glass approval.
func TestBreakGlassApproval(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	reqID := "req-break-glass"
	env := h.env(reqID)
	dec := h.decide(env, time.Hour, breakGlass(seniorID, senior2ID, domain.RoleSenior))
	st := h.run(env, input(reqID, domain.ActionDisable2FA))

	dec.mustAccept(t, "break-glass approval")
	if d := dec.status.Decision; d == nil || !d.BreakGlass || d.ApproverID != seniorID || d.SecondApproverID != senior2ID {
		t.Fatalf("decide update answered %+v", d)
	}
	if st.Status != domain.StatusExecuted || st.Decision == nil || !st.Decision.BreakGlass || st.Decision.SecondApproverID != senior2ID {
		t.Fatalf("result %s decision %+v, want executed on a break-glass approval", st.Status, st.Decision)
	}
	if done := h.performed(); len(done) != 1 {
		t.Fatalf("panel performed %d actions", len(done))
	}
	h.wantEvents(reqID, executedTrail...)
	passed := eventNamed(t, h.trail(reqID), "gate.approval.passed")
	if passed.Actor != "agent:"+seniorID || passed.Details["break_glass"] != "true" || passed.Details["second_approver"] != senior2ID {
		t.Fatalf("gate.approval.passed %+v, want break_glass=true and the second approver", passed)
	}
	if row := h.projection(reqID); row.ApproverID != seniorID || row.Decision != "approve" {
		t.Fatalf("projection approver %q decision %q", row.ApproverID, row.Decision)
	}
	want := executedSlack
	want.alerts = 1
	h.wantActivities(executedGates, want)
	if posts := h.securityPosts(); len(posts) != 1 || !strings.Contains(posts[0].Text, "BREAK-GLASS") {
		t.Fatalf("security alerts %+v, want the break-glass one", posts)
	}
	if m := h.approvalMessage(reqID, st); len(buttons(t, m)) != 0 || !strings.Contains(shown(t, m), "Executed at") {
		t.Fatalf("approval message after a break-glass approval:\n%s", shown(t, m))
	}
}

// TestSlackTransientFailures: Slack answering 429 or 5xx for a while costs
// retries, never a second message or a stuck request.
func TestSlackTransientFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		method   string
		statuses []int
		calls    map[string]int // Web API calls, failed ones included
		updates  []string       // UpdateApprovalMessage starts, retries included
	}{
		{
			name: "post: 429 then 500", method: "chat.postMessage", statuses: []int{http.StatusTooManyRequests, http.StatusInternalServerError},
			calls:   map[string]int{"chat.postMessage": 3, "chat.update": 3},
			updates: executedSlack.updates,
		},
		{
			name: "update: 500s outlast the client's own retries", method: "chat.update",
			statuses: []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable},
			calls:    map[string]int{"chat.postMessage": 1, "chat.update": 6},
			// The first update fails after three calls; the activity is retried.
			updates: []string{activities.MessageApproved, activities.MessageApproved, activities.MessageNotified, "executed"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.slack.FailNext(tc.method, tc.statuses...)
			reqID := "req-slack-flaky"
			env := h.env(reqID)
			dec := h.decide(env, time.Hour, approve())
			st := h.run(env, input(reqID, domain.ActionReinstallVPS))

			dec.mustAccept(t, "approval")
			if st.Status != domain.StatusExecuted || !st.NotifiedAt.Equal(st.Decision.At) || !st.ExecutedAt.Equal(st.NotifiedAt.Add(testPolicy.CoolingPeriod)) {
				t.Fatalf("status %s: decided %v notified %v executed %v, want executed on time", st.Status, st.Decision.At, st.NotifiedAt, st.ExecutedAt)
			}
			// Besides the approval message, the requester got a direct
			// message when it was approved and when it executed.
			dms := len(h.requesterDMs())
			if dms != 2 {
				t.Fatalf("%d direct messages to the requester, want 2", dms)
			}
			for method, want := range tc.calls {
				got := h.slack.Calls(method)
				if method == "chat.postMessage" {
					got -= dms
				}
				if got != want {
					t.Fatalf("%s called %d times besides the direct messages, want %d", method, got, want)
				}
			}
			if n := len(h.slack.Messages()) - dms; n != 1 {
				t.Fatalf("%d Slack messages besides the direct messages, want exactly the one approval message", n)
			}
			m := h.approvalMessage(reqID, st)
			if len(buttons(t, m)) != 0 || !strings.Contains(shown(t, m), "Executed at") {
				t.Fatalf("final message:\n%s", shown(t, m))
			}
			h.wantEvents(reqID, executedTrail...)
			want := executedSlack
			want.updates = tc.updates
			h.wantActivities(executedGates, want)
		})
	}
}

// TestSlackDown: with Slack failing for good the request still passes its
// gates on a decision sent straight to the workflow and executes on time.
func TestSlackDown(t *testing.T) {
	t.Parallel()
	forever := make([]int, 5000)
	for i := range forever {
		forever[i] = http.StatusInternalServerError
	}
	cases := []struct {
		name       string
		opts       harnessOptions
		fail       bool // chat.postMessage answers 500 to every call
		breakGlass bool
		permanent  bool // Slack's answer cannot heal: each activity tries once
	}{
		// The test environment caps activity attempts at 10, so the message
		// coroutine gives up minutes into the request rather than at the
		// approval deadline; either way no gate waits for it.
		{name: "500s, approval", fail: true},
		{name: "500s, break glass", fail: true, breakGlass: true},
		{name: "wrong bot token, approval", opts: harnessOptions{slackToken: "xoxb-not-the-bot-token"}, permanent: true},
		{name: "wrong bot token, break glass", opts: harnessOptions{slackToken: "xoxb-not-the-bot-token"}, breakGlass: true, permanent: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarnessWith(t, tc.opts)
			if tc.fail {
				h.slack.FailNext("chat.postMessage", forever...)
			}
			reqID := "req-slack-down"
			env := h.env(reqID)
			d := approve()
			if tc.breakGlass {
				d = breakGlass(seniorID, senior2ID, domain.RoleSenior)
			}
			dec := h.decide(env, time.Hour, d)
			st := h.run(env, input(reqID, domain.ActionResendCredentials))

			dec.mustAccept(t, "decision")
			if st.Status != domain.StatusExecuted {
				t.Fatalf("status %s (%s), want executed", st.Status, st.Failure)
			}
			if !st.NotifiedAt.Equal(st.Decision.At) || !st.ExecutedAt.Equal(st.NotifiedAt.Add(testPolicy.CoolingPeriod)) || !st.EndedAt.Equal(st.ExecutedAt) {
				t.Fatalf("decided %v notified %v executed %v ended %v: Slack held up a gate", st.Decision.At, st.NotifiedAt, st.ExecutedAt, st.EndedAt)
			}
			if done := h.performed(); len(done) != 1 {
				t.Fatalf("panel performed %d actions", len(done))
			}
			if msgs := h.slack.Messages(); len(msgs) != 0 {
				t.Fatalf("Slack shows %d messages while it was down", len(msgs))
			}
			if h.slack.Calls("chat.postMessage") == 0 {
				t.Fatal("Slack was never tried")
			}
			if row := h.projection(reqID); row.SlackChannel != "" || row.SlackTS != "" || st.SlackTS != "" {
				t.Fatalf("projection points at %q/%q, status at %q, with no message posted", row.SlackChannel, row.SlackTS, st.SlackTS)
			}
			trail := slices.DeleteFunc(slices.Clone(executedTrailOf(domain.ActionResendCredentials)), func(e string) bool { return e == "slack.approval_posted" })
			h.wantEvents(reqID, trail...)
			if got := h.gateCalls(); !slices.Equal(got, executedGates) {
				t.Fatalf("gate activities %v, want %v", got, executedGates)
			}
			posts, alerts := len(h.started("PostApproval")), len(h.started("AlertSecurity"))
			t.Logf("PostApproval started %d times, AlertSecurity %d times, chat.postMessage called %d times", posts, alerts, h.slack.Calls("chat.postMessage"))
			if tc.permanent && posts != 1 || !tc.permanent && posts < 2 {
				t.Fatalf("PostApproval started %d times (permanent failure: %v)", posts, tc.permanent)
			}
			if n := len(h.started("UpdateApprovalMessage")); n != 0 {
				t.Fatalf("UpdateApprovalMessage started %d times without a message to update", n)
			}
			switch {
			case !tc.breakGlass && alerts != 0:
				t.Fatalf("AlertSecurity started %d times without a reason", alerts)
			case tc.breakGlass && tc.permanent && alerts != 1, tc.breakGlass && !tc.permanent && alerts < 2:
				t.Fatalf("AlertSecurity started %d times (permanent failure: %v)", alerts, tc.permanent)
			}
			token := slackBotToken
			if tc.opts.slackToken != "" {
				token = tc.opts.slackToken
			}
			h.assertNowhere(token, "the Slack bot token", []workflows.Status{st, dec.status}, nil, nil)
		})
	}
}

// TestApprovalPostAbandonedAtEnd: a post Slack keeps refusing is given up
// when the request ends, so no message with live buttons appears for a
// request that no longer waits, and the end does not wait for Slack.
func TestApprovalPostAbandonedAtEnd(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// Five activity attempts of three calls each fail (at 0s, 2s, 6s, 14s
	// and 30s of workflow time); a sixth would come at 62s and post.
	fail := make([]int, 15)
	for i := range fail {
		fail[i] = http.StatusInternalServerError
	}
	h.slack.FailNext("chat.postMessage", fail...)
	reqID := "req-slack-late"
	env := h.env(reqID)
	start := env.Now()
	wd := h.cancel(env, 45*time.Second, workflows.CancelInput{By: domain.CancelByRequester, ActorID: requesterID, ActorRole: domain.RoleAgent, Reason: "wrong server"})
	st := h.run(env, input(reqID, domain.ActionReinstallVPS))

	wd.mustAccept(t, "withdrawal")
	if st.Status != domain.StatusWithdrawn || st.EndedAt.Sub(st.OpenedAt) != 45*time.Second {
		t.Fatalf("status %s ended %v after opening, want withdrawn at 45s", st.Status, st.EndedAt.Sub(st.OpenedAt))
	}
	if done := env.Now().Sub(start); done >= 62*time.Second {
		t.Fatalf("the workflow completed %v after it started: it waited for Slack", done)
	}
	if n := len(h.started("PostApproval")); n != 5 {
		t.Fatalf("PostApproval started %d times, want the 5 that failed before the end", n)
	}
	if msgs, calls := h.slack.Messages(), h.slack.Calls("chat.postMessage"); len(msgs) != 0 || calls != 15 {
		t.Fatalf("Slack got %d postMessage calls and shows %+v, want the 15 refused calls and no message", calls, msgs)
	}
	if n := len(h.started("UpdateApprovalMessage")); n != 0 {
		t.Fatalf("UpdateApprovalMessage started %d times without a message", n)
	}
	if row := h.projection(reqID); row.Status != domain.StatusWithdrawn || row.SlackTS != "" || st.SlackTS != "" {
		t.Fatalf("projection %s slack ts %q, result slack ts %q", row.Status, row.SlackTS, st.SlackTS)
	}
	h.wantEvents(reqID, "request.opened", "gate.pin.verified", "gate.pin.verdict_consumed", "request.policy", "gate.approval.waiting", "request.withdrawn")
}
