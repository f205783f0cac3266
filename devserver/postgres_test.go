package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq" // registers the "postgres" driver for test set-up
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdktemporal "go.temporal.io/sdk/temporal"
	v12 "go.temporal.io/server/schema/postgresql/v12"
)

// adminDSN is the local trust-auth server, as in the main module's testpg.
func adminDSN() string {
	if v := os.Getenv("VIGIL_TEST_DATABASE_URL"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// pgAdmin connects to the Postgres server tests create databases on.
func pgAdmin(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", adminDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("Postgres is not reachable (%v): start it or set VIGIL_TEST_DATABASE_URL", err)
	}
	return db
}

// pgURL returns a -postgres URL for a fresh database name whose main and
// visibility databases are dropped when the test ends.
func pgURL(t *testing.T, admin *sql.DB) (string, string) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "vigil_devserver_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		for _, db := range []string{name, name + visibilitySuffix} {
			if _, err := admin.Exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)"); err != nil {
				t.Errorf("drop %s: %v", db, err)
			}
		}
	})
	u, err := url.Parse(adminDSN())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String(), name
}

// schemaVersion reads the Temporal schema version recorded in database name.
func schemaVersion(t *testing.T, dsn, name string) string {
	t.Helper()
	u, _ := url.Parse(dsn)
	u.Path = "/" + name
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow(`SELECT curr_version FROM schema_version WHERE db_name = $1`, name).Scan(&v); err != nil {
		t.Fatalf("read schema version of %s: %v", name, err)
	}
	return v
}

func TestPostgresCreatesDatabasesAndSurvivesRestart(t *testing.T) {
	admin := pgAdmin(t)
	dsn, name := pgURL(t, admin)
	cfg := config{Addr: "127.0.0.1:0", Postgres: dsn, Namespace: "vigil-pg", LogLevel: slog.LevelWarn}
	logs := serverLogs(t)

	s := start(t, cfg, logs)
	if got := schemaVersion(t, dsn, name); got != v12.Version {
		t.Errorf("main schema version %q, want %q", got, v12.Version)
	}
	if got := schemaVersion(t, dsn, name+visibilitySuffix); got != v12.VisibilityVersion {
		t.Errorf("visibility schema version %q, want %q", got, v12.VisibilityVersion)
	}
	c := dial(t, s.addr, cfg.Namespace)
	checkNamespace(t, c, cfg.Namespace)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Right after the ready line: the namespace registered through the API
	// must already take workflows.
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        "pg-probe",
		TaskQueue: "devserver-test",
		TypedSearchAttributes: sdktemporal.NewSearchAttributes(
			sdktemporal.NewSearchAttributeKeyKeyword("VigilAction").ValueSet("pg-probe"),
			sdktemporal.NewSearchAttributeKeyKeyword("VigilStatus").ValueSet("pending"),
		),
	}, "NoSuchWorkflow")
	if err != nil {
		t.Fatalf("start workflow with Vigil search attributes: %v", err)
	}
	var rows int
	if err := admin.QueryRow(`SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("database %s: count %d, err %v", name, rows, err)
	}
	c.Close()
	s.stop(t)

	s = start(t, cfg, logs)
	defer s.stop(t)
	c = dial(t, s.addr, cfg.Namespace)
	checkNamespace(t, c, cfg.Namespace)
	desc, err := c.DescribeWorkflowExecution(ctx, "pg-probe", run.GetRunID())
	if err != nil {
		t.Fatalf("describe workflow after restart: %v", err)
	}
	if got := desc.GetWorkflowExecutionInfo().GetStatus(); got != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Errorf("workflow status after restart %v, want running", got)
	}
	query := `VigilAction = "pg-probe" AND VigilStatus = "pending"`
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: cfg.Namespace, Query: query})
		if err != nil {
			t.Fatalf("ListWorkflow(%s): %v", query, err)
		}
		if n := len(resp.GetExecutions()); n == 1 && resp.GetExecutions()[0].GetExecution().GetWorkflowId() == "pg-probe" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("ListWorkflow(%s) returned %d executions, want the probe", query, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestPostgresRefusesForeignDatabase(t *testing.T) {
	admin := pgAdmin(t)
	dsn, name := pgURL(t, admin)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(dsn)
	other, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// Stands for Vigil's own database: tables, no Temporal schema.
	if _, err := other.Exec(`CREATE TABLE requests (id text PRIMARY KEY); INSERT INTO requests VALUES ('r1')`); err != nil {
		t.Fatal(err)
	}

	cfg := config{Addr: "127.0.0.1:0", Postgres: dsn, Namespace: "default", LogLevel: slog.LevelWarn}
	err = run(context.Background(), cfg, &strings.Builder{}, serverLogs(t))
	if err == nil || !strings.Contains(err.Error(), "no Temporal schema version") {
		t.Fatalf("run on a foreign database: %v, want a refusal", err)
	}
	var tables int
	if err := other.QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 1 {
		t.Errorf("foreign database has %d tables after the refusal, want its 1", tables)
	}
}

func TestParsePostgresURL(t *testing.T) {
	good, err := parsePostgresURL("postgres://vigil:s3cret@db.internal/vigil_temporal?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	if good.addr != "db.internal:5432" || good.user != "vigil" || good.password != "s3cret" ||
		good.database != "vigil_temporal" || good.attributes["sslmode"] != "disable" {
		t.Errorf("parsed %+v", good)
	}
	for _, bad := range []string{
		"mysql://u@h/db",
		"postgres://u@/db",
		"postgres://h:5432/db",
		"postgres://u@h:5432/",
		"postgres://u@h:5432/Vigil-Temporal",
		"postgres://u@h:5432/db;drop",
		"postgres://u@h:5432/" + strings.Repeat("a", 60),
		"postgres://u@h:5432/db?sslmode=a&sslmode=b",
	} {
		if _, err := parsePostgresURL(bad); err == nil {
			t.Errorf("parsePostgresURL(%q) succeeded, want error", bad)
		}
	}
	if _, err := parsePostgresURL("postgres://u:hunter2@h:5432/Bad-Name"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v must refuse without echoing the password", err)
	}
}
