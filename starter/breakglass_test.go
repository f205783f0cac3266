package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

const (
	bgPath   = "/api/v1/requests/req_7kq2m4xa/break-glass"
	bgReason = "Slack outage INC-42; customer verified by callback"
)

// breakGlassDoc is the request after a break-glass approval.
func breakGlassDoc(t *testing.T) string {
	return requestDoc(t, "notifying", map[string]any{"decision": map[string]any{
		"decision": "approve", "approver_id": "ag_ana", "second_approver_id": "ag_ben", "break_glass": true,
		"reason": bgReason, "at": "2026-03-01T10:05:00Z"}})
}

// consentDoc is a first consent, waiting for a second senior's.
const consentDoc = `{"request_id":"req_7kq2m4xa","agent_id":"ag_ana","decision":"approve","expires_at":"2026-03-01T10:20:00Z","waiting_for":"a second senior's consent to the same decision"}`

// bgArgs is a complete break-glass command line with changes: a flag mapped
// to "" is left out.
func bgArgs(changes map[string]string, extra ...string) []string {
	flags := map[string]string{"--decision": "approve", "--reason": bgReason}
	for k, v := range changes {
		flags[k] = v
	}
	args := []string{"break-glass", "req_7kq2m4xa"}
	for _, k := range []string{"--decision", "--reason"} {
		if v, ok := flags[k]; ok && v != "" {
			args = append(args, k, v)
		}
	}
	return append(args, extra...)
}

// firstLine is the first line a run wrote to stderr.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func TestBreakGlass(t *testing.T) {
	calls := 0
	f := newFake(t, map[string]http.HandlerFunc{
		"POST " + bgPath: func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+agentToken {
				problem(w, 401, "unauthenticated", "bad token")
				return
			}
			calls++
			if calls == 1 {
				reply(202, consentDoc)(w, r)
				return
			}
			reply(200, breakGlassDoc(t))(w, r)
		},
	})
	env := baseEnv(t, t.TempDir(), "VIGIL_URL="+f.URL, "VIGIL_TOKEN="+agentToken)

	// The first senior: a consent that waits.
	r := run(t, env, "", bgArgs(nil, "--yes")...)
	wantExit(t, r, 0)
	if got := firstLine(r.stderr); got != breakGlassWarning {
		t.Errorf("first stderr line %q, want the warning %q", got, breakGlassWarning)
	}
	if want := "Request req_7kq2m4xa: your break-glass consent to approve is recorded; it waits until "; !strings.HasPrefix(r.stdout, want) ||
		!strings.Contains(r.stdout, "for a second senior's consent to the same decision") {
		t.Errorf("stdout %q, want it to start with %q", r.stdout, want)
	}
	// The second: the decision.
	r = run(t, env, "", bgArgs(nil, "--yes")...)
	wantExit(t, r, 0)
	if want := "Request req_7kq2m4xa: break-glass approve by ag_ana and ag_ben recorded; now "; !strings.HasPrefix(r.stdout, want) {
		t.Errorf("stdout %q, want it to start with %q", r.stdout, want)
	}
	sent := f.only("POST", bgPath)
	if len(sent) != 2 {
		t.Fatalf("%d break-glass calls, want 2", len(sent))
	}
	if want := `{"decision":"approve","reason":"` + bgReason + `"}`; string(sent[0].Body) != want || sent[0].Auth != "Bearer "+agentToken {
		t.Errorf("sent %q %s, want %s", sent[0].Auth, sent[0].Body, want)
	}

	r = run(t, env, "", bgArgs(map[string]string{"--decision": "reject"}, "--yes", "--json")...)
	wantExit(t, r, 0)
	if strings.TrimSpace(r.stdout) != breakGlassDoc(t) {
		t.Errorf("--json stdout %q, want the server's object", r.stdout)
	}
	if got := firstLine(r.stderr); got != breakGlassWarning {
		t.Errorf("--json: first stderr line %q", got)
	}
	var body map[string]string
	if err := json.Unmarshal(f.only("POST", bgPath)[2].Body, &body); err != nil || body["decision"] != "reject" {
		t.Errorf("reject body %v (%v)", body, err)
	}
}

