package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/server/common/cluster"
	tconfig "go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

const (
	clusterName     = "active"
	storeName       = "sqlite-default"
	pgStoreName     = "postgres-default"
	pgVisStoreName  = "postgres-visibility"
	retention       = 24 * time.Hour
	readyTimeout    = 2 * time.Minute
	pollInterval    = 200 * time.Millisecond
	rpcTimeout      = 10 * time.Second
	shutdownTimeout = 30 * time.Second
)

// searchAttributes returns the custom search attributes Vigil registers in
// its namespace.
func searchAttributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		"VigilAction":    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"VigilCustomer":  enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"VigilStatus":    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		"VigilRequester": enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}
}

// ports are the listening ports of one devserver's services.
type ports struct {
	ip                        string
	frontend, http            int
	history, matching, worker int
}

// run starts the server described by cfg, prints the ready line to stdout once
// the namespace and search attributes are in place, and stops the server when
// ctx is done. Logs are written to stderr.
func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	temporalLevel := &slog.LevelVar{}
	temporalLevel.Set(cfg.LogLevel)

	p, err := resolvePorts(cfg)
	if err != nil {
		return err
	}
	stores, err := prepareStores(cfg, logger)
	if err != nil {
		return err
	}

	server, err := temporal.NewServer(serverOptions(p, stores, newTemporalLogger(logger, temporalLevel))...)
	if err != nil {
		return fmt.Errorf("create temporal server: %w", err)
	}
	logger.Info("starting temporal server", "addr", cfg.Addr, "history_port", p.history,
		"matching_port", p.matching, "worker_port", p.worker, "http_port", p.http)
	if err := server.Start(); err != nil {
		return fmt.Errorf("start temporal server: %w", err)
	}
	defer func() {
		// Services stop one by one and log the failures of the ones still
		// running; that is expected, so hide it unless asked for info logs.
		if cfg.LogLevel > slog.LevelInfo {
			temporalLevel.Set(levelFatal)
		}
		stopServer(server, logger)
	}()

	addr := net.JoinHostPort(p.ip, strconv.Itoa(p.frontend))
	readyCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	err = awaitReady(readyCtx, addr, cfg.Namespace, stores.registerNamespace, logger)
	cancel()
	if ctx.Err() != nil {
		logger.Info("interrupted during startup")
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.UIAddr != "" {
		stopUI, uiURL, err := startUI(cfg, addr, logger)
		if err != nil {
			return err
		}
		defer stopUI()
		// Its own line before the ready line, so the ready line's format stays.
		if _, err := fmt.Fprintf(stdout, "devserver ui url=%s write_actions=%t\n", uiURL, cfg.UIWriteActions); err != nil {
			return fmt.Errorf("write ui line: %w", err)
		}
	}
	if _, err := fmt.Fprintf(stdout, "devserver ready addr=%s namespace=%s\n", addr, cfg.Namespace); err != nil {
		return fmt.Errorf("write ready line: %w", err)
	}
	<-ctx.Done()
	logger.Info("shutting down")
	return nil
}

// stopServer stops server, giving up after shutdownTimeout.
func stopServer(server temporal.Server, logger *slog.Logger) {
	done := make(chan error, 1)
	go func() { done <- server.Stop() }()
	select {
	case err := <-done:
		if err != nil {
			logger.Error("stop temporal server", "error", err)
		} else {
			logger.Info("temporal server stopped")
		}
	case <-time.After(shutdownTimeout):
		logger.Error("temporal server did not stop in time", "timeout", shutdownTimeout)
	}
}

// resolvePorts validates the frontend and HTTP addresses and picks free ports
// for the internal services. A frontend port of 0 also picks a free port.
func resolvePorts(cfg config) (ports, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return ports{}, fmt.Errorf("invalid -addr %q: %w", cfg.Addr, err)
	}
	ip, err := bindIP(host)
	if err != nil {
		return ports{}, fmt.Errorf("invalid -addr %q: %w", cfg.Addr, err)
	}
	p := ports{ip: ip}
	if p.frontend, err = parsePort(portStr); err != nil {
		return ports{}, fmt.Errorf("invalid -addr %q: %w", cfg.Addr, err)
	}
	if cfg.HTTPAddr != "" {
		h, hp, err := net.SplitHostPort(cfg.HTTPAddr)
		if err != nil {
			return ports{}, fmt.Errorf("invalid -http-addr %q: %w", cfg.HTTPAddr, err)
		}
		if h != "" {
			if hip, err := bindIP(h); err != nil || hip != ip {
				return ports{}, fmt.Errorf("invalid -http-addr %q: host must match -addr host %s", cfg.HTTPAddr, ip)
			}
		}
		if p.http, err = parsePort(hp); err != nil || p.http == 0 {
			return ports{}, fmt.Errorf("invalid -http-addr %q: need a non-zero port", cfg.HTTPAddr)
		}
	}

	// Hold all listeners until every port is chosen so none is picked twice.
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	// Fail early and clearly if a fixed port is taken: Temporal itself
	// treats that as fatal.
	for _, fixed := range []struct {
		flag string
		port int
	}{{"-addr", p.frontend}, {"-http-addr", p.http}} {
		if fixed.port == 0 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(fixed.port)))
		if err != nil {
			return ports{}, fmt.Errorf("%s port %d is not available: %w", fixed.flag, fixed.port, err)
		}
		listeners = append(listeners, l)
	}
	want := []*int{&p.history, &p.matching, &p.worker}
	if p.frontend == 0 {
		want = append(want, &p.frontend)
	}
	for _, port := range want {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return ports{}, fmt.Errorf("pick free port on %s: %w", ip, err)
		}
		listeners = append(listeners, l)
		*port = l.Addr().(*net.TCPAddr).Port
	}
	return p, nil
}

