package workflows_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/slack-go/slack"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/domain"
	vmail "github.com/vigil-oss/vigil/internal/mail"
	"github.com/vigil-oss/vigil/internal/mailcatcher"
	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/panelstandin"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/slackstandin"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/testpg"
	"github.com/vigil-oss/vigil/internal/tokens"
	"github.com/vigil-oss/vigil/workflows"
)

// The seeded world every test starts from.
const (
	customerID      = "cus_ada"
	otherCustomerID = "cus_bob"
	serverID        = "srv-1"

	primaryEmail     = "ada@customer.test"
	establishedEmail = "ops@customer.test"   // verified 10 days ago: gets notices
	freshEmail       = "fresh@customer.test" // added yesterday: must not get notices

	requesterID = "ag_requester" // role agent, opens the requests
	seniorID    = "ag_senior"
	senior2ID   = "ag_senior2"
	juniorID    = "ag_junior" // role agent

	// The PINs are long and distinctive so that a scan for them cannot hit
	// a timestamp or a random token by chance.
	rightPIN = "58203917"
	wrongPIN = "44061382"

	panelToken     = "panel-test-token-7f3c9a"
	slackBotToken  = "xoxb-vigil-test-5e1d0b"
	slackSigning   = "slack-signing-test-9a2c4e"
	cancelBaseURL  = "http://127.0.0.1:8080"
	newEmailTarget = "new-address@customer.test"
)

// The Slack workspace the stand-in plays. The stand-in derives a channel's id
// from its name ("#vigil-approvals" -> C0VIGILAPPROVALS), as its own tests pin.
const (
	approvalsChannel   = "#vigil-approvals"
	securityChannel    = "#vigil-security"
	approvalsChannelID = "C0VIGILAPPROVALS"
	securityChannelID  = "C0VIGILSECURITY"

	requesterSlackID = "U0RITA"
	seniorSlackID    = "U0SAM"
	senior2SlackID   = "U0SUE"
	juniorSlackID    = "U0JAY"
)

// testPolicy keeps production's shape with short timings; time skipping
// makes them instant anyway.
var testPolicy = workflows.Policy{
	ApprovalTimeout:    4 * time.Hour,
	CoolingPeriod:      24 * time.Hour,
	NoticeTimeout:      time.Hour,
	ExecuteMaxAttempts: 3,
}

// testWorkerPolicy is the worker's policy of testPolicy's timings, every
// cooling period at testPolicy's (none below its action's floor).
func testWorkerPolicy() activities.PolicySettings {
	cooling := domain.CoolingPeriods{}
	for _, a := range domain.Actions {
		cooling[a] = testPolicy.CoolingPeriod
	}
	return activities.PolicySettings{ApprovalTimeout: testPolicy.ApprovalTimeout, NoticeTimeout: testPolicy.NoticeTimeout,
		ExecuteMaxAttempts: testPolicy.ExecuteMaxAttempts, ReminderAfter: testPolicy.ReminderAfter, Cooling: cooling}
}

// harness is one test's real world: its own database, SMTP server, control
// panel stand-in and the real activities wired to them.
type harness struct {
	t       *testing.T
	ctx     context.Context
	db      *store.Store
	catcher *mailcatcher.Catcher
	panel   *panelstandin.Server
	slack   *slackstandin.Server
	acts    *activities.Activities
	logs    *lockedBuffer

	mu     sync.Mutex
	inputs []activityCall // every activity input and output, JSON-encoded
}

// activityCall is one activity invocation seen by the test environment.
type activityCall struct {
	Name   string
	Input  string
	Output string
}

// harnessOptions vary the wiring for failure scenarios.
type harnessOptions struct {
	panelToken string // the token the Vigil side sends; empty means the right one
	slackToken string // the bot token the Vigil side sends; empty means the right one
}

// newHarness builds the real world for one test: a fresh database with the
// seeded customers and agents, an SMTP server, the panel stand-in and the
// Slack stand-in.
func newHarness(t *testing.T) *harness {
	return newHarnessWith(t, harnessOptions{})
}

