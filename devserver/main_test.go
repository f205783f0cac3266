package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdktemporal "go.temporal.io/sdk/temporal"
	tconfig "go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	sqliteschema "go.temporal.io/server/schema/sqlite"
)

const startTimeout = 3 * time.Minute

var readyRE = regexp.MustCompile(`^devserver ready addr=(\S+) namespace=(\S+)$`)

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr bool
	}{
		{
			name: "defaults",
			want: config{Addr: "127.0.0.1:7233", DBFile: ".vigil/temporal.db", Namespace: "default", LogLevel: slog.LevelWarn},
		},
		{
			name: "env fallbacks",
			env: map[string]string{
				"VIGIL_DEVSERVER_ADDR":      "127.0.0.1:9000",
				"VIGIL_DEVSERVER_DB":        "/tmp/x.db",
				"VIGIL_DEVSERVER_IN_MEMORY": "true",
				"VIGIL_DEVSERVER_NAMESPACE": "vigil",
				"VIGIL_DEVSERVER_LOG_LEVEL": "error",
				"VIGIL_DEVSERVER_HTTP_ADDR": "127.0.0.1:9001",
			},
			want: config{Addr: "127.0.0.1:9000", DBFile: "/tmp/x.db", InMemory: true, Namespace: "vigil",
				LogLevel: slog.LevelError, HTTPAddr: "127.0.0.1:9001"},
		},
		{
			name: "flags override env",
			args: []string{"-addr", "127.0.0.1:8000", "-db-file", "a.db", "-in-memory=false", "-namespace", "ns", "-log-level", "debug"},
			env:  map[string]string{"VIGIL_DEVSERVER_ADDR": "127.0.0.1:9000", "VIGIL_DEVSERVER_IN_MEMORY": "1"},
			want: config{Addr: "127.0.0.1:8000", DBFile: "a.db", Namespace: "ns", LogLevel: slog.LevelDebug},
		},
		{name: "bad log level", args: []string{"-log-level", "loud"}, wantErr: true},
		{name: "bad in-memory env", env: map[string]string{"VIGIL_DEVSERVER_IN_MEMORY": "maybe"}, wantErr: true},
		{name: "empty namespace", args: []string{"-namespace", ""}, wantErr: true},
		{name: "positional args", args: []string{"extra"}, wantErr: true},
		{
			name: "postgres from env",
			env:  map[string]string{"VIGIL_DEVSERVER_POSTGRES": "postgres://postgres@127.0.0.1:5432/vigil_temporal"},
			want: config{Addr: "127.0.0.1:7233", DBFile: ".vigil/temporal.db", Namespace: "default", LogLevel: slog.LevelWarn,
				Postgres: "postgres://postgres@127.0.0.1:5432/vigil_temporal"},
		},
		{name: "postgres and in-memory", args: []string{"-postgres", "postgres://u@h/db", "-in-memory"}, wantErr: true},
		{name: "bad postgres url", args: []string{"-postgres", "postgres://u@h/"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, env(tt.env), io.Discard)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseConfig(%q) = %+v, want error", tt.args, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig(%q): %v", tt.args, err)
			}
			if got != tt.want {
				t.Errorf("parseConfig(%q) = %+v, want %+v", tt.args, got, tt.want)
			}
		})
	}
}

