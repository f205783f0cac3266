package slackapp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/workflows"
)

const otherRequestID = "req_b8n2c5t1r6y4u9h3"

// TestClickNamingAnotherRequestsMessage presses, with the real slack-go
// client behind the stand-in and signed payloads, a button whose value names
// request A (requestID) while its channel/ts name live request B's approval
// message, or a message no request owns. Nothing may change: no decision, no
// message update, B's buttons stay.
func TestClickNamingAnotherRequestsMessage(t *testing.T) {
	notHere := "This button does not belong to the approval message of " + requestID + "."
	tests := []struct {
		name      string
		bChannel  string // where B's approval message is posted
		setup     func(e *env, bCh, bTS string)
		clickCh   func(e *env, bCh, bTS string) (string, string) // the channel/ts the click carries
		names     string                                         // the request the button names
		ephemeral string
		audit     wantAudit
		logged    bool // the log says which request owns the clicked message
	}{
		{
			name: "both other: B's message in another channel", bChannel: "#elsewhere",
			clickCh: func(e *env, bCh, bTS string) (string, string) { return bCh, bTS },
			names:   requestID, ephemeral: notHere, logged: true,
			audit: wantAudit{requestID, "slack:" + userBob, "wrong_message"},
		},
		{
			name: "same channel, other ts: B's message next to A's", bChannel: "#vigil-approvals",
			clickCh: func(e *env, bCh, bTS string) (string, string) { return bCh, bTS },
			names:   requestID, ephemeral: notHere, logged: true,
			audit: wantAudit{requestID, "slack:" + userBob, "wrong_message"},
		},
		{
			// B's message recorded in another channel at A's ts.
			name: "other channel, same ts", bChannel: "#elsewhere",
			setup: func(e *env, bCh, bTS string) {
				e.exec(`UPDATE requests SET slack_ts = $1 WHERE id = $2`, e.ts, otherRequestID)
			},
			clickCh: func(e *env, bCh, bTS string) (string, string) { return bCh, e.ts },
			names:   requestID, ephemeral: notHere, logged: true,
			audit: wantAudit{requestID, "slack:" + userBob, "wrong_message"},
		},
		{
			name: "A's message not recorded yet", bChannel: "#vigil-approvals",
			setup: func(e *env, bCh, bTS string) {
				e.exec(`UPDATE requests SET slack_channel = NULL, slack_ts = NULL WHERE id = $1`, requestID)
			},
			clickCh: func(e *env, bCh, bTS string) (string, string) { return bCh, bTS },
			names:   requestID, ephemeral: notHere,
			audit: wantAudit{requestID, "slack:" + userBob, "wrong_message"},
		},
		{
			// A ended without a recorded message: a click on a message of
			// its own would retire that stray, but B's message is not A's.
			name: "A ended with no message recorded", bChannel: "#vigil-approvals",
			setup: func(e *env, bCh, bTS string) {
				e.exec(`UPDATE requests SET slack_channel = NULL, slack_ts = NULL, status = 'expired', ended_at = now() WHERE id = $1`, requestID)
			},
			clickCh: func(e *env, bCh, bTS string) (string, string) { return bCh, bTS },
			names:   requestID, ephemeral: notHere, logged: true,
			audit: wantAudit{requestID, "slack:" + userBob, "wrong_message"},
		},
		{
			name: "unknown request", bChannel: "#vigil-approvals",
			clickCh:   func(e *env, bCh, bTS string) (string, string) { return bCh, bTS },
			names:     "req_nosuchrequest000",
			ephemeral: "This button does not belong to the approval message of req_nosuchrequest000: Vigil has no such request.",
			audit:     wantAudit{"", "slack:" + userBob, "unknown_request"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dec := &recordingDecider{}
			e := newEnv(t, Config{}, dec)
			bCh, bTS := e.postRequest(otherRequestID, "srv-88", tc.bChannel)
			if tc.setup != nil {
				tc.setup(e, bCh, bTS)
			}
			before := e.rowsOf(requestID, otherRequestID)
			updatesBefore := e.standin.Calls("chat.update")

			ch, ts := tc.clickCh(e, bCh, bTS)
			// The stand-in builds the click from a message it holds; the
			// button value and the channel/ts are then set as the case says,
			// and the payload is signed again, as Slack would sign it.
			c := e.capture(bCh, bTS, approvals.ActionApprove, userBob)
			body := e.mutate(c.body, func(p map[string]any) {
				p["actions"].([]any)[0].(map[string]any)["value"] = tc.names
				p["channel"].(map[string]any)["id"] = ch
				p["container"].(map[string]any)["channel_id"] = ch
				p["container"].(map[string]any)["message_ts"] = ts
			})
			if got := e.sendSigned(body, time.Now()); got != 200 {
				t.Errorf("status = %d, want 200", got)
			}
			e.drain()

			if calls := dec.Calls(); len(calls) != 0 {
				t.Errorf("decider called: %+v", calls)
			}
			if n := e.standin.Calls("chat.update") - updatesBefore; n != 0 {
				t.Errorf("%d chat.update calls, want none", n)
			}
			for _, m := range e.standin.Messages() {
				if m.Channel == bCh && m.TS == bTS && (m.Updated != 0 || !strings.Contains(string(m.Blocks), `"actions"`)) {
					t.Errorf("B's approval message changed: %+v", m)
				}
			}
			if after := e.rowsOf(requestID, otherRequestID); after != before {
				t.Errorf("request rows changed:\n before %s\n after  %s", before, after)
			}
			eph := e.standin.Ephemerals(userBob)
			if len(eph) != 1 || eph[0].Text != tc.ephemeral || eph[0].Channel != ch {
				t.Errorf("ephemerals to bob = %+v, want one in %s saying %q", eph, ch, tc.ephemeral)
			}
			rows := e.auditRows()
			if len(rows) != 1 || rows[0].event != "slack.click_refused" || rows[0].requestID != tc.audit.requestID ||
				rows[0].actor != tc.audit.actor || rows[0].details["code"] != tc.audit.code {
				t.Errorf("audit rows = %+v, want one %+v", rows, tc.audit)
			}
			logs := e.logs.String()
			if got := strings.Contains(logs, "message_of="+otherRequestID); got != tc.logged {
				t.Errorf("log names B as the message's owner: %v, want %v\n%s", got, tc.logged, logs)
			}
			if strings.Contains(logs, signingSecret) || strings.Contains(logs, botToken) {
				t.Errorf("log carries a secret:\n%s", logs)
			}
		})
	}
}

