package metrics

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/opentelemetry"
)

// TemporalHandler returns a client.MetricsHandler that records the Temporal
// SDK's metrics (requests to the server, workflow and activity task
// latencies, failures, polls) in reg, through the SDK's OpenTelemetry
// contrib and OpenTelemetry's Prometheus exporter: counters get "_total",
// timers become histograms in seconds named with "_seconds". Errors of the
// meter are logged, never a panic.
func TemporalHandler(reg prometheus.Registerer, logger *slog.Logger) (client.MetricsHandler, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		// Neither the otel_scope_* labels nor target_info say anything the
		// scrape target does not.
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
		// OpenTelemetry's default buckets are for milliseconds; the SDK's
		// timers are in seconds.
		otelprom.WithAggregationSelector(func(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
			if k == sdkmetric.InstrumentKindHistogram {
				return sdkmetric.AggregationExplicitBucketHistogram{Boundaries: LatencyBuckets}
			}
			return sdkmetric.DefaultAggregationSelector(k)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("metrics: Temporal SDK exporter: %w", err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	return opentelemetry.NewMetricsHandler(opentelemetry.MetricsHandlerOptions{
		Meter:                provider.Meter("temporal-sdk-go"),
		UseMonotonicCounters: true,
		OnError: func(err error) {
			logger.Warn("metrics: Temporal SDK metric", "error", err)
		},
	}), nil
}
