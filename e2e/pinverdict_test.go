package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	commonpb "go.temporal.io/api/common/v1"

	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/workflows"
)

// stackCodec is the payload codec of the stack's worker and web front: the
// key an insider who holds the web front's configuration has.
func stackCodec(t testing.TB, s *stack) *codec.Codec {
	t.Helper()
	var keys string
	for _, kv := range s.env {
		if v, ok := strings.CutPrefix(kv, "VIGIL_CODEC_KEYS="); ok {
			keys = v
		}
	}
	parsed, err := codec.ParseKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := strings.Cut(keys, ":")
	c, err := codec.New(id, parsed)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// payloadsIn collects every Payload anywhere in m: inputs, results,
// markers, Update arguments, headers, memo, search attributes, failures.
func payloadsIn(m protoreflect.Message, out *[]*commonpb.Payload) {
	if p, ok := m.Interface().(*commonpb.Payload); ok {
		*out = append(*out, p)
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			if fd.Message() != nil {
				for i, l := 0, v.List(); i < l.Len(); i++ {
					payloadsIn(l.Get(i).Message(), out)
				}
			}
		case fd.IsMap():
			if fd.MapValue().Message() != nil {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					payloadsIn(mv.Message(), out)
					return true
				})
			}
		case fd.Message() != nil:
			payloadsIn(v.Message(), out)
		}
		return true
	})
}

// decodedHistory is every payload of hist, decrypted with cdc where it is
// encrypted (search attributes are not), as one byte string: what an
// operator with the codec key, or a codec endpoint for the UI, would see.
func decodedHistory(t testing.TB, cdc *codec.Codec, hist *historypb.History) []byte {
	t.Helper()
	var ps []*commonpb.Payload
	payloadsIn(hist.ProtoReflect(), &ps)
	var out bytes.Buffer
	encrypted := 0
	for _, p := range ps {
		if _, ok := p.GetMetadata()[codec.MetadataKeyID]; !ok {
			out.Write(p.GetData())
			continue
		}
		dec, err := cdc.Decode([]*commonpb.Payload{p})
		if err != nil {
			t.Fatalf("decode a payload of the history: %v", err)
		}
		encrypted++
		for _, d := range dec {
			out.Write(d.GetData())
			out.WriteByte('\n')
		}
	}
	if encrypted < 3 {
		t.Fatalf("only %d encrypted payloads decoded in %d events; the scan would prove nothing", encrypted, len(hist.GetEvents()))
	}
	return out.Bytes()
}

// fetchHistory reads a workflow's history with a client that has no codec:
// what anyone with read access to the namespace sees.
func fetchHistory(t testing.TB, s *stack, workflowID string) *historypb.History {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tc, err := client.DialContext(ctx, client.Options{HostPort: s.temporal, Namespace: "default", Logger: tlog.NewStructuredLogger(histDiscardLogger())})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	hist := &historypb.History{}
	it := tc.GetWorkflowHistory(ctx, workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", workflowID, err)
		}
		hist.Events = append(hist.Events, ev)
	}
	return hist
}

// assertNoSecretInHistory scans a history raw (as stored, without the codec)
// and decoded (with the codec key) for each secret. The decoded input must
// be the request's own (so that decoding worked) and carry no PIN.
func assertNoSecretInHistory(t testing.TB, cdc *codec.Codec, hist *historypb.History, requestID string, secrets ...string) {
	t.Helper()
	raw, err := proto.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	decoded := decodedHistory(t, cdc, hist)
	started := hist.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes()
	var in workflows.Input
	if err := cdc.DataConverter().FromPayloads(started.GetInput(), &in); err != nil {
		t.Fatalf("decode the input of %s: %v", requestID, err)
	}
	if in.RequestID != requestID || in.CustomerID == "" {
		t.Fatalf("decoded input %v is not request %s's; the scan would prove nothing", in, requestID)
	}
	if in.PIN != "" {
		t.Fatalf("the input of %s carries a PIN", requestID)
	}
	for _, secret := range secrets {
		if secret == "" {
			t.Fatal("empty secret in the absence check")
		}
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the raw history of %s contains a secret", requestID)
		}
		if bytes.Contains(decoded, []byte(secret)) {
			t.Errorf("the decoded history of %s contains a secret", requestID)
		}
	}
}

// startForged starts SensitiveRequest directly, as an insider with write
// access to the namespace and the codec key would: no web front, no PIN.
func startForged(t *testing.T, s *stack, workflowID string, in workflows.Input) workflows.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run := startRaw(t, s, workflowID, in)
	var st workflows.Status
	if err := run.Get(ctx, &st); err != nil {
		t.Fatalf("forged workflow %s: %v", workflowID, err)
	}
	return st
}

// startRaw starts a SensitiveRequest with a raw Temporal client that has the
// codec key, as an insider with write access to the namespace could, and
// returns at once.
func startRaw(t *testing.T, s *stack, workflowID string, in workflows.Input) client.WorkflowRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cdc := stackCodec(t, s)
	tc, err := client.DialContext(ctx, client.Options{HostPort: s.temporal, Namespace: "default",
		DataConverter: cdc.DataConverter(), FailureConverter: cdc.FailureConverter(),
		Logger: tlog.NewStructuredLogger(histDiscardLogger())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflowID, TaskQueue: workflows.TaskQueue,
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}, workflows.WorkflowName, in)
	if err != nil {
		t.Fatalf("start the forged workflow %s: %v", workflowID, err)
	}
	return run
}

