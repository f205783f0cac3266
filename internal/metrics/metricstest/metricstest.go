// Package metricstest scrapes a Prometheus endpoint in tests and reads
// values from the families, parsed with expfmt rather than matched as text.
package metricstest

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape is one exposition: its raw text, to look for what must not be
// there, and its parsed families, to read values.
type Scrape struct {
	Raw      string
	Families map[string]*dto.MetricFamily
}

// Get scrapes url and fails the test unless it answers 200 in the text
// format.
func Get(t testing.TB, url string) Scrape {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	check(t, res.StatusCode, res.Header, body)
	return Parse(t, string(body))
}

// Serve scrapes h in process, as GET /metrics.
func Serve(t testing.TB, h http.Handler) Scrape {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	check(t, rec.Code, rec.Header(), rec.Body.Bytes())
	return Parse(t, rec.Body.String())
}

func check(t testing.TB, code int, h http.Header, body []byte) {
	t.Helper()
	if code != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", code, body)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("scrape: Content-Type %q, want the text format", ct)
	}
}

// Parse parses an exposition in the text format.
func Parse(t testing.TB, body string) Scrape {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse the scrape: %v\n%s", err, body)
	}
	return Scrape{Raw: body, Families: fams}
}

// Names lists the families, sorted.
func (s Scrape) Names() []string { return slices.Sorted(maps.Keys(s.Families)) }

// Series lists the label sets of family name.
func (s Scrape) Series(name string) []map[string]string {
	f := s.Families[name]
	if f == nil {
		return nil
	}
	out := make([]map[string]string, 0, len(f.GetMetric()))
	for _, m := range f.GetMetric() {
		out = append(out, labels(m))
	}
	return out
}

// Sum adds the values of family name's series whose labels include want:
// a counter's or gauge's value, a histogram's or summary's sample count.
// found says whether any series matched.
func (s Scrape) Sum(name string, want map[string]string) (sum float64, found bool) {
	f := s.Families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		l := labels(m)
		match := true
		for k, v := range want {
			if l[k] != v {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Summary != nil:
			sum += float64(m.GetSummary().GetSampleCount())
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, found
}

func labels(m *dto.Metric) map[string]string {
	l := make(map[string]string, len(m.GetLabel()))
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}
