package workflows_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/slackstandin"
	"github.com/vigil-oss/vigil/workflows"
)

// TestRepostApprovalMessage: the requester or a senior can have a lost
// approval message posted again while the request waits for approval. The
// new message replaces the old in the workflow's state, the projection and
// every later update (the card ends on the new one); the old one, if Slack
// still has it, says it was replaced; the repost is audited. Anyone else,
// and any ask once the request is past approval, is refused and changes
// nothing.
func TestRepostApprovalMessage(t *testing.T) {
	t.Parallel()
	byRequester := workflows.RepostInput{ActorID: requesterID, ActorRole: domain.RoleAgent}
	bySenior := workflows.RepostInput{ActorID: senior2ID, ActorRole: domain.RoleSenior}
	for _, tc := range []struct {
		name      string
		by        workflows.RepostInput
		deleteOld bool // the old message was deleted in Slack first
	}{
		{"requester, old message still there", byRequester, false},
		{"senior, old message deleted", bySenior, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			reqID := "req-repost-" + strings.Fields(tc.name)[0]
			env := h.env(reqID)
			var old slackstandin.Message
			env.RegisterDelayedCallback(func() {
				msgs := h.approvalMessages()
				if len(msgs) != 1 {
					t.Errorf("before the repost: %d approval messages", len(msgs))
					return
				}
				old = msgs[0]
				if tc.deleteOld && !h.slack.DeleteMessage(old.Channel, old.TS) {
					t.Error("could not delete the approval message")
				}
			}, 10*time.Minute)
			junior := h.update(env, 15*time.Minute, workflows.UpdateRepost, workflows.RepostInput{ActorID: juniorID, ActorRole: domain.RoleAgent})
			nobody := h.update(env, 15*time.Minute, workflows.UpdateRepost, workflows.RepostInput{})
			repost := h.update(env, 20*time.Minute, workflows.UpdateRepost, tc.by)
			during := h.queryAt(env, 30*time.Minute)
			waiting := h.slackAt(env, 30*time.Minute)
			dec := h.decide(env, time.Hour, approve())
			late := h.update(env, 2*time.Hour, workflows.UpdateRepost, byRequester)
			st := h.run(env, input(reqID, domain.ActionReinstallVPS))

			junior.mustReject(t, "repost by an agent who did not open the request", workflows.RefusedNotRequester, "only the agent who opened the request or a senior")
			nobody.mustReject(t, "repost by nobody", workflows.RefusedInvalid, "who asks is missing")
			repost.mustAccept(t, "repost")
			dec.mustAccept(t, "approval of the reposted request")
			late.mustReject(t, "repost after the approval", workflows.RefusedNotAwaiting, "not waiting for approval")
			if st.Status != domain.StatusExecuted {
				t.Fatalf("status %s (%s), want executed", st.Status, st.Failure)
			}

			var top []slackstandin.Message
			for _, m := range waiting.msgs {
				if m.Channel == "C0VIGILAPPROVALS" && m.ThreadTS == "" {
					top = append(top, m)
				}
			}
			wantTop := 2
			if tc.deleteOld {
				wantTop = 1
			}
			if len(top) != wantTop {
				t.Fatalf("after the repost: %d approval messages, want %d: %+v", len(top), wantTop, top)
			}
			fresh := top[len(top)-1]
			if fresh.TS == old.TS || !strings.Contains(string(fresh.Blocks), `"approve"`) {
				t.Fatalf("new message %+v is the old one, or has no buttons", fresh)
			}
			if !tc.deleteOld {
				was := top[0]
				if was.TS != old.TS || !strings.Contains(was.Text, "Posted again") || strings.Contains(string(was.Blocks), `"actions"`) {
					t.Errorf("old message after the repost: %+v, want it to say it was replaced, without buttons", was)
				}
			}
			if s := during.check(t, domain.StatusAwaitingApproval); s.SlackChannel != fresh.Channel || s.SlackTS != fresh.TS {
				t.Errorf("status query points at %s/%s, the new message is %s/%s", s.SlackChannel, s.SlackTS, fresh.Channel, fresh.TS)
			}
			if s := repost.status; s.SlackTS != fresh.TS {
				t.Errorf("the repost answered with message %s, the new one is %s", s.SlackTS, fresh.TS)
			}
			row := h.projection(reqID)
			if row.SlackChannel != fresh.Channel || row.SlackTS != fresh.TS || st.SlackTS != fresh.TS {
				t.Errorf("projection %s/%s and result %s point elsewhere than the new message %s", row.SlackChannel, row.SlackTS, st.SlackTS, fresh.TS)
			}

			// Every later update went to the new message: it ends executed.
			var final slackstandin.Message
			for _, m := range h.approvalMessages() {
				if m.TS == fresh.TS {
					final = m
				}
			}
			if !strings.Contains(shown(t, final), "Executed at") || !strings.Contains(shown(t, final), "Approved by") {
				t.Errorf("the new message does not end with the story:\n%s", shown(t, final))
			}
			for _, u := range h.messageUpdates() {
				if u.TS != "" && u.TS != fresh.TS {
					t.Errorf("update %s went to message %s, not the new one %s", u.Event, u.TS, fresh.TS)
				}
			}
			ev := eventNamed(t, h.trail(reqID), activities.EventApprovalReposted)
			if ev.Actor != "agent:"+tc.by.ActorID || ev.Details["old_ts"] != old.TS || ev.Details["ts"] != fresh.TS {
				t.Errorf("repost audit event %+v", ev)
			}
			if n := len(h.started("RepostApproval")); n != 1 {
				t.Errorf("RepostApproval started %d times, want 1 (refused asks start nothing)", n)
			}
		})
	}
}

// TestRepostBeforeTheMessageLanded: an ask while the first post is still
// being retried is refused and starts nothing.
func TestRepostBeforeTheMessageLanded(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	reqID := "req-repost-early"
	// The first attempt of PostApproval fails (three 500s for the client's
	// three tries); the activity's retry two seconds later posts.
	h.slack.FailNext("chat.postMessage", 500, 500, 500)
	env := h.env(reqID)
	early := h.update(env, time.Second, workflows.UpdateRepost, workflows.RepostInput{ActorID: requesterID, ActorRole: domain.RoleAgent})
	withdraw := h.cancel(env, 10*time.Minute, workflows.CancelInput{By: domain.CancelByRequester, ActorID: requesterID, ActorRole: domain.RoleAgent, Reason: "wrong customer"})
	st := h.run(env, input(reqID, domain.ActionReinstallVPS))
	early.mustReject(t, "repost while the first post is retried", workflows.RefusedNotAwaiting, "still being posted")
	withdraw.mustAccept(t, "withdrawal")
	if st.Status != domain.StatusWithdrawn {
		t.Fatalf("status %s, want withdrawn", st.Status)
	}
	if n := len(h.started("RepostApproval")); n != 0 {
		t.Errorf("RepostApproval started %d times", n)
	}
	if msgs := h.approvalMessages(); len(msgs) != 1 {
		t.Errorf("%d approval messages, want the one first posted", len(msgs))
	}
}
