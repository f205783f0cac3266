package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	tconfig "go.temporal.io/server/common/config"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/metrics"
	"go.temporal.io/server/common/persistence"
	"go.temporal.io/server/common/persistence/sql"
	"go.temporal.io/server/common/persistence/sql/sqlplugin"
	pgplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/postgresql"
	"go.temporal.io/server/common/resolver"
	dbschemas "go.temporal.io/server/schema"
)

// visibilitySuffix names the visibility database after the main one: the two
// schemas each keep their version in a schema_version row keyed by database
// name, so they cannot share a database (production uses two as well).
const visibilitySuffix = "_visibility"

// dbNameRE is what a Temporal database name may look like. Temporal's admin
// statements format the name into SQL, so only plain identifiers pass.
var dbNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// pgTarget is a parsed -postgres URL.
type pgTarget struct {
	addr       string            // host:port
	user       string            // role name
	password   string            // may be empty (trust auth)
	database   string            // main database; visibility is database+visibilitySuffix
	attributes map[string]string // URL query, e.g. sslmode
}

// parsePostgresURL parses a postgres:// URL naming the database Temporal owns.
// Errors never echo the URL: it may hold a password.
func parsePostgresURL(raw string) (pgTarget, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return pgTarget{}, errors.New("-postgres must be a postgres://user@host:port/database URL")
	}
	if u.Hostname() == "" {
		return pgTarget{}, errors.New("-postgres needs a host (Temporal connects over TCP)")
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	t := pgTarget{
		addr:       net.JoinHostPort(u.Hostname(), port),
		user:       u.User.Username(),
		attributes: map[string]string{},
	}
	t.password, _ = u.User.Password()
	if t.user == "" {
		return pgTarget{}, errors.New("-postgres needs a user name")
	}
	t.database = strings.TrimPrefix(u.Path, "/")
	if !dbNameRE.MatchString(t.database) || len(t.database)+len(visibilitySuffix) > 63 {
		return pgTarget{}, fmt.Errorf("-postgres database name %q must be a lower-case identifier of at most %d characters",
			t.database, 63-len(visibilitySuffix))
	}
	for k, vs := range u.Query() {
		if len(vs) != 1 {
			return pgTarget{}, fmt.Errorf("-postgres parameter %q given %d times", k, len(vs))
		}
		t.attributes[k] = vs[0]
	}
	return t, nil
}

// sqlConfig returns Temporal's SQL config for database name on t.
func (t pgTarget) sqlConfig(name string, maxConns int) *tconfig.SQL {
	attrs := make(map[string]string, len(t.attributes))
	for k, v := range t.attributes {
		attrs[k] = v
	}
	return &tconfig.SQL{
		PluginName:        pgplugin.PluginName,
		DatabaseName:      name,
		ConnectAddr:       t.addr,
		ConnectProtocol:   "tcp",
		User:              t.user,
		Password:          t.password,
		ConnectAttributes: attrs,
		// The machine's Postgres is shared; a bounded pool per store keeps
		// the devserver from taking its connections.
		MaxConns:        maxConns,
		MaxIdleConns:    maxConns,
		MaxConnLifetime: time.Hour,
	}
}

// preparePostgres creates the main and visibility databases if missing and
// Temporal's schema in them if they are empty, and returns the two stores'
// configs. A database that holds tables but no Temporal schema version is
// refused, so the devserver never writes into another application's data.
func preparePostgres(raw string, logger *slog.Logger) (main, visibility *tconfig.SQL, err error) {
	t, err := parsePostgresURL(raw)
	if err != nil {
		return nil, nil, err
	}
	main = t.sqlConfig(t.database, 10)
	visibility = t.sqlConfig(t.database+visibilitySuffix, 5)
	stores := []struct {
		kind   sqlplugin.DbKind
		conf   *tconfig.SQL
		schema string // path in the server's embedded schema tree
	}{
		{sqlplugin.DbKindMain, main, "postgresql/v12/temporal/schema.sql"},
		{sqlplugin.DbKindVisibility, visibility, "postgresql/v12/visibility/schema.sql"},
	}
	for _, s := range stores {
		if err := createDatabase(t, s.conf.DatabaseName); err != nil {
			return nil, nil, err
		}
		if err := setupPostgresSchema(s.kind, s.conf, s.schema, logger); err != nil {
			return nil, nil, err
		}
	}
	return main, visibility, nil
}