func TestHelpMentionsEnvAndReadyLine(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &out)
	if err == nil {
		t.Fatal("parseConfig(-h) returned no error")
	}
	for _, want := range []string{"-addr", "VIGIL_DEVSERVER_ADDR", "-db-file", "VIGIL_DEVSERVER_DB", "-in-memory",
		"-namespace", "-log-level", "-http-addr", "-postgres", "VIGIL_DEVSERVER_POSTGRES", "devserver ready addr=<host:port> namespace=<ns>"} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			t.Errorf("help output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestResolvePorts(t *testing.T) {
	p, err := resolvePorts(config{Addr: "localhost:0", HTTPAddr: ":7243"})
	if err != nil {
		t.Fatal(err)
	}
	if p.ip != "127.0.0.1" || p.http != 7243 {
		t.Errorf("ip=%q http=%d, want 127.0.0.1 and 7243", p.ip, p.http)
	}
	seen := map[int]bool{}
	for _, port := range []int{p.frontend, p.history, p.matching, p.worker} {
		if port == 0 || seen[port] {
			t.Errorf("ports not distinct and non-zero: %+v", p)
		}
		seen[port] = true
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, bad := range []config{
		{Addr: busy.Addr().String()},
		{Addr: "127.0.0.1:0", HTTPAddr: busy.Addr().String()},
		{Addr: "nohost"},
		{Addr: "example.com:7233"},
		{Addr: "127.0.0.1:99999"},
		{Addr: "127.0.0.1:7233", HTTPAddr: "127.0.0.2:7243"},
		{Addr: "127.0.0.1:7233", HTTPAddr: "127.0.0.1:0"},
	} {
		if _, err := resolvePorts(bad); err == nil {
			t.Errorf("resolvePorts(%+v) succeeded, want error", bad)
		}
	}
}

// devserver is one in-process run of the server.
type devserver struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// start runs the server with cfg in the background and waits for its ready
// line.
func start(t *testing.T, cfg config, logs io.Writer) *devserver {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &devserver{cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := run(ctx, cfg, pw, logs)
		_ = pw.CloseWithError(fmt.Errorf("run returned: %v", err))
		s.done <- err
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			cancel()
			t.Fatalf("server exited before ready: %v", <-s.done)
		}
		m := readyRE.FindStringSubmatch(line)
		if m == nil {
			cancel()
			t.Fatalf("unexpected first stdout line %q", line)
		}
		if m[2] != cfg.Namespace {
			t.Errorf("ready line namespace %q, want %q", m[2], cfg.Namespace)
		}
		s.addr = m[1]
	case <-time.After(startTimeout):
		cancel()
		t.Fatalf("server not ready after %v", startTimeout)
	}
	// Drain any further output so the server never blocks on stdout.
	go func() {
		for line := range lines {
			t.Errorf("unexpected extra stdout line %q", line)
		}
	}()
	return s
}

// stop cancels the server and checks that run returns nil.
func (s *devserver) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run did not return within a minute of cancel")
	}
}

// dial connects an SDK client to the server.
func dial(t *testing.T, addr, ns string) client.Client {
	t.Helper()
	c, err := client.Dial(client.Options{
		HostPort:  addr,
		Namespace: ns,
		Logger:    sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(c.Close)
	return c
}

// checkNamespace asserts that ns exists and carries all Vigil search
// attributes as Keyword.
func checkNamespace(t *testing.T, c client.Client, ns string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	desc, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	if err != nil {
		t.Fatalf("DescribeNamespace(%s): %v", ns, err)
	}
	if got := desc.GetNamespaceInfo().GetName(); got != ns {
		t.Errorf("namespace name %q, want %q", got, ns)
	}
	if got := desc.GetNamespaceInfo().GetState(); got != enumspb.NAMESPACE_STATE_REGISTERED {
		t.Errorf("namespace state %v, want registered", got)
	}
	if got := desc.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(); got != 24*time.Hour {
		t.Errorf("retention %v, want 24h", got)
	}

	sas, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		t.Fatalf("ListSearchAttributes: %v", err)
	}
	for _, name := range []string{"VigilAction", "VigilCustomer", "VigilStatus", "VigilRequester"} {
		if got, ok := sas.GetCustomAttributes()[name]; !ok {
			t.Errorf("search attribute %s missing; have %v", name, sas.GetCustomAttributes())
		} else if got != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			t.Errorf("search attribute %s has type %v, want Keyword", name, got)
		}
	}
}

// lockedBuffer collects server logs; they are printed only if a test fails.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func serverLogs(t *testing.T) io.Writer {
	b := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			b.mu.Lock()
			defer b.mu.Unlock()
			t.Logf("server logs:\n%s", b.buf.String())
		}
	})
	return b
}

