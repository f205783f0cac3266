package alertrelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/vigil-oss/vigil/internal/agentauth"
	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/slackstandin"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/testpg"
)

// flaky fails its first n posts, then hands them to next.
type flaky struct {
	n    int
	next Poster
}

func (f *flaky) Security(ctx context.Context, text string) error {
	if f.n > 0 {
		f.n--
		return errors.New("slack is down")
	}
	return f.next.Security(ctx, text)
}

func (f *flaky) Tell(ctx context.Context, user, text string) error {
	if f.n > 0 {
		f.n--
		return errors.New("slack is down")
	}
	return f.next.Tell(ctx, user, text)
}

// TestRelayDeliversQueuedAlerts: a lockout queued by a PIN check in the web
// front reaches the security channel of the Slack stand-in through the real
// Slack client, once, after an outage; a forged id in an alert cannot
// become a mention.
func TestRelayDeliversQueuedAlerts(t *testing.T) {
	ctx := context.Background()
	st := store.New(testpg.New(t))
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	hash, err := pinhash.Hash("246810", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertCustomer(ctx, store.CustomerImport{ID: "C-1", Name: "Ann", PrimaryEmail: "ann@example.test", PINHash: hash}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAgent(ctx, store.Agent{ID: "ag_eve", Name: "Eve", Role: domain.RoleAgent}, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 5 {
		r := store.Request{ID: "req_" + string(rune('a'+i)), WorkflowID: "wf-" + string(rune('a'+i)), Action: domain.ActionDisable2FA,
			CustomerID: "C-1", RequesterID: "ag_eve", Reason: "caller insists"}
		if _, err := st.CheckPINForOpen(ctx, r, "000000", now.Add(time.Duration(i)*time.Second), store.DefaultPINPolicy(), pinhash.Verify); err != nil {
			t.Fatal(err)
		}
	}
	// A refusal of a verdict for a run that claims a forged customer id.
	if _, err := st.ConsumePINVerdict(ctx, store.VerdictClaim{RequestID: "req_a", WorkflowID: "wf-a", RunID: "run-1",
		Action: domain.ActionDisable2FA, CustomerID: "<!channel>", RequesterID: "ag_eve"}, now); err == nil {
		t.Fatal("a forged claim consumed a verdict")
	}

	sl, err := slackstandin.New(slackstandin.Config{BotToken: "xoxb-relay-test", SigningSecret: "relay-signing"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sl.Handler())
	t.Cleanup(srv.Close)
	api := slack.New("xoxb-relay-test", slack.OptionAPIURL(srv.URL+"/api/"), slack.OptionHTTPClient(srv.Client()))
	client := approvals.NewClient(api, approvals.Config{ApprovalsChannel: "#vigil-approvals", SecurityChannel: "#vigil-security"},
		slog.New(slog.DiscardHandler), approvals.WithRetryPolicy(approvals.RetryPolicy{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 1}))
	r := New(st, &flaky{n: 1, next: client}, slog.New(slog.DiscardHandler))
	r.Lease = 50 * time.Millisecond

	if n, err := r.SendPending(ctx); err == nil || n != 0 {
		t.Fatalf("first pass during the outage: %d sent, %v", n, err)
	}
	time.Sleep(2 * r.Lease)
	if n, err := r.SendPending(ctx); err != nil || n != 2 {
		t.Fatalf("after the outage: %d sent, %v; want the lockout and the refusal", n, err)
	}
	if n, err := r.SendPending(ctx); err != nil || n != 0 {
		t.Fatalf("third pass: %d sent, %v; want nothing left", n, err)
	}
	var texts []string
	for _, m := range sl.Messages() {
		if m.Channel == "C0VIGILSECURITY" {
			texts = append(texts, m.Text)
		}
	}
	if len(texts) != 2 {
		t.Fatalf("security channel got %q, want two alerts", texts)
	}
	if !strings.Contains(texts[0], "Customer C-1 is locked until") || !strings.Contains(texts[0], "5 wrong support PINs") ||
		!strings.Contains(texts[0], "opened by ag_eve") {
		t.Fatalf("lockout alert %q", texts[0])
	}
	if !strings.Contains(texts[1], "refused the PIN verdict of request req_a (mismatch: [customer] differ)") ||
		strings.Contains(texts[1], "<!channel>") || !strings.Contains(texts[1], "&lt;!channel&gt;") {
		t.Fatalf("refusal alert %q", texts[1])
	}
}

// TestTextOfEachKind: every kind of alert is worded, with its facts, and a
// fact that could carry mrkdwn is escaped.
func TestTextOfEachKind(t *testing.T) {
	tests := []struct {
		kind    string
		details map[string]any
		want    []string
	}{
		{store.AlertCustomerLocked, map[string]any{"customer": "C-1", "failures": 5, "locked_until": "2026-12-08 10:00 UTC", "request": "req_1", "agent": "ag_a"},
			[]string{"Customer C-1 is locked", "5 wrong support PINs", "req_1", "ag_a"}},
		{store.AlertSlowGuessing, map[string]any{"customer": "C-1", "day_failures": 9, "agent": "ag_a", "request": "req_1"},
			[]string{"Slow PIN guessing", "C-1", "9 wrong"}},
		{store.AlertAgentBlocked, map[string]any{"agent": "ag_a", "failures": 10, "blocked_until": "soon"},
			[]string{"Agent ag_a", "10 wrong"}},
		{store.AlertVerdictRefused, map[string]any{"request": "req_1", "reason": "another customer", "workflow_id": "w"},
			[]string{"refused the PIN verdict of request req_1", "another customer"}},
		{store.AlertEndedOutside, map[string]any{"request": "req_1", "action": "reinstall_vps", "customer": "C-1", "agent": "ag_a", "temporal": "terminated", "was": "cooling"},
			[]string{"Request req_1", "was terminated in Temporal while cooling", "outside Vigil", "marked it failed"}},
		{store.AlertEndedOutside, map[string]any{"request": "<!channel>", "temporal": "*bold* :white_check_mark:"},
			[]string{"&lt;!channel&gt;", "`*bold* :white_check_mark:`"}},
		{store.AlertBreakGlassUnconsented, map[string]any{"request": "req_1", "decision": "approve", "approver_id": "ag_b", "second_approver_id": "ag_c"},
			[]string{"BREAK-GLASS REFUSED", "req_1", "ag_b and ag_c", "without both seniors' consents"}},
		{store.AlertDecisionUnverified, map[string]any{"request": "req_1", "decision": "approve", "approver_id": "ag_b"},
			[]string{"DECISION REFUSED", "req_1", "approve naming ag_b", "never recorded from their Slack click"}},
		{store.AlertAdminAction, map[string]any{"admin": "admin:ag_root", "event": "agent.disabled", "audit_id": 7, "details": map[string]any{"agent_id": "ag_b"}},
			[]string{"Admin action by admin:ag_root: agent.disabled (agent_id=ag_b)", "Audit event 7"}},
		{store.AlertAgentDM, map[string]any{"admin": "admin:ag_root", "event": "agent.token_rotated", "agent": "ag_b"},
			[]string{"admin:ag_root issued a new personal token for your Vigil account ag_b"}},
	}
	for _, tc := range tests {
		got := Text(store.Alert{Kind: tc.kind, Details: tc.details})
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q does not say %q", tc.kind, got, w)
			}
		}
		if strings.HasPrefix(got, "Security alert ") {
			t.Errorf("%s has no wording of its own: %q", tc.kind, got)
		}
	}
}

// TestServerMoveAlertText: a server move reads as one, in words, and says
// what its requests now wait for; an import that created the customer is
// called out.
func TestServerMoveAlertText(t *testing.T) {
	tests := []struct {
		name    string
		details map[string]any
		want    []string
	}{
		{"to a new customer", map[string]any{"server": "srv-1", "from": "C-1042", "to": "C-666", "at": "2026-03-05T14:03:00Z", "new_customer": true},
			[]string{"Server srv-1 was moved from customer C-1042 to customer C-666", "2026-03-05T14:03:00Z", "created by that import", "ageing period"}},
		{"to an existing customer", map[string]any{"server": "srv-2", "from": "C-1", "to": "C-2", "at": "2026-03-05T14:03:00Z", "new_customer": false},
			[]string{"Server srv-2 was moved from customer C-1 to customer C-2", "ageing period"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Text(store.Alert{Kind: store.AlertServerMoved, Details: tt.details})
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("alert %q does not say %q", got, w)
				}
			}
			if tt.details["new_customer"] == false && strings.Contains(got, "created by") {
				t.Errorf("alert %q calls an existing customer new", got)
			}
		})
	}
}

