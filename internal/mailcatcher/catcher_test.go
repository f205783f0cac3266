package mailcatcher

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"net/textproto"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const sampleMessage = "From: Vigil <vigil@example.com>\r\n" +
	"To: Ada <ada@example.com>\r\n" +
	"Subject: =?utf-8?q?Caf=C3=A9_=3Cnotice=3E?=\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/alternative; boundary=\"b1\"\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Hello Ada, caf=C3=A9 is ready. A long line that is soft-=\r\nwrapped.\r\n" +
	"--b1\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"PHA+SGVsbG8gPGI+QWRhPC9iPjxzY3JpcHQ+YWxlcnQoMSk8L3NjcmlwdD4g\r\n" +
	"PGEgaHJlZj0iaHR0cHM6Ly9leGFtcGxlLmNvbS9jYW5jZWw/dD0xJmFtcDt1PTIiPmNhbmNlbDwvYT48L3A+\r\n" +
	"--b1--\r\n"

// decoded HTML part of sampleMessage
const sampleHTML = `<p>Hello <b>Ada</b><script>alert(1)</script> <a href="https://example.com/cancel?t=1&amp;u=2">cancel</a></p>`

func startCatcher(t *testing.T) (*Catcher, string) {
	t.Helper()
	c := New(nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.ServeSMTP(l) }()
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("ServeSMTP returned %v after Close, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("ServeSMTP did not return after Close")
		}
	})
	return c, l.Addr().String()
}

func send(addr, from string, to []string, msg string) error {
	return smtp.SendMail(addr, smtp.PlainAuth("", "user", "pass", "127.0.0.1"), from, to, []byte(msg))
}

func smtpCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func TestDeliverKeepsEnvelopeAndParts(t *testing.T) {
	c, addr := startCatcher(t)
	if err := send(addr, "vigil@example.com", []string{"ada@example.com", "bob@example.com"}, sampleMessage); err != nil {
		t.Fatalf("send: %v", err)
	}
	msgs := c.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.ID != 1 || m.From != "vigil@example.com" || strings.Join(m.To, ",") != "ada@example.com,bob@example.com" {
		t.Errorf("envelope = id %d from %q to %v", m.ID, m.From, m.To)
	}
	if m.Subject != "Café <notice>" {
		t.Errorf("subject = %q, want decoded %q", m.Subject, "Café <notice>")
	}
	if time.Since(m.ReceivedAt) > time.Minute {
		t.Errorf("ReceivedAt = %v, not recent", m.ReceivedAt)
	}
	text, html, err := Parts(m.Raw)
	if err != nil {
		t.Fatalf("Parts: %v", err)
	}
	if want := "Hello Ada, café is ready. A long line that is soft-wrapped."; text != want {
		t.Errorf("text = %q, want %q", text, want)
	}
	if html != sampleHTML {
		t.Errorf("html = %q, want %q", html, sampleHTML)
	}
	// Messages returns copies: changing one must not change the catcher's.
	m.Raw[0] = 'X'
	if c.Messages()[0].Raw[0] != 'F' {
		t.Errorf("Messages shares its Raw buffer with callers")
	}
}