func TestRestartKeepsNamespaceAttributesAndWorkflows(t *testing.T) {
	dbFile := filepath.Join(t.TempDir(), "sub", "temporal.db")
	cfg := config{Addr: "127.0.0.1:0", DBFile: dbFile, Namespace: "vigil-test", LogLevel: slog.LevelWarn}
	logs := serverLogs(t)

	s := start(t, cfg, logs)
	if _, err := os.Stat(dbFile); err != nil {
		t.Fatalf("database file not created: %v", err)
	}
	c := dial(t, s.addr, cfg.Namespace)
	checkNamespace(t, c, cfg.Namespace)

	// A workflow with no worker stays running; it must survive the restart
	// and be findable through a Vigil search attribute.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        "restart-probe",
		TaskQueue: "devserver-test",
		TypedSearchAttributes: sdktemporal.NewSearchAttributes(
			sdktemporal.NewSearchAttributeKeyKeyword("VigilAction").ValueSet("restart-probe"),
			sdktemporal.NewSearchAttributeKeyKeyword("VigilStatus").ValueSet("pending"),
		),
	}, "NoSuchWorkflow")
	if err != nil {
		t.Fatalf("start workflow with Vigil search attributes: %v", err)
	}
	c.Close()
	s.stop(t)

	// Restart on the same file (a different free frontend port is fine).
	s = start(t, cfg, logs)
	defer s.stop(t)
	c = dial(t, s.addr, cfg.Namespace)
	checkNamespace(t, c, cfg.Namespace)

	desc, err := c.DescribeWorkflowExecution(ctx, "restart-probe", run.GetRunID())
	if err != nil {
		t.Fatalf("describe workflow after restart: %v", err)
	}
	if got := desc.GetWorkflowExecutionInfo().GetStatus(); got != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Errorf("workflow status after restart %v, want running", got)
	}

	query := `VigilAction = "restart-probe" AND VigilStatus = "pending"`
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: cfg.Namespace, Query: query})
		if err != nil {
			t.Fatalf("ListWorkflow(%s): %v", query, err)
		}
		if n := len(resp.GetExecutions()); n == 1 && resp.GetExecutions()[0].GetExecution().GetWorkflowId() == "restart-probe" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("ListWorkflow(%s) returned %d executions, want the probe", query, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestAddsMissingSearchAttributesToExistingNamespace(t *testing.T) {
	// Simulate a database whose namespace was created without Vigil's
	// search attributes: the server must register them on start.
	dbFile := filepath.Join(t.TempDir(), "temporal.db")
	sqlConf := &tconfig.SQL{
		PluginName:        sqliteplugin.PluginName,
		DatabaseName:      dbFile,
		ConnectAttributes: map[string]string{"mode": "rwc"},
	}
	if err := sqliteschema.SetupSchema(sqlConf); err != nil {
		t.Fatal(err)
	}
	nsConf, err := sqliteschema.NewNamespaceConfig(clusterName, "bare", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqliteschema.CreateNamespaces(sqlConf, nsConf); err != nil {
		t.Fatal(err)
	}

	cfg := config{Addr: "127.0.0.1:0", DBFile: dbFile, Namespace: "bare", LogLevel: slog.LevelWarn}
	s := start(t, cfg, serverLogs(t))
	defer s.stop(t)
	checkNamespace(t, dial(t, s.addr, cfg.Namespace), cfg.Namespace)
}

func TestInMemory(t *testing.T) {
	cfg := config{Addr: "127.0.0.1:0", InMemory: true, Namespace: "default", LogLevel: slog.LevelWarn}
	s := start(t, cfg, serverLogs(t))
	defer s.stop(t)
	checkNamespace(t, dial(t, s.addr, cfg.Namespace), cfg.Namespace)
}

func TestTemporalLoggerFilters(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	level := &slog.LevelVar{}
	level.Set(slog.LevelWarn)
	l := newTemporalLogger(base, level)

	l.Info("info-dropped")
	l.Warn(httpDisabledMsg + " Nexus HTTP endpoints will not be available.")
	l.Warn("warn-kept", tag.NewStringTag("k", "v"))
	l.(log.WithLogger).With(tag.NewStringTag("svc", "x")).Error("error-kept")
	sl := l.(log.SLogWrapper).SLog()
	sl.Info("slog-info-dropped")
	sl.Warn("slog-warn-kept")
	level.Set(slog.LevelError + 4)
	l.Error("error-after-silence-dropped")
	sl.Error("slog-error-after-silence-dropped")

	out := buf.String()
	for _, want := range []string{"warn-kept", "k=v", "error-kept", "svc=x", "slog-warn-kept", "component=temporal"} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"dropped", "Nexus"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("log output contains %q:\n%s", unwanted, out)
		}
	}
}