// TestRelayAdminActionsAndDMs: an admin action queued with its audit event
// reaches the security channel naming the admin, and a token rotation
// reaches the agent whose token it was as a direct message, through the
// real Slack client and the stand-in.
func TestRelayAdminActionsAndDMs(t *testing.T) {
	ctx := context.Background()
	st := store.New(testpg.New(t))
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.AuditAdmin(ctx, store.AuditEvent{Actor: "admin:ag_root", Event: "agent.token_rotated",
		Details: map[string]any{"agent_id": "ag_bob", "agent_told": true}}, true, &store.AgentDM{AgentID: "ag_bob", SlackUserID: "U0BOB"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AuditAdmin(ctx, store.AuditEvent{Actor: "admin:ag_root", Event: "agent.created",
		Details: map[string]any{"agent_id": "<!here>", "role": "senior"}}, true, nil); err != nil {
		t.Fatal(err)
	}
	sl, err := slackstandin.New(slackstandin.Config{BotToken: "xoxb-relay-test", SigningSecret: "relay-signing",
		Users: []slackstandin.User{{ID: "U0BOB", Name: "bob", RealName: "Bob Lindqvist"}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sl.Handler())
	t.Cleanup(srv.Close)
	api := slack.New("xoxb-relay-test", slack.OptionAPIURL(srv.URL+"/api/"), slack.OptionHTTPClient(srv.Client()))
	client := approvals.NewClient(api, approvals.Config{ApprovalsChannel: "#vigil-approvals", SecurityChannel: "#vigil-security"},
		slog.New(slog.DiscardHandler), approvals.WithRetryPolicy(approvals.RetryPolicy{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 1}))
	if n, err := New(st, client, slog.New(slog.DiscardHandler)).SendPending(ctx); err != nil || n != 3 {
		t.Fatalf("sent %d, %v; want the two actions and the DM", n, err)
	}
	var security, dm []string
	for _, m := range sl.Messages() {
		switch {
		case m.Channel == "C0VIGILSECURITY":
			security = append(security, m.Text)
		case strings.HasPrefix(m.Channel, "D"):
			dm = append(dm, m.Text)
		}
	}
	if len(security) != 2 || !strings.Contains(security[0], "Admin action by admin:ag_root: agent.token_rotated (agent_id=ag_bob, agent_told=true)") ||
		!strings.Contains(security[1], "agent_id=&lt;!here&gt;") {
		t.Fatalf("security channel got %q", security)
	}
	if len(dm) != 1 || !strings.Contains(dm[0], "admin:ag_root issued a new personal token for your Vigil account ag_bob") {
		t.Fatalf("DMs %q, want one to Bob", dm)
	}
}

// TestRelayTokenOnlyToTheAgent: a token rotated for another agent
// (RotateTokenFor) reaches that agent's Slack DM through the real client and
// the stand-in, never the security channel, and the queue forgets it once
// it is sent.
func TestRelayTokenOnlyToTheAgent(t *testing.T) {
	ctx := context.Background()
	st := store.New(testpg.New(t))
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAgent(ctx, store.Agent{ID: "ag_bob", Name: "Bob", Role: domain.RoleSenior, SlackUserID: "U0BOB"}, nil); err != nil {
		t.Fatal(err)
	}
	tok, err := agentauth.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	e := store.AuditEvent{Actor: "admin:ag_root", Event: "agent.token_rotated", Details: map[string]any{"agent_id": "ag_bob", "agent_told": true, "sent_to": "slack_dm"}}
	if err := st.RotateTokenFor(ctx, e, store.AgentDM{AgentID: "ag_bob", SlackUserID: "U0BOB"}, agentauth.Hash(tok), tok); err != nil {
		t.Fatal(err)
	}
	// A stale Slack id (changed since it was read) sends nothing and changes nothing.
	if err := st.RotateTokenFor(ctx, e, store.AgentDM{AgentID: "ag_bob", SlackUserID: "U0EVE"}, agentauth.Hash("vgl_x"), "vgl_x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotation to a stale Slack id: %v", err)
	}
	if err := st.RotateTokenFor(ctx, e, store.AgentDM{AgentID: "ag_bob"}, agentauth.Hash("vgl_x"), "vgl_x"); !errors.Is(err, store.ErrNoSlackID) {
		t.Fatalf("rotation without a Slack id: %v", err)
	}
	if got, err := st.AgentByTokenHash(ctx, agentauth.Hash(tok)); err != nil || got.ID != "ag_bob" {
		t.Fatalf("the rotated token resolves to %v, %v", got.ID, err)
	}
	sl, err := slackstandin.New(slackstandin.Config{BotToken: "xoxb-relay-test", SigningSecret: "relay-signing",
		Users: []slackstandin.User{{ID: "U0BOB", Name: "bob", RealName: "Bob Lindqvist"}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sl.Handler())
	t.Cleanup(srv.Close)
	api := slack.New("xoxb-relay-test", slack.OptionAPIURL(srv.URL+"/api/"), slack.OptionHTTPClient(srv.Client()))
	client := approvals.NewClient(api, approvals.Config{ApprovalsChannel: "#vigil-approvals", SecurityChannel: "#vigil-security"},
		slog.New(slog.DiscardHandler), approvals.WithRetryPolicy(approvals.RetryPolicy{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 1}))
	if n, err := New(st, client, slog.New(slog.DiscardHandler)).SendPending(ctx); err != nil || n != 2 {
		t.Fatalf("sent %d, %v; want the announcement and the DM", n, err)
	}
	var inDM, elsewhere int
	for _, m := range sl.Messages() {
		if !strings.Contains(m.Text, tok) {
			continue
		}
		if strings.HasPrefix(m.Channel, "D") {
			inDM++
		} else {
			elsewhere++
		}
	}
	if inDM != 1 || elsewhere != 0 {
		t.Fatalf("the token was in %d DMs and %d other messages; want 1 and 0", inDM, elsewhere)
	}
	alerts, err := st.QueuedAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if _, has := a.Details[store.AlertTokenKey]; has || strings.Contains(fmt.Sprint(a.Details), tok) {
			t.Fatalf("alert %d (%s) still holds the token after it was sent", a.ID, a.Kind)
		}
	}
}
