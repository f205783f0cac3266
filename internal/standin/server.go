package standin

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// shutdownGrace is how long Stop lets requests in flight finish.
const shutdownGrace = 5 * time.Second

// Server is an HTTP server serving in the background.
type Server struct {
	srv  *http.Server
	done chan error
}

// Serve starts serving h on ln in the background.
func Serve(ln net.Listener, h http.Handler) *Server {
	s := &Server{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s
}

// Done receives, once, the error serving ended with: http.ErrServerClosed
// after Stop or Close, anything else if serving failed.
func (s *Server) Done() <-chan error { return s.done }

// Wait blocks until ctx ends, then returns nil, or until serving fails, then
// returns why. It takes the value Done would have received.
func (s *Server) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-s.done:
		return fmt.Errorf("serve: %w", err)
	}
}

// Stop shuts the server down gracefully: it stops listening and waits up to
// 5 s for requests in flight. The error says they did not all finish.
func (s *Server) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error { return s.srv.Close() }
