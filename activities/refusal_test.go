package activities

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/mail"
	"github.com/vigil-oss/vigil/internal/panel"
)

// TestExecuteRefusal: each refusal of the panel or the mail relay gets its
// own non-retryable type, with a message that names the class and status
// but none of the panel's or the relay's text; any other error stays as it
// is (nil here), to be retried.
func TestExecuteRefusal(t *testing.T) {
	const theirs = "customer c-1 at https://panel.example/v1 says no"
	in := ExecuteInput{RequestID: "req-1", Action: domain.ActionDisable2FA, CustomerID: "c-1"}
	panelErr := func(status int, code string) error {
		return fmt.Errorf("wrapped: %w", &panel.PermanentError{Status: status, Code: code, Message: theirs, Op: "DELETE /v1/customers/c-1/2fa"})
	}
	cases := []struct {
		name     string
		err      error
		wantType string // "" means not a refusal
	}{
		{"not found", panelErr(http.StatusNotFound, "not_found"), ErrTypePanelNotFound},
		{"bad token", panelErr(http.StatusUnauthorized, "unauthorized"), ErrTypePanelUnauthorized},
		{"forbidden", panelErr(http.StatusForbidden, "forbidden"), ErrTypePanelUnauthorized},
		{"key reused", panelErr(http.StatusUnprocessableEntity, "idempotency_key_reused"), ErrTypePanelRefused},
		{"malformed", panelErr(http.StatusBadRequest, "invalid_request"), ErrTypePanelRefused},
		{"unusable success", panelErr(http.StatusOK, "bad_response"), ErrTypePanelBadAnswer},
		{"invalid job", panelErr(0, "invalid_job"), ErrTypeInvalidJob},
		{"mail relay refused", fmt.Errorf("send: %w", &mail.PermanentError{Code: 550, Msg: theirs, Op: "RCPT"}), ErrTypeMailRefused},
		{"server error", errors.New("panel: status 500 (internal): " + theirs), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := executeRefusal(tc.err, in)
			if tc.wantType == "" {
				if got != nil {
					t.Fatalf("executeRefusal = %v, want nil (retryable)", got)
				}
				return
			}
			var app *temporal.ApplicationError
			if !errors.As(got, &app) || app.Type() != tc.wantType || !app.NonRetryable() {
				t.Fatalf("executeRefusal = %#v, want a non-retryable %s", got, tc.wantType)
			}
			if msg := app.Message(); strings.Contains(msg, "says no") || strings.Contains(msg, "panel.example") || !strings.Contains(msg, "req-1") {
				t.Fatalf("message %q: want the request and no text of the panel's or the relay's", msg)
			}
			if !errors.Is(got, tc.err) {
				t.Fatalf("the cause %v is not kept for the worker's log", tc.err)
			}
		})
	}
}
