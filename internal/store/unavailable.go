package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

// IsUnavailable reports whether err says the database could not be reached or
// could not serve the call right now (it is down, restarting, shutting down,
// out of connections, or did not answer in time), as opposed to a fault in the
// call itself. Such a failure is worth retrying later; callers answer "try
// again" instead of reporting an internal error.
//
// Ask it about errors from Store methods: a context deadline counts, because a
// Store call that ran out of time means the database did not answer.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	// A server that answered with an error is judged by its SQLSTATE alone:
	// a constraint violation that happens to wrap something else is not an
	// outage.
	var pe *pq.Error
	if errors.As(err, &pe) {
		return unavailableCode(pe.Code)
	}
	switch {
	case errors.Is(err, driver.ErrBadConn), // the pooled connection died and no new one could be had
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), // the server hung up mid-conversation
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, context.DeadlineExceeded): // no answer within the call's time
		return true
	}
	// Dial, DNS and I/O failures and timeouts on the way to the server.
	var ne net.Error
	return errors.As(err, &ne)
}

// unavailableCode reports whether a Postgres SQLSTATE means "not now" rather
// than "not this".
func unavailableCode(code pqerror.Code) bool {
	switch code {
	case pqerror.ProtocolViolation:
		// Class 08 but a bug in a client or server, not an outage: retrying
		// the same call fails the same way.
		return false
	case pqerror.AdminShutdown, // 57P01: the backend was terminated or the server is shutting down
		pqerror.CrashShutdown,    // 57P02: another backend crashed and the server is restarting
		pqerror.CannotConnectNow, // 57P03: the server is starting up or shutting down
		pqerror.QueryCanceled:    // 57014: the call's deadline (lib/pq cancels the statement) or statement_timeout ran out
		return true
	}
	switch code.Class() {
	case pqerror.ClassConnectionException, // 08: the connection failed or could not be made
		pqerror.ClassInsufficientResources: // 53: too many connections, out of memory or disk
		return true
	}
	return false
}
