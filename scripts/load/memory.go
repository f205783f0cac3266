package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/loadstack"
	"github.com/vigil-oss/vigil/internal/procstat"
)

// settle is how long the worker is left alone before a reading, so the
// last requests' message updates are done.
const settle = 5 * time.Second

// extrapolateTo is the size the memory curve is extrapolated to.
const extrapolateTo = 100_000

// memoryPoint is one reading of the worker with waiting requests open.
type memoryPoint struct {
	waiting      int
	rss          int64
	heapInuse    float64
	stickyCache  float64
	evictions    float64
	goroutines   float64
	fillDuration time.Duration
}

func runMemory(ctx context.Context, cfg settings, st *loadstack.Stack, out io.Writer, logf func(string, ...any)) error {
	d, err := newDriver(ctx, st, cfg.memory, logf)
	if err != nil {
		return err
	}
	defer d.close()
	worker := st.Proc("worker")
	read := func(waiting int, took time.Duration) (memoryPoint, error) {
		if err := sleep(ctx, settle); err != nil {
			return memoryPoint{}, err
		}
		s, err := procstat.Read("/proc", worker.PID())
		if err != nil {
			return memoryPoint{}, err
		}
		m, err := scrape(ctx, st.WorkerMetrics)
		if err != nil {
			return memoryPoint{}, err
		}
		return memoryPoint{waiting: waiting, rss: s.RSS, heapInuse: m["go_memstats_heap_inuse_bytes"],
			stickyCache: m["temporal_sticky_cache_size"], evictions: m["temporal_sticky_cache_forced_eviction_total"],
			goroutines: m["go_goroutines"], fillDuration: took}, nil
	}
	base, err := read(0, 0)
	if err != nil {
		return err
	}
	points := []memoryPoint{base}
	done := 0
	var inCooling atomic.Int64
	stopProgress := progress(ctx, 30*time.Second, func() { logf("%d of %d requests in cooling", inCooling.Load(), cfg.memory) })
	defer stopProgress()
	for _, target := range cfg.checkpoints {
		logf("opening requests %d to %d and leaving them in cooling, %d at a time", done+1, target, cfg.c)
		samples, took := drive(ctx, done, target, cfg.c, func(ctx context.Context, i int) sample {
			id, s := d.openAndApprove(ctx, i, false)
			if s.err != nil {
				return s
			}
			r, err := d.obs.wait(ctx, id, func(x row) bool { return x.status == string(domain.StatusCooling) || !x.endedAt.IsZero() })
			if err != nil || r.status != string(domain.StatusCooling) {
				s.err = fmt.Errorf("request %s: not in cooling (%v, status %s)", id, err, r.status)
			} else {
				inCooling.Add(1)
			}
			return s
		})
		for _, s := range samples {
			if s.err != nil {
				return fmt.Errorf("memory mode: %w", s.err)
			}
		}
		done = target
		p, err := read(done, took)
		if err != nil {
			return err
		}
		points = append(points, p)
		logf("%d waiting: worker RSS %.1f MiB", done, mib(p.rss))
	}
	printMemory(out, cfg, points)
	return nil
}

// progress calls report every interval until the returned stop is called.
func progress(ctx context.Context, interval time.Duration, report func()) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				report()
			}
		}
	}()
	return cancel
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func printMemory(out io.Writer, cfg settings, points []memoryPoint) {
	cache := "the worker's default"
	if cfg.stickyCache >= 0 {
		cache = strconv.Itoa(cfg.stickyCache)
	}
	fmt.Fprintf(out, "\nWorker memory with requests waiting in a 24 h cooling period (sticky cache: %s)\n\n", cache)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "waiting\tRSS MiB\theap in use MiB\tbytes/request (from empty)\tbytes/request (from previous)\tsticky cache\tforced evictions\tgoroutines\tfill s\t")
	base := points[0]
	for i, p := range points {
		fromEmpty, fromPrev := "-", "-"
		if p.waiting > 0 {
			fromEmpty = strconv.FormatInt((p.rss-base.rss)/int64(p.waiting), 10)
			prev := points[i-1]
			fromPrev = strconv.FormatInt((p.rss-prev.rss)/int64(p.waiting-prev.waiting), 10)
		}
		fmt.Fprintf(tw, "%d\t%.1f\t%.1f\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t\n", p.waiting, mib(p.rss), p.heapInuse/(1<<20),
			fromEmpty, fromPrev, p.stickyCache, p.evictions, p.goroutines, p.fillDuration.Seconds())
	}
	tw.Flush()
	if len(points) >= 2 {
		last, prev := points[len(points)-1], points[len(points)-2]
		if last.waiting < extrapolateTo {
			slope := float64(last.rss-prev.rss) / float64(last.waiting-prev.waiting)
			at := float64(last.rss) + slope*float64(extrapolateTo-last.waiting)
			fmt.Fprintf(out, "\nextrapolated from the last two readings (%.0f bytes per request): %.0f MiB RSS at %d waiting\n",
				slope, at/(1<<20), extrapolateTo)
		}
	}
}

// scrape reads a Prometheus text endpoint into sums by metric name.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics sums each metric's samples over their labels.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if j := strings.LastIndexByte(rest, '}'); j >= 0 {
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics line %q has no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		out[name] += v
	}
	return out, sc.Err()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