// postRequest posts a second request's approval message to channel and
// stores the request with that message recorded, as the workflow does.
func (e *env) postRequest(id, server, channel string) (string, string) {
	e.t.Helper()
	c := e.slack
	if channel != "#vigil-approvals" {
		api := slack.New(botToken, slack.OptionAPIURL(e.standinURL+"/api/"))
		c = approvals.NewClient(api, approvals.Config{ApprovalsChannel: channel}, nil, approvals.WithRetryPolicy(fastRetry))
	}
	ch, ts, err := c.PostApproval(context.Background(), approvals.Request{
		ID: id, Action: domain.ActionResendCredentials, CustomerID: "C-1042", ServerID: server,
		RequesterSlackID: userAlice, Reason: "customer called", ExpiresAt: time.Now().Add(time.Hour), CoolingPeriod: time.Hour,
	})
	if err != nil {
		e.fatalf("post approval of %s: %v", id, err)
	}
	e.exec(`INSERT INTO customer_servers (customer_id, server_id) VALUES ('C-1042', $1) ON CONFLICT DO NOTHING`, server)
	if err := e.st.CreateRequest(context.Background(), store.Request{
		ID: id, WorkflowID: workflows.WorkflowID(id), Action: domain.ActionResendCredentials,
		CustomerID: "C-1042", RequesterID: "ag_alice", ServerID: server, Reason: "customer called",
		Status: domain.StatusAwaitingApproval, SlackChannel: ch, SlackTS: ts,
	}); err != nil {
		e.fatalf("request %s: %v", id, err)
	}
	return ch, ts
}

// exec runs a statement on the test database.
func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.st.DB().Exec(q, args...); err != nil {
		e.fatalf("%s: %v", q, err)
	}
}

// rowsOf renders the named requests' rows, for a before/after comparison.
func (e *env) rowsOf(ids ...string) string {
	e.t.Helper()
	var b strings.Builder
	for _, id := range ids {
		var row string
		if err := e.st.DB().QueryRow(`SELECT row_to_json(r)::text FROM requests r WHERE id = $1`, id).Scan(&row); err != nil {
			e.fatalf("read %s: %v", id, err)
		}
		b.WriteString(row)
	}
	return b.String()
}
