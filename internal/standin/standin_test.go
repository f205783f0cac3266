package standin

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the tests run Main in a child process (it calls os.Exit):
// with mainModeEnv set, the test binary is that child.
func TestMain(m *testing.M) {
	if mode := os.Getenv(mainModeEnv); mode != "" {
		childMain(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const mainModeEnv = "VIGIL_STANDIN_TEST_MAIN"

type demoConfig struct{ greeting string }

// childMain is a stand-in built on Main: mode "serve" runs until signalled,
// "fail" fails at once.
func childMain(mode string) {
	parse := func(args []string, getenv func(string) string) (demoConfig, error) {
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		var cfg demoConfig
		fs.StringVar(&cfg.greeting, "greeting", EnvOr(getenv, "DEMO_GREETING", "hello"), "")
		return cfg, ParseFlags(fs, args)
	}
	Main("demo", parse, func(ctx context.Context, cfg demoConfig, logger *slog.Logger, stdout io.Writer) error {
		if mode == "fail" {
			return errors.New("no luck")
		}
		fmt.Fprintf(stdout, "demo ready greeting=%s\n", cfg.greeting)
		<-ctx.Done()
		return nil
	})
}

func TestEnvOr(t *testing.T) {
	env := map[string]string{"SET": "from-env", "EMPTY": ""}
	tests := []struct {
		key, want string
	}{
		{"SET", "from-env"},
		{"EMPTY", "default"},
		{"UNSET", "default"},
	}
	for _, tc := range tests {
		if got := EnvOr(func(k string) string { return env[k] }, tc.key, "default"); got != tc.want {
			t.Errorf("EnvOr(%s) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{"none", nil, "def", ""},
		{"flag", []string{"-x", "given"}, "given", ""},
		{"positional", []string{"-x", "given", "extra"}, "", "unexpected arguments: [extra]"},
		{"unknown flag", []string{"-y"}, "", "flag provided but not defined: -y"},
		{"help", []string{"-h"}, "", flag.ErrHelp.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("demo", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			x := fs.String("x", "def", "")
			err := ParseFlags(fs, tc.args)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || *x != tc.want {
				t.Fatalf("x = %q, err = %v; want %q", *x, err, tc.want)
			}
		})
	}
}

func TestMainExitsAsStandinsDo(t *testing.T) {
	tests := []struct {
		name       string
		mode       string
		args       []string
		env        string
		wantReady  string // "" when no ready line is expected
		wantCode   int
		wantStderr string
	}{
		{"env setting, stopped by SIGTERM", "serve", nil, "DEMO_GREETING=hi", "demo ready greeting=hi\n", 0, ""},
		{"flag beats env", "serve", []string{"-greeting", "flag"}, "DEMO_GREETING=hi", "demo ready greeting=flag\n", 0, ""},
		{"bad command line", "serve", []string{"stray"}, "", "", 2, "unexpected arguments: [stray]\n"},
		{"run fails", "fail", nil, "", "", 1, `level=ERROR msg="demo stopped" err="no luck"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tc.args...)
			cmd.Env = append(os.Environ(), mainModeEnv+"="+tc.mode)
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			if line != tc.wantReady {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("stdout line %q, want %q (stderr %s)", line, tc.wantReady, stderr.String())
			}
			if line != "" {
				if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			err = cmd.Wait()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr containing %q", code, stderr.String(), tc.wantCode, tc.wantStderr)
			}
		})
	}
}

func TestServerServesUntilStopped(t *testing.T) {
	ln := listen(t)
	s := Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hi")
	}))
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hi" {
		t.Fatalf("body %q", body)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Wait(ctx); err != nil {
		t.Fatalf("Wait after ctx ended = %v, want nil", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	select {
	case err := <-s.Done():
		if !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Done after Stop = %v, want http.ErrServerClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serving did not end after Stop")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
		t.Fatal("still serving after Stop")
	}
}

func TestServerWaitReportsAServingFailure(t *testing.T) {
	ln := listen(t)
	ln.Close() // Serve fails at once on a closed listener
	s := Serve(ln, http.NotFoundHandler())
	err := s.Wait(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "serve: ") || errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Wait = %v, want a serve error", err)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