// bindIP maps host to the IP address the services bind to.
func bindIP(host string) (string, error) {
	switch host {
	case "", "localhost":
		return "127.0.0.1", nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "", fmt.Errorf("host %q is not an IP address or localhost", host)
	}
	return ip.String(), nil
}

// parsePort parses a TCP port number.
func parsePort(s string) (int, error) {
	port, err := strconv.Atoi(s)
	if err != nil || port < 0 || port > 65535 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return port, nil
}

// persistenceStores are the data stores the server runs on.
type persistenceStores struct {
	names             map[string]*tconfig.SQL
	main, visibility  string // keys of names
	registerNamespace bool   // the namespace is registered through the API once the server runs
}

// prepareStores returns the stores for cfg: Postgres when -postgres is set,
// else SQLite.
func prepareStores(cfg config, logger *slog.Logger) (persistenceStores, error) {
	if cfg.Postgres != "" {
		mainConf, visConf, err := preparePostgres(cfg.Postgres, logger)
		if err != nil {
			return persistenceStores{}, err
		}
		// The namespace goes through the frontend (RegisterNamespace), the
		// supported way; the SQLite path writes it directly only because
		// that store has no server yet when the file is new.
		return persistenceStores{
			names:             map[string]*tconfig.SQL{pgStoreName: mainConf, pgVisStoreName: visConf},
			main:              pgStoreName,
			visibility:        pgVisStoreName,
			registerNamespace: true,
		}, nil
	}
	sqlConf, err := prepareDatabase(cfg, logger)
	if err != nil {
		return persistenceStores{}, err
	}
	return persistenceStores{names: map[string]*tconfig.SQL{storeName: sqlConf}, main: storeName, visibility: storeName}, nil
}

// prepareDatabase returns the SQLite persistence config, creating the schema
// when the database file is new and the namespace (with Vigil's search
// attributes) when it is missing.
func prepareDatabase(cfg config, logger *slog.Logger) (*tconfig.SQL, error) {
	conf := &tconfig.SQL{PluginName: sqliteplugin.PluginName}
	if cfg.InMemory {
		// A unique name keeps in-process servers from sharing one database.
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		conf.DatabaseName = "vigil-devserver-" + hex.EncodeToString(b[:])
		conf.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
	} else {
		conf.DatabaseName = cfg.DBFile
		conf.ConnectAttributes = map[string]string{"mode": "rwc"}
		if err := setupSchemaIfNew(conf, cfg.DBFile, logger); err != nil {
			return nil, err
		}
	}

	nsConf, err := sqliteschema.NewNamespaceConfig(clusterName, cfg.Namespace, false, searchAttributes())
	if err != nil {
		return nil, fmt.Errorf("namespace config: %w", err)
	}
	if err := sqliteschema.CreateNamespaces(conf, nsConf); err != nil {
		return nil, fmt.Errorf("create namespace %q: %w", cfg.Namespace, err)
	}
	return conf, nil
}

