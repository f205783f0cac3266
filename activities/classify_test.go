package activities_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/mail"
	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/testpg"
	"github.com/vigil-oss/vigil/internal/tokens"
)

// leak is text a caller typed; no classified error may carry it.
const leak = "caller-typed-text-7Q2Z"

// TestClassify pins which errors become non-retryable, with which type, and
// that the new message names only the class of the cause.
func TestClassify(t *testing.T) {
	already := temporal.NewNonRetryableApplicationError("customer does not exist", activities.ErrTypePermanent, nil)
	retryableApp := temporal.NewApplicationError("slow down", "RateLimited")
	pqErr := func(code, constraint string) error {
		return &pq.Error{Code: pqerror.Code(code), Message: "refused: " + leak, Detail: "Key (reason)=(" + leak + ")", Constraint: constraint}
	}
	tests := []struct {
		name     string
		err      error
		wantType string // "" means: returned unchanged
		wantMsg  string
	}{
		{"NUL byte in text (22021)", fmt.Errorf("create request r1: %w", pqErr("22021", "")), activities.ErrTypeDataError, "SQLSTATE 22021 (character_not_in_repertoire)"},
		{"invalid text representation (22P02)", fmt.Errorf("update: %w", pqErr("22P02", "")), activities.ErrTypeDataError, "SQLSTATE 22P02 (invalid_text_representation)"},
		{"unsupported unicode escape in jsonb (22P05)", pqErr("22P05", ""), activities.ErrTypeDataError, "22P05"},
		{"value too long (22001)", pqErr("22001", ""), activities.ErrTypeDataError, "string_data_right_truncation"},
		{"unique violation (23505) names the constraint", fmt.Errorf("insert: %w", pqErr("23505", "requests_one_open_key")), activities.ErrTypeDataError, "constraint requests_one_open_key"},
		{"check violation (23514)", pqErr("23514", "requests_id_check"), activities.ErrTypeDataError, "SQLSTATE 23514 (check_violation), constraint requests_id_check"},
		{"foreign key violation (23503)", pqErr("23503", "requests_customer_id_fkey"), activities.ErrTypeDataError, "foreign_key_violation"},
		{"not null violation (23502)", pqErr("23502", ""), activities.ErrTypeDataError, "not_null_violation"},
		{"store conflict sentinel", fmt.Errorf("store: execute r1: idempotency key used by another request: %w", store.ErrConflict), activities.ErrTypeDataError, "the store refused the data"},
		{"undecodable payload (codec)", fmt.Errorf("unable to decode the activity function input payload with error: %w for function name: Open", fmt.Errorf("codec: decrypt with key %q: %w", "k1", codec.ErrUndecodable)), activities.ErrTypeUndecodable, "payload codec"},
		{"undecodable payload (JSON shape)", fmt.Errorf("unable to decode: %w: json: cannot unmarshal", converter.ErrUnableToDecode), activities.ErrTypeUndecodable, "its Go type"},

		{"serialization failure (40001) is retried", pqErr("40001", ""), "", ""},
		{"deadlock (40P01) is retried", pqErr("40P01", ""), "", ""},
		{"admin shutdown (57P01) is retried", pqErr("57P01", ""), "", ""},
		{"connection failure (08006) is retried", pqErr("08006", ""), "", ""},
		{"too many connections (53300) is retried", pqErr("53300", ""), "", ""},
		{"connection refused is retried", fmt.Errorf("update: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), "", ""},
		{"cancelled context is retried", fmt.Errorf("update: %w", context.Canceled), "", ""},
		{"unknown key id is retried (another worker may hold it)", fmt.Errorf("decode: %w", fmt.Errorf("codec: key id %q: %w", "k9", codec.ErrUnknownKey)), "", ""},
		{"store not found is left to the activity", fmt.Errorf("request r1: %w", store.ErrNotFound), "", ""},
		{"plain error is retried", errors.New("smtp: 421 try later"), "", ""},
		{"an activity's own permanent error is kept", already, "", ""},
		{"an activity's own retryable application error is kept", retryableApp, "", ""},
		{"nil", nil, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := activities.Classify(tt.err)
			if tt.wantType == "" {
				if got != tt.err {
					t.Fatalf("Classify(%v) = %v (%T), want it unchanged", tt.err, got, got)
				}
				return
			}
			app, ok := got.(*temporal.ApplicationError)
			if !ok {
				t.Fatalf("Classify(%v) = %v (%T), want a *temporal.ApplicationError itself (the SDK looks at the dynamic type)", tt.err, got, got)
			}
			if app.Type() != tt.wantType || !app.NonRetryable() {
				t.Fatalf("Classify(%v): type %q non-retryable %v, want %q non-retryable", tt.err, app.Type(), app.NonRetryable(), tt.wantType)
			}
			if !strings.Contains(app.Error(), tt.wantMsg) {
				t.Fatalf("message %q does not say %q", app.Error(), tt.wantMsg)
			}
			if strings.Contains(app.Error(), leak) || errors.Unwrap(app) != nil {
				t.Fatalf("classified error %q carries the cause's text or chain", app.Error())
			}
		})
	}
}

// world is a real database behind real activities; the control panel and
// the mail relay are never reached by the activities these tests run.
type world struct {
	db   *sql.DB
	st   *store.Store
	acts *activities.Activities
	logs *bytes.Buffer
}

func newWorld(t *testing.T, st *store.Store) *world {
	t.Helper()
	pc, err := panel.NewClient("http://127.0.0.1:9", "panel-token", &http.Client{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sender, err := mail.NewSender(mail.SMTPConfig{Addr: "127.0.0.1:9", From: "vigil@vigil.test", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := tokens.NewSigner(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	acts, err := activities.New(st, pc, sender, signer, activities.Settings{CancelBaseURL: "http://127.0.0.1:8080"}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &world{st: st, acts: acts, logs: logs}
}

// seededWorld has one customer, one agent and one open request.
func seededWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	db := testpg.New(t)
	st := store.New(db)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	hash, err := pinhash.Hash("58203917", pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertCustomer(ctx, store.CustomerImport{ID: "cus_ada", Name: "Ada", PrimaryEmail: "ada@customer.test", PINHash: hash}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAgent(ctx, store.Agent{ID: "ag_rita", Name: "Rita", Email: "rita@vigil.test", Role: domain.RoleAgent}, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateRequest(ctx, store.Request{ID: "r-open", WorkflowID: "vigil-request-r-open", Action: domain.ActionDisable2FA,
		CustomerID: "cus_ada", RequesterID: "ag_rita", Reason: "customer lost their phone"}); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, st)
	w.db = db
	return w
}

// activityEnv runs activities as the worker does: through the classifying
// failure converter around dc's codec (nil: the SDK's default converters).
func activityEnv(w *world, dc converter.DataConverter, fc converter.FailureConverter) *testsuite.TestActivityEnvironment {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	if dc != nil {
		env.SetDataConverter(dc)
	}
	if fc == nil {
		fc = temporal.GetDefaultFailureConverter()
	}
	env.SetFailureConverter(activities.ClassifyingFailureConverter(fc))
	env.RegisterActivity(w.acts)
	return env
}

// appError is the application error an activity's failure arrived as.
func appError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var app *temporal.ApplicationError
	if !errors.As(err, &app) {
		t.Fatalf("activity error %v (%T) is not an application error", err, err)
	}
	return app
}

// TestActivityErrorsArriveClassified runs real activities against a real
// Postgres that refuses their data, and one that cannot be reached: what
// Temporal receives is non-retryable DataError for the first and a plain,
// retryable error for the second.
func TestActivityErrorsArriveClassified(t *testing.T) {
	t.Run("a NUL byte in the reason is a data error", func(t *testing.T) {
		w := seededWorld(t)
		_, err := activityEnv(w, nil, nil).ExecuteActivity(w.acts.Open, activities.OpenInput{
			RequestID: "r-nul", WorkflowID: "vigil-request-r-nul", Action: domain.ActionDisable2FA,
			CustomerID: "cus_ada", RequesterID: "ag_rita", Reason: "verified by phone\x00" + leak,
		})
		app := appError(t, err)
		if app.Type() != activities.ErrTypeDataError || !app.NonRetryable() {
			t.Fatalf("Open with a NUL byte: %q type %q non-retryable %v, want a non-retryable DataError", app.Error(), app.Type(), app.NonRetryable())
		}
		if !strings.Contains(app.Error(), "22021") || strings.Contains(app.Error(), leak) {
			t.Fatalf("message %q: want the SQLSTATE and none of the reason", app.Error())
		}
	})

	t.Run("a trigger refusing the audit event is a data error without the row", func(t *testing.T) {
		w := seededWorld(t)
		// The trigger's message quotes the row, as Postgres messages do.
		if _, err := w.db.Exec(`
			CREATE FUNCTION refuse_waiting() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF NEW.event = 'gate.approval.waiting' THEN
					RAISE EXCEPTION 'refused row %', NEW.details::text USING ERRCODE = 'check_violation', CONSTRAINT = 'test_refuses_waiting';
				END IF;
				RETURN NEW;
			END $$;
			CREATE TRIGGER refuse_waiting BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_waiting();`); err != nil {
			t.Fatal(err)
		}
		_, err := activityEnv(w, nil, nil).ExecuteActivity(w.acts.Record, activities.RecordInput{
			RequestID: "r-open", Status: domain.StatusAwaitingApproval, Event: "gate.approval.waiting", Actor: "system",
			Details: map[string]string{"note": leak},
		})
		app := appError(t, err)
		if app.Type() != activities.ErrTypeDataError || !app.NonRetryable() {
			t.Fatalf("refused Record: %q type %q non-retryable %v, want a non-retryable DataError", app.Error(), app.Type(), app.NonRetryable())
		}
		if !strings.Contains(app.Error(), "constraint test_refuses_waiting") || strings.Contains(app.Error(), leak) {
			t.Fatalf("message %q: want the constraint and none of the row", app.Error())
		}
	})

	t.Run("an unreachable database stays retryable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens there now
		db, err := sql.Open("postgres", "postgres://vigil@"+addr+"/vigil?sslmode=disable&connect_timeout=2")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		w := newWorld(t, store.New(db))
		_, err = activityEnv(w, nil, nil).ExecuteActivity(w.acts.Open, activities.OpenInput{
			RequestID: "r-down", WorkflowID: "vigil-request-r-down", Action: domain.ActionDisable2FA,
			CustomerID: "cus_ada", RequesterID: "ag_rita", Reason: "customer lost their phone",
		})
		app := appError(t, err)
		if app.NonRetryable() || app.Type() == activities.ErrTypeDataError {
			t.Fatalf("Open with the database down: %q type %q non-retryable %v, want retryable", app.Error(), app.Type(), app.NonRetryable())
		}
	})
}

// sealedWith encodes with one codec and decodes with another, so an
// activity's input reaches the worker sealed in a way the worker's codec
// cannot (or can) open.
type sealedWith struct {
	converter.DataConverter // decodes: the worker's
	encode                  converter.DataConverter
}

func (s sealedWith) ToPayload(v any) (*commonpb.Payload, error) { return s.encode.ToPayload(v) }
func (s sealedWith) ToPayloads(v ...any) (*commonpb.Payloads, error) {
	return s.encode.ToPayloads(v...)
}

func newCodec(t *testing.T, id string, b byte) *codec.Codec {
	t.Helper()
	c, err := codec.New(id, map[string][]byte{id: bytes.Repeat([]byte{b}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestUndecodableInputIsNotRetried: the SDK decodes an activity's input
// before the activity (and any interceptor) runs, and reports a failure as
// a plain error that Temporal retries for ever. Through the classifying
// converter, input no worker can decode fails once; input sealed with a key
// this worker lacks stays retryable, for a worker that has it.
func TestUndecodableInputIsNotRetried(t *testing.T) {
	w := seededWorld(t)
	worker := newCodec(t, "k1", 1)
	in := activities.OpenInput{RequestID: "r-x", WorkflowID: "vigil-request-r-x", Action: domain.ActionDisable2FA,
		CustomerID: "cus_ada", RequesterID: "ag_rita", Reason: "customer lost their phone"}

	tests := []struct {
		name          string
		sealedBy      *codec.Codec
		classify      bool
		wantRetryable bool
	}{
		{"forged ciphertext (same key id, other key)", newCodec(t, "k1", 2), true, false},
		{"forged ciphertext without classification: the SDK retries it", newCodec(t, "k1", 2), false, true},
		{"a key this worker lacks", newCodec(t, "k9", 9), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var suite testsuite.WorkflowTestSuite
			env := suite.NewTestActivityEnvironment()
			env.SetDataConverter(sealedWith{DataConverter: worker.DataConverter(), encode: tt.sealedBy.DataConverter()})
			fc := worker.FailureConverter()
			if tt.classify {
				fc = activities.ClassifyingFailureConverter(fc)
			}
			env.SetFailureConverter(fc)
			env.RegisterActivity(w.acts)
			_, err := env.ExecuteActivity(w.acts.Open, in)
			app := appError(t, err)
			if app.NonRetryable() == tt.wantRetryable {
				t.Fatalf("%q type %q non-retryable %v, want retryable %v", app.Error(), app.Type(), app.NonRetryable(), tt.wantRetryable)
			}
			if !tt.wantRetryable && app.Type() != activities.ErrTypeUndecodable {
				t.Fatalf("type %q, want %q", app.Type(), activities.ErrTypeUndecodable)
			}
			// Nothing ran: the input never reached the activity.
			if _, err := w.st.Request(context.Background(), "r-x"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("request row after an undecodable Open: %v, want none", err)
			}
		})
	}
}
