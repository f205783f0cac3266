// Package logging builds the slog logger every Vigil process uses.
package logging

import (
	"io"
	"log/slog"
)

// New returns a text or JSON logger at level, tagged with the process name.
func New(w io.Writer, format string, level slog.Level, process string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("process", process)
}
