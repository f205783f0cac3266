package procstat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fakeProc(t *testing.T, stat, status string) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "42")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestRead(t *testing.T) {
	// A command name with spaces and a ')' of its own; utime 250, stime 75 ticks.
	stat := "42 (we ird) (name) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0 1234 100000 2000 18446744073709551615\n"
	status := "Name:\tworker\nVmPeak:\t  900 kB\nVmRSS:\t   51200 kB\nThreads:\t8\n"
	tests := []struct {
		name, stat, status string
		want               Sample
		wantErr            string
	}{
		{"parses", stat, status, Sample{CPU: 3250 * time.Millisecond, RSS: 51200 * 1024}, ""},
		{"no command name", "42 worker S 1", status, Sample{}, "no command name"},
		{"short stat", "42 (w) S 1 2 3", status, Sample{}, "fields after the command name"},
		{"bad tick", strings.Replace(stat, " 250 ", " x ", 1), status, Sample{}, "cpu field"},
		{"no VmRSS", stat, "Name:\tworker\n", Sample{}, "no VmRSS"},
		{"VmRSS unit", stat, "VmRSS:\t12 MB\n", Sample{}, "VmRSS line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Read(fakeProc(t, tc.stat, tc.status), 42)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Read = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestReadSelf(t *testing.T) {
	// Burn some CPU so the reading cannot be zero by luck.
	deadline := time.Now().Add(50 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		_ = n * n
	}
	s, err := Read("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS <= 0 || s.CPU <= 0 {
		t.Fatalf("own process: %+v, want positive CPU and RSS", s)
	}
}

func TestReadMissing(t *testing.T) {
	if _, err := Read(t.TempDir(), 7); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}
