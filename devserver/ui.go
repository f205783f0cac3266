package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uioptions "github.com/temporalio/ui-server/v2/server/server_options"
)

// uiConfig is the Web UI's configuration: no news or version fetching (no
// calls out of the machine), write actions off unless asked, and no codec
// endpoint: the devserver's UI has no sign-in, so it could not pass the
// security role's token that Vigil's codec endpoint requires (README,
// "What an operator sees").
func uiConfig(cfg config, frontend, host string, port int) *uiconfig.Config {
	ro := !cfg.UIWriteActions
	return &uiconfig.Config{
		TemporalGRPCAddress:       frontend,
		Host:                      host,
		Port:                      port,
		EnableUI:                  true,
		DefaultNamespace:          cfg.Namespace,
		DisableNewsFetch:          true,
		NotifyOnNewVersion:        false,
		DisableWriteActions:       ro,
		WorkflowTerminateDisabled: ro,
		WorkflowCancelDisabled:    ro,
		WorkflowSignalDisabled:    ro,
		WorkflowUpdateDisabled:    ro,
		WorkflowResetDisabled:     ro,
		WorkflowPauseDisabled:     ro,
		BatchActionsDisabled:      ro,
		StartWorkflowDisabled:     ro,
		ActivityCommandsDisabled:  ro,
		HideLogs:                  true,
		Distribution:              "vigil-devserver",
		// Plain HTTP on loopback: the CSRF cookie must travel without TLS.
		CORS: uiconfig.CORS{CookieInsecure: true},
	}
}

// startUI serves the Temporal Web UI on cfg.UIAddr and returns how to stop it
// and its address.
func startUI(cfg config, frontend string, logger *slog.Logger) (func(), string, error) {
	host, portText, err := net.SplitHostPort(cfg.UIAddr)
	if err != nil {
		return nil, "", fmt.Errorf("-ui-addr %q: %w", cfg.UIAddr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 {
		return nil, "", fmt.Errorf("-ui-addr %q: need a fixed port", cfg.UIAddr)
	}
	// ui-server exits the process when it cannot listen; find out first.
	l, err := net.Listen("tcp", cfg.UIAddr)
	if err != nil {
		return nil, "", fmt.Errorf("ui: %w", err)
	}
	l.Close()
	srv := uiserver.NewServer(uioptions.WithConfigProvider(uiConfig(cfg, frontend, host, port)))
	go func() {
		if err := srv.Start(); err != nil {
			logger.Error("temporal ui stopped", "error", err)
		}
	}()
	url := "http://" + cfg.UIAddr
	if err := awaitUI(url, 30*time.Second); err != nil {
		srv.Stop()
		return nil, "", err
	}
	logger.Info("temporal ui serving", "url", url, "write_actions", cfg.UIWriteActions)
	return srv.Stop, url, nil
}

// awaitUI waits until the UI answers its health check.
func awaitUI(url string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/healthz", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return errors.New("temporal ui did not answer /healthz in time")
		case <-time.After(200 * time.Millisecond):
		}
	}
}
