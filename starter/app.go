package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes, as the API contract fixes them.
const (
	exitOK          = 0
	exitFailure     = 1   // network, server error
	exitUsage       = 2   // bad invocation, caught before anything was sent
	exitRefused     = 3   // Vigil answered with a 4xx problem
	exitNotExecuted = 4   // watch / status --wait: ended in a state other than executed
	exitInterrupted = 130 // Ctrl-C
)

// app is one run of the CLI with its standard streams and environment.
type app struct {
	stdin  *os.File
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string

	json bool // set once the command's flags are parsed, for error output
}

func newApp(stdin *os.File, stdout, stderr io.Writer, getenv func(string) string) *app {
	return &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	example string
	run     func(a *app, ctx context.Context, g globals, args []string) error
}

// commands lists the top-level subcommands in help order.
func commands() []command {
	cmds := []command{
		{"login", "verify an agent token and save it for this user", "starter login --url https://vigil.example.com", (*app).cmdLogin},
		{"logout", "forget the saved token", "starter logout", (*app).cmdLogout},
	}
	for _, s := range openSpecs() {
		s := s
		cmds = append(cmds, command{s.name, s.summary, s.example, func(a *app, ctx context.Context, g globals, args []string) error {
			return a.cmdOpen(ctx, g, s, args)
		}})
	}
	return append(cmds,
		command{"status", "show where a request stands", "starter status req_7kq2m4xa", (*app).cmdStatus},
		command{"list", "list requests, newest first", "starter list --mine --open", (*app).cmdList},
		command{"watch", "follow a request until it ends", "starter watch req_7kq2m4xa --interval 5s", (*app).cmdWatch},
		command{"withdraw", "cancel your own request", `starter withdraw req_7kq2m4xa --reason "customer called back"`, (*app).cmdWithdraw},
		command{"veto", "cancel someone's request (seniors)", `starter veto req_7kq2m4xa --reason "caller failed the callback check"`, (*app).cmdVeto},
		command{"break-glass", "consent to decide a request outside Slack (two seniors, each signed in; audited, announced)", breakGlassExample, (*app).cmdBreakGlass},
		command{"repost", "post a request's lost approval message again (requester or senior)", "starter repost req_7kq2m4xa", (*app).cmdRepost},
		command{"audit", "a request's audit trail, or the whole trail filtered (seniors; --json for a SIEM)", "starter audit req_7kq2m4xa", (*app).cmdAudit},
		command{"customer", "look up a customer: addresses and notices, servers, PIN lockout", "starter customer show C-1042", (*app).cmdCustomer},
		command{"admin", "manage agents and customers (admin token)", "starter admin list-agents", (*app).cmdAdmin},
		command{"help", "show this help, or a command's", "starter help reinstall-vps", nil},
	)
}

// globals are the flags that may come before the subcommand.
type globals struct {
	url  string
	json bool
}

