package temporaltest

import (
	"context"
	"net"
	"testing"
	"time"

	"errors"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

func TestClosedAddrRefuses(t *testing.T) {
	if c, err := net.DialTimeout("tcp", ClosedAddr(t), time.Second); err == nil {
		c.Close()
		t.Fatal("something listens on the closed address")
	}
}

func TestUnreachableAnswersUnavailable(t *testing.T) {
	c := Unreachable(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
	var unavailable *serviceerror.Unavailable
	if !errors.As(err, &unavailable) {
		t.Fatalf("health check against nobody: %v, want Unavailable", err)
	}
}