// newHarnessWith is newHarness with options.
func newHarnessWith(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &harness{t: t, ctx: ctx, logs: &lockedBuffer{}}
	// Vigil's own logs are kept for the secret scans; the test's stand-ins
	// (mail catcher, panel) play other systems and log elsewhere.
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	otherLogs := slog.New(slog.NewTextHandler(&lockedBuffer{}, nil))

	sqlDB := testpg.New(t)
	h.db = store.New(sqlDB)
	if err := h.db.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	h.seed()

	// A real SMTP server over loopback TCP.
	h.catcher = mailcatcher.New(otherLogs)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for SMTP: %v", err)
	}
	smtpDone := make(chan error, 1)
	go func() { smtpDone <- h.catcher.ServeSMTP(l) }()
	t.Cleanup(func() {
		_ = h.catcher.Close()
		if err := <-smtpDone; err != nil {
			t.Errorf("mail catcher: %v", err)
		}
	})
	sender, err := vmail.NewSender(vmail.SMTPConfig{Addr: l.Addr().String(), From: "vigil@vigil.test", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("mail sender: %v", err)
	}

	// The control panel stand-in over loopback HTTP.
	h.panel, err = panelstandin.New(ctx, sqlDB, panelToken, "", otherLogs)
	if err != nil {
		t.Fatalf("panel stand-in: %v", err)
	}
	srv := httptest.NewServer(h.panel.Handler())
	t.Cleanup(srv.Close)
	token := panelToken
	if o.panelToken != "" {
		token = o.panelToken
	}
	pc, err := panel.NewClient(srv.URL, token, srv.Client())
	if err != nil {
		t.Fatalf("panel client: %v", err)
	}

	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatalf("token key: %v", err)
	}
	signer, err := tokens.NewSigner(key)
	if err != nil {
		t.Fatalf("token signer: %v", err)
	}
	h.acts, err = activities.New(h.db, pc, sender, signer, activities.Settings{
		CancelBaseURL: cancelBaseURL,
		MailFrom:      "Vigil <vigil@vigil.test>",
		SupportEmail:  "support@vigil.test",
		ProductName:   "Vigil Hosting",
		Policy:        testWorkerPolicy(),
	}, logger)
	if err != nil {
		t.Fatalf("activities: %v", err)
	}
	h.acts.Approvals = h.startSlack(o, logger, otherLogs)
	return h
}

// startSlack serves the Slack stand-in over loopback HTTP and returns the real
// Slack client pointed at it. The client retries on its own (no slack-go
// retries), with waits short enough for tests; a 429 still waits the
// Retry-After second the stand-in sends.
func (h *harness) startSlack(o harnessOptions, logger, otherLogs *slog.Logger) *approvals.Client {
	h.t.Helper()
	var err error
	h.slack, err = slackstandin.New(slackstandin.Config{
		BotToken: slackBotToken, SigningSecret: slackSigning,
		Users: []slackstandin.User{
			{ID: requesterSlackID, Name: "rita", RealName: "Rita Requester"},
			{ID: seniorSlackID, Name: "sam", RealName: "Sam Senior"},
			{ID: senior2SlackID, Name: "sue", RealName: "Sue Senior"},
			{ID: juniorSlackID, Name: "jay", RealName: "Jay Junior"},
		},
	}, otherLogs)
	if err != nil {
		h.t.Fatalf("slack stand-in: %v", err)
	}
	srv := httptest.NewServer(h.slack.Handler())
	h.t.Cleanup(srv.Close)
	token := slackBotToken
	if o.slackToken != "" {
		token = o.slackToken
	}
	api := slack.New(token, slack.OptionAPIURL(srv.URL+"/api/"), slack.OptionHTTPClient(srv.Client()))
	return approvals.NewClient(api, approvals.Config{ApprovalsChannel: approvalsChannel, SecurityChannel: securityChannel}, logger,
		approvals.WithRetryPolicy(approvals.RetryPolicy{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Attempts: 3}))
}

// seed adds the customers and agents every scenario uses.
func (h *harness) seed() {
	h.t.Helper()
	now := time.Now()
	hash, err := pinhash.Hash(rightPIN, pinhash.TestParams())
	if err != nil {
		h.t.Fatalf("hash PIN: %v", err)
	}
	tenDaysAgo, yesterday, longAgo := now.Add(-10*24*time.Hour), now.Add(-24*time.Hour), now.Add(-90*24*time.Hour)
	if err := h.db.UpsertCustomer(h.ctx, store.CustomerImport{
		ID: customerID, Name: "Ada Lovelace", PrimaryEmail: primaryEmail, PINHash: hash,
		Contacts: []store.Contact{
			{Email: establishedEmail, AddedAt: longAgo, VerifiedAt: &tenDaysAgo},
			{Email: freshEmail, AddedAt: yesterday, VerifiedAt: &yesterday},
		},
		Servers: []string{serverID},
	}); err != nil {
		h.t.Fatalf("seed customer: %v", err)
	}
	otherHash, err := pinhash.Hash("99887766", pinhash.TestParams())
	if err != nil {
		h.t.Fatalf("hash PIN: %v", err)
	}
	if err := h.db.UpsertCustomer(h.ctx, store.CustomerImport{
		ID: otherCustomerID, Name: "Bob Other", PrimaryEmail: "bob@other.test", PINHash: otherHash, Servers: []string{"srv-9"},
	}); err != nil {
		h.t.Fatalf("seed other customer: %v", err)
	}
	for _, a := range []store.Agent{
		{ID: requesterID, Name: "Rita Requester", Email: "rita@vigil.test", Role: domain.RoleAgent, SlackUserID: requesterSlackID},
		{ID: seniorID, Name: "Sam Senior", Email: "sam@vigil.test", Role: domain.RoleSenior, SlackUserID: seniorSlackID},
		{ID: senior2ID, Name: "Sue Senior", Email: "sue@vigil.test", Role: domain.RoleSenior, SlackUserID: senior2SlackID},
		{ID: juniorID, Name: "Jay Junior", Email: "jay@vigil.test", Role: domain.RoleAgent, SlackUserID: juniorSlackID},
	} {
		if err := h.db.CreateAgent(h.ctx, a, nil); err != nil {
			h.t.Fatalf("seed agent %s: %v", a.ID, err)
		}
	}
}

