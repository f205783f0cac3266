package sms_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vigil-oss/vigil/internal/sms"
	"github.com/vigil-oss/vigil/internal/smsgateway"
)

const (
	account = "AC0123456789abcdef0123456789abcdef"
	token   = "tok-s3cr3t-4uth"
)

func newGateway(t *testing.T) (*smsgateway.Gateway, string) {
	t.Helper()
	g := smsgateway.New(account, token, slog.New(slog.NewTextHandler(io.Discard, nil)))
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	return g, srv.URL
}

func TestSend(t *testing.T) {
	g, base := newGateway(t)
	ctx := context.Background()
	c, err := sms.New(sms.Config{BaseURL: base, AccountSID: account, AuthToken: token, From: "+15005550006"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := c.Send(ctx, "+447911123456", "Vigil: hello")
	if err != nil || !strings.HasPrefix(sent.SID, "SM") || sent.Status != "queued" {
		t.Fatalf("Send = %+v, %v", sent, err)
	}
	msgs := g.Messages()
	if len(msgs) != 1 || msgs[0].To != "+447911123456" || msgs[0].From != "+15005550006" || msgs[0].Body != "Vigil: hello" || msgs[0].SID != sent.SID {
		t.Fatalf("gateway holds %+v", msgs)
	}

	// Faults: each send that fails says whether a retry may succeed, and
	// none of them is kept as sent.
	g.Fail(1, 1)
	for _, want := range []int{503, 429} {
		_, err := c.Send(ctx, "+447911123456", "again")
		var se *sms.Error
		if !errors.As(err, &se) || se.Status != want || !se.Retryable {
			t.Fatalf("injected %d: err %v, want a retryable %d", want, err, want)
		}
	}
	if _, err := c.Send(ctx, "+447911123456", "after the faults"); err != nil {
		t.Fatalf("send after the faults: %v", err)
	}
	if n := len(g.Messages()); n != 2 {
		t.Fatalf("gateway holds %d messages, want 2 (failed sends kept none)", n)
	}

	for _, tc := range []struct {
		name   string
		cfg    sms.Config
		to     string
		status int
	}{
		{"wrong token", sms.Config{BaseURL: base, AccountSID: account, AuthToken: "wrong-" + token, From: "+15005550006"}, "+447911123456", 401},
		{"no recipient", sms.Config{BaseURL: base, AccountSID: account, AuthToken: token, From: "+15005550006"}, "", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := sms.New(tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Send(ctx, tc.to, "x")
			var se *sms.Error
			if !errors.As(err, &se) || se.Status != tc.status || se.Retryable {
				t.Fatalf("err %v, want a permanent %d", err, tc.status)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error %q holds the auth token", err)
			}
		})
	}

	// A gateway nobody listens on: retryable, and the error holds no token.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err = sms.New(sms.Config{BaseURL: "http://" + addr, AccountSID: account, AuthToken: token, From: "+15005550006"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Send(ctx, "+447911123456", "x")
	var se *sms.Error
	if !errors.As(err, &se) || se.Status != 0 || !se.Retryable || strings.Contains(err.Error(), token) {
		t.Fatalf("unreachable gateway: %v", err)
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	ok := sms.Config{BaseURL: "https://api.twilio.com", AccountSID: account, AuthToken: token, From: "+15005550006"}
	for name, mut := range map[string]func(*sms.Config){
		"no base":          func(c *sms.Config) { c.BaseURL = "" },
		"no account":       func(c *sms.Config) { c.AccountSID = "" },
		"no token":         func(c *sms.Config) { c.AuthToken = "" },
		"no from":          func(c *sms.Config) { c.From = "" },
		"account with /":   func(c *sms.Config) { c.AccountSID = "AC/../x" },
		"ftp base":         func(c *sms.Config) { c.BaseURL = "ftp://api.twilio.com" },
		"base with secret": func(c *sms.Config) { c.BaseURL = "https://u:" + token + "@api.twilio.com" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			mut(&cfg)
			_, err := sms.New(cfg, nil)
			if !errors.Is(err, sms.ErrConfig) || strings.Contains(err.Error(), token) {
				t.Fatalf("err %v, want ErrConfig without the token", err)
			}
		})
	}
	if _, err := sms.New(ok, nil); err != nil {
		t.Fatalf("complete config: %v", err)
	}
}
