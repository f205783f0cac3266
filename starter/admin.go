package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/vigil-oss/vigil/internal/cliclient"
	"github.com/vigil-oss/vigil/internal/domain"
	"github.com/vigil-oss/vigil/internal/phone"
	"github.com/vigil-oss/vigil/internal/pinhash"
	"github.com/vigil-oss/vigil/internal/textrule"
)

// adminCommands are the `starter admin` subcommands in help order.
func adminCommands() []command {
	return []command{
		{"create-agent", "create an agent and print its token once",
			"starter admin create-agent --id ag_ana --name 'Ana Lima' --email ana@example.com --team support --role senior --slack-user U024BE7LH",
			(*app).cmdCreateAgent},
		{"set-role", "change an agent's role (agent, senior, admin, security)", "starter admin set-role ag_ana senior", (*app).cmdSetRole},
		{"disable-agent", "disable an agent; its token stops working at once", "starter admin disable-agent ag_ana", (*app).cmdDisableAgent},
		{"rotate-token", "issue a new token for an agent, revoking the old (another agent's goes to them by Slack DM)", "starter admin rotate-token ag_ana", (*app).cmdRotateToken},
		{"list-agents", "list agents", "starter admin list-agents", (*app).cmdListAgents},
		{"import-customers", "create or update customers from a JSON file", "starter admin import-customers customers.json", (*app).cmdImportCustomers},
		{"hash-pin", "hash a PIN for an import file (offline)", "starter admin hash-pin", (*app).cmdHashPIN},
	}
}

func (a *app) cmdAdmin(ctx context.Context, g globals, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := a.stdout
		if len(args) == 0 {
			w = a.stderr
		}
		fmt.Fprintln(w, "Usage: starter admin COMMAND [flags]")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Admin commands act as you, an agent of role admin: every one is audited with your id")
		fmt.Fprintln(w, "and posted to the security channel. Your credential is your personal admin token")
		fmt.Fprintln(w, "from VIGIL_ADMIN_TOKEN or one line of standard input (--admin-token-stdin), or else")
		fmt.Fprintln(w, "your `starter login` session. On a fresh install the bootstrap token (the server's")
		fmt.Fprintln(w, "VIGIL_ADMIN_TOKEN) only creates the first admin: create-agent --role admin.")
		fmt.Fprintln(w, "The admin API has its own address: --url, else VIGIL_ADMIN_URL, else "+defaultAdminURL+".")
		fmt.Fprintln(w, "hash-pin needs no token and works offline.")
		fmt.Fprintln(w)
		printCommands(w, adminCommands())
		if len(args) == 0 {
			return usagef("missing admin command")
		}
		return nil
	}
	for _, c := range adminCommands() {
		if c.name == args[0] {
			return c.run(a, ctx, g, args[1:])
		}
	}
	return usagef("unknown admin command %q; run `starter admin help`", args[0])
}

// adminFlags adds --admin-token-stdin to a command's flags.
func (a *app) adminFlags(g globals, name, usage, help, example string) (*cmdFlags, *bool) {
	help += "\n\nYou act as yourself, an admin: your personal admin token comes from VIGIL_ADMIN_TOKEN,\nor from one line of standard input with --admin-token-stdin, or else your `starter login`\nsession is used. The bootstrap token only creates the first admin. The admin API has its\nown address: --url, else VIGIL_ADMIN_URL, else " + defaultAdminURL + "."
	f := a.newFlags(g, "admin "+name, "admin "+usage, help, example, true)
	return f, f.Bool("admin-token-stdin", false, "read the admin token from one line of standard input")
}

// defaultAdminURL is the admin API's own address in a default install
// (VIGIL_ADMIN_ADDR 127.0.0.1:8081), apart from the public one.
const defaultAdminURL = "http://127.0.0.1:8081"

// adminClient is a client for the admin API (--url, else VIGIL_ADMIN_URL,
// else defaultAdminURL) holding the admin's own credential: the token from
// --admin-token-stdin or VIGIL_ADMIN_TOKEN, else the login session.
func (a *app) adminClient(f *cmdFlags, fromStdin bool) (*cliclient.Client, error) {
	raw := *f.url
	if raw == "" {
		raw = a.getenv("VIGIL_ADMIN_URL")
	}
	if raw == "" {
		raw = defaultAdminURL
	}
	server, err := cliclient.NormalizeBaseURL(raw)
	if err != nil {
		return nil, usagef("%v", strings.TrimPrefix(err.Error(), "cliclient: "))
	}
	var token string
	if fromStdin {
		b, err := readLine(a.stdin)
		if err != nil {
			return nil, err
		}
		token = strings.TrimSpace(string(b))
		clear(b)
	} else {
		token = a.getenv("VIGIL_ADMIN_TOKEN")
	}
	if token == "" {
		// A signed-in admin acts with their own session, at the admin API.
		c, err := a.agentClient("")
		if err != nil {
			return nil, usagef("no admin credential: set VIGIL_ADMIN_TOKEN to your admin token, pass --admin-token-stdin, or `starter login` as an admin")
		}
		return c.At(server)
	}
	return a.client(server, token)
}

