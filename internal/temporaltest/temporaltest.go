// Package temporaltest gives tests a Temporal to talk to: a real client for
// an address nobody listens on (to test "Temporal is down"), and a real
// devserver process on a free port.
package temporaltest

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/vigil-oss/vigil/internal/syncbuf"
)

// ClosedAddr returns a loopback address nothing listens on.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// Unreachable returns a real, lazily connecting Temporal client for an
// address nobody listens on; it is closed when the test ends.
func Unreachable(t testing.TB, logger *slog.Logger) client.Client {
	t.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c, err := client.NewLazyClient(client.Options{HostPort: ClosedAddr(t), Logger: tlog.NewStructuredLogger(logger)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// built is the devserver binary of this test binary: the one
// VIGIL_DEVSERVER_BIN names, or one built once into a temporary directory.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// RemoveBuilt deletes a devserver this test binary built, if any; call it
// from TestMain after m.Run.
func RemoveBuilt() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}

func devserverBin(t testing.TB) string {
	t.Helper()
	b := &built
	b.once.Do(func() {
		if p := os.Getenv("VIGIL_DEVSERVER_BIN"); p != "" {
			b.path = p
			_, b.err = os.Stat(p)
			return
		}
		_, self, _, ok := runtime.Caller(0)
		if !ok {
			b.err = fmt.Errorf("cannot locate the devserver sources; set VIGIL_DEVSERVER_BIN")
			return
		}
		if b.dir, b.err = os.MkdirTemp("", "vigil-temporaltest-devserver-"); b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "devserver")
		t.Log("building the devserver (set VIGIL_DEVSERVER_BIN to skip; the first build takes minutes)")
		cmd := exec.Command("go", "build", "-o", b.path, ".")
		cmd.Dir = filepath.Join(filepath.Dir(self), "..", "..", "devserver")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build devserver: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("devserver: %v", b.err)
	}
	return b.path
}

// StartDevServer runs a devserver with in-memory state on a free port and
// returns its address; it is stopped when the test ends.
func StartDevServer(t testing.TB) string {
	t.Helper()
	cmd := exec.Command(devserverBin(t), "-addr", "127.0.0.1:0", "-in-memory")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs := &syncbuf.Buffer{}
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start devserver: %v", err)
	}
	ready, done := make(chan string, 1), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "devserver ready") {
				ready <- line
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	select {
	case line := <-ready:
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "addr="); ok {
				return v
			}
		}
		t.Fatalf("devserver ready line without addr: %q", line)
	case <-done:
		t.Fatalf("devserver exited before it was ready:\n%s", logs.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("devserver not ready after 2 minutes:\n%s", logs.String())
	}
	return ""
}