func TestWaitFor(t *testing.T) {
	c, addr := startCatcher(t)
	if err := send(addr, "a@example.com", []string{"first@example.com"}, "Subject: one\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("send: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// An already kept message matches at once.
	m, err := c.WaitFor(ctx, func(m Message) bool { return m.Subject == "one" })
	if err != nil || m.ID != 1 {
		t.Fatalf("WaitFor existing = %+v, %v", m, err)
	}

	// A later message wakes the waiter.
	got := make(chan Message, 1)
	errc := make(chan error, 1)
	go func() {
		m, err := c.WaitFor(ctx, func(m Message) bool { return len(m.To) == 1 && m.To[0] == "second@example.com" })
		got <- m
		errc <- err
	}()
	if err := send(addr, "a@example.com", []string{"other@example.com"}, "Subject: noise\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := send(addr, "a@example.com", []string{"second@example.com"}, "Subject: two\r\n\r\nbody\r\n"); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("WaitFor: %v", err)
	}
	if m := <-got; m.Subject != "two" || m.ID != 3 {
		t.Fatalf("WaitFor returned %+v, want message 3 'two'", m)
	}

	// No match: the context ends the wait.
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	if _, err := c.WaitFor(short, func(Message) bool { return false }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor without match = %v, want deadline exceeded", err)
	}
}

func TestWaitForEndsOnClose(t *testing.T) {
	c := New(nil)
	errc := make(chan error, 1)
	go func() {
		_, err := c.WaitFor(context.Background(), func(Message) bool { return false })
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the waiter block; the result is the same if it has not
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("WaitFor after Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitFor still blocked after Close")
	}
	// Serving after Close returns at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if err := c.ServeSMTP(l); err != nil {
		t.Fatalf("ServeSMTP after Close = %v, want nil", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("listener still accepts after ServeSMTP on a closed catcher")
	}
}

func TestRefuse(t *testing.T) {
	c, addr := startCatcher(t)
	c.Refuse(2, 1)
	wantCodes := []int{451, 451, 550, 0, 0}
	for i, want := range wantCodes {
		err := send(addr, "a@example.com", []string{"b@example.com"}, "Subject: x\r\n\r\nbody\r\n")
		if got := smtpCode(err); got != want {
			t.Fatalf("delivery %d: code %d (err %v), want %d", i+1, got, err, want)
		}
	}
	if n := len(c.Messages()); n != 2 {
		t.Fatalf("kept %d messages, want 2 (refused ones are not kept)", n)
	}
}

func TestRefuseRecipient(t *testing.T) {
	c, addr := startCatcher(t)
	c.RefuseRecipient("Bob@Example.com", true)
	steps := []struct {
		to     string
		refuse *bool
		want   int
	}{
		{to: "bob@example.com", want: 450},
		{to: "BOB@example.com", want: 450},
		{to: "carol@example.com", want: 0},
		{to: "bob@example.com", refuse: new(false), want: 0},
	}
	for i, s := range steps {
		if s.refuse != nil {
			c.RefuseRecipient("bob@example.com", *s.refuse)
		}
		err := send(addr, "a@example.com", []string{s.to}, "Subject: x\r\n\r\nbody\r\n")
		if got := smtpCode(err); got != s.want {
			t.Fatalf("delivery %d to %s: code %d (err %v), want %d", i+1, s.to, got, err, s.want)
		}
	}
	var got []string
	for _, m := range c.Messages() {
		got = append(got, m.To...)
	}
	if want := []string{"carol@example.com", "bob@example.com"}; !slices.Equal(got, want) {
		t.Fatalf("kept messages for %v, want %v", got, want)
	}
}

func TestSizeLimit(t *testing.T) {
	c, addr := startCatcher(t)
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 998)+"\r\n", MaxMessageBytes/1000+10)
	err := send(addr, "a@example.com", []string{"b@example.com"}, big)
	if code := smtpCode(err); code != 552 {
		t.Fatalf("oversized message: code %d (err %v), want 552", code, err)
	}
	if n := len(c.Messages()); n != 0 {
		t.Fatalf("kept %d messages after refusing an oversized one", n)
	}
}

func TestParts(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		wantText  string
		wantHTML  string
		wantError bool
	}{
		{name: "single text part", raw: "Subject: x\r\n\r\nplain body", wantText: "plain body"},
		{name: "single html part qp", raw: "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>a=3Db</p>", wantHTML: "<p>a=b</p>"},
		{
			name: "alternative inside mixed with attachment",
			raw: "Content-Type: multipart/mixed; boundary=outer\r\n\r\n--outer\r\n" +
				"Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\n" +
				"Content-Type: text/plain\r\n\r\nhi\r\n--inner\r\nContent-Type: text/html\r\n\r\n<b>hi</b>\r\n--inner--\r\n" +
				"--outer\r\nContent-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nnot shown\r\n--outer--\r\n",
			wantText: "hi", wantHTML: "<b>hi</b>",
		},
		{name: "no text parts", raw: "Content-Type: image/png\r\n\r\nxx", wantError: true},
		{name: "multipart without boundary", raw: "Content-Type: multipart/alternative\r\n\r\nxx", wantError: true},
		{name: "bad base64", raw: "Content-Transfer-Encoding: base64\r\n\r\n!!!!", wantError: true},
		{name: "unknown encoding", raw: "Content-Transfer-Encoding: x-uu\r\n\r\nabc", wantError: true},
		{name: "not a message", raw: "no headers here", wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, html, err := Parts([]byte(tt.raw))
			if tt.wantError {
				if err == nil {
					t.Fatalf("Parts = %q, %q, want error", text, html)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parts: %v", err)
			}
			if text != tt.wantText || html != tt.wantHTML {
				t.Fatalf("Parts = %q, %q; want %q, %q", text, html, tt.wantText, tt.wantHTML)
			}
		})
	}
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp, string(b)
}

func do(t *testing.T, method, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp.Body.Close()
	return resp
}