func (a *app) cmdCreateAgent(ctx context.Context, g globals, args []string) error {
	f, tokStdin := a.adminFlags(g, "create-agent",
		"create-agent --id ID --name NAME --email ADDRESS [--team TEAM] [--role agent|senior|admin|security] [--slack-user SLACK_ID]",
		"Creates an agent and prints its token. The token is shown this once; give it to the\nagent over a private channel, and they run `starter login`.",
		adminCommands()[0].example)
	id := f.String("id", "", "the agent's id, e.g. ag_ana (required)")
	name := f.String("name", "", "full name (required)")
	email := f.String("email", "", "work email (required)")
	team := f.String("team", "", "team name")
	role := f.String("role", "agent", "agent, senior or admin")
	slack := f.String("slack-user", "", "Slack user id (U…); seniors need it to approve in Slack")
	if _, err := a.parse(f, args, 0, 0); err != nil {
		return err
	}
	na := cliclient.NewAgent{ID: strings.TrimSpace(*id), SlackUserID: strings.TrimSpace(*slack)}
	if err := checkID("--id", na.ID); err != nil {
		return err
	}
	var err error
	if na.Name, err = checkText("--name", *name, textrule.Options{Required: true, MaxLen: maxName}); err != nil {
		return err
	}
	if na.Email, err = checkEmail("--email", *email); err != nil {
		return err
	}
	if na.Team, err = checkText("--team", *team, textrule.Options{MaxLen: maxName}); err != nil {
		return err
	}
	if na.SlackUserID != "" {
		if err := checkID("--slack-user", na.SlackUserID); err != nil {
			return err
		}
	}
	r, err := domain.ParseRole(*role)
	if err != nil {
		return usagef("--role: %v", err)
	}
	na.Role = r
	if r == domain.RoleSenior && na.SlackUserID == "" {
		fmt.Fprintln(a.stderr, "starter: warning: a senior without --slack-user cannot approve in Slack")
	}
	c, err := a.adminClient(f, *tokStdin)
	if err != nil {
		return err
	}
	it, err := c.CreateAgent(ctx, na)
	if err != nil {
		return err
	}
	a.printIssued(it, "Created agent %s (%s, %s).\n", it.Agent.ID, it.Agent.Name, it.Agent.Role)
	return nil
}

// printIssued prints a freshly issued token once, with the warning.
func (a *app) printIssued(it cliclient.IssuedToken, headline string, args ...any) {
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", it.Raw)
		return
	}
	fmt.Fprintf(a.stdout, headline, args...)
	fmt.Fprintf(a.stdout, "Token: %s\n", it.Token)
	fmt.Fprintf(a.stdout, "This token will not be shown again. Give it to %s over a private channel; they run `starter login` and paste it.\n", it.Agent.Name)
}

func (a *app) cmdSetRole(ctx context.Context, g globals, args []string) error {
	f, tokStdin := a.adminFlags(g, "set-role", "set-role AGENT_ID ROLE", "Changes an agent's role: agent, senior or admin.", "starter admin set-role ag_ana senior")
	pos, err := a.parse(f, args, 2, 2)
	if err != nil {
		return err
	}
	if err := checkID("agent id", pos[0]); err != nil {
		return err
	}
	role, err := domain.ParseRole(pos[1])
	if err != nil {
		return usagef("%v", err)
	}
	c, err := a.adminClient(f, *tokStdin)
	if err != nil {
		return err
	}
	ag, err := c.SetRole(ctx, pos[0], string(role))
	if err != nil {
		return err
	}
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", ag.Raw)
		return nil
	}
	fmt.Fprintf(a.stdout, "%s (%s) is now %s\n", ag.ID, ag.Name, ag.Role)
	return nil
}

func (a *app) cmdDisableAgent(ctx context.Context, g globals, args []string) error {
	f, tokStdin := a.adminFlags(g, "disable-agent", "disable-agent AGENT_ID", "Disables an agent: their token stops working at once.", "starter admin disable-agent ag_ana")
	pos, err := a.parse(f, args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkID("agent id", pos[0]); err != nil {
		return err
	}
	c, err := a.adminClient(f, *tokStdin)
	if err != nil {
		return err
	}
	ag, err := c.DisableAgent(ctx, pos[0])
	if err != nil {
		return err
	}
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", ag.Raw)
		return nil
	}
	fmt.Fprintf(a.stdout, "Disabled %s (%s); their token no longer works\n", ag.ID, ag.Name)
	return nil
}

