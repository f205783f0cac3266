package smsgateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func send(t *testing.T, base, to, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/2010-04-01/Accounts/AC1/Messages.json",
		strings.NewReader(url.Values{"To": {to}, "From": {"+15005550006"}, "Body": {body}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("AC1", "tok")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestStateSurvivesARestart: messages are in the state file; a second
// gateway on it shows them and numbers on after them.
func TestStateSurvivesARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sms.json")
	g, err := Open(path, "AC1", "tok", quiet())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	if code := send(t, srv.URL, "+447911123456", "first"); code != 201 {
		t.Fatalf("send: %d", code)
	}
	srv.Close()
	g2, err := Open(path, "AC1", "tok", quiet())
	if err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(g2.Handler())
	defer srv2.Close()
	send(t, srv2.URL, "+447911123456", "second")
	msgs := g2.Messages()
	if len(msgs) != 2 || msgs[0].Body != "first" || msgs[1].Body != "second" || msgs[0].SID == msgs[1].SID {
		t.Fatalf("after a restart: %+v", msgs)
	}
}

// TestPageEscapes: a body is text on the page, never markup.
func TestPageEscapes(t *testing.T) {
	g := New("AC1", "tok", quiet())
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	send(t, srv.URL, "+447911123456", `<script>alert(1)</script> cancel: http://x/c/abc`)
	res, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if strings.Contains(string(b), "<script>") || !strings.Contains(string(b), "&lt;script&gt;") || !strings.Contains(string(b), "447911123456") {
		t.Fatalf("page:\n%s", b)
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
}

func TestFailAPI(t *testing.T) {
	g := New("AC1", "tok", quiet())
	srv := httptest.NewServer(g.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		body string
		want int
	}{{`{"server_errors":1,"rate_limited":1}`, 204}, {`{"server_errors":-1}`, 400}, {`{"other":1}`, 400}} {
		res, err := http.Post(srv.URL+"/api/fail", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.body, res.StatusCode, tc.want)
		}
	}
	var got []int
	for range 3 {
		got = append(got, send(t, srv.URL, "+447911123456", "x"))
	}
	if got[0] != 503 || got[1] != 429 || got[2] != 201 || len(g.Messages()) != 1 {
		t.Fatalf("sends answered %v, kept %d", got, len(g.Messages()))
	}
}

func TestSegments(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int
	}{
		{strings.Repeat("a", 160), 1},
		{strings.Repeat("a", 161), 2},
		{strings.Repeat("a", 306), 2},
		{strings.Repeat("a", 307), 3},
		{strings.Repeat("€", 80), 1}, // two septets each
		{strings.Repeat("€", 81), 2},
		{strings.Repeat("ж", 70), 1}, // UCS-2
		{strings.Repeat("ж", 71), 2},
	} {
		if got := Segments(tc.body); got != tc.want {
			t.Errorf("Segments(%d × %q) = %d, want %d", len([]rune(tc.body)), []rune(tc.body)[0], got, tc.want)
		}
	}
}
