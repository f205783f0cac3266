package slackstandin

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/domain"
)

var threeUsers = []User{
	{ID: "U0ALICE", Name: "alice", RealName: "Alice Moreau"},
	{ID: "U0BOB", Name: "bob", RealName: "Bob Lindqvist"},
	{ID: "U0CAROL", Name: "carol", RealName: "Carol Ng"},
}

var seedAgents = []Agent{
	{ID: "ag_alice", Role: "agent", SlackUserID: "U0ALICE"},
	{ID: "ag_bob", Role: "senior", SlackUserID: "U0BOB"},
	{ID: "ag_carol", Role: "senior", SlackUserID: "U0CAROL"},
}

// approvalFrom posts Vigil's real approval message for a request opened by requester.
func approvalFrom(t *testing.T, api *slack.Client, requester string) (channel, ts string) {
	t.Helper()
	r := approvals.Request{
		ID: "req-" + strings.ToLower(requester), Action: domain.ActionResendCredentials, CustomerID: "C-1042", ServerID: "srv-1042-a",
		RequesterSlackID: requester, Reason: "customer asked in chat", ExpiresAt: time.Now().Add(30 * time.Minute),
	}
	channel, ts, err := api.PostMessageContext(context.Background(), "#vigil-approvals",
		slack.MsgOptionText("approval needed", false), slack.MsgOptionBlocks(approvals.ApprovalBlocks(r)...))
	if err != nil {
		t.Fatalf("PostMessage: %v", err)
	}
	return channel, ts
}

func TestAsMenuNeverStartsAtTheRequester(t *testing.T) {
	tests := []struct {
		name      string
		agents    []Agent
		groups    map[string][]string
		requester string
		last      string // ?as= from the previous click
		want      string // "" is "choose…"
	}{
		{"newcomer approving alice's request", seedAgents, nil, "U0ALICE", "", "U0BOB"},
		{"bob's own request goes to carol", seedAgents, nil, "U0BOB", "", "U0CAROL"},
		{"the last clicker is kept", seedAgents, nil, "U0ALICE", "U0CAROL", "U0CAROL"},
		{"unless they opened this request", seedAgents, nil, "U0BOB", "U0BOB", "U0CAROL"},
		{"the last clicker need not be a senior", seedAgents, nil, "U0CAROL", "U0ALICE", "U0ALICE"},
		{"an unknown last clicker is ignored", seedAgents, nil, "U0ALICE", "U0MALLORY", "U0BOB"},
		{"seniors from the usergroup without agents", nil, map[string][]string{"S0SENIORS": {"U0CAROL"}}, "U0ALICE", "", "U0CAROL"},
		{"no senior known: choose", nil, nil, "U0ALICE", "", ""},
		{"the only senior is the requester: choose", []Agent{{ID: "ag_bob", Role: "senior", SlackUserID: "U0BOB"}}, nil, "U0BOB", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := New(Config{BotToken: testToken, SigningSecret: testSecret, Users: threeUsers, Agents: tc.agents, Groups: tc.groups}, nil)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			hs := httptest.NewServer(srv.Handler())
			defer hs.Close()
			approvalFrom(t, slack.New(testToken, slack.OptionAPIURL(hs.URL+"/api/")), tc.requester)
			page := getPage(t, hs.URL+"/?as="+url.QueryEscape(tc.last))
			want := `<option value="` + tc.want + `" selected>`
			if strings.Count(page, want) != 2 { // one menu per button
				t.Errorf("the menus do not both start at %q (want %d× %s):\n%s", tc.want, 2, want, page)
			}
			if strings.Count(page, " selected>") != 2 {
				t.Errorf("%d options selected, want one per menu", strings.Count(page, " selected>"))
			}
			if tc.want == "" && !strings.Contains(page, `<option value="" selected>choose…</option>`) {
				t.Errorf(`no "choose…" entry`)
			}
			if !strings.Contains(page, `<select name="user" required>`) {
				t.Errorf("the menu can be sent empty")
			}
			if !strings.Contains(page, " · requester</option>") {
				t.Errorf("the requester is not marked in the menu")
			}
		})
	}
}

func TestConfirmSaysWhoClicks(t *testing.T) {
	srv, err := New(Config{BotToken: testToken, SigningSecret: testSecret, Users: threeUsers, Agents: seedAgents,
		InteractionURL: "http://127.0.0.1:1/slack/interactions"}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	ch, ts := approvalFrom(t, slack.New(testToken, slack.OptionAPIURL(hs.URL+"/api/")), "U0ALICE")
	click := func(user string) (int, string) {
		form := url.Values{"channel": {ch}, "ts": {ts}, "action_id": {approvals.ActionApprove}, "user": {user}}
		resp, err := http.PostForm(hs.URL+"/ui/click", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	tests := []struct {
		name, user string
		status     int
		want, not  []string
	}{
		{"a senior", "U0BOB", 200, []string{"Approve this request?", "Approve as <b>Bob Lindqvist (ag_bob)</b>?"}, []string{"opened this request"}},
		{"the requester is warned", "U0ALICE", 200, []string{"Approve as <b>Alice Moreau (ag_alice)</b>?", "Alice Moreau (ag_alice) opened this request"}, nil},
		{"nobody chosen", "", 400, []string{`choose who is clicking`}, []string{"Approve as"}},
		{"a stranger", "U0MALLORY", 400, []string{`choose who is clicking`}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := click(tc.user)
			if status != tc.status {
				t.Errorf("status %d, want %d: %s", status, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("confirm step lacks %q:\n%s", w, body)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(body, n) {
					t.Errorf("confirm step has %q", n)
				}
			}
		})
	}
}

func TestParseAgents(t *testing.T) {
	agents, err := ParseAgents(strings.NewReader(`[
  {"id": "ag_bob", "name": "Bob", "role": "senior", "slack_user_id": "U0BOB"},
  {"id": "ag_admin", "role": "admin", "slack_user_id": ""}
]`))
	if err != nil || len(agents) != 1 || agents[0] != (Agent{ID: "ag_bob", Role: "senior", SlackUserID: "U0BOB"}) {
		t.Errorf("ParseAgents = %+v, %v", agents, err)
	}
	for _, bad := range []string{`{}`, `[{"id":"a","slack_user_id":"bob"}]`, `[{"slack_user_id":"U0BOB"}]`,
		`[{"id":"a","slack_user_id":"U0BOB"},{"id":"b","slack_user_id":"U0BOB"}]`} {
		if _, err := ParseAgents(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseAgents(%s) accepted", bad)
		}
	}
	if _, err := New(Config{BotToken: testToken, SigningSecret: testSecret, Users: threeUsers[:1], Agents: seedAgents}, nil); err == nil {
		t.Errorf("New accepted agents who are not members")
	}
}
