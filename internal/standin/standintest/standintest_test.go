package standintest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestStartReturnsTheReadyLineAndRunsResult(t *testing.T) {
	tests := []struct {
		name   string
		runErr error // what run returns, and so what stop must return
		extra  int   // lines written after the ready line, which must not block run
	}{
		{"clean stop", nil, 0},
		{"chatty after ready", nil, 100},
		{"run fails on stop", errors.New("shutdown failed"), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctxEnded := false
			line, stop := Start(t, func(ctx context.Context, stdout io.Writer) error {
				fmt.Fprint(stdout, "demo ")   // a line may come in pieces
				fmt.Fprint(stdout, "ready\n") // and is returned whole
				for i := range tc.extra {
					fmt.Fprintf(stdout, "line %d\n", i)
				}
				<-ctx.Done()
				ctxEnded = true
				return tc.runErr
			})
			if line != "demo ready\n" {
				t.Fatalf("ready line %q", line)
			}
			if err := stop(); err != tc.runErr {
				t.Fatalf("stop = %v, want %v", err, tc.runErr)
			}
			if !ctxEnded {
				t.Fatal("run returned without its context ending")
			}
			if err := stop(); err != tc.runErr {
				t.Fatalf("second stop = %v, want %v", err, tc.runErr)
			}
		})
	}
}