// input is a well-formed request for action by the requester, as the web
// front starts it: without the PIN, which it checked before the start
// (h.run records that check, with the right PIN, unless the test did).
func input(requestID string, action domain.Action) workflows.Input {
	in := workflows.Input{
		RequestID: requestID, Action: action, CustomerID: customerID, RequesterID: requesterID,
		Reason: "customer called from the number on file", Policy: testPolicy,
	}
	if action.NeedsServer() {
		in.ServerID = serverID
	}
	if action.NeedsEmail() {
		in.Email = newEmailTarget
	}
	return in
}

// rowOf is the request row the web front opens in with.
func rowOf(in workflows.Input) store.Request {
	return store.Request{ID: in.RequestID, WorkflowID: workflows.WorkflowID(in.RequestID), Action: in.Action,
		CustomerID: in.CustomerID, RequesterID: in.RequesterID, ServerID: in.ServerID, Email: in.Email, Reason: in.Reason}
}

// opened does what the web front does when the agent types pin for in:
// it checks the PIN and records the verdict; for a right PIN it then
// writes the row with request.opened and gate.pin.verified, as the
// transaction of the workflow's start does (withRow false: that commit was
// lost, and the workflow's Open activity writes the row).
func (h *harness) opened(in workflows.Input, pin string, withRow bool) store.PINOutcome {
	h.t.Helper()
	now := time.Now()
	out, err := h.db.CheckPINForOpen(h.ctx, rowOf(in), pin, now, store.DefaultPINPolicy(), pinhash.Verify)
	if err != nil {
		h.t.Fatalf("check the PIN of %s: %v", in.RequestID, err)
	}
	if !out.Verified || !withRow {
		return out
	}
	verified := store.AuditEvent{Actor: "system", Event: "gate.pin.verified", At: now, Details: map[string]any{"customer": in.CustomerID}}
	if err := h.db.OpenRequestWith(h.ctx, rowOf(in), []store.AuditEvent{verified}, func(context.Context) error { return nil }); err != nil {
		h.t.Fatalf("open %s: %v", in.RequestID, err)
	}
	return out
}

// hasVerdict reports whether a PIN was checked for request id.
func (h *harness) hasVerdict(id string) bool {
	_, err := h.db.PINVerdictOf(h.ctx, id)
	return err == nil
}

// oldPath makes env run the workflow as requests started before change
// pin-verdict-before-start did: the PIN in the input, checked by VerifyPIN.
// Such runs are older than change policy-from-worker too: their policy is
// their input's.
func oldPath(env *testsuite.TestWorkflowEnvironment) {
	env.OnGetVersion("pin-verdict-before-start", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	env.OnGetVersion("policy-from-worker", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
}

// env builds a time-skipping test environment running the real activities.
func (h *harness) env(requestID string) *testsuite.TestWorkflowEnvironment {
	h.t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.SensitiveRequest, workflow.RegisterOptions{Name: workflows.WorkflowName})
	env.RegisterActivity(h.acts)
	// As the worker does: activity errors that retrying cannot fix are
	// classified on their way to Temporal.
	env.SetFailureConverter(activities.ClassifyingFailureConverter(temporal.GetDefaultFailureConverter()))
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: workflows.WorkflowID(requestID), TaskQueue: workflows.TaskQueue})
	env.SetTestTimeout(2 * time.Minute)
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		h.recordCall(info.ActivityType.Name, args)
	})
	env.SetOnActivityCompletedListener(func(info *activity.Info, result converter.EncodedValue, err error) {
		h.recordResult(info.ActivityType.Name, result)
	})
	return env
}

func (h *harness) recordCall(name string, args converter.EncodedValues) {
	var in any
	switch name {
	case "Open":
		in = &activities.OpenInput{}
	case "VerifyPIN":
		in = &activities.VerifyPINInput{}
	case "ConsumePINVerdict":
		in = &activities.PINVerdictInput{}
	case "Record":
		in = &activities.RecordInput{}
	case "NotifyCustomer":
		in = &activities.NotifyInput{}
	case "NotifyOutcome":
		in = &activities.OutcomeInput{}
	case "Execute":
		in = &activities.ExecuteInput{}
	case "PostApproval", "RemindApprovers":
		in = &activities.ApprovalInput{}
	case "UpdateApprovalMessage":
		in = &activities.MessageUpdate{}
	case "AlertSecurity":
		in = &activities.AlertInput{}
	case "RecordFailure":
		in = &activities.FailureInput{}
	case "RepostApproval":
		in = &activities.RepostInput{}
	case "CheckStanding":
		in = &activities.StandingInput{}
	case "UnnotifiedEstablished":
		in = &activities.UnnotifiedInput{}
	default:
		h.t.Errorf("unexpected activity %s", name)
		return
	}
	if err := args.Get(in); err != nil {
		h.t.Errorf("decode %s input: %v", name, err)
		return
	}
	b, _ := json.Marshal(in)
	h.mu.Lock()
	h.inputs = append(h.inputs, activityCall{Name: name, Input: string(b)})
	h.mu.Unlock()
}

