// Command slack runs the Slack stand-in: a local server speaking the parts of
// the Slack Web API Vigil uses, with a page for clicking Approve / Reject as
// any configured user. It listens on loopback only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/vigil-oss/vigil/internal/logging"
	"github.com/vigil-oss/vigil/internal/slackstandin"
	"github.com/vigil-oss/vigil/internal/standin"
)

const (
	defaultAddr           = "127.0.0.1:8092"
	defaultInteractionURL = "http://127.0.0.1:8080/slack/interactions"
	defaultUsers          = "U0ALICE:alice:Alice Moreau,U0BOB:bob:Bob Lindqvist,U0CAROL:carol:Carol Ng"
	defaultGroups         = "S0SENIORS:U0BOB+U0CAROL"
)

func main() {
	ctx, stop := standin.SignalContext()
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "slack-standin: %v\n", err)
		os.Exit(1)
	}
}

// run serves until ctx ends. Flags default to the environment, which defaults
// to the constants above.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	or := func(key, def string) string { return standin.EnvOr(getenv, key, def) }
	fs := flag.NewFlagSet("slack-standin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", or("VIGIL_SLACK_STANDIN_ADDR", defaultAddr), "listen address, loopback only (VIGIL_SLACK_STANDIN_ADDR)")
	interactionURL := fs.String("interaction-url", or("VIGIL_SLACK_INTERACTION_URL", defaultInteractionURL), "Vigil's Slack interactions endpoint (VIGIL_SLACK_INTERACTION_URL)")
	users := fs.String("users", or("VIGIL_SLACK_STANDIN_USERS", defaultUsers), "workspace members, ID:name:Real Name,… (VIGIL_SLACK_STANDIN_USERS)")
	groups := fs.String("groups", or("VIGIL_SLACK_STANDIN_GROUPS", defaultGroups), "usergroups, S…:U…+U…,… (VIGIL_SLACK_STANDIN_GROUPS)")
	team := fs.String("team", or("VIGIL_SLACK_TEAM_ID", slackstandin.DefaultTeamID), "workspace id (VIGIL_SLACK_TEAM_ID)")
	app := fs.String("app", or("VIGIL_SLACK_APP_ID", slackstandin.DefaultAppID), "app id (VIGIL_SLACK_APP_ID)")
	agentsFile := fs.String("agents", getenv("VIGIL_SLACK_STANDIN_AGENTS"), "JSON list of Vigil agents (id, role, slack_user_id; e.g. deploy/seed/agents.json): the page's \"as\" menu starts at a senior who is not the requester and names the agent who clicks; without it the usergroups' members count as seniors (VIGIL_SLACK_STANDIN_AGENTS)")
	statePath := fs.String("state", getenv("VIGIL_SLACK_STANDIN_STATE"), "JSON file keeping channels, messages and DMs across restarts; empty keeps them in memory only (VIGIL_SLACK_STANDIN_STATE)")
	logFormat := fs.String("log-format", or("VIGIL_LOG_FORMAT", "text"), "text or json (VIGIL_LOG_FORMAT)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: slack-standin [flags]\n\nThe bot token (VIGIL_SLACK_BOT_TOKEN) and signing secret (VIGIL_SLACK_SIGNING_SECRET)\nare read from the environment only, so they stay out of process listings.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	token, secret := getenv("VIGIL_SLACK_BOT_TOKEN"), getenv("VIGIL_SLACK_SIGNING_SECRET")
	if token == "" {
		return errors.New("VIGIL_SLACK_BOT_TOKEN is not set: Vigil must present this bot token")
	}
	if secret == "" {
		return errors.New("VIGIL_SLACK_SIGNING_SECRET is not set: clicks are signed with it")
	}
	userList, err := slackstandin.ParseUsers(*users)
	if err != nil {
		return fmt.Errorf("-users: %w", err)
	}
	groupMap, err := slackstandin.ParseGroups(*groups)
	if err != nil {
		return fmt.Errorf("-groups: %w", err)
	}
	var agents []slackstandin.Agent
	if *agentsFile != "" {
		if agents, err = readAgents(*agentsFile); err != nil {
			return fmt.Errorf("-agents: %w", err)
		}
	}
	if err := requireLoopback(*addr); err != nil {
		return err
	}
	logger := logging.New(stderr, *logFormat, slog.LevelInfo, "slack-standin")
	cfg := slackstandin.Config{
		BotToken: token, SigningSecret: secret, TeamID: *team, AppID: *app,
		InteractionURL: *interactionURL, Users: userList, Groups: groupMap, Agents: agents, StatePath: *statePath,
	}
	srv, err := slackstandin.New(cfg, logger)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := standin.Serve(ln, srv.Handler())
	logger.Info("listening", "addr", ln.Addr().String(), "config", cfg)
	// Scripts and tests wait for this line on stdout.
	fmt.Fprintf(stdout, "slack-standin ready addr=%s\n", ln.Addr())

	if err := hs.Wait(ctx); err != nil {
		return err
	}
	logger.Info("stopping")
	if err := hs.Stop(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// requireLoopback refuses listen addresses other machines could reach: the
// stand-in has no authentication on its page or script API.
func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: the stand-in listens on loopback only (e.g. 127.0.0.1:8092)", addr)
	}
	return nil
}

func readAgents(path string) ([]slackstandin.Agent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	agents, err := slackstandin.ParseAgents(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return agents, nil
}