// updateRaw sends an Update with a raw Temporal client that has the codec
// key, as an insider with write access to the namespace could, and returns
// its outcome.
func updateRaw(t *testing.T, s *stack, workflowID, name string, arg any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cdc := stackCodec(t, s)
	tc, err := client.DialContext(ctx, client.Options{HostPort: s.temporal, Namespace: "default",
		DataConverter: cdc.DataConverter(), FailureConverter: cdc.FailureConverter(),
		Logger: tlog.NewStructuredLogger(histDiscardLogger())})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflowID, UpdateName: name,
		Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		return err
	}
	return h.Get(ctx, nil)
}

// scheduled lists the activities a history scheduled, in order.
func scheduled(hist *historypb.History) []string {
	var out []string
	for _, ev := range hist.GetEvents() {
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			out = append(out, a.GetActivityType().GetName())
		}
	}
	return out
}

// TestPINNeverEntersTemporal, on real processes: the web front checks the PIN
// before any workflow starts. A wrong PIN answers at once with no workflow
// at all; a right PIN's workflow runs to executed with no PIN in its raw or
// its decoded history. Then the replays an insider with write access to the
// namespace and the codec key would try, started directly with a raw
// client: another request's verdict for another customer, the executed
// request's verdict a second time, and a request nobody checked a PIN for.
// None executes; each is refused at the PIN gate before any other activity,
// audited on the request's trail and announced in the security channel; the
// real request's row is untouched.
func TestPINNeverEntersTemporal(t *testing.T) {
	s := startStack(t, stackOptions{extraEnv: []string{"VIGIL_COOLING_CHANGE_ACCOUNT_EMAIL=3s"}})
	alice, _ := seed(t, s)
	importCustomer(t, s, "C-8800", "Ines Victim", "ines@victim.example", "864209", []string{"it@victim.example"}, nil)
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := store.New(db)
	ctx := context.Background()

	// A wrong PIN: answered with the end state, and Temporal never heard of it.
	var wrong struct {
		request
		PINFailures int `json:"pin_failures"`
	}
	if code, raw := s.call("POST", "/api/v1/requests", alice, map[string]any{
		"action": "change_account_email", "customer_id": customerID, "email": "dana.next@example.com",
		"reason": "caller asks to move the account", "pin": wrongPIN,
	}, &wrong); code != 201 || wrong.Status != "pin_rejected" || !wrong.Final || wrong.PINFailures != 1 {
		t.Fatalf("wrong PIN: %d %s", code, raw)
	}
	if _, err := st.PINVerdictOf(ctx, wrong.ID); err != nil {
		t.Fatalf("the wrong PIN left no verdict: %v", err)
	}
	assertNoWorkflow(t, s, workflows.WorkflowID(wrong.ID))
	if got := s.waitStatus(t, alice, wrong.ID, "pin_rejected", time.Second); !got.Final {
		t.Fatalf("status of the wrong-PIN request: %+v", got)
	}

	// The right PIN: the answer comes right after the start, PIN verified.
	var r struct {
		request
		PINVerifiedAt string `json:"pin_verified_at"`
	}
	if code, raw := s.call("POST", "/api/v1/requests", alice, map[string]any{
		"action": "change_account_email", "customer_id": customerID, "email": "dana.next@example.com",
		"reason": "customer moved to a new mail provider", "pin": customerPIN,
	}, &r); code != 201 || (r.Status != "pin_check" && r.Status != "awaiting_approval") || r.PINVerifiedAt == "" {
		t.Fatalf("right PIN: %d %s", code, raw)
	}
	s.click(t, r.ID, "approve", "U0BOB")
	s.waitStatus(t, alice, r.ID, "executed", 2*time.Minute)
	hist := fetchHistory(t, s, workflows.WorkflowID(r.ID))
	assertNoSecretInHistory(t, stackCodec(t, s), hist, r.ID, customerPIN, wrongPIN)
	if acts := scheduled(hist); len(acts) < 2 || acts[0] != "ConsumePINVerdict" || acts[1] != "Open" || slices.Contains(acts, "VerifyPIN") {
		t.Fatalf("activities %v, want the verdict consumed first and no VerifyPIN", acts)
	}
	// The API can answer executed from the workflow before the row's last
	// write lands; the forged runs below are compared with the final row.
	var original store.Request
	eventually(t, 30*time.Second, "the row of "+r.ID+" ending", func() (bool, string) {
		var err error
		if original, err = st.Request(ctx, r.ID); err != nil {
			return false, err.Error()
		}
		return original.EndedAt != nil, string(original.Status)
	})
	victimPerformed := len(s.performed(t))

	own := workflows.Input{RequestID: r.ID, Action: "change_account_email", CustomerID: customerID, RequesterID: "ag_alice",
		Email: "dana.next@example.com", Reason: "customer moved to a new mail provider",
		Policy: workflows.DefaultPolicy(domain.ActionChangeAccountEmail, domain.CoolingPeriods{domain.ActionChangeAccountEmail: time.Second})}
	forged := []struct {
		name, workflowID string
		in               workflows.Input
		reason           string
		fields           []string
	}{
		{
			// The replay: the verified request's id, reused for
			// another customer's account email.
			name: "another customer", workflowID: workflows.WorkflowID(r.ID) + "-replay",
			in: func() workflows.Input {
				in := own
				in.CustomerID, in.Email = "C-8800", "attacker@evil.example"
				return in
			}(),
			reason: store.VerdictMismatch, fields: []string{"workflow id", "customer", "email"},
		},
		{
			// The same request again, under its own workflow id once it
			// closed: the verdict was consumed.
			name: "consumed twice", workflowID: workflows.WorkflowID(r.ID), in: own, reason: store.VerdictConsumed,
		},
		{
			name: "no PIN checked", workflowID: workflows.WorkflowID("req_forgedwithoutpin"),
			in: func() workflows.Input {
				in := own
				in.RequestID, in.CustomerID, in.Email = "req_forgedwithoutpin", "C-8800", "attacker@evil.example"
				return in
			}(),
			reason: store.VerdictMissing,
		},
	}
	for _, f := range forged {
		t.Run(f.name, func(t *testing.T) {
			got := startForged(t, s, f.workflowID, f.in)
			if got.Status != "failed" || !strings.Contains(got.Failure, "the PIN verdict was refused ("+f.reason+")") {
				t.Fatalf("forged run ended %s (%q), want failed with the verdict refused (%s)", got.Status, got.Failure, f.reason)
			}
			fh := fetchHistory(t, s, f.workflowID)
			// The last run under that id is the forged one.
			if acts := scheduled(fh); slices.Contains(acts, "Open") || slices.Contains(acts, "Execute") ||
				slices.Contains(acts, "NotifyCustomer") || slices.Contains(acts, "Record") || len(acts) == 0 || acts[0] != "ConsumePINVerdict" {
				t.Fatalf("forged run scheduled %v, want the PIN gate and nothing that touches the request", acts)
			}
			trail, err := st.AuditTrail(ctx, f.in.RequestID)
			if err != nil {
				t.Fatal(err)
			}
			var refused *store.AuditEvent
			for i := range trail {
				if trail[i].Event == "gate.pin.verdict_refused" && trail[i].Details["workflow_id"] == f.workflowID &&
					trail[i].Details["customer"] == f.in.CustomerID {
					refused = &trail[i]
				}
			}
			if refused == nil || refused.Details["reason"] != f.reason {
				t.Fatalf("no gate.pin.verdict_refused (%s) for %s on the trail of %s: %+v", f.reason, f.workflowID, f.in.RequestID, trail)
			}
			if f.fields != nil {
				b, _ := json.Marshal(refused.Details["fields"])
				want, _ := json.Marshal(f.fields)
				if !bytes.Equal(b, want) {
					t.Fatalf("refusal names fields %s, want %s", b, want)
				}
			}
			eventually(t, 30*time.Second, "the security alert for "+f.workflowID, func() (bool, string) {
				msgs, _ := s.slackMessages(t)
				for _, m := range msgs {
					if m.Channel == "C0VIGILSECURITY" && strings.Contains(m.Text, "refused the PIN verdict of request "+f.in.RequestID) &&
						strings.Contains(m.Text, f.workflowID) {
						return true, ""
					}
				}
				return false, fmt.Sprintf("%d messages", len(msgs))
			})
			if n := len(s.performed(t)); n != victimPerformed {
				t.Fatalf("the panel performed %d actions, want %d: a forged run executed", n, victimPerformed)
			}
			now, err := st.Request(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if now.Status != original.Status || now.CustomerID != original.CustomerID || !now.UpdatedAt.Equal(original.UpdatedAt) {
				t.Fatalf("the real request's row moved: %+v, was %+v", now, original)
			}
			if _, err := st.Request(ctx, "req_forgedwithoutpin"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a forged run wrote a request row: %v", err)
			}
		})
	}
	cust, err := st.Customer(ctx, "C-8800")
	if err != nil {
		t.Fatal(err)
	}
	if cust.PrimaryEmail != "ines@victim.example" {
		t.Fatalf("the victim's account email is now %s", cust.PrimaryEmail)
	}
}

// assertNoWorkflow fails if Temporal has any run under workflowID.
func assertNoWorkflow(t testing.TB, s *stack, workflowID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tc, err := client.DialContext(ctx, client.Options{HostPort: s.temporal, Namespace: "default", Logger: tlog.NewStructuredLogger(histDiscardLogger())})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_, err = tc.DescribeWorkflowExecution(ctx, workflowID, "")
	var notFound *serviceerror.NotFound
	if !errors.As(err, &notFound) {
		t.Fatalf("describe %s: %v, want NotFound: no workflow may start for a PIN that was not accepted", workflowID, err)
	}
}