func TestHTTP(t *testing.T) {
	c, addr := startCatcher(t)
	web := httptest.NewServer(c.Handler())
	defer web.Close()

	if err := send(addr, "vigil@example.com", []string{"ada@example.com"}, sampleMessage); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := send(addr, "vigil@example.com", []string{"bob@example.com"}, "Subject: second\r\n\r\nbody two\r\n"); err != nil {
		t.Fatalf("send: %v", err)
	}

	t.Run("list newest first", func(t *testing.T) {
		resp, body := get(t, web.URL+"/")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		second, first := strings.Index(body, "second"), strings.Index(body, "Café &lt;notice&gt;")
		if second < 0 || first < 0 || second > first {
			t.Fatalf("list page order/escaping wrong: %s", body)
		}
		if !regexp.MustCompile(`<td class="muted">\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC</td>`).MatchString(body) {
			t.Errorf("list page times are not like 2026-12-03 14:05:09 UTC: %s", body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
			t.Fatalf("CSP = %q", csp)
		}
	})

	t.Run("message page", func(t *testing.T) {
		resp, body := get(t, web.URL+"/messages/1")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Fatalf("no strict CSP on message page")
		}
		for _, want := range []string{
			`<iframe sandbox srcdoc="&lt;p&gt;Hello &lt;b&gt;Ada&lt;/b&gt;&lt;script&gt;alert(1)&lt;/script&gt;`,
			"<pre>Hello Ada, café is ready.",
			`href="https://example.com/cancel?t=1&amp;u=2"`,
			"ada@example.com",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("message page lacks %q:\n%s", want, body)
			}
		}
		if strings.Contains(body, "<script>") {
			t.Errorf("message page contains a live <script> tag")
		}
	})

	t.Run("raw eml", func(t *testing.T) {
		resp, body := get(t, web.URL+"/messages/1.eml")
		if resp.StatusCode != 200 || body != sampleMessage {
			t.Fatalf("raw: status %d, body equal %v", resp.StatusCode, body == sampleMessage)
		}
	})

	t.Run("not found", func(t *testing.T) {
		for _, p := range []string{"/messages/99", "/messages/abc", "/messages/99.eml"} {
			if resp, _ := get(t, web.URL+p); resp.StatusCode != 404 {
				t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
			}
		}
	})

	t.Run("api list", func(t *testing.T) {
		resp, body := get(t, web.URL+"/api/messages")
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("content type %q", ct)
		}
		var got []map[string]any
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if len(got) != 2 {
			t.Fatalf("got %d messages", len(got))
		}
		first := got[0]
		if first["id"] != float64(1) || first["from"] != "vigil@example.com" || first["subject"] != "Café <notice>" ||
			first["html"] != sampleHTML || !strings.HasPrefix(first["text"].(string), "Hello Ada") || first["received_at"] == "" {
			t.Fatalf("first message = %v", first)
		}
		if to, _ := first["to"].([]any); len(to) != 1 || to[0] != "ada@example.com" {
			t.Fatalf("to = %v", first["to"])
		}
	})

	t.Run("refuse over http", func(t *testing.T) {
		if resp := do(t, http.MethodPost, web.URL+"/api/refuse", `{"permanent":1}`); resp.StatusCode != 200 {
			t.Fatalf("refuse status %d", resp.StatusCode)
		}
		if code := smtpCode(send(addr, "a@example.com", []string{"b@example.com"}, "Subject: x\r\n\r\nx\r\n")); code != 550 {
			t.Fatalf("after permanent refusal code = %d, want 550", code)
		}
		if resp := do(t, http.MethodPost, web.URL+"/api/refuse", `{"temporary":1}`); resp.StatusCode != 200 {
			t.Fatalf("refuse status %d", resp.StatusCode)
		}
		if code := smtpCode(send(addr, "a@example.com", []string{"b@example.com"}, "Subject: x\r\n\r\nx\r\n")); code != 451 {
			t.Fatalf("after temporary refusal code = %d, want 451", code)
		}
		for _, bad := range []string{`{"temporary":-1}`, `nope`, `{"forever":1}`} {
			if resp := do(t, http.MethodPost, web.URL+"/api/refuse", bad); resp.StatusCode != 400 {
				t.Errorf("refuse %s = %d, want 400", bad, resp.StatusCode)
			}
		}
	})

	t.Run("refuse a recipient over http", func(t *testing.T) {
		if resp := do(t, http.MethodPost, web.URL+"/api/refuse-recipient", `{"recipient":"b@example.com","refuse":true}`); resp.StatusCode != 200 {
			t.Fatalf("refuse-recipient status %d", resp.StatusCode)
		}
		if code := smtpCode(send(addr, "a@example.com", []string{"b@example.com"}, "Subject: x\r\n\r\nx\r\n")); code != 450 {
			t.Fatalf("refused recipient code = %d, want 450", code)
		}
		if resp := do(t, http.MethodPost, web.URL+"/api/refuse-recipient", `{"recipient":"b@example.com","refuse":false}`); resp.StatusCode != 200 {
			t.Fatalf("refuse-recipient status %d", resp.StatusCode)
		}
		if code := smtpCode(send(addr, "a@example.com", []string{"b@example.com"}, "Subject: x\r\n\r\nx\r\n")); code != 0 {
			t.Fatalf("accepted-again recipient code = %d, want 0", code)
		}
		for _, bad := range []string{`{"recipient":"b@example.com"}`, `{"recipient":"nobody","refuse":true}`, `{"recipient":"b@example.com","refuse":true,"x":1}`, `[]`} {
			if resp := do(t, http.MethodPost, web.URL+"/api/refuse-recipient", bad); resp.StatusCode != 400 {
				t.Errorf("refuse-recipient %s = %d, want 400", bad, resp.StatusCode)
			}
		}
	})

	t.Run("clear", func(t *testing.T) {
		if resp := do(t, http.MethodDelete, web.URL+"/api/messages", ""); resp.StatusCode != 204 {
			t.Fatalf("delete status %d", resp.StatusCode)
		}
		if n := len(c.Messages()); n != 0 {
			t.Fatalf("%d messages left after clear", n)
		}
		_, body := get(t, web.URL+"/api/messages")
		if strings.TrimSpace(body) != "[]" {
			t.Fatalf("api after clear = %s", body)
		}
	})
}