func (h *harness) recordResult(name string, result converter.EncodedValue) {
	if result == nil || !result.HasValue() {
		return
	}
	var v any
	if err := result.Get(&v); err != nil {
		h.t.Errorf("decode %s result: %v", name, err)
		return
	}
	b, _ := json.Marshal(v)
	h.mu.Lock()
	h.inputs = append(h.inputs, activityCall{Name: name, Output: string(b)})
	h.mu.Unlock()
}

// calls returns the activities started so far, by name, in order.
func (h *harness) calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.inputs {
		if c.Input != "" {
			out = append(out, c.Name)
		}
	}
	return out
}

// slackActivities are the approval gate's Slack side. They run beside the
// gates' activities, so their start order relative to those is not fixed and
// wantActivities checks them apart.
var slackActivities = []string{"PostApproval", "UpdateApprovalMessage", "RemindApprovers", "AlertSecurity"}

// gateCalls returns the activities started so far without the Slack ones, in order.
func (h *harness) gateCalls() []string {
	var out []string
	for _, c := range h.calls() {
		if !slices.Contains(slackActivities, c) {
			out = append(out, c)
		}
	}
	return out
}

// started returns the JSON input of every start (retries included) of the
// activity name, in order.
func (h *harness) started(name string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, c := range h.inputs {
		if c.Name == name && c.Input != "" {
			out = append(out, c.Input)
		}
	}
	return out
}

// messageUpdates returns the input of every UpdateApprovalMessage start.
func (h *harness) messageUpdates() []activities.MessageUpdate {
	h.t.Helper()
	var out []activities.MessageUpdate
	for _, raw := range h.started("UpdateApprovalMessage") {
		var u activities.MessageUpdate
		if err := json.Unmarshal([]byte(raw), &u); err != nil {
			h.t.Fatalf("decode UpdateApprovalMessage input: %v", err)
		}
		out = append(out, u)
	}
	return out
}

// slackWant is what the Slack side of one request should have started.
type slackWant struct {
	posted    bool     // PostApproval ran once, right after the approval gate opened
	updates   []string // the approval message's updates (MessageUpdate.Event), in order
	reminders int
	alerts    int
}

// wantActivities checks the gates' activities in order and the Slack ones
// apart: each message update must follow the gate that caused it.
func (h *harness) wantActivities(gates []string, want slackWant) {
	h.t.Helper()
	if got := h.gateCalls(); !slices.Equal(got, gates) {
		h.t.Fatalf("gate activities %v, want %v", got, gates)
	}
	posts := 0
	if want.posted {
		posts = 1
	}
	if got := len(h.started("PostApproval")); got != posts {
		h.t.Fatalf("PostApproval started %d times, want %d (all: %v)", got, posts, h.calls())
	}
	if got := len(h.started("RemindApprovers")); got != want.reminders {
		h.t.Fatalf("RemindApprovers started %d times, want %d", got, want.reminders)
	}
	if got := len(h.started("AlertSecurity")); got != want.alerts {
		h.t.Fatalf("AlertSecurity started %d times, want %d", got, want.alerts)
	}
	var events []string
	for _, u := range h.messageUpdates() {
		events = append(events, u.Event)
	}
	if !slices.Equal(events, want.updates) {
		h.t.Fatalf("approval message updates %q, want %q", events, want.updates)
	}

	// Order against the Records that moved the request.
	h.mu.Lock()
	defer h.mu.Unlock()
	var recorded []string // Record events started so far
	updates := 0
	for _, c := range h.inputs {
		if c.Input == "" {
			continue
		}
		switch c.Name {
		case "Record":
			var in activities.RecordInput
			if err := json.Unmarshal([]byte(c.Input), &in); err != nil {
				h.t.Fatalf("decode Record input: %v", err)
			}
			recorded = append(recorded, in.Event)
		case "RecordFailure":
			// The failure's own record, after a gate failed for good.
			recorded = append(recorded, "request.failed")
		case "PostApproval":
			if len(recorded) == 0 || recorded[len(recorded)-1] != "gate.approval.waiting" {
				h.t.Fatalf("PostApproval started after Records %q, want right after gate.approval.waiting", recorded)
			}
		case "UpdateApprovalMessage":
			var u activities.MessageUpdate
			if err := json.Unmarshal([]byte(c.Input), &u); err != nil {
				h.t.Fatalf("decode UpdateApprovalMessage input: %v", err)
			}
			cause := "request." + u.Event
			switch u.Event {
			case activities.MessageApproved:
				cause = "gate.approval.passed"
			case activities.MessageNotified:
				cause = "gate.notice.sent"
			}
			if !slices.Contains(recorded, cause) {
				h.t.Fatalf("message update %d (%s) started before %s was recorded (Records so far %q)", updates, u.Event, cause, recorded)
			}
			updates++
		}
	}
}

