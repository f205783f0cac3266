package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/pinhash"
)

const meDoc = `{"id":"ag_ana","name":"Ana Lima","email":"ana@example.com","team":"support","role":"senior","slack_user_id":"U1"}`

// meRoute answers /me for token and 401 for anything else.
func meRoute(token string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", "Bearer")
			problem(w, 401, "unauthenticated", "the token is not valid")
			return
		}
		reply(200, meDoc)(w, r)
	}
}

func TestLoginLogout(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /api/v1/me":       meRoute(agentToken),
		"GET /api/v1/requests": reply(200, `{"requests":[]}`),
	})
	config := t.TempDir()
	env := baseEnv(t, config) // no VIGIL_TOKEN, no VIGIL_URL
	path := filepath.Join(config, "vigil", "credentials.json")

	// A wrong token is refused and nothing is saved.
	r := run(t, env, "vgl_wrongwrongwrongwrongwrongwrong234\n", "login", "--server", f.URL, "--token-stdin")
	wantExit(t, r, 3, "the token is not valid", "run `starter login`")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("credentials saved after a refused login: %v", err)
	}
	// Not an agent token at all.
	r = run(t, env, "xoxb-123\n", "login", "--url", f.URL, "--token-stdin")
	wantExit(t, r, 2, "agent tokens start with vgl_")

	r = run(t, env, agentToken+"\n", "login", "--server", f.URL, "--token-stdin")
	wantExit(t, r, 0)
	if want := "Logged in as Ana Lima (senior) on " + f.URL + "\n"; r.stdout != want {
		t.Errorf("stdout = %q, want %q", r.stdout, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("credentials file: %v", err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("credentials mode %#o, want 0600", m)
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %#o, want 0700", di.Mode().Perm())
	}
	var saved struct{ Server, Token string }
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &saved); err != nil || saved.Server != f.URL || saved.Token != agentToken {
		t.Errorf("saved %s (%v)", data, err)
	}
	if strings.Contains(r.stdout+r.stderr, agentToken) {
		t.Error("login printed the token")
	}

	// Later commands use the saved server and token.
	r = run(t, env, "", "list")
	wantExit(t, r, 0)
	if got := f.only("GET", "/api/v1/requests"); len(got) != 1 || got[0].Auth != "Bearer "+agentToken {
		t.Errorf("list calls %+v", got)
	}
	// The saved token is never sent to another server.
	other := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/requests": reply(200, `{"requests":[]}`)})
	r = run(t, env, "", "list", "--url", other.URL)
	wantExit(t, r, 2, "you are logged in to "+f.URL)
	if n := len(other.recorded()); n != 0 {
		t.Errorf("the other server got %d calls", n)
	}

	r = run(t, env, "", "logout")
	wantExit(t, r, 0)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("credentials still there after logout: %v", err)
	}
	r = run(t, env, "", "logout")
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "Not logged in") {
		t.Errorf("second logout: %s", r)
	}
	r = run(t, env, "", "list")
	wantExit(t, r, 2, "not logged in")
}