func (a *app) cmdRotateToken(ctx context.Context, g globals, args []string) error {
	f, tokStdin := a.adminFlags(g, "rotate-token", "rotate-token AGENT_ID",
		"Issues a new token for an agent; the old one stops working. Another agent's new token is never shown to you: Vigil sends it to them alone, by Slack direct message, and an agent without a Slack id is refused (they rotate their own). Your own new token is shown once.",
		"starter admin rotate-token ag_ana")
	pos, err := a.parse(f, args, 1, 1)
	if err != nil {
		return err
	}
	if err := checkID("agent id", pos[0]); err != nil {
		return err
	}
	c, err := a.adminClient(f, *tokStdin)
	if err != nil {
		return err
	}
	it, err := c.RotateToken(ctx, pos[0])
	if err != nil {
		return err
	}
	if it.Token == "" {
		if a.json {
			fmt.Fprintf(a.stdout, "%s\n", it.Raw)
			return nil
		}
		fmt.Fprintf(a.stdout, "New token for %s (%s); the old one no longer works. Vigil sent it to them alone by Slack direct message (%s); you do not see it.\n",
			it.Agent.ID, it.Agent.Name, it.SentTo)
		return nil
	}
	a.printIssued(it, "New token for %s (%s); the old one no longer works.\n", it.Agent.ID, it.Agent.Name)
	return nil
}

