package metrics

import (
	"net/http"
	"strconv"
	"time"
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
		sw := &codeWriter{ResponseWriter: w}
		next.ServeHTTP(sw, req)
		route := req.Pattern
		if route == "" {
			route = "unmatched"
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		total.Inc(Labels{"route": route, "method": method(req.Method), "code": strconv.Itoa(code)})
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

// codeWriter remembers the status code written.
type codeWriter struct {
	http.ResponseWriter
	code int
}

func (c *codeWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *codeWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return c.ResponseWriter.Write(b)
}

func (c *codeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
