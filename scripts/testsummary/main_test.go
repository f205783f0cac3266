package main

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name         string
		in           string
		wantLast     string
		wantOK       bool
		wantFailed   []string
		wantContains []string
		wantAbsent   []string
	}{
		{
			name: "all pass",
			in: `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"quiet detail\n"}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.1}
{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"run","Package":"p","Test":"TestB/case"}
{"Action":"pass","Package":"p","Test":"TestB/case"}
{"Action":"pass","Package":"p","Test":"TestB"}
{"Action":"skip","Package":"p","Test":"TestC"}
{"Action":"output","Package":"p","Output":"ok  \tp\t0.2s\n"}
{"Action":"pass","Package":"p","Elapsed":0.2}
{"Action":"skip","Package":"q"}
`,
			wantLast:     "2 passed, 0 failed, 1 skipped",
			wantOK:       true,
			wantContains: []string{"ok  \tp\t0.20s"},
			wantAbsent:   []string{"quiet detail", "\tq\t", "Failed:"},
		},
		{
			name: "a failing subtest fails its parent once, with its output shown",
			in: `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"run","Package":"p","Test":"TestA/bad"}
{"Action":"output","Package":"p","Test":"TestA/bad","Output":"    a_test.go:9: got 1, want 2\n"}
{"Action":"fail","Package":"p","Test":"TestA/bad"}
{"Action":"fail","Package":"p","Test":"TestA"}
{"Action":"pass","Package":"p","Test":"TestB"}
{"Action":"fail","Package":"p","Elapsed":1}
`,
			wantLast:     "1 passed, 1 failed, 0 skipped",
			wantFailed:   []string{"p.TestA"},
			wantContains: []string{"--- FAIL: TestA/bad", "got 1, want 2", "FAIL\tp\t1.00s"},
		},
		{
			name: "a package that fails without a failing test counts once",
			in: `{"Action":"start","Package":"p"}
{"Action":"output","Package":"p","Output":"panic: boom in init\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t0.010s\n"}
{"Action":"fail","Package":"p","Elapsed":0.01}
{"Action":"pass","Package":"r","Test":"TestR"}
{"Action":"pass","Package":"r"}
`,
			wantLast:     "1 passed, 1 failed, 0 skipped",
			wantFailed:   []string{"p (package)"},
			wantContains: []string{"panic: boom in init"},
			wantAbsent:   []string{"FAIL\tp\t0.010s"},
		},
		{
			name: "build failure output is shown",
			in: `{"ImportPath":"p [p.test]","Action":"build-output","Output":"p/x.go:3:1: syntax error\n"}
{"ImportPath":"p [p.test]","Action":"build-fail"}
{"Action":"start","Package":"p"}
{"Action":"output","Package":"p","Output":"FAIL\tp [build failed]\n"}
{"Action":"fail","Package":"p","Elapsed":0,"FailedBuild":"p [p.test]"}
`,
			wantLast:     "0 passed, 1 failed, 0 skipped",
			wantFailed:   []string{"p (package)"},
			wantContains: []string{"syntax error", "[build failed]"},
		},
		{
			name: "a test cut off by a timeout shows its output",
			in: `{"Action":"run","Package":"p","Test":"TestSlow"}
{"Action":"output","Package":"p","Test":"TestSlow","Output":"waiting for worker\n"}
{"Action":"output","Package":"p","Output":"panic: test timed out after 1s\n"}
{"Action":"fail","Package":"p","Elapsed":1}
`,
			wantLast:     "0 passed, 1 failed, 0 skipped",
			wantFailed:   []string{"p (package)"},
			wantContains: []string{"--- unfinished: TestSlow", "waiting for worker", "timed out"},
		},
		{
			name: "a failed step fails the run even when every test passed",
			in: `{"Action":"vigil-step","Package":"go vet ./...","Output":"fail"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"pass","Package":"p"}
{"Action":"vigil-step","Package":"go test (devserver)","Output":"ok"}
`,
			wantLast:     "1 passed, 0 failed, 0 skipped",
			wantContains: []string{"FAIL\tgo vet ./... (fail)", "step: go vet ./..."},
			wantAbsent:   []string{"devserver"},
		},
		{
			name:         "no test at all is a failure",
			in:           `{"Action":"skip","Package":"p"}` + "\n",
			wantLast:     "0 passed, 0 failed, 0 skipped",
			wantContains: []string{"no tests ran"},
		},
		{
			name:         "non-JSON lines pass through",
			in:           "go: downloading example.com/m v1.0.0\n" + `{"Action":"pass","Package":"p","Test":"TestA"}` + "\n",
			wantLast:     "1 passed, 0 failed, 0 skipped",
			wantOK:       true,
			wantContains: []string{"go: downloading example.com/m v1.0.0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			res, err := summarize(strings.NewReader(tc.in), &out)
			if err != nil {
				t.Fatalf("summarize: %v", err)
			}
			res.printTotals(&out)
			got := out.String()
			lines := strings.Split(strings.TrimRight(got, "\n"), "\n")
			if last := lines[len(lines)-1]; last != tc.wantLast {
				t.Errorf("last line = %q, want %q\nfull output:\n%s", last, tc.wantLast, got)
			}
			if res.ok() != tc.wantOK {
				t.Errorf("ok() = %v, want %v", res.ok(), tc.wantOK)
			}
			if strings.Join(res.FailedNames, ",") != strings.Join(tc.wantFailed, ",") {
				t.Errorf("FailedNames = %q, want %q", res.FailedNames, tc.wantFailed)
			}
			for _, s := range tc.wantContains {
				if !strings.Contains(got, s) {
					t.Errorf("output lacks %q:\n%s", s, got)
				}
			}
			for _, s := range tc.wantAbsent {
				if strings.Contains(got, s) {
					t.Errorf("output has %q but should not:\n%s", s, got)
				}
			}
		})
	}
}

func TestDropResultLines(t *testing.T) {
	tests := []struct{ in, want string }{
		{"panic: x\nFAIL\tp\t0.01s\n", "panic: x\n"},
		{"FAIL\n", ""},
		{"FAIL\tp [setup failed]\n", ""},
		{"FAIL\tpq\t1s\nkeep\n", "FAIL\tpq\t1s\nkeep\n"},
	}
	for _, tc := range tests {
		if got := dropResultLines(tc.in, "p"); got != tc.want {
			t.Errorf("dropResultLines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIndent(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a\n", "    a\n"},
		{"a\nb", "    a\n    b\n"},
	}
	for _, tc := range tests {
		if got := indent(tc.in); got != tc.want {
			t.Errorf("indent(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