// channelMessages returns the stand-in's messages in channel (an id), in post order.
func (h *harness) channelMessages(channel string) []slackstandin.Message {
	var out []slackstandin.Message
	for _, m := range h.slack.Messages() {
		if m.Channel == channel {
			out = append(out, m)
		}
	}
	return out
}

// requesterDMs returns the app's direct messages to the requester, in order
// (the stand-in names a user's DM channel D + the id without its U).
func (h *harness) requesterDMs() []slackstandin.Message {
	return h.channelMessages("D" + strings.TrimLeft(requesterSlackID, "UW"))
}

// securityPosts returns the messages in the security channel.
func (h *harness) securityPosts() []slackstandin.Message {
	return h.channelMessages(securityChannelID)
}

// approvalMessages returns the top-level messages of the approvals channel.
func (h *harness) approvalMessages() []slackstandin.Message {
	var out []slackstandin.Message
	for _, m := range h.channelMessages(approvalsChannelID) {
		if m.ThreadTS == "" {
			out = append(out, m)
		}
	}
	return out
}

// approvalMessage returns the one approval message of the test's request and
// checks the projection and the result point at it.
func (h *harness) approvalMessage(requestID string, st workflows.Status) slackstandin.Message {
	h.t.Helper()
	msgs := h.approvalMessages()
	if len(msgs) != 1 {
		h.t.Fatalf("%d approval messages in %s, want exactly 1: %+v", len(msgs), approvalsChannel, msgs)
	}
	m := msgs[0]
	row := h.projection(requestID)
	if row.SlackChannel != approvalsChannelID || row.SlackTS != m.TS {
		h.t.Fatalf("projection points at %q/%q, the message is %s/%s", row.SlackChannel, row.SlackTS, m.Channel, m.TS)
	}
	if st.SlackChannel != m.Channel || st.SlackTS != m.TS {
		h.t.Fatalf("workflow status points at %q/%q, the message is %s/%s", st.SlackChannel, st.SlackTS, m.Channel, m.TS)
	}
	return m
}

// slackSnapshot is the Slack workspace as it stood at a workflow time.
type slackSnapshot struct {
	taken bool
	msgs  []slackstandin.Message
}

// slackAt copies the stand-in's messages after delay of workflow time. The
// test clock does not skip ahead while an activity runs, so every Slack
// activity started before then has finished.
func (h *harness) slackAt(env *testsuite.TestWorkflowEnvironment, delay time.Duration) *slackSnapshot {
	s := &slackSnapshot{}
	env.RegisterDelayedCallback(func() {
		s.taken = true
		s.msgs = h.slack.Messages()
	}, delay)
	return s
}

// approval returns the one top-level message of the approvals channel in the snapshot.
func (s *slackSnapshot) approval(t *testing.T, when string) slackstandin.Message {
	t.Helper()
	if !s.taken {
		t.Fatalf("Slack snapshot %s was never taken", when)
	}
	var top []slackstandin.Message
	for _, m := range s.msgs {
		if m.Channel == approvalsChannelID && m.ThreadTS == "" {
			top = append(top, m)
		}
	}
	if len(top) != 1 {
		t.Fatalf("%s: %d approval messages, want 1: %+v", when, len(top), top)
	}
	return top[0]
}

// replies returns the messages in the thread of the message at ts.
func (h *harness) replies(channel, ts string) []slackstandin.Message {
	var out []slackstandin.Message
	for _, m := range h.channelMessages(channel) {
		if m.ThreadTS == ts {
			out = append(out, m)
		}
	}
	return out
}

// msgButton is a button of a Slack message.
type msgButton struct {
	ActionID string `json:"action_id"`
	Value    string `json:"value"`
}

// buttons lists a message's buttons in order.
func buttons(t *testing.T, m slackstandin.Message) []msgButton {
	t.Helper()
	if len(m.Blocks) == 0 {
		return nil
	}
	var blocks []struct {
		Type     string `json:"type"`
		Elements []struct {
			Type string `json:"type"`
			msgButton
		} `json:"elements"`
	}
	if err := json.Unmarshal(m.Blocks, &blocks); err != nil {
		t.Fatalf("blocks of message %s: %v", m.TS, err)
	}
	var out []msgButton
	for _, b := range blocks {
		for _, e := range b.Elements {
			if b.Type == "actions" && e.Type == "button" {
				out = append(out, e.msgButton)
			}
		}
	}
	return out
}

