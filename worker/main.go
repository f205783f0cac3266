// Command worker runs Vigil's SensitiveRequest workflows and their activities.
// It is one of the two processes that hold Temporal credentials.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/slack-go/slack"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/vigil-oss/vigil/activities"
	"github.com/vigil-oss/vigil/internal/alertrelay"
	"github.com/vigil-oss/vigil/internal/approvals"
	"github.com/vigil-oss/vigil/internal/codecaudit"
	"github.com/vigil-oss/vigil/internal/config"
	"github.com/vigil-oss/vigil/internal/logging"
	"github.com/vigil-oss/vigil/internal/mail"
	"github.com/vigil-oss/vigil/internal/metrics"
	"github.com/vigil-oss/vigil/internal/panel"
	"github.com/vigil-oss/vigil/internal/store"
	"github.com/vigil-oss/vigil/internal/temporalclient"
	"github.com/vigil-oss/vigil/internal/tokens"
	"github.com/vigil-oss/vigil/workflows"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: worker\n\nRuns Vigil's workflows and activities. Configured only through the environment.\n\n%s", config.Usage())
	}
	flag.Parse()
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker: configuration: %v\n", err)
		os.Exit(2)
	}
	logger := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel, "worker")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("worker stopped", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config.Config, logger *slog.Logger) error {
	if err := cfg.RequireSecrets(); err != nil {
		return err
	}
	if err := cfg.RequireSlack(false); err != nil {
		return err
	}
	if cfg.PanelToken == "" {
		return errors.New("VIGIL_PANEL_TOKEN is not set: the worker needs the control panel's API token")
	}
	acts, cleanup, err := buildActivities(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer cleanup()

	var mh client.MetricsHandler
	if cfg.WorkerMetricsAddr != "" {
		reg := metrics.NewRegistry()
		if mh, err = metrics.TemporalHandler(reg, logger); err != nil {
			return err
		}
		stopMetrics, err := metrics.Listen(cfg.WorkerMetricsAddr, reg, logger)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	// Activity errors that retrying cannot fix become non-retryable on
	// their way to Temporal (activities.Classify), so the request fails
	// instead of retrying for ever.
	// A payload the codec refuses (sent without the codec, or copied from
	// another workflow) is logged and audited, then dropped by the SDK: a
	// refused Update is rejected, a refused start fails its workflow.
	refusals := codecaudit.New(acts.Store, logger, "worker", codecaudit.TrimPrefix(workflows.WorkflowID("")))
	refusalCtx, stopRefusals := context.WithCancel(context.WithoutCancel(ctx))
	refusalsDone := make(chan struct{})
	go func() { defer close(refusalsDone); refusals.Run(refusalCtx) }()
	defer func() { stopRefusals(); <-refusalsDone }()
	cdc, err := temporalclient.Codec(cfg, refusals.Option())
	if err != nil {
		return err
	}
	tc, err := temporalclient.DialWithCodec(ctx, cfg, cdc, logger, mh, func(o *client.Options) {
		o.FailureConverter = activities.ClassifyingFailureConverter(o.FailureConverter)
	})
	if err != nil {
		return err
	}
	defer tc.Close()

	// The sticky cache is process-wide in the SDK and must be sized before
	// any worker starts; this process runs one.
	worker.SetStickyWorkflowCacheSize(cfg.Worker.StickyCacheSize)
	logger.Info("worker tuning",
		"sticky_cache_size", cfg.Worker.StickyCacheSize,
		"workflow_task_pollers", cfg.Worker.WorkflowTaskPollers,
		"activity_task_pollers", cfg.Worker.ActivityTaskPollers,
		"max_concurrent_workflow_tasks", cfg.Worker.MaxConcurrentWorkflowTasks,
		"max_concurrent_activities", cfg.Worker.MaxConcurrentActivities)
	w := worker.New(tc, workflows.TaskQueue, workerOptions(cfg.Worker))
	w.RegisterWorkflowWithOptions(workflows.SensitiveRequest, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	// Alerts queued where no workflow runs (the web front's PIN checks, a
	// refused PIN verdict) reach the security channel from here.
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		alertrelay.New(acts.Store, acts.Approvals, logger).Run(relayCtx)
	}()
	defer func() { stopRelay(); <-relayDone }()
	logger.Info("worker ready", "temporal", cfg.TemporalAddress, "namespace", cfg.TemporalNamespace, "task_queue", workflows.TaskQueue)
	// Scripts and tests wait for this line on stdout.
	fmt.Println("worker ready task_queue=" + workflows.TaskQueue)
	<-ctx.Done()
	logger.Info("worker stopping")
	w.Stop()
	return nil
}

// workerOptions maps the tuning settings onto the SDK's worker options.
func workerOptions(t config.WorkerTuning) worker.Options {
	return worker.Options{
		MaxConcurrentWorkflowTaskPollers:       t.WorkflowTaskPollers,
		MaxConcurrentActivityTaskPollers:       t.ActivityTaskPollers,
		MaxConcurrentWorkflowTaskExecutionSize: t.MaxConcurrentWorkflowTasks,
		MaxConcurrentActivityExecutionSize:     t.MaxConcurrentActivities,
	}
}

func buildActivities(ctx context.Context, cfg config.Config, logger *slog.Logger) (*activities.Activities, func(), error) {
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("open database: %w", err)
	}
	sender, err := mail.NewSender(mail.SMTPConfig{
		Addr: cfg.SMTPAddr, From: cfg.MailFrom, Username: cfg.SMTPUsername,
		Password: cfg.SMTPPassword.Reveal(), RequireTLS: cfg.SMTPRequireTLS, Timeout: 30 * time.Second,
	})
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("mail: %w", err)
	}
	pc, err := panel.NewClient(cfg.PanelURL, cfg.PanelToken.Reveal(), &http.Client{Timeout: cfg.PanelTimeout})
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("control panel: %w", err)
	}
	key, err := cfg.TokenKeyBytes()
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	signer, err := tokens.NewSigner(key)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	policy := activities.PolicySettings{
		ApprovalTimeout: cfg.ApprovalTimeout, NoticeTimeout: cfg.NoticeTimeout,
		ExecuteMaxAttempts: int32(cfg.ExecuteMaxAttempts), Cooling: cfg.Cooling, BelowFloors: cfg.DevBelowFloors,
	}
	if err := policy.CheckFloors(); err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("policy: %w", err)
	}
	if policy.BelowFloors {
		logger.Warn("VIGIL_DEV_BELOW_FLOORS is on: cooling periods may be shorter than each action's floor; every request says so in its request.policy audit event. Never on a production worker")
	}
	acts, err := activities.New(st, pc, sender, signer, activities.Settings{
		Policy:           policy,
		PINPolicy:        cfg.PINPolicy(),
		EstablishedAfter: cfg.EstablishedAfter,
		CancelBaseURL:    cfg.PublicURL,
		MailFrom:         cfg.MailFrom,
		SupportEmail:     cfg.SupportEmail,
		ProductName:      cfg.ProductName,
		Location:         cfg.Timezone,
	}, logger)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	api := slack.New(cfg.SlackBotToken.Reveal(), slack.OptionAPIURL(cfg.SlackAPIURL),
		slack.OptionHTTPClient(&http.Client{Timeout: 20 * time.Second}))
	acts.Approvals = approvals.NewClient(api, approvals.Config{
		ApprovalsChannel: cfg.SlackApprovalsChannel,
		SecurityChannel:  cfg.SlackSecurityChannel,
		UserGroup:        cfg.SlackUserGroup,
	}, logger)
	return acts, func() { st.Close() }, nil
}
