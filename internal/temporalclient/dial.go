// Package temporalclient dials Temporal the one way worker and web share:
// with the payload codec, so nothing they write to history is readable.
package temporalclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/vigil-oss/vigil/internal/codec"
	"github.com/vigil-oss/vigil/internal/config"
)

// Codec builds the payload codec from configuration; opts come after the
// configured ones (a refusal reporter).
func Codec(cfg config.Config, opts ...codec.Option) (*codec.Codec, error) {
	keys, err := codec.ParseKeys(cfg.CodecKeys.Reveal())
	if err != nil {
		return nil, err
	}
	return codec.New(cfg.CodecKeyID, keys, append([]codec.Option{codec.AcceptUnbound(cfg.CodecAcceptUnbound)}, opts...)...)
}

// Options returns client options for cfg with the codec installed.
func Options(cfg config.Config, c *codec.Codec, logger *slog.Logger) (client.Options, error) {
	opts := client.Options{
		HostPort:         cfg.TemporalAddress,
		Namespace:        cfg.TemporalNamespace,
		DataConverter:    c.DataConverter(),
		FailureConverter: c.FailureConverter(),
		Logger:           tlog.NewStructuredLogger(logger.With("component", "temporal-sdk")),
	}
	if cfg.TemporalTLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TemporalTLSCert != "" {
			cert, err := tls.LoadX509KeyPair(cfg.TemporalTLSCert, cfg.TemporalTLSKey)
			if err != nil {
				return client.Options{}, fmt.Errorf("load Temporal client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opts.ConnectionOptions.TLS = tc
	}
	if cfg.TemporalAPIKey != "" {
		opts.Credentials = client.NewAPIKeyStaticCredentials(cfg.TemporalAPIKey.Reveal())
	}
	return opts, nil
}

// Dial connects to Temporal and checks the connection.
func Dial(ctx context.Context, cfg config.Config, logger *slog.Logger) (client.Client, error) {
	return DialWithMetrics(ctx, cfg, logger, nil)
}

// DialWithMetrics is Dial with the SDK's metrics sent to mh (nil: none);
// each of with then adjusts the options (the worker wraps the failure
// converter).
func DialWithMetrics(ctx context.Context, cfg config.Config, logger *slog.Logger, mh client.MetricsHandler, with ...func(*client.Options)) (client.Client, error) {
	c, err := Codec(cfg)
	if err != nil {
		return nil, err
	}
	return DialWithCodec(ctx, cfg, c, logger, mh, with...)
}

// DialWithCodec is DialWithMetrics with a codec of the caller's (one that
// reports its refusals).
func DialWithCodec(ctx context.Context, cfg config.Config, c *codec.Codec, logger *slog.Logger, mh client.MetricsHandler, with ...func(*client.Options)) (client.Client, error) {
	if c.AcceptsUnbound() {
		logger.Warn("VIGIL_CODEC_ACCEPT_UNBOUND is on: payloads not bound to their workflow are accepted; turn it off once every request started before the upgrade has ended")
	}
	opts, err := Options(cfg, c, logger)
	if err != nil {
		return nil, err
	}
	if mh != nil {
		opts.MetricsHandler = mh
	}
	for _, f := range with {
		f(&opts)
	}
	cl, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %s): %w; is the devserver or cluster running?", cfg.TemporalAddress, cfg.TemporalNamespace, err)
	}
	return cl, nil
}
