package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCancelTokens(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	tok := CancelToken{ID: "tok-secret-1", RequestID: f.request, Recipient: "owner@acme.test", ExpiresAt: t0.Add(72 * time.Hour)}
	for range 2 { // idempotent
		if err := s.CreateCancelToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.CancelToken(ctx, tok.ID)
	if err != nil || got.RequestID != f.request || got.Recipient != tok.Recipient || !got.ExpiresAt.Equal(tok.ExpiresAt) || got.UsedAt != nil {
		t.Fatalf("CancelToken = %+v, %v", got, err)
	}

	if err := s.UseCancelToken(ctx, tok.ID, t0); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if err := s.UseCancelToken(ctx, tok.ID, t0.Add(time.Minute)); !errors.Is(err, ErrTokenUsed) {
		t.Fatalf("second use: %v, want ErrTokenUsed", err)
	}
	if got, _ := s.CancelToken(ctx, tok.ID); got.UsedAt == nil || !got.UsedAt.Equal(t0) {
		t.Fatalf("used_at = %v, want the first use %v", got.UsedAt, t0)
	}
	err = s.UseCancelToken(ctx, "tok-unknown", t0)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown token: %v, want ErrNotFound", err)
	}
	if strings.Contains(err.Error(), "tok-unknown") {
		t.Fatalf("error leaks the token: %v", err)
	}

	expired := CancelToken{ID: "tok-expired", RequestID: f.request, Recipient: "x@acme.test", ExpiresAt: t0}
	if err := s.CreateCancelToken(ctx, expired); err != nil {
		t.Fatal(err)
	}
	if err := s.UseCancelToken(ctx, expired.ID, t0); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired token: %v, want ErrTokenExpired", err)
	}
	if got, _ := s.CancelToken(ctx, expired.ID); got.UsedAt != nil {
		t.Fatal("expired token was marked used")
	}

	if err := s.CreateCancelToken(ctx, CancelToken{ID: "t2", RequestID: "nope", ExpiresAt: t0}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token for a missing request: %v, want ErrNotFound", err)
	}
	if _, err := s.CancelToken(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("CancelToken(missing): %v, want ErrNotFound", err)
	}
}

func TestUseCancelTokenConcurrent(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	f := seed(t, s)
	tok := CancelToken{ID: "tok-race", RequestID: f.request, Recipient: "owner@acme.test", ExpiresAt: t0.Add(time.Hour)}
	if err := s.CreateCancelToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	const n = 10
	warmPool(t, s, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.UseCancelToken(ctx, tok.ID, t0)
		})
	}
	close(start)
	wg.Wait()
	ok, used := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrTokenUsed):
			used++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 || used != n-1 {
		t.Fatalf("%d succeeded and %d got ErrTokenUsed, want 1 and %d", ok, used, n-1)
	}
}
