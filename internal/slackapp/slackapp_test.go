package slackapp

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/requests"
	"github.com/vigil-oss/vigil/internal/slackstandin"
	"github.com/vigil-oss/vigil/workflows"
)

// wantAudit is a slack.click_refused event expected in the audit trail.
type wantAudit struct {
	requestID string // the request_id column: set only for known requests
	actor     string
	code      string
}

const securityChannel = "C0SECURITY"

var allUsers = []string{userAlice, userBob, userCarol, userDave, userErin, userFrank}

func TestInteractions(t *testing.T) {
	ctx := context.Background()
	approve := func(user string) func(e *env) int {
		return func(e *env) int { return e.click(e.channel, e.ts, "approve", user) }
	}
	notLinked := "Your Slack account is not linked to an active Vigil agent; ask an admin."
	notHere := "This button does not belong to the approval message of " + requestID + "."

	tests := []struct {
		name      string
		decErr    error            // what the decider double answers
		do        func(e *env) int // returns the HTTP status Vigil answered
		status    int
		user      string // who should see ephemeral (if any)
		ephemeral string
		onOther   bool // the ephemeral is in the channel of a second copy, not the recorded message's
		retired   bool // the clicked stray copy loses its buttons
		// lateRetired: the clicked message, never recorded because its
		// request had ended, loses its buttons.
		lateRetired bool
		security    string
		audit       []wantAudit
		decide      *workflows.DecideInput // nil: the decider must not be called
	}{
		{
			name: "happy path approve", do: approve(userBob), status: 200,
			decide: &workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: "ag_bob", ApproverRole: domain.RoleSenior},
		},
		{
			name: "happy path reject, with the dialog's reason", status: 200,
			do: func(e *env) int {
				return e.reject(userBob, map[string]string{"reason": "  the customer never called  "}).Status
			},
			decide: &workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: "ag_bob", ApproverRole: domain.RoleSenior,
				Reason: "the customer never called"},
		},
		{
			// The requester's own Reject opens no dialog: the workflow
			// refuses it whatever the reason, in its own words.
			name: "self-rejection opens no dialog", status: 200,
			do:     func(e *env) int { return e.click(e.channel, e.ts, "reject", userAlice) },
			decErr: &requests.Refusal{Code: requests.CodeSelfApproval, Message: "you opened this request yourself; another senior must decide"},
			user:   userAlice, ephemeral: "You opened this request yourself; another senior must approve it.",
			audit: []wantAudit{{requestID, "slack:" + userAlice, "self_approval"}},
			decide: &workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: "ag_alice", ApproverRole: domain.RoleSenior,
				Reason: "rejected in Slack"},
		},
		{
			name: "forged signature", status: 401,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				req, err := e.standin.SignedRequest(ctx, c.body, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("X-Slack-Signature", slackstandin.Sign("not-the-secret", req.Header.Get("X-Slack-Request-Timestamp"), c.body))
				return mustSend(t, req)
			},
		},
		{
			name: "body changed after signing", status: 401,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userCarol)
				req, err := e.standin.SignedRequest(ctx, c.body, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				forged := e.mutate(c.body, func(p map[string]any) { p["user"].(map[string]any)["id"] = userBob })
				signed, _ := e.standin.SignedRequest(ctx, forged, time.Now())
				signed.Header = req.Header
				return mustSend(t, signed)
			},
		},
		{
			name: "no signature headers", status: 401,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				req, _ := http.NewRequest(http.MethodPost, e.vigilURL, bytes.NewReader(c.body))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				return mustSend(t, req)
			},
		},
		{
			name: "timestamp older than 5 minutes", status: 401,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				return e.sendSigned(c.body, time.Now().Add(-5*time.Minute-10*time.Second))
			},
		},
		{
			name: "timestamp more than 5 minutes ahead", status: 401,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				return e.sendSigned(c.body, time.Now().Add(5*time.Minute+10*time.Second))
			},
		},
		{
			name: "wrong team", status: 403,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				return e.sendSigned(e.mutate(c.body, func(p map[string]any) { p["team"].(map[string]any)["id"] = "T0OTHER" }), time.Now())
			},
		},
		{
			name: "wrong app", status: 403,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				return e.sendSigned(e.mutate(c.body, func(p map[string]any) { p["api_app_id"] = "A0OTHER" }), time.Now())
			},
		},
		{
			name: "payload in the query string", status: 400,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				form, _ := url.ParseQuery(string(c.body))
				// The body (empty) is validly signed; the payload rides outside it.
				req, err := e.standin.SignedRequest(ctx, nil, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				req.URL.RawQuery = url.Values{"payload": {form.Get("payload")}}.Encode()
				return mustSend(t, req)
			},
		},
		{
			name: "query string beside a valid signed body", status: 400,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				req, err := e.standin.SignedRequest(ctx, c.body, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				req.URL.RawQuery = "payload=x"
				return mustSend(t, req)
			},
		},
		{
			name: "body over the limit", status: 413,
			do: func(e *env) int {
				body := append([]byte("payload="), bytes.Repeat([]byte("a"), DefaultMaxBody)...)
				return e.sendSigned(body, time.Now())
			},
		},
		{
			name: "exact replay of a valid request", status: 401,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				at := time.Now()
				if first := e.sendSigned(c.body, at); first != 200 {
					t.Fatalf("first delivery: %d, want 200", first)
				}
				return e.sendSigned(c.body, at)
			},
			decide: &workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: "ag_bob", ApproverRole: domain.RoleSenior},
		},
		{
			name: "replay with the signature in upper case", status: 401,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				at := time.Now()
				if first := e.sendSigned(c.body, at); first != 200 {
					t.Fatalf("first delivery: %d, want 200", first)
				}
				req, _ := e.standin.SignedRequest(ctx, c.body, at)
				sig := req.Header.Get("X-Slack-Signature")
				req.Header.Set("X-Slack-Signature", "v0="+strings.ToUpper(strings.TrimPrefix(sig, "v0=")))
				return mustSend(t, req)
			},
			decide: &workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: "ag_bob", ApproverRole: domain.RoleSenior},
		},
		{
			name: "signed payload that is not JSON", status: 400,
			do: func(e *env) int { return e.sendSigned([]byte("payload=%7Bnot+json"), time.Now()) },
		},
		{
			name: "not block_actions", status: 400,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				return e.sendSigned(e.mutate(c.body, func(p map[string]any) { p["type"] = "message_action" }), time.Now())
			},
			audit: []wantAudit{{"", "slack:" + userBob, "unsupported_interaction"}},
		},
		{
			name: "two actions in one click", status: 400,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				return e.sendSigned(e.mutate(c.body, func(p map[string]any) {
					acts := p["actions"].([]any)
					p["actions"] = append(acts, acts[0])
				}), time.Now())
			},
			audit: []wantAudit{{"", "slack:" + userBob, "malformed_click"}},
		},
		{
			name: "button value is not a request id", status: 400,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				return e.sendSigned(e.mutate(c.body, func(p map[string]any) {
					p["actions"].([]any)[0].(map[string]any)["value"] = "ag_bob"
				}), time.Now())
			},
			audit: []wantAudit{{"", "slack:" + userBob, "malformed_request_id"}},
		},
		{
			name: "user id with a NUL", status: 400,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				return e.sendSigned(e.mutate(c.body, func(p map[string]any) {
					p["user"].(map[string]any)["id"] = "U0B\x00OB"
				}), time.Now())
			},
			audit: []wantAudit{{"", "slack:U0B[U+0000]OB", "malformed_click"}},
		},
		{
			name: "user id with a bidi override", status: 400,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				return e.sendSigned(e.mutate(c.body, func(p map[string]any) {
					p["user"].(map[string]any)["id"] = userBob + "\u202e"
				}), time.Now())
			},
			audit: []wantAudit{{"", "slack:" + userBob + "[U+202E]", "malformed_click"}},
		},
		{
			name: "message ts with a zero-width space", status: 400,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				return e.sendSigned(e.mutate(c.body, func(p map[string]any) {
					p["container"].(map[string]any)["message_ts"] = e.ts + "\u200b"
				}), time.Now())
			},
			audit: []wantAudit{{"", "slack:" + userBob, "malformed_click"}},
		},
		{
			name: "unknown Slack user", do: approve(userDave), status: 200,
			user: userDave, ephemeral: notLinked,
			audit: []wantAudit{{requestID, "slack:" + userDave, "not_linked"}},
		},
		{
			name: "disabled agent", do: approve(userErin), status: 200,
			user: userErin, ephemeral: notLinked,
			audit: []wantAudit{{requestID, "slack:" + userErin, "not_linked"}},
		},
		{
			name: "click on a copy in another channel", status: 200,
			do: func(e *env) int {
				ch, ts := e.postApproval("#elsewhere")
				return e.click(ch, ts, "approve", userBob)
			},
			user: userBob, ephemeral: notHere, onOther: true, retired: true,
			audit: []wantAudit{{requestID, "slack:" + userBob, "wrong_message"}},
		},
		{
			name: "click on a second copy in the same channel", status: 200,
			do: func(e *env) int {
				ch, ts := e.postApproval("#vigil-approvals")
				if ch != e.channel || ts == e.ts {
					t.Fatalf("copy landed at %s/%s", ch, ts)
				}
				return e.click(ch, ts, "approve", userBob)
			},
			user: userBob, ephemeral: notHere, retired: true,
			audit: []wantAudit{{requestID, "slack:" + userBob, "wrong_message"}},
		},
		{
			// The workflow has not recorded where its message landed yet
			// (a slow PostApproval): the clicked message may be the real
			// one, so it is refused but left alone.
			name: "click before the message is recorded", status: 200,
			do: func(e *env) int {
				if _, err := e.st.DB().Exec(`UPDATE requests SET slack_channel = NULL, slack_ts = NULL WHERE id = $1`, requestID); err != nil {
					t.Fatal(err)
				}
				return e.click(e.channel, e.ts, "approve", userBob)
			},
			user: userBob, ephemeral: notHere,
			audit: []wantAudit{{requestID, "slack:" + userBob, "wrong_message"}},
		},
		{
			// A PostApproval that landed after its request ended: the
			// frozen request never records it.
			name: "click on a message posted after the request ended", status: 200,
			do: func(e *env) int {
				if _, err := e.st.DB().Exec(`UPDATE requests SET slack_channel = NULL, slack_ts = NULL, status = 'expired', ended_at = now() WHERE id = $1`, requestID); err != nil {
					t.Fatal(err)
				}
				return e.click(e.channel, e.ts, "approve", userBob)
			},
			user: userBob, ephemeral: notHere, lateRetired: true,
			audit: []wantAudit{{requestID, "slack:" + userBob, "wrong_message"}},
		},
		{
			name: "payload names another channel than the message", status: 200,
			do: func(e *env) int {
				c := e.capture(e.channel, e.ts, "approve", userBob)
				return e.sendSigned(e.mutate(c.body, func(p map[string]any) {
					p["container"].(map[string]any)["channel_id"] = "C0ELSEWHERE"
				}), time.Now())
			},
			user: userBob, ephemeral: notHere,
			audit: []wantAudit{{requestID, "slack:" + userBob, "wrong_message"}},
		},
		{
			name: "not in the seniors group", do: approve(userFrank), status: 200,
			user: userFrank, ephemeral: "Refused: only members of the seniors group can approve or reject.",
			audit: []wantAudit{{requestID, "slack:" + userFrank, "not_in_group"}},
		},
		{
			name: "group check fails", status: 200,
			do: func(e *env) int {
				e.standin.FailNext("usergroups.users.list", 500, 500, 500, 500, 500, 500, 500, 500, 500, 500)
				return e.click(e.channel, e.ts, "approve", userBob)
			},
			user: userBob, ephemeral: "Vigil could not check your Slack group membership; try again in a minute.",
			audit: []wantAudit{{requestID, "slack:" + userBob, "group_check_failed"}},
		},
		{
			name: "non-senior", do: approve(userCarol), status: 200,
			decErr: &requests.Refusal{Code: requests.CodeNotSenior, Message: "only senior agents can approve or reject"},
			user:   userCarol, ephemeral: "Only senior agents can approve or reject.",
			security: "<@U0CAROL> (ag_carol, role agent) tried to approve " + requestID + " — refused",
			audit:    []wantAudit{{requestID, "slack:" + userCarol, "not_senior"}},
			decide:   &workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: "ag_carol", ApproverRole: domain.RoleAgent},
		},
		{
			name: "self-approval", do: approve(userAlice), status: 200,
			decErr: &requests.Refusal{Code: requests.CodeSelfApproval, Message: "you opened this request yourself; another senior must decide"},
			user:   userAlice, ephemeral: "You opened this request yourself; another senior must approve it.",
			audit:  []wantAudit{{requestID, "slack:" + userAlice, "self_approval"}},
			decide: &workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: "ag_alice", ApproverRole: domain.RoleSenior},
		},
		{
			// Decided by someone else while the dialog was open.
			name: "already decided", status: 200,
			do:     func(e *env) int { return e.reject(userBob, map[string]string{"reason": "looks like fraud"}).Status },
			decErr: &requests.Refusal{Code: requests.CodeAlreadyDecided, Message: "already approved by ag_frank at 14:05 UTC"},
			user:   userBob, ephemeral: "already approved by ag_frank at 14:05 UTC",
			audit: []wantAudit{{requestID, "slack:" + userBob, "already_decided"}},
			decide: &workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: "ag_bob", ApproverRole: domain.RoleSenior,
				Reason: "looks like fraud"},
		},
		{
			// The projection shows the request past approval: the click
			// goes to the workflow, which says why, without a dialog.
			name: "reject click on a request past approval", status: 200,
			do: func(e *env) int {
				if _, err := e.st.DB().Exec(`UPDATE requests SET status = 'cooling' WHERE id = $1`, requestID); err != nil {
					t.Fatal(err)
				}
				return e.click(e.channel, e.ts, "reject", userBob)
			},
			decErr: &requests.Refusal{Code: requests.CodeAlreadyDecided, Message: "already approved by ag_frank at 14:05 UTC"},
			user:   userBob, ephemeral: "already approved by ag_frank at 14:05 UTC",
			audit: []wantAudit{{requestID, "slack:" + userBob, "already_decided"}},
			decide: &workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: "ag_bob", ApproverRole: domain.RoleSenior,
				Reason: "rejected in Slack"},
		},
		{
			name: "expired", do: approve(userBob), status: 200,
			decErr: &requests.Refusal{Code: requests.CodeEnded, Message: "expired at 14:05 UTC"},
			user:   userBob, ephemeral: "expired at 14:05 UTC",
			audit:  []wantAudit{{requestID, "slack:" + userBob, "request_ended"}},
			decide: &workflows.DecideInput{Decision: domain.DecisionApprove, ApproverID: "ag_bob", ApproverRole: domain.RoleSenior},
		},
		{
			name: "GET", status: 405,
			do: func(e *env) int {
				req, _ := http.NewRequest(http.MethodGet, e.vigilURL, nil)
				return mustSend(t, req)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dec := &recordingDecider{err: tc.decErr}
			e := newEnv(t, Config{}, dec)
			otherChannel := ""
			if tc.onOther {
				otherChannel = "C0ELSEWHERE"
			}
			if got := tc.do(e); got != tc.status {
				t.Errorf("status = %d, want %d", got, tc.status)
			}
			e.drain()

			calls := dec.Calls()
			switch {
			case tc.decide == nil && len(calls) != 0:
				t.Errorf("decider called: %+v", calls)
			case tc.decide != nil && (len(calls) != 1 || calls[0].id != requestID || calls[0].in != *tc.decide):
				t.Errorf("decider calls = %+v, want exactly one with %+v", calls, *tc.decide)
			}
			// Every decision sent on was recorded first, as the clicking
			// agent's, with the Slack user that maps to them.
			recorded := e.recordedDecisions(requestID)
			switch {
			case tc.decide == nil && len(recorded) != 0:
				t.Errorf("decisions recorded %v, want none", recorded)
			case tc.decide != nil && !slices.Equal(recorded, []string{tc.decide.ApproverID + " " + string(tc.decide.Decision)}):
				t.Errorf("decisions recorded %v, want exactly %s's %s", recorded, tc.decide.ApproverID, tc.decide.Decision)
			}

			total := 0
			for _, u := range allUsers {
				total += len(e.standin.Ephemerals(u))
			}
			if tc.ephemeral == "" && total != 0 {
				t.Errorf("%d ephemeral replies sent, want none", total)
			}
			if tc.ephemeral != "" {
				eph := e.standin.Ephemerals(tc.user)
				wantCh := e.channel
				if otherChannel != "" {
					wantCh = otherChannel
				}
				if total != 1 || len(eph) != 1 || eph[0].Text != tc.ephemeral || eph[0].Channel != wantCh {
					t.Errorf("ephemerals to %s = %+v (of %d in all), want one in %s saying %q", tc.user, eph, total, wantCh, tc.ephemeral)
				}
			}

			// Only a stray copy that was clicked is retired; the recorded
			// approval message never is, and nothing is retired otherwise.
			retired := 0
			for _, m := range e.standin.Messages() {
				if m.Ephemeral || m.Channel == securityChannel || m.ThreadTS != "" {
					continue
				}
				out := strings.HasPrefix(m.Text, "Out of date:") && !strings.Contains(string(m.Blocks), `"actions"`)
				switch {
				case m.Channel == e.channel && m.TS == e.ts && out && !tc.lateRetired:
					t.Errorf("the recorded approval message was retired: %+v", m)
				case out:
					retired++
				}
			}
			if want := map[bool]int{true: 1, false: 0}[tc.retired || tc.lateRetired]; retired != want {
				t.Errorf("%d stray approval messages retired, want %d", retired, want)
			}

			var alerts []string
			for _, m := range e.standin.Messages() {
				if m.Channel == securityChannel {
					alerts = append(alerts, m.Text)
				}
			}
			if tc.security == "" && len(alerts) != 0 {
				t.Errorf("security alerts %q, want none", alerts)
			}
			if tc.security != "" && (len(alerts) != 1 || alerts[0] != tc.security) {
				t.Errorf("security alerts %q, want %q", alerts, tc.security)
			}

			rows := e.auditRows()
			if len(rows) != len(tc.audit) {
				t.Fatalf("audit rows = %+v, want %+v", rows, tc.audit)
			}
			for i, w := range tc.audit {
				r := rows[i]
				if r.event != "slack.click_refused" || r.actor != w.actor || r.requestID != w.requestID || r.details["code"] != w.code {
					t.Errorf("audit row %d = %+v, want %+v", i, r, w)
				}
				if w.requestID != "" && r.details["request"] != w.requestID {
					t.Errorf("audit row %d details lack the request id: %+v", i, r.details)
				}
			}

			logs := e.logs.String()
			for _, secret := range []string{signingSecret, "response_url", "/response/", "payload=", "trigger_id"} {
				if strings.Contains(logs, secret) {
					t.Errorf("logs contain %q:\n%s", secret, logs)
				}
			}
		})
	}
}

