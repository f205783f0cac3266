// Package e2e runs Vigil as real processes — devserver, worker, web, mail
// catcher and stand-in control panel — against a real Postgres, and drives
// requests through them from the outside.
package e2e

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"

	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/internal/metrics/metricstest"
	"github.com/vigil-oss/vigil/internal/pinhash"
)

const (
	customerID  = "C-4711"
	customerPIN = "739218"
)

type request struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	PINVerifiedAt string `json:"pin_verified_at"`
	Final         bool   `json:"final"`
	CoolingEndsAt string `json:"cooling_ends_at"`
	Reference     string `json:"reference"`
}

type agentToken struct {
	Token string `json:"token"`
}

// seed imports one customer and creates a requester and a senior, returning
// their tokens.
func seed(t testing.TB, s *stack) (alice, bob string) {
	t.Helper()
	hash, err := pinhash.Hash(customerPIN, pinhash.TestParams())
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-30 * 24 * time.Hour).UTC().Format(time.RFC3339)
	fresh := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if code, body := s.call("PUT", "/admin/v1/customers/"+customerID, s.adminToken, map[string]any{
		"name": "Dana Whitfield", "primary_email": "dana@example.com", "pin_hash": hash,
		"contacts": []map[string]any{
			{"email": "ops@whitfield.example", "added_at": old, "verified_at": old},
			{"email": "new@attacker.example", "added_at": fresh, "verified_at": fresh},
		},
		"servers": []string{"srv-1", "srv-2"},
	}, nil); code != 200 {
		t.Fatalf("import customer: %d %s", code, body)
	}
	var a, b agentToken
	if code, body := s.call("POST", "/admin/v1/agents", s.adminToken, map[string]any{
		"id": "ag_alice", "name": "Alice Moreau", "email": "alice@vigil.example", "team": "Support", "role": "agent", "slack_user_id": "U0ALICE",
	}, &a); code != 201 {
		t.Fatalf("create alice: %d %s", code, body)
	}
	if code, body := s.call("POST", "/admin/v1/agents", s.adminToken, map[string]any{
		"id": "ag_bob", "name": "Bob Lindqvist", "email": "bob@vigil.example", "team": "Support", "role": "senior", "slack_user_id": "U0BOB",
	}, &b); code != 201 {
		t.Fatalf("create bob: %d %s", code, body)
	}
	return a.Token, b.Token
}

func (s *stack) open(t *testing.T, token string, body map[string]any) request {
	t.Helper()
	var r request
	if code, raw := s.call("POST", "/api/v1/requests", token, body, &r); code != 201 {
		t.Fatalf("open request: %d %s", code, raw)
	}
	return r
}

func (s *stack) waitStatus(t *testing.T, token, id, want string, within time.Duration) request {
	t.Helper()
	var r request
	eventually(t, within, "request "+id+" reaching "+want, func() (bool, string) {
		r = request{}
		code, raw := s.call("GET", "/api/v1/requests/"+id, token, nil, &r)
		if code != 200 {
			return false, fmt.Sprintf("%d %s", code, raw)
		}
		return r.Status == want, r.Status
	})
	return r
}

type caughtMail struct {
	ID      int      `json:"id"`
	To      []string `json:"to"`
	Subject string   `json:"subject"`
	Text    string   `json:"text"`
	HTML    string   `json:"html"`
}

func (s *stack) mails(t *testing.T) []caughtMail {
	t.Helper()
	resp, err := http.Get(s.mailURL + "/api/messages")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ms []caughtMail
	if err := json.NewDecoder(resp.Body).Decode(&ms); err != nil {
		t.Fatalf("decode mail list: %v", err)
	}
	return ms
}

type panelCall struct {
	IdempotencyKey string `json:"idempotency_key"`
	Action         string `json:"action"`
	Replayed       bool   `json:"replayed"`
}

