package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-oss/vigil/internal/statuswriter"
)

// Instrument counts and times the requests next serves, by the ServeMux
// pattern that matched ("unmatched" for none), so that a path full of
// tokens never becomes a label. next must be the *http.ServeMux itself (or
// pass the same *http.Request on to it): the mux records the pattern there.
func (r *Registry) Instrument(next http.Handler) http.Handler {
	total := r.Counter("vigil_http_requests_total", "HTTP requests served, by route pattern, method and status code.")
	took := r.Histogram("vigil_http_request_duration_seconds", "Time to serve an HTTP request, by route pattern.", nil)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		began := time.Now()
		sw := statuswriter.New(w)
		next.ServeHTTP(sw, req)
		route := req.Pattern
		if route == "" {
			route = "unmatched"
		}
		total.Inc(Labels{"route": route, "method": method(req.Method), "code": strconv.Itoa(sw.Status())})
		took.Observe(Labels{"route": route}, time.Since(began).Seconds())
	})
}

// method keeps the label set small: any other method is "other".
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions:
		return m
	}
	return "other"
}