func mustSend(t *testing.T, req *http.Request) int {
	t.Helper()
	code, err := send(req)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return code
}

func TestBusyQueue(t *testing.T) {
	dec := &recordingDecider{started: make(chan struct{}, 4), release: make(chan struct{})}
	e := newEnv(t, Config{Workers: 1, QueueSize: 1}, dec)
	if got := e.click(e.channel, e.ts, "approve", userBob); got != 200 {
		t.Fatalf("first click: %d", got)
	}
	select {
	case <-dec.started: // the only worker is now busy
	case <-time.After(10 * time.Second):
		t.Fatal("the first click never reached the decider")
	}
	if got := e.click(e.channel, e.ts, "approve", userBob); got != 200 {
		t.Fatalf("queued click: %d, want 200 (acked, waiting for a worker)", got)
	}
	if got := e.click(e.channel, e.ts, "approve", userBob); got != 200 {
		t.Fatalf("click on a full queue: %d, want 200", got)
	}
	close(dec.release)
	e.drain()
	if n := len(dec.Calls()); n != 2 {
		t.Errorf("decider called %d times, want 2 (the third click was refused)", n)
	}
	eph := e.standin.Ephemerals(userBob)
	if len(eph) != 1 || eph[0].Text != "Vigil is busy, click again in a minute." {
		t.Errorf("ephemerals = %+v", eph)
	}
	rows := e.auditRows()
	if len(rows) != 1 || rows[0].details["code"] != "busy" || rows[0].requestID != requestID {
		t.Errorf("audit = %+v", rows)
	}
}

