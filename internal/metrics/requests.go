package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/store"
)

// RequestCounts reads how many requests are in each status (the store's
// RequestsByStatus).
type RequestCounts func(ctx context.Context) ([]store.StatusCount, error)

// Requests is a collector that reads the requests per status from Postgres
// at each scrape: vigil_requests{status}, and
// vigil_request_oldest_in_status_seconds{status} for the open statuses,
// the time since the longest-waiting request in that status last moved. A
// number that only grows points at a gate that is stuck (mail refused, the
// panel down, nobody approving). Reads that fail are logged and counted in
// vigil_metrics_scrape_errors_total; the gauges are then left out of that
// scrape rather than reported stale.
type Requests struct {
	read     RequestCounts
	timeout  time.Duration
	logger   *slog.Logger
	now      func() time.Time
	count    *prometheus.Desc
	oldest   *prometheus.Desc
	failures prometheus.Counter
}

// NewRequests returns the collector; each read gets timeout (default 5 s).
func NewRequests(read RequestCounts, timeout time.Duration, logger *slog.Logger) *Requests {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Requests{
		read: read, timeout: timeout, logger: logger, now: time.Now,
		count: prometheus.NewDesc("vigil_requests",
			"Requests in each status (from Postgres, at scrape time).", []string{"status"}, nil),
		oldest: prometheus.NewDesc("vigil_request_oldest_in_status_seconds",
			"Seconds since the longest-waiting request in each open status last moved (0 when none is in it).", []string{"status"}, nil),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_metrics_scrape_errors_total",
			Help: "Reads of the request gauges from Postgres that failed (see the log).",
		}),
	}
}

// Describe implements prometheus.Collector.
func (c *Requests) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.oldest
	c.failures.Describe(ch)
}

// Collect implements prometheus.Collector: it runs the query.
func (c *Requests) Collect(ch chan<- prometheus.Metric) {
	defer c.failures.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	counts, err := c.read(ctx)
	if err != nil {
		c.logger.Warn("metrics: reading the requests per status failed", "error", err)
		c.failures.Inc()
		return
	}
	by := map[domain.Status]store.StatusCount{}
	for _, s := range counts {
		by[s.Status] = s
	}
	now := c.now()
	for _, s := range domain.Statuses() {
		n := by[s]
		ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(n.Count), string(s))
		if s.Final() {
			continue
		}
		age := 0.0
		if n.Count > 0 {
			age = max(now.Sub(n.OldestSince).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, string(s))
	}
}
