package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/vigil-oss/vigil/internal/cliclient"
	"github.com/vigil-oss/vigil/internal/credstore"
)

// defaultURL is where Vigil listens in a local run.
const defaultURL = "http://127.0.0.1:8080"

// store returns the credentials file of this user.
func (a *app) store() (*credstore.Store, error) {
	path, err := credstore.DefaultPath()
	if err != nil {
		return nil, err
	}
	return credstore.New(path), nil
}

// savedCredentials loads what login saved; zero if nothing was saved.
func (a *app) savedCredentials() (credstore.Credentials, error) {
	st, err := a.store()
	if err != nil {
		return credstore.Credentials{}, err
	}
	c, err := st.Load()
	switch {
	case errors.Is(err, credstore.ErrNotFound):
		return credstore.Credentials{}, nil
	case err != nil:
		// Something for the user to fix (permissions, a damaged file).
		return credstore.Credentials{}, usagef("%s", strings.TrimPrefix(err.Error(), "credstore: "))
	}
	return c, nil
}

// serverURL picks Vigil's address: the flag, else VIGIL_URL, else the server
// saved by login, else the local default.
func (a *app) serverURL(flagURL string, saved credstore.Credentials) (string, error) {
	raw := flagURL
	switch {
	case raw != "":
	case a.getenv("VIGIL_URL") != "":
		raw = a.getenv("VIGIL_URL")
	case saved.Server != "":
		raw = saved.Server
	default:
		raw = defaultURL
	}
	u, err := cliclient.NormalizeBaseURL(raw)
	if err != nil {
		return "", usagef("%v", strings.TrimPrefix(err.Error(), "cliclient: "))
	}
	return u, nil
}

// agentClient is a client with the agent's token: VIGIL_TOKEN, else the one
// login saved for this very server. A token saved for another server is
// never sent here.
func (a *app) agentClient(flagURL string) (*cliclient.Client, error) {
	saved, err := a.savedCredentials()
	if err != nil {
		return nil, err
	}
	server, err := a.serverURL(flagURL, saved)
	if err != nil {
		return nil, err
	}
	token := a.getenv("VIGIL_TOKEN")
	if token == "" {
		if saved.Token == "" {
			return nil, usagef("not logged in; run `starter login --url %s` (or set VIGIL_TOKEN)", server)
		}
		if savedServer, err := cliclient.NormalizeBaseURL(saved.Server); err != nil || savedServer != server {
			return nil, usagef("you are logged in to %s, not %s; run `starter login --url %s`", saved.Server, server, server)
		}
		if saved.Session != nil {
			// agentClient's callers hold no context here; a renewal is a
			// bounded call of its own.
			ctx, cancel := context.WithTimeout(context.Background(), httpTimeout)
			defer cancel()
			st, err := a.store()
			if err != nil {
				return nil, err
			}
			if saved, err = a.refreshed(ctx, st, saved); err != nil {
				return nil, err
			}
		}
		token = saved.Token
	}
	return a.client(server, token)
}

// client builds a client, warning when a token would cross the network in
// clear text.
func (a *app) client(server, token string) (*cliclient.Client, error) {
	if insecureRemote(server) {
		fmt.Fprintf(a.stderr, "starter: warning: %s is plain HTTP to a remote host; your token and the PIN cross the network unencrypted. Use https://.\n", server)
	}
	c, err := cliclient.New(server, token, cliclient.WithUserAgent("vigil-starter/1"))
	if err != nil {
		return nil, usagef("%s", strings.TrimPrefix(err.Error(), "cliclient: "))
	}
	return c, nil
}

// insecureRemote reports whether server is http:// to a non-loopback host.
func insecureRemote(server string) bool {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}
