package main

import (
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(settings) bool
		wantErr string
	}{
		{"defaults", nil, nil, func(s settings) bool {
			return s.n == 200 && s.c == 20 && s.cooling == time.Second && s.memory == 0 && s.stickyCache == -1 && s.devserver == ""
		}, ""},
		{"devserver from the environment", nil, map[string]string{"VIGIL_DEVSERVER_BIN": "/x/devserver"}, func(s settings) bool { return s.devserver == "/x/devserver" }, ""},
		{"small run", []string{"-n", "20", "-c", "5"}, nil, func(s settings) bool { return s.n == 20 && s.c == 5 }, ""},
		{"memory checkpoints", []string{"-memory", "7000"}, nil, func(s settings) bool { return slices.Equal(s.checkpoints, []int{1000, 5000, 7000}) }, ""},
		{"memory at a checkpoint", []string{"-memory", "1000"}, nil, func(s settings) bool { return slices.Equal(s.checkpoints, []int{1000}) }, ""},
		{"sticky cache", []string{"-sticky-cache", "0"}, nil, func(s settings) bool { return s.stickyCache == 0 }, ""},
		{"zero requests", []string{"-n", "0"}, nil, nil, "-n must be"},
		{"too many at once", []string{"-c", "501"}, nil, nil, "-c must be"},
		{"cooling too short", []string{"-cooling", "10ms"}, nil, nil, "-cooling must be"},
		{"negative memory", []string{"-memory", "-1"}, nil, nil, "-memory must"},
		{"bad sticky cache", []string{"-sticky-cache", "-2"}, nil, nil, "-sticky-cache must"},
		{"bad checkpoint", []string{"-memory", "10", "-checkpoints", "5,x"}, nil, nil, "not a positive whole number"},
		{"decreasing checkpoints", []string{"-memory", "10", "-checkpoints", "5,2"}, nil, nil, "must increase"},
		{"stray argument", []string{"200"}, nil, nil, "unexpected argument"},
		{"unknown flag", []string{"-x"}, nil, nil, "not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseFlags(tc.args, env(tc.env), io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(s) {
				t.Fatalf("parseFlags(%q) = %+v, %v", tc.args, s, err)
			}
		})
	}
}

func TestHelpSaysWhatItPrints(t *testing.T) {
	var b strings.Builder
	_, err := parseFlags([]string{"-h"}, func(string) string { return "" }, &b)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"-n", "-c", "-memory", "throughput", "ratio", "percentiles", "CPU per", "RSS"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, b.String())
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{d, 50, 100 * time.Millisecond},
		{d, 99, 198 * time.Millisecond},
		{d, 100, 200 * time.Millisecond},
		{d[:1], 99, time.Millisecond},
		{nil, 50, 0},
	}
	for _, tc := range tests {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("p%d of %d values = %s, want %s", tc.p, len(tc.sorted), got, tc.want)
		}
	}
}

func TestPhaseCountsOnlySuccesses(t *testing.T) {
	p := phase{wall: 2 * time.Second, samples: []sample{
		{open: time.Millisecond}, {open: 3 * time.Millisecond}, {open: 2 * time.Millisecond}, {err: errNotExecuted},
	}}
	if p.ok() != 3 || len(p.failures()) != 1 {
		t.Fatalf("ok %d, failures %v", p.ok(), p.failures())
	}
	if got := p.throughput(); got != 1.5 {
		t.Errorf("throughput = %v, want 1.5 (3 executed in 2 s)", got)
	}
	if got := p.durations(func(s sample) time.Duration { return s.open }); !slices.Equal(got, []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}) {
		t.Errorf("durations = %v", got)
	}
}

func TestCPUDelta(t *testing.T) {
	got := cpuDelta(map[string]time.Duration{"web": time.Second, "gone": time.Second},
		map[string]time.Duration{"web": 3 * time.Second, "new": time.Second})
	if len(got) != 1 || got["web"] != 2*time.Second {
		t.Fatalf("cpuDelta = %v, want only web: 2s", got)
	}
}

func TestParseMetrics(t *testing.T) {
	body := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 42
temporal_sticky_cache_size{namespace="default",task_queue="q"} 7
temporal_sticky_cache_forced_eviction_total{namespace="default",task_queue="a"} 2
temporal_sticky_cache_forced_eviction_total{namespace="default",task_queue="b"} 3
go_memstats_heap_inuse_bytes 1.048576e+06
`
	m, err := parseMetrics(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"go_goroutines": 42, "temporal_sticky_cache_size": 7,
		"temporal_sticky_cache_forced_eviction_total": 5, "go_memstats_heap_inuse_bytes": 1 << 20} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
	if _, err := parseMetrics(strings.NewReader("go_goroutines\n")); err == nil {
		t.Error("a line without a value parsed")
	}
	if _, err := parseMetrics(strings.NewReader("go_goroutines x\n")); err == nil {
		t.Error("a line with a bad value parsed")
	}
}

func TestNoticeAddress(t *testing.T) {
	tests := []struct {
		name string
		msg  caughtMail
		want string
		ok   bool
	}{
		{"notice", caughtMail{Subject: "r17@lab12cd.load.example will be added as a contact email on your account on 8 Dec 2026, 01:30 UTC",
			Text: "Cancel: http://127.0.0.1:1/c/abc"}, "r17@lab12cd.load.example", true},
		{"outcome without a link", caughtMail{Subject: "r17@lab12cd.load.example has been added as a contact email", Text: "done"}, "", false},
		{"other address", caughtMail{Subject: "ops0@lab12cd.load.example will be added", Text: "/c/x"}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := noticeAddress(tc.msg)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("noticeAddress = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestShapeDifferences(t *testing.T) {
	same := &shapes{vigil: &shape{options: []string{"A x", "B y", "B y"}}, bare: &shape{options: []string{"B y", "A x", "B y"}}}
	if d := same.differences(); len(d) != 0 {
		t.Errorf("same options in another order differ: %v", d)
	}
	other := &shapes{vigil: &shape{options: []string{"A x", "B y"}}, bare: &shape{options: []string{"A x", "B z", "C w"}}}
	d := other.differences()
	if len(d) != 3 {
		t.Fatalf("differences = %v, want B y, B z and C w", d)
	}
}

func TestStackEnv(t *testing.T) {
	env := strings.Join(stackEnv(settings{cooling: 2 * time.Second, stickyCache: 3}), " ")
	for _, want := range []string{"VIGIL_COOLING_ADD_CONTACT_EMAIL=2s", "VIGIL_WORKER_STICKY_CACHE_SIZE=3", "VIGIL_APPROVAL_TIMEOUT=30m0s", "VIGIL_EXECUTE_MAX_ATTEMPTS=10"} {
		if !strings.Contains(env, want) {
			t.Errorf("stackEnv lacks %s: %s", want, env)
		}
	}
	mem := strings.Join(stackEnv(settings{cooling: time.Second, memory: 10, stickyCache: -1}), " ")
	if !strings.Contains(mem, "VIGIL_COOLING_ADD_CONTACT_EMAIL=24h0m0s") || strings.Contains(mem, "STICKY") {
		t.Errorf("memory mode env: %s", mem)
	}
}
