// Package standintest starts a stand-in's run function in a test and waits
// for the ready line it prints, as scripts/run-local and the e2e tests do with
// the real binaries.
package standintest

import (
	"bufio"
	"context"
	"io"
	"sync"
	"testing"
	"time"
)

// Generous bounds, so a slow machine does not fail a test; they only stop a
// hung test from waiting forever.
const (
	readyWait = 20 * time.Second
	stopWait  = 10 * time.Second
)

// Start calls run in the background with a context of its own and waits for
// the first line run writes to stdout, which it returns with its newline.
// stop ends the context and returns what run returned. The test fails if run
// returns before that line, or if the line or the return takes too long.
// Whatever run writes to stdout after the first line is discarded.
func Start(t testing.TB, run func(ctx context.Context, stdout io.Writer) error) (ready string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, pw)
		pw.Close() // ends the reader below if the line never came
		done <- err
	}()
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(pr)
		line, _ := br.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, br) // run must never block on stdout
	}()

	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(stopWait):
				t.Fatalf("run did not return within %v of its context ending", stopWait)
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })

	select {
	case line := <-lines:
		if line == "" || line[len(line)-1] != '\n' {
			// run returned, or closed stdout, without a whole line.
			t.Fatalf("run returned before a ready line (stdout %q): %v", line, stop())
		}
		return line, stop
	case <-time.After(readyWait):
		t.Fatalf("no ready line on stdout within %v", readyWait)
	}
	return "", stop // not reached: Fatalf ends the test
}