func (s *stack) panelCalls(t *testing.T) []panelCall {
	t.Helper()
	resp, err := http.Get(s.panelURL + "/_standin/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var calls []panelCall
	if err := json.Unmarshal(raw, &calls); err != nil {
		// Accept {"calls":[...]} as well.
		var wrapped struct {
			Calls []panelCall `json:"calls"`
		}
		if err2 := json.Unmarshal(raw, &wrapped); err2 != nil {
			t.Fatalf("decode panel calls %s: %v", raw, err)
		}
		calls = wrapped.Calls
	}
	return calls
}

var cancelLink = regexp.MustCompile(`https?://[^\s"<>]+/c/[A-Za-z0-9_\-.]+`)

// TestRequestExecutedAndCancelledThroughEmailedLink is the core promise on
// real processes: one request passes every gate and runs once; another is
// cancelled by the customer from the link in the notice; the PIN is nowhere
// in Temporal's history or any log.
func TestRequestExecutedAndCancelledThroughEmailedLink(t *testing.T) {
	s := startStack(t, stackOptions{extraEnv: []string{
		"VIGIL_COOLING_RESEND_CREDENTIALS=3s",
		"VIGIL_COOLING_REINSTALL_VPS=30m",
	}})
	alice, bob := seed(t, s)
	_ = bob

	// 1. A request that runs.
	r1 := s.open(t, alice, map[string]any{
		"action": "resend_credentials", "customer_id": customerID, "server_id": "srv-1",
		"reason": "customer asked in live chat", "pin": customerPIN,
	})
	if r1.Status != "pin_check" || r1.PINVerifiedAt == "" {
		t.Fatalf("after a right PIN the open answers pin_check with the PIN verified, got %s (%q)", r1.Status, r1.PINVerifiedAt)
	}
	s.click(t, r1.ID, "approve", "U0BOB")
	done := s.waitStatus(t, alice, r1.ID, "executed", 2*time.Minute)
	if done.Reference == "" {
		t.Error("executed request has no panel reference")
	}

	// 2. A request the customer cancels from the emailed link.
	r2 := s.open(t, alice, map[string]any{
		"action": "reinstall_vps", "customer_id": customerID, "server_id": "srv-2",
		"reason": "customer says the server is compromised", "pin": customerPIN,
	})
	s.click(t, r2.ID, "approve", "U0BOB")
	s.waitStatus(t, alice, r2.ID, "cooling", time.Minute)
	var notice caughtMail
	eventually(t, 30*time.Second, "notice for the reinstall", func() (bool, string) {
		for _, m := range s.mails(t) {
			if strings.Contains(m.Subject, "srv-2") && cancelLink.MatchString(m.Text) {
				notice = m
				return true, ""
			}
		}
		return false, "no notice yet"
	})
	link := cancelLink.FindString(notice.Text)
	if !strings.HasPrefix(link, s.webURL+"/c/") {
		t.Fatalf("cancel link %q does not point at the web front %s", link, s.webURL)
	}
	cancelFromBrowser(t, s, link)
	s.waitStatus(t, alice, r2.ID, "cancelled", 30*time.Second)

	// Exactly one action reached the control panel: the executed request's.
	calls := s.panelCalls(t)
	if len(calls) != 1 {
		t.Fatalf("panel received %d calls, want exactly 1: %+v", len(calls), calls)
	}
	if calls[0].IdempotencyKey != "vigil-"+r1.ID {
		t.Fatalf("panel call key = %q, want vigil-%s", calls[0].IdempotencyKey, r1.ID)
	}

	// Who got mail: the established addresses, never the fresh contact.
	var password string
	for _, m := range s.mails(t) {
		for _, to := range m.To {
			if strings.Contains(to, "attacker") {
				t.Errorf("the contact added an hour ago got mail: %q", m.Subject)
			}
		}
		if pw := regexp.MustCompile(`(?i)password:\s*(\S+)`).FindStringSubmatch(m.Text); pw != nil {
			password = pw[1]
		}
	}
	if password == "" {
		t.Fatal("no credentials email with a password reached the customer")
	}

	// No secret in the history, raw or decoded, nor in any process's log.
	for _, id := range []string{r1.ID, r2.ID} {
		assertNoSecretInHistory(t, stackCodec(t, s), fetchHistory(t, s, "vigil-request-"+id), id, customerPIN, password)
	}
	for _, n := range []string{"devserver", "worker", "web", "panel", "mail"} {
		logs := s.logs(n)
		if logs == "" {
			continue
		}
		if strings.Contains(logs, customerPIN) {
			t.Errorf("%s log contains the PIN", n)
		}
		if n != "mail" && n != "panel" && strings.Contains(logs, password) {
			t.Errorf("%s log contains the server password", n)
		}
	}

	// What operators scrape: the worker's Temporal SDK metrics, and the web
	// front's HTTP counts and request states. No secret there either.
	worker, web := metricstest.Get(t, s.workerMetrics), metricstest.Get(t, s.webMetrics)
	for _, want := range []struct {
		name   string
		labels map[string]string
	}{
		{"temporal_activity_execution_latency_seconds", map[string]string{"activity_type": "Execute"}},
		{"temporal_workflow_task_execution_latency_seconds", map[string]string{"workflow_type": "SensitiveRequest"}},
		{"temporal_workflow_completed_total", map[string]string{"workflow_type": "SensitiveRequest"}},
		{"go_goroutines", nil},
		{"process_cpu_seconds_total", nil},
	} {
		if v, ok := worker.Sum(want.name, want.labels); !ok || (v < 1 && want.name != "process_cpu_seconds_total") {
			t.Errorf("worker metrics: %s%v = %v (present %v), want at least 1; families: %v", want.name, want.labels, v, ok, worker.Names())
		}
	}
	for _, want := range []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"vigil_requests", map[string]string{"status": "executed"}, 1},
		{"vigil_requests", map[string]string{"status": "cancelled"}, 1},
		{"vigil_requests", map[string]string{"status": "awaiting_approval"}, 0},
		{"vigil_http_requests_total", map[string]string{"route": "POST /api/v1/requests", "method": "post", "code": "201"}, 2},
	} {
		if v, ok := web.Sum(want.name, want.labels); !ok || v != want.value {
			t.Errorf("web metrics: %s%v = %v (present %v), want %v", want.name, want.labels, v, ok, want.value)
		}
	}
	if v, _ := web.Sum("vigil_http_requests_total", map[string]string{"route": "POST /c/{token}", "code": "200"}); v < 1 {
		t.Errorf("web metrics: no cancel pressed on POST /c/{token}; series: %v", web.Series("vigil_http_requests_total"))
	}
	for _, secret := range []string{customerPIN, password} {
		if strings.Contains(worker.Raw+web.Raw, secret) {
			t.Error("the metrics contain a secret")
		}
	}
}

