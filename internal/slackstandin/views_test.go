package slackstandin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/slack-go/slack"
)

// modalApp plays an app that opens a modal on every button click (with the
// real slack-go client, within the click's request, as apps do) and answers
// its submissions: errors for the value "bad", closed otherwise.
type modalApp struct {
	mu          sync.Mutex
	api         *slack.Client
	openErr     error
	submissions []slack.InteractionCallback
	trigger     string
}

func (a *modalApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ic, err := slack.InteractionCallbackParse(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch ic.Type {
	case slack.InteractionTypeBlockActions:
		title := slack.NewTextBlockObject(slack.PlainTextType, "Reject request", false, false)
		in := slack.NewInputBlock("reason", slack.NewTextBlockObject(slack.PlainTextType, "Why?", false, false), nil,
			slack.NewPlainTextInputBlockElement(nil, "reason"))
		_, err := a.api.OpenViewContext(r.Context(), ic.TriggerID, slack.ModalViewRequest{
			Type: slack.VTModal, Title: title, CallbackID: "cb", PrivateMetadata: `{"request":"req-1"}`,
			Submit: slack.NewTextBlockObject(slack.PlainTextType, "Reject", false, false),
			Blocks: slack.Blocks{BlockSet: []slack.Block{
				slack.NewSectionBlock(slack.NewTextBlockObject(slack.PlainTextType, "Reject req-1?", false, false), nil, nil), in}},
		})
		a.mu.Lock()
		a.openErr, a.trigger = err, ic.TriggerID
		a.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	case slack.InteractionTypeViewSubmission:
		a.mu.Lock()
		a.submissions = append(a.submissions, ic)
		a.mu.Unlock()
		if ic.View.State.Values["reason"]["reason"].Value == "bad" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(slack.NewErrorsViewSubmissionResponse(map[string]string{"reason": "Say why."}))
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

func TestViewsOpenAndSubmit(t *testing.T) {
	ctx := context.Background()
	app := &modalApp{}
	vigil := httptest.NewServer(app)
	t.Cleanup(vigil.Close)
	srv, err := New(Config{
		BotToken: testToken, SigningSecret: testSecret, TeamID: "T0TEST", AppID: "A0TEST",
		InteractionURL: vigil.URL,
		Users:          []User{{ID: "U0ALICE", Name: "alice"}, {ID: "U0BOB", Name: "bob", RealName: "Bob Lindqvist"}},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	api := slack.New(testToken, slack.OptionAPIURL(hs.URL+"/api/"))
	app.api = api
	ch, ts, err := api.PostMessageContext(ctx, "#vigil-approvals", slack.MsgOptionBlocks(approvalBlocks("req-1")...))
	if err != nil {
		t.Fatal(err)
	}

	resp, err := srv.Click(ctx, ch, ts, "reject", "U0BOB")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if app.openErr != nil {
		t.Fatalf("views.open: %v", app.openErr)
	}
	views := srv.Views()
	if len(views) != 1 || views[0].User != "U0BOB" || views[0].CallbackID != "cb" || views[0].Title != "Reject request" ||
		!strings.HasPrefix(views[0].ID, "V") || views[0].PrivateMetadata != `{"request":"req-1"}` {
		t.Fatalf("views = %+v", views)
	}

	// A trigger is good for one views.open only.
	_, err = api.OpenViewContext(ctx, app.trigger, slack.ModalViewRequest{Type: slack.VTModal,
		Title:  slack.NewTextBlockObject(slack.PlainTextType, "Again", false, false),
		Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewDividerBlock()}}})
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "exchanged_trigger_id" {
		t.Errorf("second views.open with the same trigger: %v, want exchanged_trigger_id", err)
	}
	for _, tc := range []struct {
		name, trigger string
		view          slack.ModalViewRequest
		want          string
	}{
		{"unknown trigger", "1.2.abc", slack.ModalViewRequest{Type: slack.VTModal, Title: slack.NewTextBlockObject(slack.PlainTextType, "T", false, false),
			Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewDividerBlock()}}}, "invalid_trigger_id"},
		{"no title", "1.2.abc", slack.ModalViewRequest{Type: slack.VTModal, Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewDividerBlock()}}}, "invalid_arguments"},
		{"title too long", "1.2.abc", slack.ModalViewRequest{Type: slack.VTModal, Title: slack.NewTextBlockObject(slack.PlainTextType, strings.Repeat("t", 25), false, false),
			Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewDividerBlock()}}}, "invalid_arguments"},
		{"input without submit", "1.2.abc", slack.ModalViewRequest{Type: slack.VTModal, Title: slack.NewTextBlockObject(slack.PlainTextType, "T", false, false),
			Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewInputBlock("r", slack.NewTextBlockObject(slack.PlainTextType, "Why", false, false), nil,
				slack.NewPlainTextInputBlockElement(nil, "r"))}}}, "invalid_arguments"},
	} {
		_, err := api.OpenViewContext(ctx, tc.trigger, tc.view)
		if !errors.As(err, &se) || se.Err != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}

	// Submitting: errors keep the dialog open and show; a clean answer closes it.
	v := views[0]
	if _, err := srv.SubmitView(ctx, v.ID, map[string]string{"nope": "x"}); err == nil {
		t.Error("submit with an input the view does not have was sent")
	}
	if _, err := srv.SubmitView(ctx, v.ID, nil); err == nil {
		t.Error("submit leaving a required input out was sent (Slack's client would not)")
	}
	res, err := srv.SubmitView(ctx, v.ID, map[string]string{"reason": "bad"})
	if err != nil || res.Status != 200 || res.Closed || res.Errors["reason"] != "Say why." {
		t.Fatalf("submit bad = %+v, %v", res, err)
	}
	if got := srv.Views(); len(got) != 1 || got[0].Errors["reason"] != "Say why." {
		t.Errorf("after errors the views are %+v", got)
	}
	res, err = srv.SubmitView(ctx, v.ID, map[string]string{"reason": "the customer never called"})
	if err != nil || res.Status != 200 || !res.Closed {
		t.Fatalf("submit good = %+v, %v", res, err)
	}
	if got := srv.Views(); len(got) != 0 {
		t.Errorf("views after a clean submission: %+v", got)
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if len(app.submissions) != 2 {
		t.Fatalf("app got %d submissions, want 2", len(app.submissions))
	}
	s := app.submissions[1]
	if s.User.ID != "U0BOB" || s.Team.ID != "T0TEST" || s.APIAppID != "A0TEST" || s.View.ID != v.ID || s.View.CallbackID != "cb" ||
		s.View.PrivateMetadata != `{"request":"req-1"}` || s.View.AppID != "A0TEST" ||
		s.View.State.Values["reason"]["reason"].Value != "the customer never called" {
		t.Errorf("submission payload = %+v", s)
	}
}
