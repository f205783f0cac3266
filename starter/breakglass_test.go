package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

const (
	bgPath   = "/admin/v1/requests/req_7kq2m4xa/break-glass"
	bgReason = "Slack outage INC-42; customer verified by callback"
)

// breakGlassDoc is the request after a break-glass approval.
func breakGlassDoc(t *testing.T) string {
	return requestDoc(t, "notifying", map[string]any{"decision": map[string]any{
		"decision": "approve", "approver_id": "ag_ana", "second_approver_id": "ag_ben", "break_glass": true,
		"reason": bgReason, "at": "2026-03-01T10:05:00Z"}})
}

// bgArgs is a complete break-glass command line with changes: a flag mapped
// to "" is left out.
func bgArgs(changes map[string]string, extra ...string) []string {
	flags := map[string]string{"--decision": "approve", "--approver": "ag_ana", "--second-approver": "ag_ben", "--reason": bgReason}
	for k, v := range changes {
		flags[k] = v
	}
	args := []string{"admin", "break-glass", "req_7kq2m4xa"}
	for _, k := range []string{"--decision", "--approver", "--second-approver", "--reason"} {
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
	f := newFake(t, map[string]http.HandlerFunc{
		"POST " + bgPath: func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+adminToken {
				problem(w, 401, "unauthenticated", "bad admin token")
				return
			}
			reply(200, breakGlassDoc(t))(w, r)
		},
	})
	env := baseEnv(t, t.TempDir(), "VIGIL_URL="+f.URL, "VIGIL_ADMIN_TOKEN="+adminToken)

	r := run(t, env, "", bgArgs(nil, "--yes")...)
	wantExit(t, r, 0)
	if got := firstLine(r.stderr); got != breakGlassWarning {
		t.Errorf("first stderr line %q, want the warning %q", got, breakGlassWarning)
	}
	if want := "Request req_7kq2m4xa: break-glass approve by ag_ana and ag_ben recorded; now "; !strings.HasPrefix(r.stdout, want) {
		t.Errorf("stdout %q, want it to start with %q", r.stdout, want)
	}
	calls := f.only("POST", bgPath)
	if len(calls) != 1 {
		t.Fatalf("%d break-glass calls, want 1", len(calls))
	}
	if want := `{"decision":"approve","approver_id":"ag_ana","second_approver_id":"ag_ben","reason":"` + bgReason + `"}`; string(calls[0].Body) != want || calls[0].Auth != "Bearer "+adminToken {
		t.Errorf("sent %q %s, want %s", calls[0].Auth, calls[0].Body, want)
	}

	r = run(t, env, "", bgArgs(map[string]string{"--decision": "reject"}, "--yes", "--json")...)
	wantExit(t, r, 0)
	if strings.TrimSpace(r.stdout) != breakGlassDoc(t) {
		t.Errorf("--json stdout %q, want the server's object", r.stdout)
	}
	if got := firstLine(r.stderr); got != breakGlassWarning {
		t.Errorf("--json: first stderr line %q", got)
	}
	var sent map[string]string
	if err := json.Unmarshal(f.only("POST", bgPath)[1].Body, &sent); err != nil || sent["decision"] != "reject" {
		t.Errorf("reject body %v (%v)", sent, err)
	}

	// The admin token from stdin works with --yes.
	noTokenEnv := baseEnv(t, t.TempDir(), "VIGIL_URL="+f.URL)
	r = run(t, noTokenEnv, adminToken+"\n", bgArgs(nil, "--yes", "--admin-token-stdin")...)
	wantExit(t, r, 0)
}

func TestBreakGlassRefusedLocally(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"POST " + bgPath: reply(200, `{}`)})
	env := baseEnv(t, t.TempDir(), "VIGIL_URL="+f.URL, "VIGIL_ADMIN_TOKEN="+adminToken)
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no terminal and no --yes", env, bgArgs(nil), "no terminal to confirm on; pass --yes"},
		{"missing decision", env, bgArgs(map[string]string{"--decision": ""}, "--yes"), "--decision must be approve or reject"},
		{"decision neither approve nor reject", env, bgArgs(map[string]string{"--decision": "maybe"}, "--yes"), "--decision must be approve or reject"},
		{"missing approver", env, bgArgs(map[string]string{"--approver": ""}, "--yes"), "--approver is required"},
		{"missing second approver", env, bgArgs(map[string]string{"--second-approver": ""}, "--yes"), "--second-approver is required"},
		{"same senior twice", env, bgArgs(map[string]string{"--second-approver": "ag_ana"}, "--yes"), "two different senior agents"},
		{"approver with a slash", env, bgArgs(map[string]string{"--approver": "ag/ana"}, "--yes"), "--approver must be a single id"},
		{"missing reason", env, bgArgs(map[string]string{"--reason": ""}, "--yes"), "--reason is required: say why Slack could not be used"},
		{"blank reason", env, bgArgs(map[string]string{"--reason": "   "}, "--yes"), "--reason is required"},
		{"reason of 9 characters", env, bgArgs(map[string]string{"--reason": " Slack dn "}, "--yes"), "at least 10 characters"},
		{"reason over 500 characters", env, bgArgs(map[string]string{"--reason": strings.Repeat("x", 501)}, "--yes"), "--reason: is 501 characters long; the limit is 500"},
		{"reason with a bidi override", env, bgArgs(map[string]string{"--reason": "Slack is down \u202eenohp yb"}, "--yes"), "--reason: contains a bidi control character (U+202E)"},
		{"reason on two lines", env, bgArgs(map[string]string{"--reason": "Slack is down\nreally"}, "--yes"), "one line"},
		{"bad request id", env, []string{"admin", "break-glass", "../agents", "--decision", "approve", "--approver", "ag_ana", "--second-approver", "ag_ben", "--reason", bgReason, "--yes"}, "is not a request id"},
		{"no admin token", baseEnv(t, t.TempDir(), "VIGIL_URL="+f.URL), bgArgs(nil, "--yes"), "set VIGIL_ADMIN_TOKEN or pass --admin-token-stdin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, tt.env, "BREAK-GLASS\n", tt.args...)
			wantExit(t, r, 2, tt.want)
			if got := firstLine(r.stderr); got != breakGlassWarning {
				t.Errorf("first stderr line %q, want the warning", got)
			}
		})
	}
	t.Run("missing request id", func(t *testing.T) {
		r := run(t, env, "", "admin", "break-glass", "--decision", "approve", "--yes")
		wantExit(t, r, 2, "missing argument")
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
		{"not senior", replyProblem(403, "not_senior", "agent ag_ben is agent, not senior: both break-glass approvers must be senior agents"), 3,
			[]string{"both break-glass approvers must be senior agents [not_senior]", "only a senior can do this"}},
		{"self approval", replyProblem(409, "self_approval", "the requester cannot be one of the two break-glass approvers"), 3,
			[]string{"[self_approval]"}},
		{"unknown agent", replyProblem(404, "agent_not_found", "there is no agent ag_ben"), 3,
			[]string{"there is no agent ag_ben", "starter admin list-agents"}},
		{"temporal down", replyProblem(503, "temporal_unavailable", "the workflow engine does not answer"), 1,
			[]string{"Vigil is degraded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]http.HandlerFunc{"POST " + bgPath: tt.handler})
			env := baseEnv(t, t.TempDir(), "VIGIL_URL="+f.URL, "VIGIL_ADMIN_TOKEN="+adminToken)
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