// shown is everything a person reads in a message: its text and every text
// object in its blocks.
func shown(t *testing.T, m slackstandin.Message) string {
	t.Helper()
	parts := []string{m.Text}
	if len(m.Blocks) > 0 {
		var v any
		if err := json.Unmarshal(m.Blocks, &v); err != nil {
			t.Fatalf("blocks of message %s: %v", m.TS, err)
		}
		var walk func(any)
		walk = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				if s, ok := x["text"].(string); ok {
					parts = append(parts, s)
				}
				for _, c := range x {
					walk(c)
				}
			case []any:
				for _, c := range x {
					walk(c)
				}
			}
		}
		walk(v)
	}
	return strings.Join(parts, "\n")
}

// run executes the workflow to its end and returns its result.
func (h *harness) run(env *testsuite.TestWorkflowEnvironment, in workflows.Input) workflows.Status {
	h.t.Helper()
	if in.PIN == "" && !h.hasVerdict(in.RequestID) {
		h.opened(in, rightPIN, true)
	}
	env.ExecuteWorkflow(workflows.WorkflowName, in)
	if !env.IsWorkflowCompleted() {
		h.t.Fatalf("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		h.t.Fatalf("workflow error: %v", err)
	}
	var st workflows.Status
	if err := env.GetWorkflowResult(&st); err != nil {
		h.t.Fatalf("workflow result: %v", err)
	}
	return st
}

// updateOutcome collects what the test environment reported for one Update.
type updateOutcome struct {
	sent     bool
	accepted bool
	rejected error
	done     bool
	status   workflows.Status
	err      error
}

// update sends an Update after delay of workflow time.
func (h *harness) update(env *testsuite.TestWorkflowEnvironment, delay time.Duration, name string, arg any) *updateOutcome {
	out := &updateOutcome{}
	env.RegisterDelayedCallback(func() {
		out.sent = true
		env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
			OnAccept: func() { out.accepted = true },
			OnReject: func(err error) { out.rejected = err },
			OnComplete: func(v any, err error) {
				out.done = true
				out.err = err
				if st, ok := v.(workflows.Status); ok {
					out.status = st
				}
			},
		}, arg)
	}, delay)
	return out
}

func (h *harness) decide(env *testsuite.TestWorkflowEnvironment, delay time.Duration, d workflows.DecideInput) *updateOutcome {
	if d.BreakGlass {
		h.consentBreakGlass(env, delay, d)
	} else {
		h.recordClick(env, delay, d)
	}
	return h.update(env, delay, workflows.UpdateDecide, d)
}

// recordClick records, just before an ordinary decision is sent, the Slack
// click the web front would have recorded (the worker checks it in
// Postgres). A decision naming no agent or request the store knows records
// nothing; the workflow's validator or the worker then refuses it, which
// is what those tests look for.
func (h *harness) recordClick(env *testsuite.TestWorkflowEnvironment, delay time.Duration, d workflows.DecideInput) {
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.QueryStatus)
		if err != nil {
			return
		}
		var st workflows.Status
		if v.Get(&st) != nil {
			return
		}
		// The workflow's clock: the worker compares the decision's time
		// with the record's.
		_ = h.db.RecordSlackDecision(h.ctx, store.SlackDecision{RequestID: st.RequestID, AgentID: d.ApproverID,
			Decision: d.Decision, SlackUser: "U_TEST", ActionTS: "harness", RecordedAt: env.Now()})
	}, delay)
}

// consentBreakGlass records, just before a break-glass decision is sent, the
// two seniors' consents the web front would have recorded (the worker
// checks the pair in Postgres). The store refuses a consent that is not a
// senior's or not distinct; the workflow's validator then refuses the
// decision, which is what those tests look for.
func (h *harness) consentBreakGlass(env *testsuite.TestWorkflowEnvironment, delay time.Duration, d workflows.DecideInput) {
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(workflows.QueryStatus)
		if err != nil {
			return
		}
		var st workflows.Status
		if v.Get(&st) != nil {
			return
		}
		for _, agent := range []string{d.ApproverID, d.SecondApproverID} {
			// The workflow's clock: the worker compares the decision's
			// time with the consents'.
			_, _ = h.db.ConsentBreakGlass(h.ctx, store.BreakGlassConsent{RequestID: st.RequestID, AgentID: agent,
				Decision: d.Decision, Reason: "Slack is down (test)"}, 15*time.Minute, env.Now(), "")
		}
	}, delay)
}

func (h *harness) cancel(env *testsuite.TestWorkflowEnvironment, delay time.Duration, c workflows.CancelInput) *updateOutcome {
	return h.update(env, delay, workflows.UpdateCancel, c)
}

// approve is the ordinary approval by the first senior.
func approve() workflows.DecideInput {
	return workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: seniorID, ApproverRole: domain.RoleSenior}
}

// queryResult is a status Query answer taken at a given workflow time.
type queryResult struct {
	taken  bool
	at     time.Time // the environment's clock when the query ran
	status workflows.Status
	raw    string
	err    error
}

