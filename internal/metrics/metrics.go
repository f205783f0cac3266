// Package metrics keeps counters, gauges and histograms in memory and serves
// them in the Prometheus text exposition format (version 0.0.4), so that
// Vigil's processes can be scraped without a metrics library.
package metrics

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is a metric family's type, as the exposition format names it.
type Kind string

// Family kinds.
const (
	KindCounter   Kind = "counter"
	KindGauge     Kind = "gauge"
	KindHistogram Kind = "histogram"
)

// Labels are a series' label names and values.
type Labels map[string]string

// DefaultBuckets suit latencies in seconds, from a millisecond to two minutes.
var DefaultBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

var (
	nameRE  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// Registry holds every family of one process. It is safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	families map[string]*Family
	// onScrape run before each exposition, to refresh gauges that are
	// read from elsewhere (the database).
	onScrape []func(ctx context.Context) error
	logger   *slog.Logger
	// scrapeTimeout bounds the onScrape functions together.
	scrapeTimeout time.Duration
}

// NewRegistry returns an empty registry. Errors of onScrape functions are
// logged to logger and counted in vigil_metrics_scrape_errors_total.
func NewRegistry(logger *slog.Logger) *Registry {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{families: map[string]*Family{}, logger: logger, scrapeTimeout: 5 * time.Second}
	r.Counter("vigil_metrics_scrape_errors_total", "Refreshes of scraped values that failed (see the log).")
	return r
}

// Family is one metric name and its series.
type Family struct {
	name, help string
	kind       Kind
	buckets    []float64 // histograms only, ascending, without +Inf

	mu     sync.Mutex
	series map[string]*series // by canonical label string
}

type series struct {
	labels string // canonical, rendered: {a="1",b="2"} or ""
	value  float64
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

// Counter returns the counter family name, creating it on first use.
func (r *Registry) Counter(name, help string) *Family { return r.family(name, help, KindCounter, nil) }

// Gauge returns the gauge family name, creating it on first use.
func (r *Registry) Gauge(name, help string) *Family { return r.family(name, help, KindGauge, nil) }

// Histogram returns the histogram family name with the given upper bounds
// (nil: DefaultBuckets), creating it on first use.
func (r *Registry) Histogram(name, help string, buckets []float64) *Family {
	if buckets == nil {
		buckets = DefaultBuckets
	}
	return r.family(name, help, KindHistogram, buckets)
}

// family panics on a malformed name or a kind that disagrees with an earlier
// use: both are programming errors that no input can cause.
func (r *Registry) family(name, help string, kind Kind, buckets []float64) *Family {
	if !nameRE.MatchString(name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", name))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.families[name]; ok {
		if f.kind != kind {
			panic(fmt.Sprintf("metrics: %s is a %s, not a %s", name, f.kind, kind))
		}
		return f
	}
	b := slices.Clone(buckets)
	sort.Float64s(b)
	f := &Family{name: name, help: help, kind: kind, buckets: b, series: map[string]*series{}}
	r.families[name] = f
	return f
}

// OnScrape adds fn to what runs before each exposition.
func (r *Registry) OnScrape(fn func(ctx context.Context) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onScrape = append(r.onScrape, fn)
}

// Add adds v (>= 0) to a counter's series, or v (any sign) to a gauge's.
func (f *Family) Add(l Labels, v float64) {
	if f.kind == KindHistogram || (f.kind == KindCounter && (v < 0 || math.IsNaN(v))) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.get(l).value += v
}

// Inc adds one to a counter's series.
func (f *Family) Inc(l Labels) { f.Add(l, 1) }

// Set sets a gauge's series to v.
func (f *Family) Set(l Labels, v float64) {
	if f.kind != KindGauge {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.get(l).value = v
}

// Observe records v in a histogram's series.
func (f *Family) Observe(l Labels, v float64) {
	if f.kind != KindHistogram || math.IsNaN(v) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.get(l)
	i := sort.SearchFloat64s(f.buckets, v) // first bound >= v
	s.counts[i]++
	s.sum += v
	s.count++
}

// get returns the series for l; f.mu must be held.
func (f *Family) get(l Labels) *series {
	key := render(l)
	s, ok := f.series[key]
	if !ok {
		s = &series{labels: key}
		if f.kind == KindHistogram {
			s.counts = make([]uint64, len(f.buckets)+1)
		}
		f.series[key] = s
	}
	return s
}

// render writes labels in a canonical order, escaped; invalid names are
// dropped rather than breaking the exposition.
func render(l Labels) string {
	if len(l) == 0 {
		return ""
	}
	names := make([]string, 0, len(l))
	for n := range l {
		if labelRE.MatchString(n) && !strings.HasPrefix(n, "__") && n != "le" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString(`="`)
		b.WriteString(escape(l[n]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var escaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escape(s string) string { return escaper.Replace(s) }

// withLabel adds name="value" to a rendered label string.
func withLabel(rendered, name, value string) string {
	pair := name + `="` + escape(value) + `"`
	if rendered == "" {
		return "{" + pair + "}"
	}
	return rendered[:len(rendered)-1] + "," + pair + "}"
}

// ServeHTTP refreshes the scraped values and writes every family.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "metrics are read with GET", http.StatusMethodNotAllowed)
		return
	}
	r.refresh(req.Context())
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	r.Write(w)
}

func (r *Registry) refresh(ctx context.Context) {
	r.mu.Lock()
	fns := slices.Clone(r.onScrape)
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.scrapeTimeout)
	defer cancel()
	for _, fn := range fns {
		if err := fn(ctx); err != nil {
			r.logger.Warn("metrics: refreshing scraped values failed", "error", err)
			r.Counter("vigil_metrics_scrape_errors_total", "").Inc(nil)
		}
	}
}

// Write renders every family, sorted by name and series, to w.
func (r *Registry) Write(out io.Writer) {
	w := bufio.NewWriter(out)
	defer w.Flush()
	r.mu.Lock()
	fams := make([]*Family, 0, len(r.families))
	for _, f := range r.families {
		fams = append(fams, f)
	}
	r.mu.Unlock()
	sort.Slice(fams, func(i, j int) bool { return fams[i].name < fams[j].name })
	for _, f := range fams {
		f.write(w)
	}
}

func (f *Family) write(w *bufio.Writer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.series) == 0 {
		return
	}
	if f.help != "" {
		fmt.Fprintf(w, "# HELP %s %s\n", f.name, strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(f.help))
	}
	fmt.Fprintf(w, "# TYPE %s %s\n", f.name, f.kind)
	keys := make([]string, 0, len(f.series))
	for k := range f.series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s := f.series[k]
		if f.kind != KindHistogram {
			fmt.Fprintf(w, "%s%s %s\n", f.name, s.labels, num(s.value))
			continue
		}
		var cum uint64
		for i, le := range f.buckets {
			cum += s.counts[i]
			fmt.Fprintf(w, "%s_bucket%s %d\n", f.name, withLabel(s.labels, "le", num(le)), cum)
		}
		fmt.Fprintf(w, "%s_bucket%s %d\n", f.name, withLabel(s.labels, "le", "+Inf"), s.count)
		fmt.Fprintf(w, "%s_sum%s %s\n", f.name, s.labels, num(s.sum))
		fmt.Fprintf(w, "%s_count%s %d\n", f.name, s.labels, s.count)
	}
}

func num(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