func TestExitCodesAndAdvice(t *testing.T) {
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		wantCode   int
		wantStderr []string
	}{
		{"401", replyProblem(401, "unauthenticated", "the token is not valid", "WWW-Authenticate", "Bearer"), 3,
			[]string{"Vigil refused: the token is not valid [unauthenticated]", "What to do: run `starter login`"}},
		{"404 request", replyProblem(404, "request_not_found", "no request req_7kq2m4xa", ""), 3,
			[]string{"Vigil refused: no request with id req_7kq2m4xa [request_not_found]", "check the request id", "an agent sees only the requests they opened"}},
		{"429", replyProblem(429, "rate_limited", "too many calls", "Retry-After", "17"), 3,
			[]string{"too many calls", "wait 17 seconds"}},
		{"500", replyProblem(500, "internal", "something went wrong on our side", ""), 1,
			[]string{"Vigil failed: something went wrong on our side [internal]"}},
		{"503", replyProblem(503, "temporal_unavailable", "the workflow engine does not answer", ""), 1,
			[]string{"the workflow engine does not answer", "Vigil is degraded; try again shortly (after a withdrawal or veto"}},
		{"503 database", replyProblem(503, "database_unavailable", "Vigil's database is not reachable right now.", "Retry-After", "10"), 1,
			[]string{"Vigil's database is not reachable right now.", "nothing changed. Try again in 10 seconds"}},
		{"502 without a problem", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			fmt.Fprint(w, "<html>bad gateway</html>")
		}, 1, []string{"502 Bad Gateway"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/requests/req_7kq2m4xa": tt.handler})
			r := run(t, agentEnv(t, f), "", "status", "req_7kq2m4xa")
			wantExit(t, r, tt.wantCode, tt.wantStderr...)
			if r.stdout != "" {
				t.Errorf("stdout not empty: %s", r)
			}
		})
	}

	t.Run("network", func(t *testing.T) {
		f := newFake(t, nil)
		url := f.URL
		f.Close()
		r := run(t, baseEnv(t, t.TempDir(), "VIGIL_URL="+url, "VIGIL_TOKEN="+agentToken), "", "status", "req_7kq2m4xa")
		wantExit(t, r, 1, "cannot reach Vigil")
	})
	t.Run("unknown customer on open", func(t *testing.T) {
		f := newFake(t, map[string]http.HandlerFunc{"POST /api/v1/requests": replyProblem(404, "unknown_customer", "no customer C-9999", "")})
		r := run(t, agentEnv(t, f), "1234\n", "disable-2fa", "--customer", "C-9999", "--reason", "x", "--pin-stdin")
		wantExit(t, r, 3, "no customer C-9999", "check the customer id")
		if strings.Contains(r.stderr, "1234") {
			t.Errorf("PIN in the error: %s", r)
		}
	})
	t.Run("json problem on stderr", func(t *testing.T) {
		f := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/requests/req_7kq2m4xa": replyProblem(401, "unauthenticated", "the token is not valid")})
		r := run(t, agentEnv(t, f), "", "status", "req_7kq2m4xa", "--json")
		wantExit(t, r, 3)
		var p struct {
			Code   string
			Status int
			Detail string
		}
		if err := json.Unmarshal([]byte(r.stderr), &p); err != nil || p.Code != "unauthenticated" || p.Status != 401 || p.Detail != "the token is not valid" {
			t.Errorf("stderr is not the problem JSON (%v): %s", err, r)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"frobnicate"}, {}, {"status"}, {"status", "a", "b"}, {"list", "--limit", "-1"}, {"list", "--nope"}, {"watch", "req_x", "--interval", "1ms"}, {"admin", "nope"}} {
			r := run(t, baseEnv(t, t.TempDir(), "VIGIL_TOKEN="+agentToken, "VIGIL_URL=http://127.0.0.1:1"), "", args...)
			if r.code != 2 || r.stderr == "" {
				t.Errorf("%v: want exit 2 with a message, got %s", args, r)
			}
		}
	})
}

