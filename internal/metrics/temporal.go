package metrics

import (
	"maps"
	"time"

	"go.temporal.io/sdk/client"
)

// TemporalHandler returns a client.MetricsHandler that records the Temporal
// SDK's metrics (workflow and activity task latencies, failures, polls) in
// r: counters and gauges under the SDK's names, timers as histograms in
// seconds under the name plus "_seconds".
func TemporalHandler(r *Registry) client.MetricsHandler {
	return temporalHandler{r: r}
}

type temporalHandler struct {
	r    *Registry
	tags Labels
}

const temporalHelp = "Temporal SDK metric; see the Temporal SDK metrics reference."

func (h temporalHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := maps.Clone(h.tags)
	if merged == nil {
		merged = Labels{}
	}
	maps.Copy(merged, tags)
	return temporalHandler{r: h.r, tags: merged}
}

func (h temporalHandler) Counter(name string) client.MetricsCounter {
	f := h.r.Counter(name, temporalHelp)
	return counterFunc(func(d int64) { f.Add(h.tags, float64(d)) })
}

func (h temporalHandler) Gauge(name string) client.MetricsGauge {
	f := h.r.Gauge(name, temporalHelp)
	return gaugeFunc(func(v float64) { f.Set(h.tags, v) })
}

func (h temporalHandler) Timer(name string) client.MetricsTimer {
	f := h.r.Histogram(name+"_seconds", temporalHelp, nil)
	return timerFunc(func(d time.Duration) { f.Observe(h.tags, d.Seconds()) })
}

type counterFunc func(int64)

func (c counterFunc) Inc(d int64) { c(d) }

type gaugeFunc func(float64)

func (g gaugeFunc) Update(v float64) { g(v) }

type timerFunc func(time.Duration)

func (t timerFunc) Record(d time.Duration) { t(d) }
