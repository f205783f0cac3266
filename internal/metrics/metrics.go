// Package metrics is Vigil's thin layer on Prometheus' client_golang: a
// registry per process with the Go runtime and process collectors, the
// /metrics handler and listener, HTTP counts and latencies by route pattern,
// the request gauges read from Postgres at scrape time, and the Temporal
// SDK's metrics through the SDK's OpenTelemetry contrib.
package metrics

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// LatencyBuckets suit Vigil's latencies in seconds, from a millisecond to
// two minutes: opening a request waits seconds for the PIN gate, and the
// SDK's activity latencies include mail and the control panel.
var LatencyBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// NewRegistry returns a registry holding the Go runtime collector (go_*)
// and the process collector (process_*: CPU, memory, open files), to which
// the caller adds its own collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves reg in the exposition format the scraper asks for (the
// text format by default). A collector that fails is logged and its
// metrics left out rather than failing the whole scrape; only GET and HEAD
// are answered.
func Handler(reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.With("component", "metrics").Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		// Counts the handler's own errors in promhttp_metric_handler_errors_total.
		Registry: reg,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "metrics are read with GET", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}
