package e2e

import (
	"context"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vigil-oss/vigil/workflows"
)

// desktop starts headless Chromium with a fresh profile at 1400×900.
func desktop(t *testing.T) context.Context {
	t.Helper()
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1400, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// TestTemporalUIListsARequestAndRefusesWrites: an operator opens the devserver's
// Web UI, finds a request by Vigil's search attributes, and cannot terminate it
// from there (write actions bypass Vigil's gates).
func TestTemporalUIListsARequestAndRefusesWrites(t *testing.T) {
	if out, _ := exec.Command(bins["devserver"], "-h").CombinedOutput(); !strings.Contains(string(out), "-ui-addr") {
		t.Fatalf("%s has no -ui-addr: build the devserver of this tree (unset VIGIL_DEVSERVER_BIN, or point it at .bin/devserver after `cd devserver && go build -o ../.bin/devserver .`)", bins["devserver"])
	}
	s := startStack(t, stackOptions{ui: true, extraEnv: []string{"VIGIL_COOLING_REINSTALL_VPS=30m"}})
	alice, _ := seed(t, s)
	r := s.open(t, alice, map[string]any{"action": "reinstall_vps", "customer_id": customerID, "server_id": "srv-1",
		"reason": "customer reports a compromised server", "pin": customerPIN})
	wid := workflows.WorkflowID(r.ID)

	ctx := desktop(t)
	query := `VigilCustomer="` + customerID + `" AND VigilAction="reinstall_vps"`
	list := s.uiURL + "/namespaces/default/workflows?query=" + url.QueryEscape(query)
	// pageText loads u and returns the page's text once the UI has rendered
	// its list: the text holds want, or the UI says there is nothing to
	// list, or 20 s passed (a loaded machine renders the app slowly, so
	// this waits for the page rather than for a fixed time).
	pageText := func(u, want string) (string, error) {
		if _, err := chromedp.Run(ctx, chromedp.Navigate(u)); err != nil {
			return "", err
		}
		var body string
		for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			var err error
			if body, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`)); err != nil {
				return "", err
			}
			if strings.Contains(body, want) || strings.Contains(body, "No Workflows") {
				return body, nil
			}
		}
		return body, nil
	}
	// The list fills in once the visibility store has the run; reload until it does.
	eventually(t, 90*time.Second, "the UI lists "+wid+" for "+query, func() (bool, string) {
		body, err := pageText(list, wid)
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(body, wid), body
	})
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	artifact(t, "temporal-ui-list.png", shot)
	// A query for another customer does not list it: the search attributes, not luck.
	other := s.uiURL + "/namespaces/default/workflows?query=" + url.QueryEscape(`VigilCustomer="C-0000"`)
	body, err := pageText(other, wid)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(body, wid) {
		t.Fatalf("the UI lists %s for another customer", wid)
	}

	// Terminate from the page itself, with the UI's CSRF token, as its button
	// would: the UI server refuses (405) and the request is untouched.
	terminate := `(async () => {
		const csrf = document.cookie.split('; ').find(c => c.startsWith('_csrf='))?.slice(6) || '';
		const r = await fetch('/api/v1/namespaces/default/workflows/` + wid + `/terminate', {method: 'POST',
			headers: {'X-CSRF-TOKEN': csrf, 'Content-Type': 'application/json'}, body: JSON.stringify({reason: 'bypass'})});
		return r.status;
	})()`
	if _, err := pageText(s.uiURL+"/namespaces/default/workflows", wid); err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](terminate, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("terminate from the page: %v", err)
	}
	if status != 405 {
		t.Fatalf("terminate through the UI answered %d, want 405 (write actions off)", status)
	}
	time.Sleep(time.Second)
	var got request
	if code, raw := s.call("GET", "/api/v1/requests/"+r.ID, alice, nil, &got); code != 200 || got.Final {
		t.Fatalf("request after the refused terminate: %d %s", code, raw)
	}
}
