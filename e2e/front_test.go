package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// front is the load balancer in front of the web replicas, as production
// has one: it sends each request to the next replica in turn and, when a
// replica refuses the connection (it is dead), to the next one. A request a
// replica had already taken when it died is answered 502, as a real
// balancer would.
type front struct {
	backends []string // host:port of each replica
	next     atomic.Uint64
	mu       sync.Mutex
	served   map[string]int // requests each backend answered
	captured []interaction  // Slack interactions, as they went through
	srv      *http.Server
}

// interaction is one signed Slack interaction the balancer passed on: what
// someone on the path between Slack and Vigil could copy.
type interaction struct {
	header  http.Header
	body    []byte
	backend string // the replica that answered it
}

// startFront listens on a free loopback port and balances over backends.
func startFront(t testing.TB, backends []string) (*front, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &front{backends: backends, served: map[string]int{}}
	transport := &http.Transport{DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext, MaxIdleConnsPerHost: 64}
	proxy := &httputil.ReverseProxy{
		// The transport below picks the backend and sets the URL.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
		},
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			body, _ := r.Context().Value(bodyKey{}).([]byte)
			start := f.next.Add(1)
			var lastErr error
			for i := range f.backends {
				b := f.backends[(int(start)+i)%len(f.backends)]
				out := r.Clone(r.Context())
				out.URL.Scheme, out.URL.Host = "http", b
				out.Body = io.NopCloser(bytes.NewReader(body))
				resp, err := transport.RoundTrip(out)
				if err == nil {
					f.mu.Lock()
					f.served[b]++
					if r.URL.Path == "/slack/interactions" {
						f.captured = append(f.captured, interaction{header: r.Header.Clone(), body: body, backend: b})
					}
					f.mu.Unlock()
					return resp, nil
				}
				lastErr = err
				if !errors.Is(err, syscall.ECONNREFUSED) {
					return nil, err // the replica may have taken it: not safe to send twice
				}
			}
			return nil, lastErr
		}),
	}
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Buffered so that a refused connection can be retried elsewhere.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), bodyKey{}, body)))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.srv.Serve(l) }()
	t.Cleanup(func() { _ = f.srv.Close() })
	return f, "http://" + l.Addr().String()
}

// servedBy reports how many requests each backend answered.
func (f *front) servedBy() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.served {
		out[k] = v
	}
	return out
}

// interactions lists the Slack interactions passed on so far.
func (f *front) interactions() []interaction {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]interaction(nil), f.captured...)
}

// bodyKey carries the buffered request body to the transport.
type bodyKey struct{}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
