package slackapp

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/slackstandin"
	"github.com/vigil-oss/vigil/workflows"
)

// TestRejectDialog: a senior's Reject click opens the reason dialog (the
// real slack-go views.open against the stand-in, with the click's trigger);
// its submission, signed as Slack signs it, is the decision, with the
// reason typed. A bad reason or a refused submitter is answered in the
// dialog and changes nothing; forged and replayed submissions are refused.
func TestRejectDialog(t *testing.T) {
	ctx := context.Background()
	reason := func(v string) map[string]string { return map[string]string{approvals.ReasonBlockID: v} }
	bobRejects := func(r string) *workflows.DecideInput {
		return &workflows.DecideInput{Decision: domain.DecisionReject, ApproverID: "ag_bob", ApproverRole: domain.RoleSenior, Reason: r}
	}
	tests := []struct {
		name string
		// do opens Bob's dialog (v) and submits it somehow; it returns
		// Vigil's HTTP status and the errors the dialog shows.
		do        func(t *testing.T, e *env, v slackstandin.View) (int, map[string]string)
		status    int
		errorHas  string // in the dialog's reason error; "" means the dialog closed
		stillOpen bool   // the stand-in keeps the dialog open
		audit     []wantAudit
		decide    *workflows.DecideInput
	}{
		{
			name: "reason given", status: 200,
			do:     submit(reason("customer's voice did not match")),
			decide: bobRejects("customer's voice did not match"),
		},
		{
			name: "empty reason", status: 200, stillOpen: true,
			do:       submit(reason("")),
			errorHas: "Say in one line why you reject this request.",
			audit:    []wantAudit{{requestID, "slack:" + userBob, "invalid_reason"}},
		},
		{
			name: "only spaces", status: 200, stillOpen: true,
			do:       submit(reason("    ")),
			errorHas: "Say in one line why you reject this request.",
			audit:    []wantAudit{{requestID, "slack:" + userBob, "invalid_reason"}},
		},
		{
			name: "bidi override in the reason", status: 200, stillOpen: true,
			do:       submit(reason("verified \u202eenohp yb")),
			errorHas: "bidi",
			audit:    []wantAudit{{requestID, "slack:" + userBob, "invalid_reason"}},
		},
		{
			name: "reason over the limit", status: 200, stillOpen: true,
			do:       submit(reason(strings.Repeat("x", 501))),
			errorHas: "the limit is 500",
			audit:    []wantAudit{{requestID, "slack:" + userBob, "invalid_reason"}},
		},
		{
			name: "forged signature", status: 401, stillOpen: false,
			do: func(t *testing.T, e *env, v slackstandin.View) (int, map[string]string) {
				c := e.captureSubmission(v.ID, reason("forged"))
				req, err := e.standin.SignedRequest(ctx, c.body, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("X-Slack-Signature", slackstandin.Sign("not-the-secret", req.Header.Get("X-Slack-Request-Timestamp"), c.body))
				return mustSend(t, req), nil
			},
		},
		{
			name: "reason changed after signing", status: 401,
			do: func(t *testing.T, e *env, v slackstandin.View) (int, map[string]string) {
				c := e.captureSubmission(v.ID, reason("first words"))
				req, err := e.standin.SignedRequest(ctx, c.body, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				forged := e.mutate(c.body, func(p map[string]any) {
					p["view"].(map[string]any)["state"] = map[string]any{"values": map[string]any{
						"reason": map[string]any{"reason": map[string]any{"type": "plain_text_input", "value": "other words"}}}}
				})
				signed, _ := e.standin.SignedRequest(ctx, forged, time.Now())
				signed.Header = req.Header
				return mustSend(t, signed), nil
			},
		},
		{
			name: "replayed submission", status: 401,
			do: func(t *testing.T, e *env, v slackstandin.View) (int, map[string]string) {
				c := e.captureSubmission(v.ID, reason("once is enough"))
				at := time.Now()
				if first := e.sendSigned(c.body, at); first != 200 {
					t.Fatalf("first delivery: %d", first)
				}
				return e.sendSigned(c.body, at), nil
			},
			decide: bobRejects("once is enough"),
		},
		{
			name: "not Vigil's dialog", status: 400,
			do: func(t *testing.T, e *env, v slackstandin.View) (int, map[string]string) {
				c := e.captureSubmission(v.ID, reason("x"))
				return e.sendSigned(e.mutate(c.body, func(p map[string]any) {
					p["view"].(map[string]any)["callback_id"] = "someone_elses"
				}), time.Now()), nil
			},
			audit: []wantAudit{{"", "slack:" + userBob, "unknown_view"}},
		},
		{
			name: "metadata that is not a request id", status: 400,
			do: func(t *testing.T, e *env, v slackstandin.View) (int, map[string]string) {
				c := e.captureSubmission(v.ID, reason("x"))
				return e.sendSigned(e.mutate(c.body, func(p map[string]any) {
					p["view"].(map[string]any)["private_metadata"] = `{"request":"ag_bob","channel":"` + e.channel + `","ts":"` + e.ts + `"}`
				}), time.Now()), nil
			},
			audit: []wantAudit{{"", "slack:" + userBob, "malformed_request_id"}},
		},
		{
			// The message was posted again while the dialog was open.
			name: "dialog of a replaced message", status: 200,
			do: func(t *testing.T, e *env, v slackstandin.View) (int, map[string]string) {
				if _, err := e.st.DB().Exec(`UPDATE requests SET slack_ts = '1.000001' WHERE id = $1`, requestID); err != nil {
					t.Fatal(err)
				}
				return submit(reason("too late"))(t, e, v)
			},
			stillOpen: true, errorHas: "was replaced since this dialog opened",
			audit: []wantAudit{{requestID, "slack:" + userBob, "wrong_message"}},
		},
		{
			// A submission whose user is one outside the seniors group
			// (as Slack would sign it for a dialog opened to them).
			name: "submitter outside the seniors group", status: 200,
			do: func(t *testing.T, e *env, v slackstandin.View) (int, map[string]string) {
				c := e.captureSubmission(v.ID, reason("x"))
				return sendForErrors(t, e, e.mutate(c.body, func(p map[string]any) {
					p["user"].(map[string]any)["id"] = userFrank
				}))
			},
			errorHas: "only members of the seniors group",
			audit:    []wantAudit{{requestID, "slack:" + userFrank, "not_in_group"}},
		},
		{
			name: "submitter not linked to an agent", status: 200,
			do: func(t *testing.T, e *env, v slackstandin.View) (int, map[string]string) {
				c := e.captureSubmission(v.ID, reason("x"))
				return sendForErrors(t, e, e.mutate(c.body, func(p map[string]any) {
					p["user"].(map[string]any)["id"] = userDave
				}))
			},
			errorHas: "not linked to an active Vigil agent",
			audit:    []wantAudit{{requestID, "slack:" + userDave, "not_linked"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dec := &recordingDecider{}
			e := newEnv(t, Config{}, dec)
			v := e.dialog(userBob)
			if v.CallbackID != approvals.CallbackReject || !strings.Contains(string(v.Blocks), "resending credentials for C-1042") {
				t.Fatalf("dialog = %+v", v)
			}
			status, errs := tc.do(t, e, v)
			if status != tc.status {
				t.Errorf("status = %d, want %d", status, tc.status)
			}
			e.drain()
			if tc.errorHas == "" && len(errs) != 0 {
				t.Errorf("dialog errors %v, want none", errs)
			}
			if tc.errorHas != "" && (len(errs) != 1 || !strings.Contains(errs[approvals.ReasonBlockID], tc.errorHas)) {
				t.Errorf("dialog errors %v, want one on %q containing %q", errs, approvals.ReasonBlockID, tc.errorHas)
			}
			open := len(e.standin.Views()) > 0
			if open != tc.stillOpen {
				t.Errorf("dialog still open = %v, want %v", open, tc.stillOpen)
			}
			calls := dec.Calls()
			switch {
			case tc.decide == nil && len(calls) != 0:
				t.Errorf("decider called: %+v", calls)
			case tc.decide != nil && (len(calls) != 1 || calls[0].id != requestID || calls[0].in != *tc.decide):
				t.Errorf("decider calls = %+v, want exactly one with %+v", calls, *tc.decide)
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
			}
			for _, m := range e.standin.Messages() {
				if m.Channel == e.channel && m.TS == e.ts && m.Updated != 0 {
					t.Errorf("the approval message was changed: %+v", m)
				}
			}
			if logs := e.logs.String(); strings.Contains(logs, signingSecret) || strings.Contains(logs, "payload=") {
				t.Errorf("logs show the secret or a payload:\n%s", logs)
			}
		})
	}
}

// submit submits the dialog through the stand-in, as its user would.
func submit(values map[string]string) func(*testing.T, *env, slackstandin.View) (int, map[string]string) {
	return func(t *testing.T, e *env, v slackstandin.View) (int, map[string]string) {
		res, err := e.standin.SubmitView(context.Background(), v.ID, values)
		if err != nil {
			t.Fatalf("submit: %v", err)
		}
		return res.Status, res.Errors
	}
}

// sendForErrors delivers a signed submission body and reads the dialog
// errors Vigil answered with.
func sendForErrors(t *testing.T, e *env, body []byte) (int, map[string]string) {
	t.Helper()
	req, err := e.standin.SignedRequest(context.Background(), body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ResponseAction string            `json:"response_action"`
		Errors         map[string]string `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.ResponseAction != "errors" {
		t.Fatalf("answer is not response_action errors: %v %+v", err, out)
	}
	return resp.StatusCode, out.Errors
}

// TestRejectDialogNotOpened: when Slack refuses views.open (the trigger
// expired, Slack is down), the senior hears so and nothing is decided.
func TestRejectDialogNotOpened(t *testing.T) {
	dec := &recordingDecider{}
	e := newEnv(t, Config{}, dec)
	e.standin.FailNext("views.open", 500, 500, 500, 500, 500, 500)
	if got := e.click(e.channel, e.ts, "reject", userBob); got != 200 {
		t.Fatalf("click: %d", got)
	}
	e.drain()
	if n := len(dec.Calls()); n != 0 {
		t.Errorf("decider called %d times without a reason", n)
	}
	eph := e.standin.Ephemerals(userBob)
	if len(eph) != 1 || !strings.Contains(eph[0].Text, "could not open the reject dialog") {
		t.Errorf("ephemerals = %+v", eph)
	}
	if v := e.standin.Views(); len(v) != 0 {
		t.Errorf("views open: %+v", v)
	}
}
