package cancelpage

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/vigil-oss/vigil/internal/clientip"
	"github.com/vigil-oss/vigil/internal/domain"
)

// TestFloodFromTheProxy: Vigil behind a TLS proxy (every connection comes
// from 127.0.0.1, the trusted proxy, with the client in X-Forwarded-For).
// A flood of junk and forged links from the proxy's address, with no
// forwarded-for header, with the attacker's, and even with the customer's
// own address, is refused with 429 once over budget; meanwhile the
// customer's real link, emailed by the real workflow, still opens and
// cancels the request, and another client behind the proxy is not limited.
func TestFloodFromTheProxy(t *testing.T) {
	t.Parallel()
	proxies, err := clientip.New([]string{"127.0.0.1/32"})
	if err != nil {
		t.Fatal(err)
	}
	le := newLiveEnvWith(t, Options{RatePerMinute: 1, RateBurst: 5, ClientIP: proxies})
	ctx := context.Background()
	requestID, token := le.cooling(t)

	const customerAddr, attackerAddr = "198.51.100.20", "203.0.113.66"
	junk := []string{"/c/not-a-token", "/c/" + tamper(token), "/c/" + token + "x", "/c/a.b"}
	limited := map[string]int{}
	for i := range 60 {
		var h http.Header
		switch i % 3 {
		case 1:
			h = http.Header{"X-Forwarded-For": {attackerAddr}}
		case 2:
			// The attacker shares the customer's address (one NAT), and
			// tries to pass for another client left of it.
			h = http.Header{"X-Forwarded-For": {"192.0.2.1, " + customerAddr}}
		}
		method := "GET"
		var form url.Values
		if i%4 == 3 {
			method, form = "POST", url.Values{"csrf": {"x"}}
		}
		p := le.do(nil, method, junk[i%len(junk)], h, form)
		if p.status == http.StatusTooManyRequests {
			limited[fmt.Sprint(h.Get("X-Forwarded-For"))]++
		}
	}
	// Three sources of 20 requests each, 5 allowed per source.
	for _, src := range []string{"", attackerAddr, "192.0.2.1, " + customerAddr} {
		if limited[src] < 15 {
			t.Fatalf("junk from %q: %d of 20 refused with 429, want at least 15 (%v)", src, limited[src], limited)
		}
	}
	// Another client behind the proxy has its own, untouched budget.
	if p := le.do(nil, "GET", "/c/not-a-token", http.Header{"X-Forwarded-For": {"198.51.100.99"}}, nil); p.status != http.StatusBadRequest {
		t.Fatalf("junk from another client behind the proxy: %d, want 400 (not a link)", p.status)
	}

	// The customer's real link, from the flooded address, still works.
	customer := http.Header{"X-Forwarded-For": {customerAddr}}
	p := le.do(nil, "GET", "/c/"+token, customer, nil)
	if p.status != http.StatusOK || !strings.Contains(p.body, "Cancel this request?") {
		t.Fatalf("GET of the real link during the flood: %d\n%s", p.status, p.body)
	}
	field := csrfField.FindStringSubmatch(p.body)
	res := http.Response{Header: p.header}
	var cookie *http.Cookie
	for _, c := range res.Cookies() {
		if c.Name == "vigil_cancel_csrf" {
			cookie = c
		}
	}
	if field == nil || cookie == nil {
		t.Fatalf("no CSRF field or cookie on the confirmation page")
	}
	customer.Set("Cookie", cookie.Name+"="+cookie.Value)
	customer.Set("Origin", le.srv.URL)
	p = le.do(nil, "POST", "/c/"+token, customer, url.Values{"csrf": {field[1]}})
	if p.status != http.StatusOK || !strings.Contains(p.body, "We stopped the request") {
		t.Fatalf("POST of the real link during the flood: %d\n%s", p.status, p.body)
	}
	waitUntil(t, "request cancelled by the customer", func() (bool, string) {
		r, err := le.st.Request(ctx, requestID)
		return err == nil && r.Status == domain.StatusCancelled, fmt.Sprint(r.Status, err)
	})
	if n := le.trail(t, requestID); n["request.cancelled by customer:C-1"] != 1 {
		t.Fatalf("audit trail %v, want one cancellation by the customer", n)
	}
	// The flood is still refused afterwards.
	if p := le.do(nil, "GET", "/c/not-a-token", http.Header{"X-Forwarded-For": {attackerAddr}}, nil); p.status != http.StatusTooManyRequests {
		t.Fatalf("junk after the cancel: %d, want 429", p.status)
	}
}