func TestOpenValidation(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"POST /api/v1/requests": reply(201, `{}`)})
	env := agentEnv(t, f)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing customer", []string{"disable-2fa", "--reason", "x"}, "--customer is required"},
		{"blank customer", []string{"disable-2fa", "--customer", "  ", "--reason", "x"}, "--customer is required"},
		{"customer with spaces", []string{"disable-2fa", "--customer", "C 1", "--reason", "x"}, "--customer must be a single id"},
		{"missing reason", []string{"disable-2fa", "--customer", "C-1"}, "--reason is required"},
		{"empty reason", []string{"disable-2fa", "--customer", "C-1", "--reason", "   "}, "--reason is required"},
		{"reason with newline", []string{"disable-2fa", "--customer", "C-1", "--reason", "a\nb"}, "--reason: contains a line break (U+000A) at character 2; it must be one line"},
		{"reason with a bidi override", []string{"disable-2fa", "--customer", "C-1", "--reason", "verified \u202eenohp yb"}, "--reason: contains a bidi control character (U+202E) at character 10"},
		{"reason with a NUL", []string{"disable-2fa", "--customer", "C-1", "--reason", "lost\x01phone"}, "--reason: contains a control character (U+0001)"},
		{"reason with a zero-width space", []string{"disable-2fa", "--customer", "C-1", "--reason", "lost\u200bphone"}, "--reason: contains an invisible character (U+200B)"},
		{"reason with invalid UTF-8", []string{"disable-2fa", "--customer", "C-1", "--reason", "lost \xff"}, "--reason: is not valid UTF-8"},
		{"reason too long", []string{"disable-2fa", "--customer", "C-1", "--reason", strings.Repeat("é", 501)}, "--reason: is 501 characters long; the limit is 500"},
		{"customer with a bidi override", []string{"disable-2fa", "--customer", "C-1\u202e", "--reason", "x"}, "--customer: contains a bidi control character"},
		{"reinstall without server", []string{"reinstall-vps", "--customer", "C-1", "--reason", "x"}, "--server is required"},
		{"server given as URL", []string{"reinstall-vps", "--customer", "C-1", "--server", "http://127.0.0.1:8080", "--reason", "x"}, "give Vigil's address with --url"},
		{"missing email", []string{"add-contact-email", "--customer", "C-1", "--reason", "x"}, "--email is required"},
		{"invalid email", []string{"add-contact-email", "--customer", "C-1", "--email", "not-an-address", "--reason", "x"}, "--email: must contain exactly one @"},
		{"mixed-script email", []string{"add-contact-email", "--customer", "C-1", "--email", "dana@ex\u0430mple.com", "--reason", "x"}, "--email: has a domain whose label 1 mixes scripts (Latin and Cyrillic)"},
		{"email with an IP literal", []string{"add-contact-email", "--customer", "C-1", "--email", "dana@[192.0.2.1]", "--reason", "x"}, "--email: has an IP address literal"},
		{"email with a bidi override", []string{"add-contact-email", "--customer", "C-1", "--email", "dana\u202e@example.com", "--reason", "x"}, "--email: contains a bidi control character"},
		{"email with display name", []string{"change-account-email", "--customer", "C-1", "--email", "Bob <bob@example.com>", "--reason", "x"}, "--email: must be a bare address"},
		{"two addresses", []string{"change-account-email", "--customer", "C-1", "--email", "a@example.com, b@example.com", "--reason", "x"}, "--email: must be a bare address"},
		{"email on a server action", []string{"reinstall-vps", "--customer", "C-1", "--server", "srv-1", "--email", "a@example.com", "--reason", "x"}, "flag provided but not defined: -email"},
		{"server on an email action", []string{"disable-2fa", "--customer", "C-1", "--server", "srv-1", "--reason", "x"}, "flag provided but not defined: -server"},
		{"bad url", []string{"disable-2fa", "--customer", "C-1", "--reason", "x", "--url", "vigil.example.com"}, "must start with http:// or https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, env, "1234\n", append(tt.args, "--pin-stdin")...)
			wantExit(t, r, 2, tt.want)
		})
	}
	if n := len(f.recorded()); n != 0 {
		t.Errorf("%d calls reached the API", n)
	}
}

func TestOpenOutcomes(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		doc      map[string]any
		status   string
		wantCode int
		wantOut  string
		wantBody map[string]any
	}{
		{"awaiting approval", []string{"add-contact-email", "--customer", "C-1042", "--email", "ops@example.com", "--reason", "new on-call"},
			map[string]any{"approval_deadline": "2026-03-01T14:05:00Z"}, "awaiting_approval", 0,
			"Request req_7kq2m4xa opened: PIN verified; waiting for a senior to approve in Slack (expires 2026-03-01 14:05 UTC)",
			map[string]any{"action": "add_contact_email", "email": "ops@example.com"}},
		{"wrong PIN", []string{"reinstall-vps", "--customer", "C-1042", "--server", "srv-1", "--reason", "compromised"},
			map[string]any{"pin_failures": 2}, "pin_rejected", 3,
			"Request req_7kq2m4xa opened: Wrong PIN (2 wrong attempts so far); nothing was done",
			map[string]any{"action": "reinstall_vps", "server_id": "srv-1"}},
		{"locked", []string{"disable-2fa", "--customer", "C-1042", "--reason", "lost phone"},
			map[string]any{"pin_failures": 5, "locked_until": "2026-03-01T14:05:00Z"}, "locked", 3,
			"Request req_7kq2m4xa opened: Customer C-1042 is locked until 2026-03-01 14:05 UTC after 5 wrong PINs; ask them to contact security",
			map[string]any{"action": "disable_2fa"}},
		{"resend without server", []string{"resend-credentials", "--customer", "C-1042", "--reason", "lost password"},
			nil, "awaiting_approval", 0, "Request req_7kq2m4xa opened: PIN verified",
			map[string]any{"action": "resend_credentials", "server_id": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]http.HandlerFunc{"POST /api/v1/requests": reply(201, requestDoc(t, tt.status, tt.doc))})
			r := run(t, agentEnv(t, f), "0000\n", append(tt.args, "--pin-stdin")...)
			wantExit(t, r, tt.wantCode)
			if !strings.Contains(r.stdout, tt.wantOut) {
				t.Errorf("stdout lacks %q: %s", tt.wantOut, r)
			}
			var body map[string]any
			if err := json.Unmarshal(f.only("POST", "/api/v1/requests")[0].Body, &body); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.wantBody {
				if body[k] != v {
					t.Errorf("body %s = %v, want %v (body %v)", k, body[k], v, body)
				}
			}
			if _, ok := body["requester_id"]; ok {
				t.Error("the body names a requester")
			}

			rj := run(t, agentEnv(t, f), "0000\n", append(tt.args, "--pin-stdin", "--json")...)
			wantExit(t, rj, tt.wantCode)
			var doc map[string]any
			if err := json.Unmarshal([]byte(rj.stdout), &doc); err != nil || doc["status"] != tt.status {
				t.Errorf("--json stdout is not the request object (%v): %s", err, rj)
			}
		})
	}
}