func TestBreakGlassRefusedLocally(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"POST " + bgPath: reply(200, `{}`)})
	env := baseEnv(t, t.TempDir(), "VIGIL_URL="+f.URL, "VIGIL_TOKEN="+agentToken)
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no terminal and no --yes", env, bgArgs(nil), "no terminal to confirm on; pass --yes"},
		{"missing decision", env, bgArgs(map[string]string{"--decision": ""}, "--yes"), "--decision must be approve or reject"},
		{"decision neither approve nor reject", env, bgArgs(map[string]string{"--decision": "maybe"}, "--yes"), "--decision must be approve or reject"},
		{"an approver flag", env, bgArgs(nil, "--approver", "ag_ana", "--yes"), "flag provided but not defined: -approver"},
		{"missing reason", env, bgArgs(map[string]string{"--reason": ""}, "--yes"), "--reason is required: say why Slack could not be used"},
		{"blank reason", env, bgArgs(map[string]string{"--reason": "   "}, "--yes"), "--reason is required"},
		{"reason of 9 characters", env, bgArgs(map[string]string{"--reason": " Slack dn "}, "--yes"), "at least 10 characters"},
		{"reason over 500 characters", env, bgArgs(map[string]string{"--reason": strings.Repeat("x", 501)}, "--yes"), "--reason: is 501 characters long; the limit is 500"},
		{"reason with a bidi override", env, bgArgs(map[string]string{"--reason": "Slack is down \u202eenohp yb"}, "--yes"), "--reason: contains a bidi control character (U+202E)"},
		{"reason on two lines", env, bgArgs(map[string]string{"--reason": "Slack is down\nreally"}, "--yes"), "one line"},
		{"bad request id", env, []string{"break-glass", "../agents", "--decision", "approve", "--reason", bgReason, "--yes"}, "is not a request id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.env, "BREAK-GLASS\n", tt.args...)
			wantExit(t, r, 2, tt.want)
		})
	}
	t.Run("missing request id", func(t *testing.T) {
		r := run(t, env, "", "break-glass", "--decision", "approve", "--yes")
		wantExit(t, r, 2, "missing argument")
	})
	t.Run("no longer an admin command", func(t *testing.T) {
		r := run(t, env, "", "admin", "break-glass", "req_7kq2m4xa", "--decision", "approve", "--yes")
		wantExit(t, r, 2)
	})
	if n := len(f.recorded()); n != 0 {
		t.Errorf("%d calls reached the API", n)
	}
}

func TestBreakGlassServerAnswers(t *testing.T) {
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		wantCode   int
		wantStderr []string
	}{
		{"not senior", replyProblem(403, "not_senior", "only senior agents can consent to a break-glass decision"), 3,
			[]string{"only senior agents can consent to a break-glass decision [not_senior]"}},
		{"own request", replyProblem(409, "self_approval", "you opened this request yourself; two other seniors must consent"), 3,
			[]string{"[self_approval]"}},
		{"consented already", replyProblem(409, "already_consented", "your consent to a break-glass decision of this request is already recorded; a second senior must consent"), 3,
			[]string{"[already_consented]"}},
		{"temporal down", replyProblem(503, "temporal_unavailable", "the workflow engine does not answer"), 1,
			[]string{"Vigil is degraded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]http.HandlerFunc{"POST " + bgPath: tt.handler})
			env := baseEnv(t, t.TempDir(), "VIGIL_URL="+f.URL, "VIGIL_TOKEN="+agentToken)
			r := run(t, env, "", bgArgs(nil, "--yes")...)
			wantExit(t, r, tt.wantCode, tt.wantStderr...)
			if got := firstLine(r.stderr); got != breakGlassWarning {
				t.Errorf("first stderr line %q, want the warning", got)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %s", r)
			}
		})
	}
}