// queryAt runs the status Query after delay of workflow time.
func (h *harness) queryAt(env *testsuite.TestWorkflowEnvironment, delay time.Duration) *queryResult {
	q := &queryResult{}
	env.RegisterDelayedCallback(func() {
		q.taken = true
		q.at = env.Now()
		v, err := env.QueryWorkflow(workflows.QueryStatus)
		if err != nil {
			q.err = err
			return
		}
		if err := v.Get(&q.status); err != nil {
			q.err = err
			return
		}
		b, _ := json.Marshal(q.status)
		q.raw = string(b)
	}, delay)
	return q
}

func (q *queryResult) check(t *testing.T, want domain.Status) workflows.Status {
	t.Helper()
	if !q.taken {
		t.Fatalf("query for %s was never taken", want)
	}
	if q.err != nil {
		t.Fatalf("query: %v", q.err)
	}
	if q.status.Status != want {
		t.Fatalf("query status = %s, want %s", q.status.Status, want)
	}
	return q.status
}

func (u *updateOutcome) mustAccept(t *testing.T, what string) {
	t.Helper()
	switch {
	case !u.sent:
		t.Fatalf("%s: update was never sent", what)
	case u.rejected != nil:
		t.Fatalf("%s: update rejected: %v", what, u.rejected)
	case !u.accepted || !u.done:
		t.Fatalf("%s: update accepted=%v completed=%v", what, u.accepted, u.done)
	case u.err != nil:
		t.Fatalf("%s: update failed: %v", what, u.err)
	}
}

// mustReject checks the validator refused the update with refusal type typ
// and a message containing msg.
func (u *updateOutcome) mustReject(t *testing.T, what, typ, msg string) {
	t.Helper()
	if !u.sent {
		t.Fatalf("%s: update was never sent", what)
	}
	if u.rejected == nil {
		t.Fatalf("%s: update was accepted (done=%v status=%s), want refusal %s", what, u.done, u.status.Status, typ)
	}
	if u.accepted || u.done {
		t.Fatalf("%s: refused update also reported accepted=%v completed=%v", what, u.accepted, u.done)
	}
	var app *temporal.ApplicationError
	if !errors.As(u.rejected, &app) {
		t.Fatalf("%s: refusal %v (%T) is not an ApplicationError", what, u.rejected, u.rejected)
	}
	if app.Type() != typ {
		t.Fatalf("%s: refusal type = %q (%v), want %q", what, app.Type(), u.rejected, typ)
	}
	if !strings.Contains(u.rejected.Error(), msg) {
		t.Fatalf("%s: refusal %q does not say %q", what, u.rejected.Error(), msg)
	}
}

// events returns the request's audit event names in order.
func (h *harness) events(requestID string) []string {
	h.t.Helper()
	trail, err := h.db.AuditTrail(h.ctx, requestID)
	if err != nil {
		h.t.Fatalf("audit trail: %v", err)
	}
	var out []string
	for _, e := range gateEvents(trail) {
		out = append(out, e.Event)
	}
	return out
}

// toldEvent records a direct message to the requester. Those messages go
// out from the approval message's updates, which run beside the gates, so
// where they land in the trail is not fixed; TestApprovalMessageFollowsRequest
// checks them. gateEvents leaves them out of the trails the other tests
// compare.
const toldEvent = "slack.requester_told"

// webFrontEvents are written by the web front, not the workflow: the two
// seniors' break-glass consents and their pairing (consentBreakGlass plays
// them), and a Slack decision's record (recordClick plays it). They come
// before the decision and are checked by the store's own tests and e2e.
var webFrontEvents = []string{"break_glass.consented", "decision.break_glass", "decision.slack"}

func gateEvents(trail []store.AuditEvent) []store.AuditEvent {
	var out []store.AuditEvent
	for _, e := range trail {
		if e.Event != toldEvent && !slices.Contains(webFrontEvents, e.Event) {
			out = append(out, e)
		}
	}
	return out
}

// trail returns the request's audit events.
func (h *harness) trail(requestID string) []store.AuditEvent {
	h.t.Helper()
	trail, err := h.db.AuditTrail(h.ctx, requestID)
	if err != nil {
		h.t.Fatalf("audit trail: %v", err)
	}
	return gateEvents(trail)
}

func (h *harness) wantEvents(requestID string, want ...string) {
	h.t.Helper()
	if got := h.events(requestID); !slices.Equal(got, want) {
		h.t.Fatalf("audit events of %s:\n got  %q\n want %q", requestID, got, want)
	}
}

// projection returns the request row the activities keep in Postgres.
func (h *harness) projection(requestID string) store.Request {
	h.t.Helper()
	r, err := h.db.Request(h.ctx, requestID)
	if err != nil {
		h.t.Fatalf("request row %s: %v", requestID, err)
	}
	return r
}