// setupSchemaIfNew creates the Temporal schema when file does not exist yet.
// An existing file is assumed to hold the schema already.
func setupSchemaIfNew(conf *tconfig.SQL, file string, logger *slog.Logger) error {
	if _, err := os.Stat(file); err == nil {
		logger.Info("using existing database", "file", file)
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("check database file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("create database directory: %w", err)
	}
	logger.Info("creating database", "file", file)
	if err := sqliteschema.SetupSchema(conf); err != nil {
		// Do not leave a half-initialised file that a restart would trust.
		_ = os.Remove(file)
		return fmt.Errorf("set up schema in %s: %w", file, err)
	}
	return nil
}

// serverOptions builds the options for an all-in-one Temporal server.
func serverOptions(p ports, stores persistenceStores, logger log.Logger) []temporal.ServerOption {
	hostPort := func(port int) string { return net.JoinHostPort(p.ip, strconv.Itoa(port)) }
	service := func(port, httpPort int) tconfig.Service {
		var s tconfig.Service
		s.RPC.GRPCPort = port
		s.RPC.BindOnIP = p.ip
		s.RPC.HTTPPort = httpPort // 0 disables the HTTP API
		return s
	}

	conf := &tconfig.Config{}
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = p.ip
	// Metrics stay nil (no-op handler, no listener); pprof port 0 disables it.
	conf.Global.PProf.Port = 0
	conf.Persistence.DefaultStore = stores.main
	conf.Persistence.VisibilityStore = stores.visibility
	conf.Persistence.NumHistoryShards = 1
	conf.Persistence.DataStores = map[string]tconfig.DataStore{}
	for name, sqlConf := range stores.names {
		conf.Persistence.DataStores[name] = tconfig.DataStore{SQL: sqlConf}
	}
	httpAddress := ""
	if p.http != 0 {
		httpAddress = hostPort(p.http)
	}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             hostPort(p.frontend),
				HTTPAddress:            httpAddress,
			},
		},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Services = map[string]tconfig.Service{
		string(primitives.FrontendService): service(p.frontend, p.http),
		string(primitives.HistoryService):  service(p.history, 0),
		string(primitives.MatchingService): service(p.matching, 0),
		string(primitives.WorkerService):   service(p.worker, 0),
	}
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = hostPort(p.frontend)

	dynConf := dynamicconfig.StaticClient{
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8192,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key():      true,
	}

	return []temporal.ServerOption{
		temporal.WithConfig(conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(map[primitives.ServiceName]static.Hosts{
			primitives.FrontendService: static.SingleLocalHost(hostPort(p.frontend)),
			primitives.HistoryService:  static.SingleLocalHost(hostPort(p.history)),
			primitives.MatchingService: static.SingleLocalHost(hostPort(p.matching)),
			primitives.WorkerService:   static.SingleLocalHost(hostPort(p.worker)),
		}),
		temporal.WithLogger(logger),
		temporal.WithDynamicConfigClient(dynConf),
	}
}

// awaitReady waits until the frontend at addr serves namespace ns and the
// Vigil search attributes are registered in it, adding any that are missing.
// With register, a missing namespace is registered first.
func awaitReady(ctx context.Context, addr, ns string, register bool, logger *slog.Logger) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial frontend %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	wf := workflowservice.NewWorkflowServiceClient(conn)
	op := operatorservice.NewOperatorServiceClient(conn)

	err = retry(ctx, "describe namespace", logger, func(ctx context.Context) error {
		_, err := wf.DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
		if register && status.Code(err) == codes.NotFound {
			logger.Info("registering namespace", "namespace", ns)
			_, err = wf.RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
				Namespace:                        ns,
				WorkflowExecutionRetentionPeriod: durationpb.New(retention),
			})
			if err == nil || status.Code(err) == codes.AlreadyExists {
				return errors.New("namespace registered, not described yet")
			}
		}
		return err
	})
	if err != nil {
		return err
	}

	added := false
	return retry(ctx, "register search attributes", logger, func(ctx context.Context) error {
		resp, err := op.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
		if err != nil {
			return err
		}
		missing := map[string]enumspb.IndexedValueType{}
		for name, typ := range searchAttributes() {
			got, ok := resp.GetCustomAttributes()[name]
			switch {
			case !ok:
				missing[name] = typ
			case got != typ:
				return permanent{fmt.Errorf("search attribute %s has type %v, want %v", name, got, typ)}
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if !added {
			logger.Info("adding search attributes", "namespace", ns, "count", len(missing))
			_, err := op.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
				Namespace:        ns,
				SearchAttributes: missing,
			})
			if err != nil && status.Code(err) != codes.AlreadyExists {
				return err
			}
			added = true
		}
		return fmt.Errorf("%d search attributes not visible yet", len(missing))
	})
}

// permanent marks an error that retry must not retry.
type permanent struct{ error }

// retry calls fn until it succeeds, returns a permanent error, or ctx ends.
func retry(ctx context.Context, what string, logger *slog.Logger, fn func(context.Context) error) error {
	for {
		callCtx, cancel := context.WithTimeout(ctx, rpcTimeout)
		err := fn(callCtx)
		cancel()
		if err == nil {
			return nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return perm.error
		}
		logger.Debug("not ready, retrying", "step", what, "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(pollInterval):
		}
	}
}