func (a *app) cmdListAgents(ctx context.Context, g globals, args []string) error {
	f, tokStdin := a.adminFlags(g, "list-agents", "list-agents", "Lists every agent.", "starter admin list-agents")
	if _, err := a.parse(f, args, 0, 0); err != nil {
		return err
	}
	c, err := a.adminClient(f, *tokStdin)
	if err != nil {
		return err
	}
	list, err := c.ListAgents(ctx)
	if err != nil {
		return err
	}
	if a.json {
		fmt.Fprintf(a.stdout, "%s\n", list.Raw)
		return nil
	}
	if len(list.Agents) == 0 {
		fmt.Fprintln(a.stdout, "No agents.")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tEMAIL\tTEAM\tROLE\tSLACK")
	for _, ag := range list.Agents {
		role := string(ag.Role)
		if ag.Disabled {
			role += " (disabled)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ag.ID, ag.Name, ag.Email, dash(ag.Team), role, dash(ag.SlackUserID))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// importCustomer is one entry of an import file: the PUT body plus its id.
type importCustomer struct {
	ID string `json:"id"`
	cliclient.Customer
}

// maxImportFile bounds an import file.
const maxImportFile = 32 << 20

func (a *app) cmdImportCustomers(ctx context.Context, g globals, args []string) error {
	f, tokStdin := a.adminFlags(g, "import-customers", "import-customers FILE.json",
		"Creates or updates customers. FILE holds\n"+
			`  {"customers":[{"id":"C-1042","name":"Acme","primary_email":"ops@acme.example",`+"\n"+
			`    "pin_hash":"$argon2id$…","contacts":[{"email":"…","added_at":"2025-01-01T00:00:00Z"}],`+"\n"+
			`    "phones":[{"number":"+447911123456","added_at":"…","verified_at":"…"}],`+"\n"+
			`    "servers":["srv-1"]}]}`+"\n"+
			"(make pin_hash with `starter admin hash-pin`). The whole file is checked before\n"+
			"anything is sent; customers are then sent one by one, and the upsert makes a re-run safe.\n"+
			"Dates are taken only for a customer new to Vigil. For one it has, addresses on file keep\n"+
			"their dates, new addresses, new phones (E.164) and a changed primary_email get notices only after\n"+
			"VIGIL_ESTABLISHED_AFTER, and the replaced primary stays on file and keeps getting them.\n"+
			"A server moves from another customer only when no request on it is open.",
		"starter admin import-customers customers.json")
	pos, err := a.parse(f, args, 1, 1)
	if err != nil {
		return err
	}
	customers, err := readImportFile(pos[0])
	if err != nil {
		return err
	}
	c, err := a.adminClient(f, *tokStdin)
	if err != nil {
		return err
	}
	for i, cu := range customers {
		if err := c.PutCustomer(ctx, cu.ID, cu.Customer); err != nil {
			fmt.Fprintf(a.stderr, "starter: imported %d of %d customers; %s was not imported\n", i, len(customers), cu.ID)
			return err
		}
	}
	if a.json {
		ids := make([]string, len(customers))
		for i, cu := range customers {
			ids[i] = cu.ID
		}
		b, _ := json.Marshal(map[string]any{"imported": len(customers), "customers": ids})
		fmt.Fprintf(a.stdout, "%s\n", b)
		return nil
	}
	fmt.Fprintf(a.stdout, "Imported %d customer%s\n", len(customers), plural(len(customers), "s"))
	return nil
}

// readImportFile reads and checks an import file: strict JSON, unique ids,
// valid addresses, PIN hashes that parse as argon2id PHC strings.
func readImportFile(path string) ([]importCustomer, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, usagef("cannot open the import file: %v", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxImportFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxImportFile {
		return nil, usagef("%s is larger than %d MiB", path, maxImportFile>>20)
	}
	var file struct {
		Customers []importCustomer `json:"customers"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return nil, usagef("%s: %v", path, err)
	}
	if dec.More() {
		return nil, usagef("%s: data after the JSON document", path)
	}
	if len(file.Customers) == 0 {
		return nil, usagef(`%s holds no customers; want {"customers":[…]}`, path)
	}
	seen := map[string]bool{}
	for i, cu := range file.Customers {
		where := fmt.Sprintf("%s: customer #%d", path, i+1)
		if cu.ID != "" {
			where += " (" + cu.ID + ")"
		}
		if err := checkID("id", cu.ID); err != nil {
			return nil, usagef("%s: %v", where, err)
		}
		if seen[cu.ID] {
			return nil, usagef("%s: id appears twice", where)
		}
		seen[cu.ID] = true
		if strings.TrimSpace(cu.Name) == "" {
			return nil, usagef("%s: name is required", where)
		}
		if err := textrule.Check("name", cu.Name, textrule.Options{MaxLen: maxName}); err != nil {
			return nil, usagef("%s: %v", where, err)
		}
		if _, err := textrule.Email("primary_email", cu.PrimaryEmail); err != nil {
			return nil, usagef("%s: %v", where, err)
		}
		for j, ct := range cu.Contacts {
			if _, err := textrule.Email(fmt.Sprintf("contacts[%d].email", j), ct.Email); err != nil {
				return nil, usagef("%s: %v", where, err)
			}
		}
		for j, p := range cu.Phones {
			if _, err := phone.Parse(fmt.Sprintf("phones[%d].number", j), p.Number); err != nil {
				return nil, usagef("%s: %v", where, err)
			}
		}
		for _, s := range cu.Servers {
			if err := checkID("server", s); err != nil {
				return nil, usagef("%s: %v", where, err)
			}
		}
		// Never quote the hash in the message.
		if _, err := pinhash.ParamsOf(cu.PINHash); err != nil {
			return nil, usagef("%s: pin_hash is not an argon2id PHC string; make one with `starter admin hash-pin`", where)
		}
	}
	return file.Customers, nil
}

func (a *app) cmdHashPIN(ctx context.Context, g globals, args []string) error {
	f := a.newFlags(g, "admin hash-pin", "admin hash-pin [--pin-stdin]",
		"Hashes a customer PIN with argon2id (OWASP parameters) and prints the PHC string, for\n"+
			"the pin_hash field of an import file. Asks twice without echo, or reads one line of\n"+
			"standard input with --pin-stdin. Works offline; needs no token.\n\n"+
			"A support PIN has 6 to 32 letters or digits: Vigil refuses a shorter PIN when an agent\n"+
			"types it, so a customer imported with one could never pass the PIN gate.",
		"starter admin hash-pin", true)
	pinStdin := f.Bool("pin-stdin", false, "read the PIN from one line of standard input")
	if _, err := a.parse(f, args, 0, 0); err != nil {
		return err
	}
	pin, err := a.readPIN(ctx, *pinStdin, "PIN to hash: ")
	if err != nil {
		return err
	}
	defer clear(pin)
	if !*pinStdin {
		again, err := a.readPIN(ctx, false, "Same PIN again: ")
		if err != nil {
			return err
		}
		same := bytes.Equal(pin, again)
		clear(again)
		if !same {
			return usagef("the two PINs differ; nothing was hashed")
		}
	}
	if !validPIN(pin) {
		return usagef("a support PIN has %d to %d letters or digits; nothing was hashed", minPINLen, maxPINLen)
	}
	hash, err := pinhash.Hash(string(pin), pinhash.DefaultParams())
	if err != nil {
		return fmt.Errorf("hash the PIN: %w", err)
	}
	if a.json {
		b, _ := json.Marshal(map[string]string{"pin_hash": hash})
		fmt.Fprintf(a.stdout, "%s\n", b)
		return nil
	}
	fmt.Fprintln(a.stdout, hash)
	return nil
}

// The support PIN's shape, as the API checks it (requests.MinPINLen).
const (
	minPINLen = 6
	maxPINLen = 32
)

// validPIN reports whether pin has the shape of a support PIN.
func validPIN(pin []byte) bool {
	if len(pin) < minPINLen || len(pin) > maxPINLen {
		return false
	}
	for _, c := range pin {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