func TestDecideTimeoutIsNotAnApproval(t *testing.T) {
	dec := &recordingDecider{release: make(chan struct{})} // never released
	e := newEnv(t, Config{DecideTimeout: 50 * time.Millisecond}, dec)
	if got := e.click(e.channel, e.ts, "approve", userBob); got != 200 {
		t.Fatalf("click: %d", got)
	}
	e.drain()
	eph := e.standin.Ephemerals(userBob)
	want := "Vigil could not record your decision on " + requestID + "; try again in a minute."
	if len(eph) != 1 || eph[0].Text != want {
		t.Errorf("ephemerals = %+v, want %q", eph, want)
	}
}

func TestShutdownRefusesNewClicks(t *testing.T) {
	dec := &recordingDecider{}
	e := newEnv(t, Config{}, dec)
	e.drain()
	if got := e.click(e.channel, e.ts, "approve", userBob); got != http.StatusServiceUnavailable {
		t.Errorf("click after shutdown: %d, want 503", got)
	}
	if n := len(dec.Calls()); n != 0 {
		t.Errorf("decider called %d times after shutdown", n)
	}
	if err := e.h.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestShutdownGivesUp(t *testing.T) {
	dec := &recordingDecider{started: make(chan struct{}, 1), release: make(chan struct{})}
	e := newEnv(t, Config{}, dec)
	if got := e.click(e.channel, e.ts, "approve", userBob); got != 200 {
		t.Fatalf("click: %d", got)
	}
	<-dec.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := e.h.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned nil while a decision was still running")
	}
	// Giving up cancels the running decision, which then finishes.
	e.drain()
}