// createDatabase creates database name on t unless it exists.
func createDatabase(t pgTarget, name string) error {
	// No database name: the plugin connects to the server's default one.
	admin, err := newAdminDB(sqlplugin.DbKindUnknown, t.sqlConfig("", 1))
	if err != nil {
		return fmt.Errorf("connect to postgres at %s as %s: %w", t.addr, t.user, err)
	}
	defer func() { _ = admin.Close() }()
	if err := admin.CreateDatabase(name); err != nil { // a no-op when it exists
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// setupPostgresSchema loads schemaFile into the database of conf if it holds
// no tables, records the schema version the server expects, and otherwise
// checks that the version is the expected one.
func setupPostgresSchema(kind sqlplugin.DbKind, conf *tconfig.SQL, schemaFile string, logger *slog.Logger) error {
	db, err := newAdminDB(kind, conf)
	if err != nil {
		return fmt.Errorf("connect to database %s: %w", conf.DatabaseName, err)
	}
	defer func() { _ = db.Close() }()
	want := db.ExpectedVersion()

	tables, err := db.ListTables(conf.DatabaseName)
	if err != nil {
		return fmt.Errorf("list tables of database %s: %w", conf.DatabaseName, err)
	}
	if len(tables) > 0 {
		got, err := db.ReadSchemaVersion(conf.DatabaseName)
		switch {
		case err != nil || got == "":
			return fmt.Errorf("database %s holds %d tables but no Temporal schema version; give the devserver a database of its own (or drop it if a devserver start was cut short)",
				conf.DatabaseName, len(tables))
		case got != want:
			return fmt.Errorf("database %s has Temporal schema %s, this server needs %s; upgrade it with temporal-sql-tool update-schema or use a new database",
				conf.DatabaseName, got, want)
		}
		logger.Info("using existing database", "database", conf.DatabaseName, "schema_version", got)
		return nil
	}

	logger.Info("creating schema", "database", conf.DatabaseName, "schema_version", want)
	buf, err := fs.ReadFile(dbschemas.Assets(), schemaFile)
	if err != nil {
		return fmt.Errorf("read embedded schema %s: %w", schemaFile, err)
	}
	stmts, err := persistence.LoadAndSplitQueryFromReaders([]io.Reader{bytes.NewReader(buf)})
	if err != nil {
		return fmt.Errorf("parse embedded schema %s: %w", schemaFile, err)
	}
	if rw, ok := db.(sqlplugin.SchemaStatementRewriter); ok {
		stmts = rw.RewriteSchemaStatements(stmts)
	}
	// The version row is written last: a run cut short leaves tables without
	// a version, which the next start refuses instead of trusting.
	for i, stmt := range stmts {
		if err := db.Exec(stmt); err != nil {
			return fmt.Errorf("schema %s statement %d: %w", schemaFile, i, err)
		}
	}
	if err := db.CreateSchemaVersionTables(); err != nil {
		return fmt.Errorf("create schema version tables in %s: %w", conf.DatabaseName, err)
	}
	if err := db.UpdateSchemaVersion(conf.DatabaseName, want, want); err != nil {
		return fmt.Errorf("record schema version in %s: %w", conf.DatabaseName, err)
	}
	if err := db.WriteSchemaUpdateLog("0", want, "", "initial version"); err != nil {
		return fmt.Errorf("record schema update in %s: %w", conf.DatabaseName, err)
	}
	return nil
}

// newAdminDB opens Temporal's admin connection for conf.
func newAdminDB(kind sqlplugin.DbKind, conf *tconfig.SQL) (sqlplugin.AdminDB, error) {
	return sql.NewSQLAdminDB(kind, conf, resolver.NewNoopResolver(), log.NewNoopLogger(), metrics.NoopMetricsHandler)
}
