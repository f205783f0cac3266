package action

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestEverySpecIsComplete fails when an action misses a field another
// package reads: a new action cannot fall back on another action's words.
func TestEverySpecIsComplete(t *testing.T) {
	seen := map[string]Name{}
	for _, sp := range Specs() {
		t.Run(string(sp.Name), func(t *testing.T) {
			const server, email = "srv-zz-1", "zz@example.org"
			for field, v := range map[string]string{
				"Title": sp.Title, "CoolingSetting": sp.CoolingSetting, "CoolingHelp": sp.CoolingHelp,
				"ExecutedDetail": sp.ExecutedDetail, "PanelMethod": sp.PanelMethod, "PanelPath": sp.PanelPath,
				"APIDoc": sp.APIDoc, "Command": sp.Command, "Summary": sp.Summary, "Example": sp.Example,
			} {
				if strings.TrimSpace(v) == "" {
					t.Errorf("%s is empty", field)
				}
			}
			if sp.Target < TargetAccount || sp.Target > TargetEmail {
				t.Errorf("Target %d is not one of the targets", sp.Target)
			}
			if sp.CoolingDefault <= 0 {
				t.Errorf("CoolingDefault %v is not positive", sp.CoolingDefault)
			}
			if sp.CoolingFloor < 12*time.Hour || sp.CoolingFloor > sp.CoolingDefault {
				t.Errorf("CoolingFloor %v: want at least 12h and at most the default %v", sp.CoolingFloor, sp.CoolingDefault)
			}
			if want := "VIGIL_COOLING_" + strings.ToUpper(string(sp.Name)); sp.CoolingSetting != want {
				t.Errorf("CoolingSetting %q, want %q (the naming scheme)", sp.CoolingSetting, want)
			}
			if want := strings.ReplaceAll(string(sp.Name), "_", "-"); sp.Command != want {
				t.Errorf("Command %q, want %q", sp.Command, want)
			}
			if !strings.HasPrefix(sp.Example, "starter "+sp.Command+" --customer ") || !strings.Contains(sp.Example, "--reason ") {
				t.Errorf("Example %q does not run the command with --customer and --reason", sp.Example)
			}
			if sp.ServerOptional && sp.Target != TargetServer {
				t.Error("ServerOptional on an action that takes no server")
			}
			switch sp.PanelMethod {
			case "GET", "POST", "PUT", "DELETE":
			default:
				t.Errorf("PanelMethod %q", sp.PanelMethod)
			}
			if !strings.HasPrefix(sp.PanelPath, "/v1/customers/{customer}/") {
				t.Errorf("PanelPath %q is not below the customer", sp.PanelPath)
			}
			if got := strings.Contains(sp.PanelPath, "{server}"); got != (sp.Target == TargetServer) {
				t.Errorf("PanelPath %q names {server}: %v, target is a server: %v", sp.PanelPath, got, sp.Target == TargetServer)
			}
			if sp.BodyEmail != (sp.Target == TargetEmail) {
				t.Errorf("BodyEmail %v for target %d", sp.BodyEmail, sp.Target)
			}
			words := map[string]Words{"Describe": sp.Describe, "WillHappen": sp.WillHappen, "NoticeDetail": sp.NoticeDetail,
				"HasHappened": sp.HasHappened, "WontHappen": sp.WontHappen, "Infinitive": sp.Infinitive}
			for field, w := range words {
				if w == nil {
					t.Errorf("%s is missing", field)
					continue
				}
				if strings.TrimSpace(w(server, email)) == "" {
					t.Errorf("%s says nothing", field)
				}
			}
			if sp.Doing == nil {
				t.Fatal("Doing is missing")
			}
			if d := sp.Doing("C-zz", server); !strings.Contains(d, "C-zz") {
				t.Errorf("Doing %q does not name the customer", d)
			}
			// The senior reads the target in the card; the customer in the notice.
			for field, w := range map[string]Words{"Describe": sp.Describe, "WillHappen": sp.WillHappen, "NoticeDetail": sp.NoticeDetail} {
				if w == nil {
					continue
				}
				got := w(server, email)
				if sp.Target == TargetServer && field != "WillHappen" && !strings.Contains(got, server) {
					t.Errorf("%s %q does not name the server", field, got)
				}
				if sp.Target == TargetEmail && !strings.Contains(got, email) {
					t.Errorf("%s %q does not name the address", field, got)
				}
			}
			for kind, v := range map[string]string{"name": string(sp.Name), "command": sp.Command, "setting": sp.CoolingSetting, "title": sp.Title, "panel": sp.PanelMethod + " " + sp.PanelPath} {
				if other, dup := seen[kind+":"+v]; dup {
					t.Errorf("%s %q is also %s's", kind, v, other)
				}
				seen[kind+":"+v] = sp.Name
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, n := range Names() {
		if got, err := Parse(string(n)); err != nil || got != n {
			t.Errorf("Parse(%q) = %q, %v", n, got, err)
		}
	}
	for _, bad := range []string{"", "RESEND_CREDENTIALS", "resend-credentials", "reinstall_vps ", "nuke"} {
		_, err := Parse(bad)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
			continue
		}
		for _, n := range Names() {
			if !strings.Contains(err.Error(), string(n)) {
				t.Errorf("Parse(%q) error %q does not list %s", bad, err, n)
			}
		}
	}
}

// TestUnknownActionKeepsItsName: words for an action without a spec repeat its
// name rather than borrow another action's (the old mail switches fell
// through to the 2FA wording).
func TestUnknownActionKeepsItsName(t *testing.T) {
	n := Name("wipe_everything")
	sp := n.Spec()
	for field, got := range map[string]string{"Title": sp.Title, "Describe": n.Describe("s", "e"), "WillHappen": sp.WillHappen("s", "e"),
		"WontHappen": sp.WontHappen("s", "e"), "Doing": sp.Doing("C-1", "s")} {
		if !strings.Contains(got, "wipe_everything") {
			t.Errorf("%s = %q, want the raw name", field, got)
		}
	}
	if n.NeedsServer() || n.NeedsEmail() {
		t.Error("an unknown action needs nothing")
	}
}

// TestDocumentsFollowTheSpecs keeps the API schema and the panel API document
// in step with the specs.
func TestDocumentsFollowTheSpecs(t *testing.T) {
	raw, err := os.ReadFile("../../web/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	enum := regexp.MustCompile(`(?m)^    Action:\n      type: string\n      enum: \[([^\]]*)\]`).FindStringSubmatch(doc)
	if enum == nil {
		t.Fatal("openapi.yaml has no Action enum")
	}
	var names []string
	for _, n := range Names() {
		names = append(names, string(n))
	}
	if enum[1] != strings.Join(names, ", ") {
		t.Errorf("openapi.yaml Action enum is [%s], the specs say [%s]", enum[1], strings.Join(names, ", "))
	}
	panelRaw, err := os.ReadFile("../panel/API.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range Specs() {
		if line := "        * " + string(sp.Name) + ": " + sp.APIDoc + "\n"; !strings.Contains(doc, line) {
			t.Errorf("openapi.yaml lacks the line %q", line)
		}
		if row := "| `" + string(sp.Name) + "` | `" + sp.PanelMethod + " " + sp.PanelPath; !strings.Contains(string(panelRaw), row) {
			t.Errorf("internal/panel/API.md lacks the row starting %q", row)
		}
	}
}
