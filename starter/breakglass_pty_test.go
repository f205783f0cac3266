//go:build linux

package main

import (
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

func TestBreakGlassConfirmOnTerminal(t *testing.T) {
	tests := []struct {
		name     string
		typed    string // "" sends Ctrl-C instead
		wantCode int
		wantCall bool
		wantOut  string
	}{
		{"typed BREAK-GLASS", "BREAK-GLASS", 0, true, "Request req_7kq2m4xa: break-glass approve by ag_ana and ag_ben recorded"},
		{"typed yes", "yes", 2, false, "not confirmed (you did not type BREAK-GLASS); nothing was sent"},
		{"typed lower case", "break-glass", 2, false, "not confirmed"},
		{"Ctrl-C", "", 130, false, "interrupted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, map[string]http.HandlerFunc{"POST " + bgPath: reply(200, breakGlassDoc(t))})
			cmd := exec.Command(bin, bgArgs(nil)...)
			cmd.Env = baseEnv(t, t.TempDir(), "VIGIL_URL="+f.URL, "VIGIL_TOKEN="+agentToken)
			sess := startOnPTY(t, cmd)
			ptmx, out := sess.ptmx, sess.out
			out.waitFor(t, "Type BREAK-GLASS to continue: ")
			if n := len(f.recorded()); n != 0 {
				t.Fatalf("%d calls before the confirmation", n)
			}
			var err error
			if tt.typed == "" {
				_, err = ptmx.Write([]byte{3})
			} else {
				_, err = io.WriteString(ptmx, tt.typed+"\r")
			}
			if err != nil {
				t.Fatal(err)
			}
			code, shown := sess.end(t, tt.wantOut)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; terminal shows %q", code, tt.wantCode, shown)
			}
			warn := strings.Index(shown, breakGlassWarning)
			summary := strings.Index(shown, "You consent to request req_7kq2m4xa being APPROVED outside Slack; a second senior must consent too.")
			prompt := strings.Index(shown, "Type BREAK-GLASS to continue: ")
			if warn != 0 || summary < warn || prompt < summary {
				t.Errorf("want the warning first, then the summary, then the prompt; terminal shows %q", shown)
			}
			if !strings.Contains(shown, tt.wantOut) {
				t.Errorf("terminal lacks %q: %q", tt.wantOut, shown)
			}
			if got := len(f.only("POST", bgPath)); (got == 1) != tt.wantCall || got > 1 {
				t.Errorf("%d break-glass calls; want a call: %v", got, tt.wantCall)
			}
		})
	}
}
