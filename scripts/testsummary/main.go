// Command testsummary reads `go test -json` events on stdin, prints one
// progress line per package, the output of every failing test, and a final
// "N passed, M failed, K skipped" line. It exits 1 when a test or a package
// failed, when a step reported by scripts/test failed, or when no test ran.
//
// Lines that are not JSON are passed through unchanged. scripts/test adds
// events of its own, with Action "vigil-step", to report a step outside go
// test (go vet, a go test that exited non-zero without saying why):
//
//	{"Action":"vigil-step","Package":"go vet ./...","Output":"fail"}
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

func main() {
	since := flag.Int64("since", 0, "Unix time the run started; when set, the time taken is printed before the summary")
	flag.Parse()
	res, err := summarize(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(1)
	}
	if *since > 0 {
		fmt.Fprintf(os.Stdout, "took %s\n", time.Since(time.Unix(*since, 0)).Round(time.Second))
	}
	res.printTotals(os.Stdout)
	if !res.ok() {
		os.Exit(1)
	}
}

// event is one test2json record (see `go doc test2json`), plus the build
// events of Go 1.24 and later, which carry ImportPath instead of Package.
type event struct {
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string
	FailedBuild string
}

// result counts what happened. Passed, Failed and Skipped count top-level
// tests; a package that failed without a failing test (build error, panic
// outside a test, timeout, TestMain failure) counts as one failure.
type result struct {
	Passed, Failed, Skipped int
	FailedNames             []string // "pkg.TestX", "pkg (package)" or "step: name"
	FailedSteps             []string
}

func (r result) ok() bool {
	return r.Failed == 0 && len(r.FailedSteps) == 0 && r.Passed+r.Skipped > 0
}

type testKey struct{ pkg, test string }

// summarize consumes the event stream in r and writes the report, all but
// the totals line, to w.
func summarize(r io.Reader, w io.Writer) (result, error) {
	var res result
	output := map[testKey]*strings.Builder{} // buffered output of running tests and packages
	buildOut := map[string]*strings.Builder{}
	failedIn := map[string]int{} // package -> failed top-level tests
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		key := testKey{ev.Package, ev.Test}
		switch ev.Action {
		case "vigil-step":
			if ev.Output != "ok" {
				res.FailedSteps = append(res.FailedSteps, ev.Package)
				fmt.Fprintf(w, "FAIL\t%s (%s)\n", ev.Package, strings.TrimSpace(ev.Output))
			}
		case "build-output":
			b := buildOut[ev.ImportPath]
			if b == nil {
				b = &strings.Builder{}
				buildOut[ev.ImportPath] = b
			}
			b.WriteString(ev.Output)
		case "build-fail":
			if b := buildOut[ev.ImportPath]; b != nil {
				fmt.Fprint(w, b.String())
			}
			delete(buildOut, ev.ImportPath)
		case "output":
			b := output[key]
			if b == nil {
				b = &strings.Builder{}
				output[key] = b
			}
			b.WriteString(ev.Output)
		case "pass", "skip", "fail":
			if ev.Test != "" {
				top := !strings.Contains(ev.Test, "/")
				switch {
				case ev.Action == "fail":
					fmt.Fprintf(w, "--- FAIL: %s (%s, %.2fs)\n", ev.Test, ev.Package, ev.Elapsed)
					if b := output[key]; b != nil {
						fmt.Fprint(w, indent(b.String()))
					}
					if top {
						res.Failed++
						failedIn[ev.Package]++
						res.FailedNames = append(res.FailedNames, ev.Package+"."+ev.Test)
					}
				case top && ev.Action == "pass":
					res.Passed++
				case top && ev.Action == "skip":
					res.Skipped++
				}
				delete(output, key)
				continue
			}
			// Package-level result.
			pkgOut := output[key]
			delete(output, key)
			switch ev.Action {
			case "pass":
				fmt.Fprintf(w, "ok  \t%s\t%.2fs\n", ev.Package, ev.Elapsed)
			case "skip":
				// "no test files": nothing worth a line.
			case "fail":
				reason := ""
				if ev.FailedBuild != "" {
					reason = " [build failed]"
				}
				fmt.Fprintf(w, "FAIL\t%s\t%.2fs%s\n", ev.Package, ev.Elapsed, reason)
				if failedIn[ev.Package] == 0 {
					// Nothing explained the failure yet: show what the package
					// printed (a build failure was shown with its build output).
					if pkgOut != nil && ev.FailedBuild == "" {
						fmt.Fprint(w, indent(dropResultLines(pkgOut.String(), ev.Package)))
					}
					res.Failed++
					res.FailedNames = append(res.FailedNames, ev.Package+" (package)")
				}
				// Tests still running when the package failed (a timeout or a
				// crash) never get their own event: show what they printed.
				var stuck []testKey
				for k := range output {
					if k.pkg == ev.Package && k.test != "" {
						stuck = append(stuck, k)
					}
				}
				sort.Slice(stuck, func(i, j int) bool { return stuck[i].test < stuck[j].test })
				for _, k := range stuck {
					fmt.Fprintf(w, "--- unfinished: %s (%s)\n", k.test, k.pkg)
					fmt.Fprint(w, indent(output[k].String()))
					delete(output, k)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("read events: %w", err)
	}
	if len(res.FailedNames) > 0 || len(res.FailedSteps) > 0 {
		fmt.Fprintln(w, "\nFailed:")
		for _, n := range res.FailedNames {
			fmt.Fprintln(w, "  "+n)
		}
		for _, s := range res.FailedSteps {
			fmt.Fprintln(w, "  step: "+s)
		}
	}
	if res.Passed+res.Skipped+res.Failed == 0 {
		fmt.Fprintln(w, "no tests ran")
	}
	return res, nil
}

// printTotals writes the final "N passed, M failed, K skipped" line.
func (r result) printTotals(w io.Writer) {
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", r.Passed, r.Failed, r.Skipped)
}

// dropResultLines removes go test's own result lines for pkg ("FAIL\tpkg\t1.2s",
// a bare "FAIL"), which the progress line already says.
func dropResultLines(s, pkg string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		t := strings.TrimRight(l, "\n")
		if t == "FAIL" || strings.HasPrefix(t, "FAIL\t"+pkg+"\t") || strings.HasPrefix(t, "FAIL\t"+pkg+" ") {
			continue
		}
		b.WriteString(l)
	}
	return b.String()
}

// indent prefixes every line of s with four spaces, so failure output stands
// apart from the progress lines.
func indent(s string) string {
	if s == "" {
		return ""
	}
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l == "" {
			continue
		}
		b.WriteString("    ")
		b.WriteString(l)
	}
	if !strings.HasSuffix(s, "\n") {
		b.WriteString("\n")
	}
	return b.String()
}