// cancelFromBrowser does what a phone browser does with the link: GET shows
// the confirmation (and must change nothing), the form POST cancels.
func cancelFromBrowser(t *testing.T, s *stack, link string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET cancel page: %d %s", resp.StatusCode, page)
	}
	form := url.Values{}
	for _, tag := range regexp.MustCompile(`<input[^>]*>`).FindAllString(string(page), -1) {
		attrs := map[string]string{}
		for _, m := range regexp.MustCompile(`([a-zA-Z-]+)="([^"]*)"`).FindAllStringSubmatch(tag, -1) {
			attrs[strings.ToLower(m[1])] = html.UnescapeString(m[2])
		}
		if attrs["name"] != "" {
			form.Set(attrs["name"], attrs["value"])
		}
	}
	action := link
	if m := regexp.MustCompile(`<form[^>]*action="([^"]+)"`).FindStringSubmatch(string(page)); m != nil {
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := u.Parse(html.UnescapeString(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		action = ref.String()
	}
	req, _ := http.NewRequest("POST", action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.webURL)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST cancel: %d %s", resp.StatusCode, body)
	}
}

// decode decrypts payloads with the stack's codec key.
func (s *stack) decode(t *testing.T, ps []*commonpb.Payload) []byte {
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
	c, err := codec.New("e2e", parsed)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decode(ps)
	if err != nil {
		t.Fatalf("decode payloads: %v", err)
	}
	var out []byte
	for _, p := range dec {
		out = append(out, p.GetData()...)
	}
	return out
}
