package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/enums/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/internal/codecserver"
	"github.com/vigil-oss/vigil/internal/oidcprovider/oidctest"
	"github.com/vigil-oss/vigil/workflows"
)

// codecDecode posts payloads to the web front's codec endpoint as the
// Temporal UI or `temporal --codec-endpoint --codec-auth` does.
func codecDecode(t *testing.T, s *stack, token string, ps []*commonpb.Payload) (int, []*commonpb.Payload, string) {
	t.Helper()
	var in struct {
		Payloads []json.RawMessage `json:"payloads"`
	}
	for _, p := range ps {
		b, err := protojson.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		in.Payloads = append(in.Payloads, b)
	}
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest(http.MethodPost, s.webURL+"/codec/decode", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Namespace", "default")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, string(raw)
	}
	var out struct {
		Payloads []json.RawMessage `json:"payloads"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("codec endpoint answer %s: %v", raw, err)
	}
	res := make([]*commonpb.Payload, len(out.Payloads))
	for i, b := range out.Payloads {
		res[i] = &commonpb.Payload{}
		if err := protojson.Unmarshal(b, res[i]); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, res, string(raw)
}

// TestCodecEndpointOpensHistoryToSecurityOnly, on real processes: Alice
// signs in through the provider and opens a request, Bob approves it in
// Slack. Carol, of the security role (VIGIL_CODEC_ENDPOINT=on), signs
// in with her second factor and reads the request's history through the
// codec endpoint: the input decodes to the request, with no PIN. Alice's
// own live session is refused, and so is Carol's once she is disabled; her
// read is on the audit trail.
func TestCodecEndpointOpensHistoryToSecurityOnly(t *testing.T) {
	s := startStack(t, stackOptions{oidc: true, extraEnv: []string{
		"VIGIL_CODEC_ENDPOINT=on", "VIGIL_COOLING_RESEND_CREDENTIALS=3s"}})
	seed(t, s)
	if code, body := s.call("POST", "/admin/v1/agents", s.adminToken, map[string]any{
		"id": "ag_carol", "name": "Carol Ng", "email": "carol@vigil.example", "team": "Security", "role": "security",
	}, nil); code != 201 {
		t.Fatalf("create carol: %d %s", code, body)
	}
	log := &transcript{}
	alice, carol := newCLIUser(t, log), newCLIUser(t, log)
	if code, b := signInWithStarter(t, s, alice, "alice@vigil.localhost", oidctest.Code(t, "ag_alice")); code != 0 {
		t.Fatalf("alice login exit %d: %s", code, b.stderr)
	}
	res := alice.expect(t, 0, customerPIN+"\n", nil, "resend-credentials", "--customer", customerID, "--server", "srv-1",
		"--reason", "customer asked in chat", "--pin-stdin", "--json")
	r := decodeRequest(t, "resend-credentials --json", res.stdout)
	s.click(t, r.ID, "approve", "U0BOB")
	raw := rawTemporal(t, s)
	eventually(t, 2*time.Minute, "request "+r.ID+" ending", func() (bool, string) {
		d, err := raw.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(r.ID), "")
		if err != nil {
			return false, err.Error()
		}
		st := d.GetWorkflowExecutionInfo().GetStatus()
		return st == enums.WORKFLOW_EXECUTION_STATUS_COMPLETED, st.String()
	})

	hist := fetchHistory(t, s, workflows.WorkflowID(r.ID))
	input := hist.GetEvents()[0].GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()
	if len(input) != 1 || string(input[0].GetMetadata()[codec.MetadataWorkflowID]) != workflows.WorkflowID(r.ID) {
		t.Fatalf("the input is not one payload bound to the request's workflow: %v", input)
	}

	if code, b := signInWithStarter(t, s, carol, "carol@vigil.localhost", oidctest.Code(t, "ag_carol")); code != 0 {
		t.Fatalf("carol login exit %d: %s", code, b.stderr)
	}
	carolToken := readSession(t, filepath.Join(carol.config, "vigil", "credentials.json")).Token
	code, out, answer := codecDecode(t, s, carolToken, input)
	if code != http.StatusOK || len(out) != 1 {
		t.Fatalf("carol's decode: %d %s", code, answer)
	}
	var in workflows.Input
	if err := json.Unmarshal(out[0].GetData(), &in); err != nil || in.RequestID != r.ID || in.CustomerID != customerID {
		t.Fatalf("decoded input %s (%v), want request %s's", out[0].GetData(), err, r.ID)
	}
	if in.PIN != "" || strings.Contains(answer, customerPIN) {
		t.Fatal("the decoded history holds the PIN")
	}

	// The read is audited, naming Carol.
	db, err := sql.Open("postgres", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var reads int
	if err := db.QueryRow(`SELECT count(*) FROM audit_events WHERE event = $1 AND actor = 'ag_carol' AND (details->>'decoded')::int = 1`,
		codecserver.Event).Scan(&reads); err != nil || reads != 1 {
		t.Fatalf("carol's read audited %d times (%v), want once", reads, err)
	}

	// Alice is signed in, with her second factor, but not of security.
	aliceToken := readSession(t, filepath.Join(alice.config, "vigil", "credentials.json")).Token
	if code, _, raw := codecDecode(t, s, aliceToken, input); code != http.StatusForbidden || !strings.Contains(raw, `"forbidden"`) {
		t.Fatalf("alice's decode: %d %s, want 403 forbidden", code, raw)
	}
	// Carol disabled: her live session stops reading at once.
	if code, body := s.call("POST", "/admin/v1/agents/ag_carol/disable", s.adminToken, nil, nil); code != http.StatusOK {
		t.Fatalf("disable carol: %d %s", code, body)
	}
	if code, _, raw := codecDecode(t, s, carolToken, input); code != http.StatusForbidden {
		t.Fatalf("disabled carol's decode: %d %s, want 403", code, raw)
	}
}
