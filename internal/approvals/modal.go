package approvals

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/slack-go/slack"
)

// The reject dialog: the view's callback_id and its one input, which the
// interactions endpoint reads back from the view_submission.
const (
	CallbackReject = "vigil_reject"
	ReasonBlockID  = "reason"
	ReasonActionID = "reason"
)

// MaxRejectReason is the most characters the dialog lets a senior type; the
// endpoint applies the text rule with the API's own limit as well.
const MaxRejectReason = 500

// triggerLife is how long Slack honours an interaction's trigger_id.
const triggerLife = 3 * time.Second

// RejectMeta is what the reject dialog carries in its private_metadata: the
// request and the approval message the Reject button was on. Slack returns
// it unchanged with the signed view_submission; the endpoint still checks
// the message is the request's current one.
type RejectMeta struct {
	RequestID string `json:"request"`
	Channel   string `json:"channel"`
	TS        string `json:"ts"`
}

// ParseRejectMeta reads a reject dialog's private_metadata.
func ParseRejectMeta(s string) (RejectMeta, error) {
	var m RejectMeta
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return RejectMeta{}, errors.New("private_metadata is not a reject dialog's")
	}
	if m.RequestID == "" || m.Channel == "" || m.TS == "" {
		return RejectMeta{}, errors.New("private_metadata lacks the request or its message")
	}
	return m, nil
}

// RejectModal is the dialog a Reject click opens: what is being rejected,
// and a one-line reason (required) that becomes the decision's reason on the
// card, in the requester's message and in the audit trail.
func RejectModal(r Request, meta RejectMeta) slack.ModalViewRequest {
	js, _ := json.Marshal(meta) // three strings: cannot fail
	reason := slack.NewPlainTextInputBlockElement(plain("One line: what is wrong with this request"), ReasonActionID)
	reason.MaxLength = MaxRejectReason
	input := slack.NewInputBlock(ReasonBlockID, plain("Why do you reject it?"),
		plain("The requester, the approval message and the audit trail show it."), reason)
	return slack.ModalViewRequest{
		Type:  slack.VTModal,
		Title: plain("Reject request"),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(plain("Reject "+doing(r)+"? The request ends and cannot be resumed."), nil, nil),
			input,
		}},
		Submit:          plain("Reject"),
		Close:           plain("Cancel"),
		PrivateMetadata: string(js),
		CallbackID:      CallbackReject,
	}
}

// OpenView opens view for the user whose interaction carried triggerID. The
// trigger is good for three seconds, so retries stop there.
func (c *Client) OpenView(ctx context.Context, triggerID string, view slack.ModalViewRequest) error {
	ctx, cancel := context.WithTimeout(ctx, triggerLife)
	defer cancel()
	return c.call(ctx, "views.open", func(ctx context.Context) error {
		_, err := c.api.OpenViewContext(ctx, triggerID, view)
		return err
	})
}
