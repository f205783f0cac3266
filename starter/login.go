package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/vigil-oss/vigil/internal/credstore"
)

func (a *app) cmdLogin(ctx context.Context, g globals, args []string) error {
	f := a.newFlags(g, "login", "login [--url URL] [--token-stdin]",
		"Asks for your agent token (vgl_…) without echo, checks it with Vigil (GET /api/v1/me)\n"+
			"and saves the server and token to $XDG_CONFIG_HOME/vigil/credentials.json (mode 0600).\n"+
			"--token-stdin reads the token from one line of standard input instead.\n"+
			"Scripts may set VIGIL_TOKEN instead of logging in.",
		"starter login --url https://vigil.example.com", true)
	tokenStdin := f.Bool("token-stdin", false, "read the token from one line of standard input")
	if _, err := a.parse(f, args, 0, 0); err != nil {
		return err
	}
	st, err := a.store()
	if err != nil {
		return err
	}
	// A broken saved file must not stop a fresh login.
	saved, _ := st.Load()
	server, err := a.serverURL(*f.url, saved)
	if err != nil {
		return err
	}

	tok, err := a.readToken(ctx, *tokenStdin)
	if err != nil {
		return err
	}
	token := strings.TrimSpace(string(tok))
	clear(tok)
	if !strings.HasPrefix(token, "vgl_") {
		return usagef("that is not an agent token: agent tokens start with vgl_ (ask an admin for one)")
	}
	c, err := a.client(server, token)
	if err != nil {
		return err
	}
	me, err := c.Me(ctx)
	if err != nil {
		return err
	}
	if err := st.Save(credstore.Credentials{Server: server, Token: token}); err != nil {
		return err
	}
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", me.Raw)
		return nil
	}
	fmt.Fprintf(a.stdout, "Logged in as %s (%s) on %s\n", me.Name, me.Role, server)
	return nil
}

// readToken reads the agent token: a line of stdin with --token-stdin, else
// a no-echo prompt on stdin if it is a terminal, else on /dev/tty.
func (a *app) readToken(ctx context.Context, fromStdin bool) ([]byte, error) {
	if fromStdin {
		return readLine(a.stdin)
	}
	if isTerminal(a.stdin) {
		return readHidden(ctx, a.stdin, a.stderr, "Vigil agent token: ")
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, usagef("no terminal to ask the token on; pass --token-stdin to read it from standard input")
	}
	defer tty.Close()
	return readHidden(ctx, tty, tty, "Vigil agent token: ")
}

func (a *app) cmdLogout(_ context.Context, g globals, args []string) error {
	f := a.newFlags(g, "logout", "logout", "Deletes the token saved by `starter login`.", "starter logout", true)
	if _, err := a.parse(f, args, 0, 0); err != nil {
		return err
	}
	st, err := a.store()
	if err != nil {
		return err
	}
	removed, err := st.Remove()
	if err != nil {
		return err
	}
	if a.json {
		b, _ := json.Marshal(map[string]any{"removed": removed, "path": st.Path()})
		fmt.Fprintf(a.stdout, "%s\n", b)
		return nil
	}
	if removed {
		fmt.Fprintf(a.stdout, "Logged out (removed %s)\n", st.Path())
	} else {
		fmt.Fprintln(a.stdout, "Not logged in; nothing to remove")
	}
	return nil
}