// run dispatches args and returns the exit code.
func (a *app) run(ctx context.Context, args []string) int {
	g, rest, err := parseGlobals(args)
	if err != nil {
		return a.fail(err)
	}
	a.json = g.json
	if len(rest) == 0 {
		a.printHelp(a.stderr)
		return exitUsage
	}
	name, args := rest[0], rest[1:]
	switch name {
	case "help", "-h", "--help", "-help":
		if len(args) > 0 && name == "help" {
			return a.run(ctx, []string{args[0], "-h"})
		}
		a.printHelp(a.stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name && c.run != nil {
			return a.fail(c.run(a, ctx, g, args))
		}
	}
	return a.fail(usagef("unknown command %q; run `starter help` for the list", name))
}

// parseGlobals reads --url/--server and --json before the subcommand.
func parseGlobals(args []string) (globals, []string, error) {
	var g globals
	for len(args) > 0 {
		arg := args[0]
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			break
		}
		if arg == "--" {
			return g, args[1:], nil
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		switch name {
		case "json":
			g.json = !hasValue || value == "true"
			args = args[1:]
		case "url", "server":
			if !hasValue {
				if len(args) < 2 {
					return g, nil, usagef("--%s needs a value: Vigil's address, e.g. https://vigil.example.com", name)
				}
				value, args = args[1], args[1:]
			}
			g.url = value
			args = args[1:]
		case "h", "help":
			return g, []string{"help"}, nil
		case "pin":
			return g, nil, errPINFlag
		default:
			return g, nil, usagef("unknown flag %q before the command; run `starter help`", "-"+name)
		}
	}
	return g, args, nil
}

func (a *app) printHelp(w io.Writer) {
	fmt.Fprintln(w, "starter — open and follow Vigil requests for sensitive customer actions.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: starter [--url URL] [--json] COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	printCommands(w, commands())
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every command takes --url URL (Vigil's address; env VIGIL_URL, else the one saved by")
	fmt.Fprintln(w, "login, else http://127.0.0.1:8080) and --json (machine output). In the five commands")
	fmt.Fprintln(w, "that open a request, --server is the customer's server id; elsewhere it means --url.")
	fmt.Fprintln(w, "VIGIL_TOKEN overrides the saved agent token (for scripts). The customer's PIN is")
	fmt.Fprintln(w, "always asked for without echo, or read from stdin with --pin-stdin; never a flag.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Exit codes: 0 success, 1 failure (network, server error), 2 usage error,")
	fmt.Fprintln(w, "3 refused by Vigil, 4 request ended without being executed (watch, status --wait),")
	fmt.Fprintln(w, "130 interrupted.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `starter COMMAND -h` for a command's flags and an example.")
}

// printCommands lists commands, one line each, with an example below.
func printCommands(w io.Writer, cmds []command) {
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.name))
	}
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
		fmt.Fprintf(w, "  %-*s    e.g. %s\n", width, "", c.example)
	}
}

// cmdFlags is a FlagSet with the common flags and a help text.
type cmdFlags struct {
	*flag.FlagSet
	usage   string // after "starter "
	help    string
	example string
	url     *string
	json    *bool
}

// newFlags makes a command's FlagSet. urlAliasServer adds --server as a
// synonym of --url (every command but those that open a request, where
// --server is the customer's server).
func (a *app) newFlags(g globals, name, usage, help, example string, urlAliasServer bool) *cmdFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and help are printed by parse
	f := &cmdFlags{FlagSet: fs, usage: usage, help: help, example: example}
	f.url = fs.String("url", g.url, "Vigil's address (env VIGIL_URL; default: saved by login, else http://127.0.0.1:8080)")
	if urlAliasServer {
		fs.StringVar(f.url, "server", g.url, "same as --url")
	}
	f.json = fs.Bool("json", g.json, "print the API's JSON instead of text; errors as problem JSON on stderr")
	return f
}

// errHelp is returned by parse after printing a command's help.
var errHelp = errors.New("help shown")

// parse reads flags and positional arguments in any order, and checks the
// number of positional arguments.
func (a *app) parse(f *cmdFlags, args []string, minPos, maxPos int) ([]string, error) {
	if err := checkNoPINFlag(args); err != nil {
		return nil, err
	}
	var pos []string
	for {
		err := f.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			a.printCmdHelp(a.stdout, f)
			return nil, errHelp
		}
		if err != nil {
			return nil, usagef("%v; run `starter %s -h`", err, f.Name())
		}
		rest := f.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	a.json = *f.json
	switch {
	case len(pos) < minPos:
		return nil, usagef("missing argument; usage: starter %s", f.usage)
	case len(pos) > maxPos:
		// Never echo the arguments: one of them could be a PIN.
		return nil, usagef("too many arguments (%d); usage: starter %s", len(pos), f.usage)
	}
	return pos, nil
}

func (a *app) printCmdHelp(w io.Writer, f *cmdFlags) {
	fmt.Fprintf(w, "Usage: starter %s\n\n%s\n\nFlags:\n", f.usage, f.help)
	f.SetOutput(w)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
	fmt.Fprintf(w, "\nExample:\n  %s\n", f.example)
}

// errPINFlag refuses a PIN given on the command line.
var errPINFlag = usagef("the PIN is never given as a flag; you will be asked for it (or use --pin-stdin)")

// checkNoPINFlag refuses --pin in any spelling before flag parsing, so the
// message is the right one and the value is never echoed.
func checkNoPINFlag(args []string) error {
	for _, arg := range args {
		if arg == "--" {
			return nil
		}
		if !strings.HasPrefix(arg, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if strings.EqualFold(name, "pin") {
			return errPINFlag
		}
	}
	return nil
}
