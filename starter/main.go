// Command starter is the support agents' CLI for Vigil: it opens sensitive
// requests (asking for the customer's PIN without echo), follows them, and
// lets admins manage agents and customers. It talks only to Vigil's HTTP API.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := newApp(os.Stdin, os.Stdout, os.Stderr, os.Getenv).run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
