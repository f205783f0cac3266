package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-oss/vigil/internal/loadstack"
	"github.com/vigil-oss/vigil/internal/procstat"
)

// sample is one request as the driver saw it.
type sample struct {
	open, click, toExecuted time.Duration
	err                     error
}

// phase is one mode's run: Vigil's or the bare workflow's.
type phase struct {
	name    string
	n       int
	wall    time.Duration
	samples []sample
	// cpu is each process's CPU time during the phase.
	cpu map[string]time.Duration
}

// throughput is requests per second, end to end.
func (p phase) throughput() float64 {
	if p.wall <= 0 {
		return 0
	}
	return float64(p.ok()) / p.wall.Seconds()
}

func (p phase) ok() int {
	n := 0
	for _, s := range p.samples {
		if s.err == nil {
			n++
		}
	}
	return n
}

func (p phase) failures() []string {
	var out []string
	for _, s := range p.samples {
		if s.err != nil {
			out = append(out, s.err.Error())
		}
	}
	return out
}

// durations returns one measure of the successful samples, sorted.
func (p phase) durations(f func(sample) time.Duration) []time.Duration {
	var out []time.Duration
	for _, s := range p.samples {
		if s.err == nil {
			out = append(out, f(s))
		}
	}
	slices.Sort(out)
	return out
}

// percentile returns the p-th percentile of sorted durations (nearest
// rank), or 0 for none.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}

// selfName is how the driver's own process is listed.
const selfName = "load (this driver)"

// cpuSnapshot reads every child's CPU time, and the driver's own.
func cpuSnapshot(st *loadstack.Stack) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, p := range st.Procs() {
		if s, err := procstat.Read("/proc", p.PID()); err == nil {
			out[p.Name] = s.CPU
		}
	}
	if s, err := procstat.Read("/proc", os.Getpid()); err == nil {
		out[selfName] = s.CPU
	}
	return out
}

// cpuDelta is after minus before, per process present in both.
func cpuDelta(before, after map[string]time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{}
	for k, a := range after {
		if b, ok := before[k]; ok {
			out[k] = a - b
		}
	}
	return out
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d.Microseconds())/1000) }

// msPer is d divided over n, in milliseconds with one decimal.
func msPer(d time.Duration, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000/float64(n))
}

// procOrder is the order processes are listed in.
var procOrder = []string{"devserver", "worker", "web", "slack", "mail", "panel", bareWorkerName, selfName}

// printThroughput writes the report of a throughput run.
func printThroughput(out io.Writer, cfg settings, phases []phase, sh *shapes) {
	fmt.Fprintf(out, "\nVigil load: %d requests, %d at a time, cooling period %s, on one devserver (SQLite)\n\n", cfg.n, cfg.c, cfg.cooling)
	for _, p := range phases {
		fmt.Fprintf(out, "%-6s %4d ok, %d failed in %6.1f s: %6.2f requests/s\n", p.name, p.ok(), len(p.failures()), p.wall.Seconds(), p.throughput())
	}
	if len(phases) == 2 && phases[1].throughput() > 0 {
		fmt.Fprintf(out, "ratio  Vigil / bare = %.2f×\n", phases[0].throughput()/phases[1].throughput())
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency, ms\tp50\tp90\tp99\tmax\t")
	measures := []struct {
		vigil, bare string
		f           func(sample) time.Duration
	}{
		{"open call (POST /api/v1/requests)", "start (StartWorkflowExecution)", func(s sample) time.Duration { return s.open }},
		{"click ack (signed Slack click)", "update (UpdateWorkflowExecution)", func(s sample) time.Duration { return s.click }},
		{"open to executed", "start to executed", func(s sample) time.Duration { return s.toExecuted }},
	}
	for _, p := range phases {
		for _, m := range measures {
			label := m.vigil
			if p.name != "Vigil" {
				label = m.bare
			}
			d := p.durations(m.f)
			fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\t\n", p.name, label, ms(percentile(d, 50)), ms(percentile(d, 90)), ms(percentile(d, 99)), ms(percentile(d, 100)))
		}
	}
	tw.Flush()

	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "CPU per request, ms"
	for _, p := range phases {
		head += "\t" + p.name
	}
	fmt.Fprintln(tw, head+"\t")
	totals := make([]time.Duration, len(phases))
	for _, name := range procOrder {
		line := name
		seen := false
		for i, p := range phases {
			d, ok := p.cpu[name]
			if !ok {
				line += "\t-"
				continue
			}
			seen = true
			line += "\t" + msPer(d, p.ok())
			if name != selfName {
				totals[i] += d
			}
		}
		if seen {
			fmt.Fprintln(tw, line+"\t")
		}
	}
	line := "all children"
	for i, p := range phases {
		line += "\t" + msPer(totals[i], p.ok())
	}
	fmt.Fprintln(tw, line+"\t")
	tw.Flush()
	fmt.Fprintln(out, "(Postgres is the machine's shared server and is not counted; the driver's own CPU includes its polling.)")

	if sh != nil {
		fmt.Fprintln(out)
		sh.print(out)
	}
	for _, p := range phases {
		if f := p.failures(); len(f) > 0 {
			fmt.Fprintf(out, "\n%s failures (%d):\n", p.name, len(f))
			for _, e := range f[:min(len(f), 20)] {
				fmt.Fprintf(out, "  %s\n", strings.ReplaceAll(e, "\n", " "))
			}
		}
	}
}
