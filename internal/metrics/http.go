package metrics

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Unmatched is the route label of a request that no pattern matched, so
// that paths nobody routes (scanners, typos, tokens) share one series.
const Unmatched = "unmatched"

// HTTP counts and times the requests of one HTTP front by route pattern.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// NewHTTP registers the HTTP metrics in reg:
// vigil_http_requests_total{route,method,code},
// vigil_http_request_duration_seconds{route} and
// vigil_http_requests_in_flight. It panics if they are registered twice,
// a programming error no input can cause.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	h := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_http_requests_total",
			Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route pattern.",
			Buckets: LatencyBuckets,
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	reg.MustRegister(h.requests, h.duration, h.inFlight)
	return h
}

// Instrument counts and times the requests mux serves, labelled with the
// ServeMux pattern that matched (e.g. "GET /api/v1/requests/{id}"), never
// with the path, so that a request id or a cancel token never becomes a
// label. mux must be the *http.ServeMux itself, or pass the same
// *http.Request on to it, since the mux records the pattern there. A
// handler mounted on a prefix whose own ServeMux routes a copy of the
// request tells its pattern with NoteRoute or Routed.
func (h *HTTP) Instrument(mux http.Handler) http.Handler {
	route := promhttp.WithLabelFromRequest("route", routeOf)
	inner := promhttp.InstrumentHandlerInFlight(h.inFlight,
		promhttp.InstrumentHandlerDuration(h.duration,
			promhttp.InstrumentHandlerCounter(h.requests, mux, route), route))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), noteKey{}, &routeNote{})))
	})
}

type noteKey struct{}

// routeNote carries the pattern an inner ServeMux matched back to
// Instrument. One request's handlers run on one goroutine, so it needs no
// lock.
type routeNote struct {
	noted   bool
	pattern string
}

// NoteRoute tells Instrument the pattern that an inner ServeMux matched for
// the request of ctx ("" when it matched none, which is labelled
// Unmatched). It does nothing outside Instrument.
func NoteRoute(ctx context.Context, pattern string) {
	if n, ok := ctx.Value(noteKey{}).(*routeNote); ok {
		n.noted, n.pattern = true, pattern
	}
}

// Routed serves mux and notes the pattern it matched with NoteRoute: for a
// ServeMux mounted under a prefix behind middleware that copies the request.
func Routed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		NoteRoute(r.Context(), pattern)
		mux.ServeHTTP(w, r)
	})
}

// routeOf is the route label: what an inner mux noted, else the pattern the
// instrumented mux matched, else Unmatched.
func routeOf(r *http.Request) string {
	pattern := r.Pattern
	if n, ok := r.Context().Value(noteKey{}).(*routeNote); ok && n.noted {
		pattern = n.pattern
	}
	if pattern == "" {
		return Unmatched
	}
	return pattern
}
