// Package procstat reads a process's CPU time and resident memory from
// Linux's /proc, for the load command's per-process figures.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// It is 100 on every Linux architecture Go supports (the kernel fixes it
// for user space), so it is not read through sysconf.
const clockTicks = 100

// Sample is one reading of a process.
type Sample struct {
	// CPU is user plus system time the process has used since it started.
	CPU time.Duration
	// RSS is its resident set size in bytes (VmRSS).
	RSS int64
}

// Read returns pid's CPU time and RSS now; root is "/proc" except in tests.
func Read(root string, pid int) (Sample, error) {
	cpu, err := readCPU(root, pid)
	if err != nil {
		return Sample{}, err
	}
	rss, err := readRSS(root, pid)
	if err != nil {
		return Sample{}, err
	}
	return Sample{CPU: cpu, RSS: rss}, nil
}

// readCPU parses utime and stime, fields 14 and 15 of /proc/<pid>/stat.
func readCPU(root string, pid int) (time.Duration, error) {
	path := fmt.Sprintf("%s/%d/stat", root, pid)
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("procstat: %w", err)
	}
	// The command name (field 2) is in parentheses and may hold spaces or
	// parentheses itself: the fields after it start after the last ')'.
	end := bytes.LastIndexByte(raw, ')')
	if end < 0 {
		return 0, fmt.Errorf("procstat: %s: no command name", path)
	}
	fields := strings.Fields(string(raw[end+1:]))
	// fields[0] is field 3 (state), so utime (14) is fields[11], stime fields[12].
	if len(fields) < 13 {
		return 0, fmt.Errorf("procstat: %s: %d fields after the command name, want at least 13", path, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("procstat: %s: cpu field %q: %w", path, f, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// readRSS parses the VmRSS line of /proc/<pid>/status (in kB).
func readRSS(root string, pid int) (int64, error) {
	path := fmt.Sprintf("%s/%d/status", root, pid)
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("procstat: %w", err)
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("procstat: %s: VmRSS line %q", path, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("procstat: %s: VmRSS %q: %w", path, f[0], err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("procstat: %s has no VmRSS line (a zombie process?)", path)
}