func TestConfigRedactsSecret(t *testing.T) {
	c := Config{SigningSecret: "super-secret-value", TeamID: "T0VIGIL", AppID: "A0VIGIL"}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "config", c)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "config", c)
	for _, s := range []string{c.String(), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), buf.String()} {
		if strings.Contains(s, "super-secret-value") || !strings.Contains(s, "[redacted]") || !strings.Contains(s, "T0VIGIL") {
			t.Errorf("config shows its secret or hides its identity: %s", s)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	dec := &recordingDecider{}
	e := newEnv(t, Config{}, dec)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no secret", Config{TeamID: "T", AppID: "A"}},
		{"no team", Config{SigningSecret: "s", AppID: "A"}},
		{"no app", Config{SigningSecret: "s", TeamID: "T"}},
		{"negative workers", Config{SigningSecret: "s", TeamID: "T", AppID: "A", Workers: -1}},
	} {
		if h, err := New(dec, e.st, e.slack, tc.cfg, nil); err == nil {
			_ = h.Shutdown(context.Background())
			t.Errorf("%s: New accepted %v", tc.name, tc.cfg)
		}
	}
	if _, err := New(nil, e.st, e.slack, Config{SigningSecret: "s", TeamID: "T", AppID: "A"}, nil); err == nil {
		t.Error("New accepted a nil decider")
	}
}

func TestReplayCache(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	c := newReplayCache(5*time.Minute, 2)
	if got := c.remember("a", now, now); got != replayFresh {
		t.Fatalf("first a: %v", got)
	}
	if got := c.remember("a", now, now.Add(4*time.Minute)); got != replaySeen {
		t.Errorf("replayed a within the window: %v", got)
	}
	if got := c.remember("b", now, now); got != replayFresh {
		t.Errorf("first b: %v", got)
	}
	if got := c.remember("c", now, now.Add(time.Minute)); got != replayFull {
		t.Errorf("c while full of live entries: %v, want full", got)
	}
	// A future-dated timestamp keeps its signature until ts+window.
	later := now.Add(6 * time.Minute)
	if got := c.remember("c", later.Add(4*time.Minute), later); got != replayFresh {
		t.Errorf("c after a and b expired: %v", got)
	}
	if n := c.size(); n != 1 {
		t.Errorf("size after pruning = %d, want 1", n)
	}
	if got := c.remember("c", later.Add(4*time.Minute), later.Add(8*time.Minute)); got != replaySeen {
		t.Errorf("future-dated c replayed inside its window: %v", got)
	}
}
