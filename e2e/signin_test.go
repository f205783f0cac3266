package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-oss/vigil/internal/oidcprovider/oidctest"
)

// deviceCode finds the address and code `starter login` shows.
var deviceCode = regexp.MustCompile(`open (\S+)\nand enter the code (\S+)`)

// signInWithStarter runs `starter login` for user and signs in on the local
// provider's page with email, the password and otp; it returns the login's exit code.
func signInWithStarter(t *testing.T, s *stack, u *cliUser, email, otp string) (int, *bgCLI) {
	t.Helper()
	b := u.start(t, "login", "--url", s.webURL)
	var m []string
	eventually(t, 20*time.Second, "starter login shows a code", func() (bool, string) {
		m = deviceCode.FindStringSubmatch(b.stderr.String())
		return m != nil, b.stderr.String()
	})
	if st := oidctest.SignIn(t, m[1], m[2], email, oidctest.Password, otp); st != http.StatusOK {
		t.Fatalf("sign-in page answered %d", st)
	}
	return b.wait(t, 30*time.Second), b
}

func TestSignInThroughTheProviderThenOpen(t *testing.T) {
	s := startStack(t, stackOptions{oidc: true})
	aliceToken, _ := seed(t, s)
	log := &transcript{}
	alice := newCLIUser(t, log)

	code, b := signInWithStarter(t, s, alice, "alice@vigil.localhost", oidctest.Code(t, "ag_alice"))
	if code != 0 {
		t.Fatalf("login exit %d\nstdout: %s\nstderr: %s", code, b.stdout, b.stderr)
	}
	mustContain(t, "login", b.stdout.String(), "Logged in as Alice Moreau (agent) on "+s.webURL+" through "+s.oidcIssuer)

	credPath := filepath.Join(alice.config, "vigil", "credentials.json")
	fi, err := os.Stat(credPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v mode %v, want 0600", err, fi)
	}
	saved := readSession(t, credPath)
	if saved.Session.RefreshToken == "" || strings.HasPrefix(saved.Token, "vgl_") {
		t.Fatalf("saved session: %+v", saved)
	}
	first := saved

	// The session opens a request, PIN and all.
	res := alice.expect(t, 0, customerPIN+"\n", nil, "resend-credentials", "--customer", customerID, "--server", "srv-1",
		"--reason", "customer asked in chat", "--pin-stdin", "--json")
	if r := decodeRequest(t, "resend-credentials --json", res.stdout); r.Status != "pin_check" || r.PINVerifiedAt == "" || r.RequesterID != "ag_alice" {
		t.Fatalf("opened with the session: %+v", r)
	}
	// The provider's tokens live 25 s here, inside starter's renewal margin, so
	// that call renewed the session quietly: a new ID token and refresh token.
	saved = readSession(t, credPath)
	if saved.Token == first.Token || saved.Session.RefreshToken == first.Session.RefreshToken {
		t.Fatal("the call did not renew the session")
	}
	if fi, err := os.Stat(credPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file after renewal: %v %v", err, fi)
	}

	// Alice's personal token is refused now that people sign in.
	res = alice.expect(t, 3, "", []string{"VIGIL_TOKEN=" + aliceToken}, "list", "--mine")
	mustContain(t, "personal token refused", res.stderr, "sign in with `starter login`")

	// An admin disables Alice: her live, unexpired session stops on the next call.
	if code, body := s.call("POST", "/admin/v1/agents/ag_alice/disable", s.adminToken, nil, nil); code != http.StatusOK {
		t.Fatalf("disable alice: %d %s", code, body)
	}
	res = alice.expect(t, 3, "", nil, "list", "--mine")
	mustContain(t, "disabled agent's session", res.stderr, "no enabled Vigil agent for this sign-in")

	// Logout revokes the session at the provider and deletes the file.
	alice.expect(t, 0, "", nil, "logout")
	if _, err := os.Stat(credPath); !os.IsNotExist(err) {
		t.Fatalf("session file after logout: %v", err)
	}
	resp, err := http.PostForm(saved.Session.TokenURL, url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {saved.Session.RefreshToken}, "client_id": {oidctest.ClientID}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("the refresh token still works after logout")
	}
	for _, tok := range []string{saved.Session.RefreshToken, saved.Token, first.Session.RefreshToken, first.Token} {
		if strings.Contains(log.all()+s.logs("web")+s.logs("oidc"), tok) {
			t.Fatal("a session token reached the CLI output or a log")
		}
	}
}

type savedSession struct {
	Token   string `json:"token"`
	Session struct {
		TokenURL     string `json:"token_url"`
		RefreshToken string `json:"refresh_token"`
	} `json:"session"`
}

func readSession(t *testing.T, path string) savedSession {
	t.Helper()
	var s savedSession
	raw, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(raw, &s) != nil {
		t.Fatalf("session file %s: %v", path, err)
	}
	return s
}
