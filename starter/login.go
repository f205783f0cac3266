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
		"When Vigil signs people in through an identity provider (GET /api/v1/sign-in), shows an\n"+
			"address and a code: open it, sign in there with your second factor, and the session\n"+
			"(renewed quietly while it lasts) is saved. Otherwise, and always with --token-stdin,\n"+
			"asks for an agent token (vgl_…) without echo; service accounts keep using tokens.\n"+
			"Either is checked with Vigil (GET /api/v1/me) and saved with the server to\n"+
			"$XDG_CONFIG_HOME/vigil/credentials.json (mode 0600).\n"+
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

	if !*tokenStdin {
		cfg, err := fetchSignIn(ctx, server)
		if err != nil {
			return err
		}
		if cfg.OIDC != nil {
			return a.loginOIDC(ctx, st, server, cfg)
		}
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

// loginOIDC signs in with the device flow and saves the session.
func (a *app) loginOIDC(ctx context.Context, st *credstore.Store, server string, cfg signInConfig) error {
	idToken, session, err := a.deviceSignIn(ctx, cfg)
	if err != nil {
		return err
	}
	c, err := a.client(server, idToken)
	if err != nil {
		return err
	}
	me, err := c.Me(ctx)
	if err != nil {
		return err
	}
	if err := st.Save(credstore.Credentials{Server: server, Token: idToken, Session: session}); err != nil {
		return err
	}
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", me.Raw)
		return nil
	}
	fmt.Fprintf(a.stdout, "Logged in as %s (%s) on %s through %s\n", me.Name, me.Role, server, cfg.OIDC.Issuer)
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

func (a *app) cmdLogout(ctx context.Context, g globals, args []string) error {
	f := a.newFlags(g, "logout", "logout", "Ends the identity provider session saved by `starter login` (revokes it there)\nand deletes the saved session or token.", "starter logout", true)
	if _, err := a.parse(f, args, 0, 0); err != nil {
		return err
	}
	st, err := a.store()
	if err != nil {
		return err
	}
	// Revoke first, but delete the file whatever the provider says: a session
	// that cannot be revoked must still leave this machine.
	var revokeErr error
	if saved, err := st.Load(); err == nil && saved.Session != nil {
		revokeErr = revoke(ctx, saved.Session)
	}
	removed, err := st.Remove()
	if err != nil {
		return err
	}
	if revokeErr != nil {
		return fmt.Errorf("removed %s, but the identity provider did not confirm it ended the session: %w", st.Path(), revokeErr)
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