// TestStatusShowsNothingHidden: text stored before the text rule (a reason
// with a terminal escape and a forged line, a mixed-script address) reaches
// the terminal written out, never as it is.
func TestStatusShowsNothingHidden(t *testing.T) {
	doc := requestDoc(t, "cooling", map[string]any{
		"action": "add_contact_email", "email": "dana@ex\u0430mple.com",
		"reason":       "lost phone\x1b[2K\rDecision      approve by ag_ana",
		"cancellation": map[string]any{"by": "senior", "actor_id": "ag_bob", "reason": "stop\u202eenohp"},
	})
	f := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/requests/req_7kq2m4xa": reply(200, doc)})
	r := run(t, agentEnv(t, f), "", "status", "req_7kq2m4xa")
	wantExit(t, r, 0)
	for _, want := range []string{
		"add (not a valid address: dana@ex[U+0430]mple.com) as a contact email",
		"lost phone[U+001B][2K[U+000D]Decision      approve by ag_ana",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.ContainsAny(r.stdout, "\x1b\r\u202e\u0430") {
		t.Errorf("status carries a hidden character:\n%q", r.stdout)
	}
}

func TestStatusBlockAndList(t *testing.T) {
	cooling := requestDoc(t, "cooling", map[string]any{
		"action": "reinstall_vps", "pin_verified_at": "2026-03-01T10:00:02Z",
		"decision":    map[string]any{"decision": "approve", "approver_id": "ag_ana", "reason": "checked", "at": "2026-03-01T10:05:00Z"},
		"notified_at": "2026-03-01T10:05:01Z", "recipients": 2, "cooling_ends_at": "2026-03-03T10:05:01Z",
	})
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /api/v1/requests/req_7kq2m4xa": reply(200, cooling),
		"GET /api/v1/requests": reply(200, `{"requests":[`+cooling+`,`+
			requestDoc(t, "executed", map[string]any{"id": "req_second", "action": "disable_2fa", "customer_id": "C-7", "opened_at": "2026-02-28T09:30:00Z"})+`]}`),
	})
	env := agentEnv(t, f)

	r := run(t, env, "", "status", "req_7kq2m4xa")
	wantExit(t, r, 0)
	for _, want := range []string{
		"Request       req_7kq2m4xa",
		"reinstall_vps: erase and reinstall VPS srv-1 (all data on it is wiped)",
		"Status        cooling: approved by ag_ana; customer notified (2 addresses); runs after the cooling period ends 2026-03-03 10:05 UTC",
		`Decision      approve by ag_ana at 2026-03-01 10:05:00 UTC ("checked")`,
		"Cooling ends  2026-03-03 10:05:01 UTC",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status block lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(t, env, "", "status", "--json", "req_7kq2m4xa")
	wantExit(t, r, 0)
	if strings.TrimSpace(r.stdout) != cooling {
		t.Errorf("status --json = %s, want the server's object %s", r.stdout, cooling)
	}

	r = run(t, env, "", "list", "--mine", "--open", "--customer", "C-1042", "--limit", "5")
	wantExit(t, r, 0)
	if q := f.only("GET", "/api/v1/requests")[0].Query; q != "customer=C-1042&limit=5&mine=true&open=true" {
		t.Errorf("query %q", q)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	want := []string{
		"ID            ACTION         CUSTOMER  STATUS     OPENED",
		"req_7kq2m4xa  reinstall_vps  C-1042    cooling    2026-03-01 10:00 UTC",
		"req_second    disable_2fa    C-7       executed   2026-02-28 09:30 UTC",
	}
	if len(lines) != 3 {
		t.Fatalf("list output:\n%s", r.stdout)
	}
	for i := range want {
		if strings.Join(strings.Fields(lines[i]), " ") != strings.Join(strings.Fields(want[i]), " ") {
			t.Errorf("line %d = %q, want %q", i, lines[i], want[i])
		}
	}
	if i := strings.Index(lines[0], "STATUS"); i != strings.Index(lines[1], "cooling") {
		t.Errorf("columns not aligned:\n%s", r.stdout)
	}
}

// sequence answers GET with each document in turn, then repeats the last.
func sequence(docs ...string) http.HandlerFunc {
	var mu sync.Mutex
	i := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		doc := docs[min(i, len(docs)-1)]
		i++
		mu.Unlock()
		if doc == "503" {
			problem(w, 503, "temporal_unavailable", "degraded")
			return
		}
		reply(200, doc)(w, r)
	}
}