// sentMail is a delivered message with the headers tests look at.
type sentMail struct {
	To      []string
	Subject string
	Kind    string
	Request string
	Text    string
	HTML    string
	Raw     string
}

// mails returns the delivered messages of one kind for one request, in the
// order they arrived.
func (h *harness) mails(requestID, kind string) []sentMail {
	h.t.Helper()
	var out []sentMail
	for _, m := range h.catcher.Messages() {
		sm := h.parseMail(m)
		if sm.Request == requestID && (kind == "" || sm.Kind == kind) {
			out = append(out, sm)
		}
	}
	return out
}

func (h *harness) parseMail(m mailcatcher.Message) sentMail {
	h.t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		h.t.Fatalf("parse delivered message %d: %v", m.ID, err)
	}
	text, html, err := mailcatcher.Parts(m.Raw)
	if err != nil {
		h.t.Fatalf("parts of message %d: %v", m.ID, err)
	}
	return sentMail{
		To: m.To, Subject: m.Subject, Kind: msg.Header.Get("X-Vigil-Kind"), Request: msg.Header.Get("X-Vigil-Request"),
		Text: text, HTML: html, Raw: string(m.Raw),
	}
}

// recipients lists the envelope recipients of msgs, sorted.
func recipients(msgs []sentMail) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.To...)
	}
	slices.Sort(out)
	return out
}

// performed returns the actions the panel stand-in actually carried out.
func (h *harness) performed() []panelstandin.Call {
	h.t.Helper()
	done, err := h.panel.Performed(h.ctx)
	if err != nil {
		h.t.Fatalf("panel performed: %v", err)
	}
	return done
}

// panelCalls returns every call the panel stand-in received.
func (h *harness) panelCalls() []panelstandin.Call {
	h.t.Helper()
	calls, err := h.panel.Calls(h.ctx)
	if err != nil {
		h.t.Fatalf("panel calls: %v", err)
	}
	return calls
}

// assertNowhere fails if secret appears in any place a person or another
// system could read: the workflow result, Query answers, activity inputs
// (VerifyPIN's aside, which must carry the PIN) and outputs, every row of
// Vigil's request tables, the delivered mail (except where allowedIn says
// the secret belongs), every Slack message and Vigil's logs.
func (h *harness) assertNowhere(secret, what string, results []workflows.Status, queries []*queryResult, allowedIn func(sentMail) bool) {
	h.t.Helper()
	if secret == "" {
		h.t.Fatalf("assertNowhere(%s): empty secret", what)
	}
	for i, st := range results {
		b, _ := json.Marshal(st)
		if strings.Contains(string(b), secret) || strings.Contains(fmt.Sprintf("%+v", st), secret) {
			h.t.Errorf("%s appears in workflow result %d", what, i)
		}
	}
	for i, q := range queries {
		if q.raw == "" && q.taken {
			h.t.Errorf("query %d returned nothing to scan", i)
		}
		if strings.Contains(q.raw, secret) {
			h.t.Errorf("%s appears in status query %d", what, i)
		}
	}
	h.mu.Lock()
	for _, c := range h.inputs {
		if c.Name == "VerifyPIN" && c.Input != "" {
			continue
		}
		if strings.Contains(c.Input, secret) || strings.Contains(c.Output, secret) {
			h.t.Errorf("%s appears in activity %s (input %d bytes, output %d bytes)", what, c.Name, len(c.Input), len(c.Output))
		}
	}
	h.mu.Unlock()
	for _, table := range []string{"requests", "audit_events", "executions", "cancel_tokens"} {
		rows, err := h.db.DB().QueryContext(h.ctx, `SELECT row_to_json(t)::text FROM `+table+` t`)
		if err != nil {
			h.t.Fatalf("scan %s: %v", table, err)
		}
		for rows.Next() {
			var row string
			if err := rows.Scan(&row); err != nil {
				h.t.Fatalf("scan %s: %v", table, err)
			}
			if strings.Contains(row, secret) {
				h.t.Errorf("%s appears in table %s", what, table)
			}
		}
		if err := rows.Close(); err != nil {
			h.t.Fatalf("scan %s: %v", table, err)
		}
	}
	for _, m := range h.catcher.Messages() {
		sm := h.parseMail(m)
		if allowedIn != nil && allowedIn(sm) {
			continue
		}
		if strings.Contains(sm.Raw, secret) || strings.Contains(sm.Text, secret) || strings.Contains(sm.HTML, secret) {
			h.t.Errorf("%s appears in %s mail %q to %v", what, sm.Kind, m.Subject, m.To)
		}
	}
	for _, m := range h.slack.Messages() {
		if strings.Contains(m.Text, secret) || strings.Contains(string(m.Blocks), secret) {
			h.t.Errorf("%s appears in Slack message %s/%s", what, m.Channel, m.TS)
		}
	}
	if strings.Contains(h.logs.String(), secret) {
		h.t.Errorf("%s appears in the logs", what)
	}
}

// lockedBuffer is a log sink shared by goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
