package main

import (
	"net/http"
	"strings"
	"testing"
)

func TestRepostCommand(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"POST /api/v1/requests/req_7kq2m4xa/repost": reply(200, `{"request_id":"req_7kq2m4xa","channel":"C0VIGILAPPROVALS","ts":"1767000000.000200"}`),
		"POST /api/v1/requests/req_ended000/repost": replyProblem(409, "not_awaiting_approval", "the request is not waiting for approval (status cooling), so its approval message is not needed any more"),
		"POST /api/v1/requests/req_others00/repost": replyProblem(403, "not_requester", "only the agent who opened the request or a senior agent can have its approval message posted again"),
	})
	env := agentEnv(t, f)
	r := run(t, env, "", "repost", "req_7kq2m4xa")
	wantExit(t, r, 0)
	if want := "Request req_7kq2m4xa: its approval message was posted again (Slack channel C0VIGILAPPROVALS, message 1767000000.000200)"; !strings.Contains(r.stdout, want) {
		t.Errorf("repost output %q, want %q", r.stdout, want)
	}
	if calls := f.only("POST", "/api/v1/requests/req_7kq2m4xa/repost"); len(calls) != 1 || string(calls[0].Body) != "{}" {
		t.Errorf("repost calls %+v, want one with {}", calls)
	}
	r = run(t, env, "", "repost", "req_7kq2m4xa", "--json")
	wantExit(t, r, 0)
	if got := checkJSONLines(t, r.stdout); len(got) != 1 || got[0]["ts"] != "1767000000.000200" {
		t.Errorf("repost --json: %s", r.stdout)
	}
	wantExit(t, run(t, env, "", "repost", "req_ended000"), 3, "not waiting for approval", "[not_awaiting_approval]")
	wantExit(t, run(t, env, "", "repost", "req_others00"), 3, "only the agent who opened the request or a senior", "[not_requester]")

	before := len(f.recorded())
	wantExit(t, run(t, env, "", "repost"), 2, "missing argument")
	wantExit(t, run(t, env, "", "repost", "req/1"), 2)
	if n := len(f.recorded()); n != before {
		t.Errorf("%d calls for refused invocations", n-before)
	}
}
