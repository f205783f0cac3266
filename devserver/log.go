package main

import (
	"context"
	"log/slog"
	"os"
	"strings"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// httpDisabledMsg starts a warning Temporal logs when the HTTP API is off,
// which the devserver does on purpose unless -http-addr is given.
const httpDisabledMsg = "HTTP API port has not been set."

// levelFatal is the level of Temporal's Panic and Fatal messages; it passes
// even the shutdown filter.
const levelFatal = slog.LevelError + 4

// filterHandler wraps a slog.Handler, dropping records below a changeable
// level and known-noise messages.
type filterHandler struct {
	slog.Handler
	level *slog.LevelVar
}

// Enabled reports whether records at l pass both the filter and the wrapped
// handler.
func (h filterHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level() && h.Handler.Enabled(ctx, l)
}

// Handle forwards r unless it is filtered out.
func (h filterHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < h.level.Level() || strings.HasPrefix(r.Message, httpDisabledMsg) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs returns a filterHandler around the wrapped handler with attrs.
func (h filterHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return filterHandler{Handler: h.Handler.WithAttrs(attrs), level: h.level}
}

// WithGroup returns a filterHandler around the wrapped handler with a group.
func (h filterHandler) WithGroup(name string) slog.Handler {
	return filterHandler{Handler: h.Handler.WithGroup(name), level: h.level}
}

// temporalLogger adapts a *slog.Logger to Temporal's log.Logger interface.
type temporalLogger struct {
	l *slog.Logger
}

var (
	_ log.Logger      = temporalLogger{}
	_ log.WithLogger  = temporalLogger{}
	_ log.SLogWrapper = temporalLogger{}
)

// newTemporalLogger returns a Temporal logger that writes through l's
// handler, dropping messages below level (which may change at run time).
func newTemporalLogger(l *slog.Logger, level *slog.LevelVar) log.Logger {
	h := filterHandler{Handler: l.Handler(), level: level}
	return temporalLogger{l: slog.New(h).With("component", "temporal")}
}

// Debug logs at debug level.
func (t temporalLogger) Debug(msg string, tags ...tag.Tag) { t.log(slog.LevelDebug, msg, tags) }

// Info logs at info level.
func (t temporalLogger) Info(msg string, tags ...tag.Tag) { t.log(slog.LevelInfo, msg, tags) }

// Warn logs at warn level.
func (t temporalLogger) Warn(msg string, tags ...tag.Tag) { t.log(slog.LevelWarn, msg, tags) }

// Error logs at error level.
func (t temporalLogger) Error(msg string, tags ...tag.Tag) { t.log(slog.LevelError, msg, tags) }

// DPanic logs at error level (as zap does in production mode).
func (t temporalLogger) DPanic(msg string, tags ...tag.Tag) { t.log(slog.LevelError, msg, tags) }

// Panic logs at fatal level and panics, as Temporal's callers expect.
func (t temporalLogger) Panic(msg string, tags ...tag.Tag) {
	t.log(levelFatal, msg, tags)
	panic(msg)
}

// Fatal logs at fatal level and exits with status 1, as Temporal's callers
// expect (they do not handle Fatal returning).
func (t temporalLogger) Fatal(msg string, tags ...tag.Tag) {
	t.log(levelFatal, msg, tags)
	os.Exit(1)
}

// With returns a logger that adds tags to every message.
func (t temporalLogger) With(tags ...tag.Tag) log.Logger {
	args := make([]any, len(tags))
	for i, tg := range tags {
		args[i] = slog.Any(tg.Key(), tg.Value())
	}
	return temporalLogger{l: t.l.With(args...)}
}

// SLog returns the underlying (filtered) slog logger.
func (t temporalLogger) SLog() *slog.Logger { return t.l }

func (t temporalLogger) log(level slog.Level, msg string, tags []tag.Tag) {
	ctx := context.Background()
	if !t.l.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, len(tags))
	for i, tg := range tags {
		attrs[i] = slog.Any(tg.Key(), tg.Value())
	}
	t.l.LogAttrs(ctx, level, msg, attrs...)
}