func TestWatch(t *testing.T) {
	awaiting := requestDoc(t, "awaiting_approval", nil)
	tests := []struct {
		name      string
		docs      []string
		wantCode  int
		wantLines []string
	}{
		{"executed", []string{awaiting, awaiting, "503", requestDoc(t, "cooling", nil), requestDoc(t, "executed", map[string]any{"reference": "panel-991"})}, 0,
			[]string{"awaiting_approval", "cooling", "executed"}},
		{"rejected", []string{awaiting, requestDoc(t, "rejected", map[string]any{"decision": map[string]any{"decision": "reject", "approver_id": "ag_ana", "reason": "no ticket"}})}, 4,
			[]string{"awaiting_approval", "rejected"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/requests/req_7kq2m4xa": sequence(tt.docs...)})
			r := run(t, agentEnv(t, f), "", "watch", "req_7kq2m4xa", "--interval", "250ms")
			wantExit(t, r, tt.wantCode)
			lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
			if len(lines) != len(tt.wantLines) {
				t.Fatalf("want %d lines, got %s", len(tt.wantLines), r)
			}
			for i, l := range lines {
				fields := strings.Fields(l)
				if len(fields) < 3 || fields[1] != tt.wantLines[i] {
					t.Errorf("line %d = %q, want status %s", i, l, tt.wantLines[i])
					continue
				}
				if _, err := time.Parse(time.RFC3339, fields[0]); err != nil {
					t.Errorf("line %d has no timestamp: %q", i, l)
				}
			}
		})
	}

	t.Run("status --wait", func(t *testing.T) {
		f := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/requests/req_7kq2m4xa": sequence(awaiting, requestDoc(t, "expired", nil))})
		r := run(t, agentEnv(t, f), "", "status", "req_7kq2m4xa", "--wait", "--interval", "250ms")
		wantExit(t, r, 4)
		if !strings.Contains(r.stdout, "no senior decided before the deadline") {
			t.Errorf("stdout: %s", r)
		}
	})

	t.Run("ctrl-c", func(t *testing.T) {
		f := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/requests/req_7kq2m4xa": reply(200, awaiting)})
		cmd := exec.Command(bin, "watch", "req_7kq2m4xa", "--interval", "250ms")
		cmd.Env = agentEnv(t, f)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for len(f.recorded()) < 2 {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("watch never polled twice")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		if code := exitCode(t, cmd.Wait()); code != 130 {
			t.Errorf("exit %d, want 130", code)
		}
	})
}

func TestWithdrawAndVeto(t *testing.T) {
	cancelled := func(status, by, actor string) string {
		return requestDoc(t, status, map[string]any{"cancellation": map[string]any{"by": by, "actor_id": actor, "reason": "customer called back", "at": "2026-03-01T11:00:00Z"}})
	}
	f := newFake(t, map[string]http.HandlerFunc{
		"POST /api/v1/requests/req_7kq2m4xa/withdraw": reply(200, cancelled("withdrawn", "requester", "ag_bob")),
		"POST /api/v1/requests/req_7kq2m4xa/veto":     replyProblem(403, "not_senior", "only seniors may veto"),
	})
	env := agentEnv(t, f)
	r := run(t, env, "", "withdraw", "req_7kq2m4xa", "--reason", "customer called back")
	wantExit(t, r, 0)
	if want := `Request req_7kq2m4xa: withdrawn by the requester (ag_bob) ("customer called back"); nothing was done`; strings.TrimSpace(r.stdout) != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if b := string(f.only("POST", "/api/v1/requests/req_7kq2m4xa/withdraw")[0].Body); b != `{"reason":"customer called back"}` {
		t.Errorf("withdraw body %s", b)
	}
	r = run(t, env, "", "veto", "req_7kq2m4xa", "--reason", "suspicious")
	wantExit(t, r, 3, "only seniors may veto", "only a senior can do this")
	r = run(t, env, "", "withdraw", "req_7kq2m4xa")
	wantExit(t, r, 2, "--reason is required")
	before := len(f.recorded())
	r = run(t, env, "", "withdraw", "req_7kq2m4xa", "--reason", "called back\u202e")
	wantExit(t, r, 2, "--reason: contains a bidi control character (U+202E) at character 12")
	r = run(t, env, "", "veto", "req_7kq2m4xa", "--reason", "no\r\nApproved by ag_bob")
	wantExit(t, r, 2, "--reason: contains a line break (U+000D) at character 3")
	if len(f.recorded()) != before {
		t.Errorf("a refused reason reached the API")
	}
	r = run(t, env, "", "veto", "../admin", "--reason", "x")
	wantExit(t, r, 2, "is not a request id")
}

func TestAdmin(t *testing.T) {
	issued := `{"agent":` + meDoc + `,"token":"vgl_newtokennewtokennewtokennewtoken"}`
	var putMu sync.Mutex
	puts := map[string]string{}
	putRoute := func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+adminToken {
			problem(w, 401, "unauthenticated", "bad admin token")
			return
		}
		var body map[string]any
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			problem(w, 400, "invalid_input", err.Error())
			return
		}
		b, _ := json.Marshal(body)
		putMu.Lock()
		puts[r.URL.Path] = string(b)
		putMu.Unlock()
		reply(200, `{}`)(w, r)
	}
	f := newFake(t, map[string]http.HandlerFunc{
		"POST /admin/v1/agents":                reply(201, issued),
		"POST /admin/v1/agents/ag_ana/token":   reply(200, `{"agent":`+meDoc+`,"sent_to":"slack_dm"}`),
		"PATCH /admin/v1/agents/ag_ana":        reply(200, meDoc),
		"POST /admin/v1/agents/ag_ana/disable": reply(200, meDoc),
		"GET /admin/v1/agents":                 reply(200, `{"agents":[`+meDoc+`]}`),
		"PUT /admin/v1/customers/C-1":          putRoute,
		"PUT /admin/v1/customers/C-2":          putRoute,
	})
	env := baseEnv(t, t.TempDir(), "VIGIL_ADMIN_URL="+f.URL, "VIGIL_ADMIN_TOKEN="+adminToken)
	create := []string{"admin", "create-agent", "--id", "ag_ana", "--name", "Ana Lima", "--email", "ana@example.com", "--team", "support", "--role", "senior", "--slack-user", "U1"}

	r := run(t, env, "", create...)
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "Token: vgl_newtokennewtokennewtokennewtoken\n") || !strings.Contains(r.stdout, "will not be shown again") {
		t.Errorf("create-agent output: %s", r)
	}
	c := f.only("POST", "/admin/v1/agents")[0]
	if c.Auth != "Bearer "+adminToken || string(c.Body) != `{"id":"ag_ana","name":"Ana Lima","email":"ana@example.com","team":"support","role":"senior","slack_user_id":"U1"}` {
		t.Errorf("create-agent sent %q %s", c.Auth, c.Body)
	}
	r = run(t, env, "", append(create, "--json")...)
	wantExit(t, r, 0)
	var doc struct {
		Agent struct{ ID string }
		Token string
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc.Agent.ID != "ag_ana" || doc.Token == "" {
		t.Errorf("create-agent --json: %v %s", err, r)
	}

	// The admin token from stdin instead of the environment.
	noTokenEnv := baseEnv(t, t.TempDir(), "VIGIL_ADMIN_URL="+f.URL)
	r = run(t, noTokenEnv, "", "admin", "list-agents")
	wantExit(t, r, 2, "set VIGIL_ADMIN_TOKEN to your admin token, pass --admin-token-stdin, or `starter login` as an admin")
	// A signed-in admin's session serves without either.
	r = run(t, baseEnv(t, t.TempDir(), "VIGIL_URL=http://127.0.0.1:1", "VIGIL_ADMIN_URL="+f.URL, "VIGIL_TOKEN="+adminToken), "", "admin", "list-agents")
	wantExit(t, r, 0)
	r = run(t, noTokenEnv, adminToken+"\n", "admin", "list-agents", "--admin-token-stdin")
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "ag_ana") || !strings.Contains(r.stdout, "senior") {
		t.Errorf("list-agents: %s", r)
	}
	if a := f.only("GET", "/admin/v1/agents")[0].Auth; a != "Bearer "+adminToken {
		t.Errorf("list-agents auth %q", a)
	}

	r = run(t, env, "", "admin", "rotate-token", "ag_ana")
	wantExit(t, r, 0)
	if !strings.Contains(r.stdout, "sent it to them alone by Slack direct message") || !strings.Contains(r.stdout, "the old one no longer works") ||
		strings.Contains(r.stdout, "Token:") {
		t.Errorf("rotate-token: %s", r)
	}
	r = run(t, env, "", "admin", "set-role", "ag_ana", "senior")
	wantExit(t, r, 0)
	if b := string(f.only("PATCH", "/admin/v1/agents/ag_ana")[0].Body); b != `{"role":"senior"}` {
		t.Errorf("set-role body %s", b)
	}
	r = run(t, env, "", "admin", "set-role", "ag_ana", "overlord")
	wantExit(t, r, 2, "unknown role")
	r = run(t, env, "", "admin", "disable-agent", "ag_ana")
	wantExit(t, r, 0)
	for _, bad := range [][]string{
		{"admin", "create-agent", "--id", "ag_x", "--name", "X", "--email", "nope"},
		{"admin", "create-agent", "--id", "ag_x", "--email", "x@example.com"},
		{"admin", "create-agent", "--id", "ag_x", "--name", "X", "--email", "x@example.com", "--role", "boss"},
		{"admin", "create-agent", "--id", "ag_x", "--name", "X\u200bY", "--email", "x@example.com"},
		{"admin", "create-agent", "--id", "ag_x", "--name", "X", "--email", "x@ex\u0430mple.com"},
		{"admin", "create-agent", "--id", "ag_x", "--name", "X", "--email", "x@example.com", "--team", "Sup\x1bport"},
		{"admin", "create-agent", "--id", "ag_x", "--name", "X", "--email", "x@example.com", "--slack-user", "U1\u202e"},
	} {
		before := len(f.recorded())
		r = run(t, env, "", bad...)
		wantExit(t, r, 2)
		if len(f.recorded()) != before {
			t.Errorf("%v reached the API", bad)
		}
	}

	// import-customers: the whole file is checked first.
	hash, err := pinhash.Hash("1111", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"customers":[
		{"id":"C-1","name":"Acme","primary_email":"ops@acme.example","pin_hash":"`+hash+`","contacts":[{"email":"cto@acme.example","added_at":"2025-01-01T00:00:00Z"}],"phones":[{"number":"+447911123456","verified_at":"2025-01-01T00:00:00Z"}],"servers":["srv-1","srv-2"]},
		{"id":"C-2","name":"Bolt","primary_email":"it@bolt.example","pin_hash":"`+hash+`"}]}`), 0o600)
	r = run(t, env, "", "admin", "import-customers", good)
	wantExit(t, r, 0)
	if strings.TrimSpace(r.stdout) != "Imported 2 customers" {
		t.Errorf("import: %s", r)
	}
	putMu.Lock()
	if want := `{"contacts":[{"added_at":"2025-01-01T00:00:00Z","email":"cto@acme.example"}],"name":"Acme","phones":[{"number":"+447911123456","verified_at":"2025-01-01T00:00:00Z"}],"pin_hash":"` + hash + `","primary_email":"ops@acme.example","servers":["srv-1","srv-2"]}`; puts["/admin/v1/customers/C-1"] != want {
		t.Errorf("PUT C-1 body %s\nwant %s", puts["/admin/v1/customers/C-1"], want)
	}
	if !strings.Contains(puts["/admin/v1/customers/C-2"], `"contacts":[]`) {
		t.Errorf("PUT C-2 body %s", puts["/admin/v1/customers/C-2"])
	}
	putMu.Unlock()

	badFiles := map[string]string{
		"bad hash":           `{"customers":[{"id":"C-1","name":"A","primary_email":"a@x.example","pin_hash":"1111"}]}`,
		"unknown field":      `{"customers":[{"id":"C-1","name":"A","primary_email":"a@x.example","pin_hash":"` + hash + `","pin":"1111"}]}`,
		"duplicate id":       `{"customers":[{"id":"C-1","name":"A","primary_email":"a@x.example","pin_hash":"` + hash + `"},{"id":"C-1","name":"B","primary_email":"b@x.example","pin_hash":"` + hash + `"}]}`,
		"bad email":          `{"customers":[{"id":"C-1","name":"A","primary_email":"nope","pin_hash":"` + hash + `"}]}`,
		"mixed-script email": `{"customers":[{"id":"C-1","name":"A","primary_email":"a@x.ex\u0430mple","pin_hash":"` + hash + `"}]}`,
		"bidi in a contact":  `{"customers":[{"id":"C-1","name":"A","primary_email":"a@x.example","pin_hash":"` + hash + `","contacts":[{"email":"b\u202e@x.example"}]}]}`,
		"NUL in a name":      `{"customers":[{"id":"C-1","name":"A\u0000","primary_email":"a@x.example","pin_hash":"` + hash + `"}]}`,
		"empty":              `{"customers":[]}`,
		"phone with spaces":  `{"customers":[{"id":"C-1","name":"A","primary_email":"a@x.example","pin_hash":"` + hash + `","phones":[{"number":"+44 7911 123456"}]}]}`,
		"national phone":     `{"customers":[{"id":"C-1","name":"A","primary_email":"a@x.example","pin_hash":"` + hash + `","phones":[{"number":"07911123456"}]}]}`,
	}
	for name, content := range badFiles {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		os.WriteFile(path, []byte(content), 0o600)
		before := len(f.only("PUT", "/admin/v1/customers/C-1"))
		r = run(t, env, "", "admin", "import-customers", path)
		if r.code != 2 {
			t.Errorf("%s: want exit 2, got %s", name, r)
		}
		if strings.Contains(name, "phone") && !strings.Contains(r.stderr, "phones[0].number") {
			t.Errorf("%s: error does not name the phone: %s", name, r.stderr)
		}
		if strings.Contains(r.stderr, "1111") || strings.Contains(r.stderr, "7911") {
			t.Errorf("%s: error quotes a PIN or hash: %s", name, r.stderr)
		}
		if len(f.only("PUT", "/admin/v1/customers/C-1")) != before {
			t.Errorf("%s: a customer was sent", name)
		}
	}
}

func TestHelp(t *testing.T) {
	env := baseEnv(t, t.TempDir())
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := run(t, env, "", args...)
		wantExit(t, r, 0)
		for _, c := range commands() {
			if !strings.Contains(r.stdout, "  "+c.name+" ") {
				t.Errorf("%v: help lacks %s", args, c.name)
			}
			if !strings.Contains(r.stdout, "e.g. "+c.example) {
				t.Errorf("%v: help lacks the example of %s", args, c.name)
			}
		}
	}
	for _, c := range commands() {
		if c.name == "help" {
			continue
		}
		r := run(t, env, "", c.name, "-h")
		wantExit(t, r, 0)
		if !strings.Contains(r.stdout, "starter ") || (c.name != "admin" && !strings.Contains(r.stdout, "Example:")) {
			t.Errorf("%s -h: %s", c.name, r)
		}
	}
	for _, c := range adminCommands() {
		r := run(t, env, "", "admin", c.name, "-h")
		wantExit(t, r, 0)
		if !strings.Contains(r.stdout, "Example:\n  "+c.example) {
			t.Errorf("admin %s -h: %s", c.name, r)
		}
	}
}

func TestListLimit(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{"GET /api/v1/requests": reply(200, `{"requests":[]}`)})
	env := agentEnv(t, f)
	const outOfRange = "--limit must be a whole number from 1 to 500"
	tests := []struct {
		name       string
		args       []string
		wantExit   int
		wantQuery  string // sent query, when the limit is accepted
		wantStderr string // when it is refused
	}{
		{"no limit leaves the server's default", nil, 0, "", ""},
		{"smallest", []string{"--limit", "1"}, 0, "limit=1", ""},
		{"largest the server accepts", []string{"--limit", "500"}, 0, "limit=500", ""},
		{"as --limit=N", []string{"--limit=20"}, 0, "limit=20", ""},
		{"zero", []string{"--limit", "0"}, 2, "", outOfRange},
		{"negative", []string{"--limit", "-1"}, 2, "", outOfRange},
		{"one over the server's maximum", []string{"--limit", "501"}, 2, "", outOfRange},
		{"the old CLI maximum", []string{"--limit", "1000"}, 2, "", outOfRange},
		{"not a number", []string{"--limit", "ten"}, 2, "", `invalid value "ten" for flag -limit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.only("GET", "/api/v1/requests"))
			r := run(t, env, "", append([]string{"list"}, tt.args...)...)
			calls := f.only("GET", "/api/v1/requests")
			if tt.wantExit != 0 {
				wantExit(t, r, tt.wantExit, tt.wantStderr)
				if len(calls) != before {
					t.Errorf("a refused --limit still called the server: %+v", calls[before:])
				}
				return
			}
			wantExit(t, r, 0)
			// An empty list says the reader sees only what they may read.
			if want := "No requests you may read. (An agent sees only the requests they opened; a senior or the security role sees all.)\n"; r.stdout != want {
				t.Errorf("stdout = %q, want %q", r.stdout, want)
			}
			if len(calls) != before+1 || calls[before].Query != tt.wantQuery {
				t.Errorf("calls %+v, want one with query %q", calls[before:], tt.wantQuery)
			}
		})
	}
}
