package standin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type demoState struct {
	Version int      `json:"version"`
	Items   []string `json:"items"`
}

func TestStateFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nested", "demo.json")
	f, err := OpenStateFile(path)
	if err != nil {
		t.Fatalf("OpenStateFile: %v", err)
	}
	var got demoState
	if found, err := f.Load(&got); found || err != nil {
		t.Fatalf("Load of a missing file = %v, %v; want not found, no error", found, err)
	}
	want := demoState{Version: 1, Items: []string{"<@U0BOB> &amp; co", "two"}}
	if err := f.Save(want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if err := f.Save(want); err != nil { // replacing an existing file works too
		t.Fatalf("second Save: %v", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "<@U0BOB> &amp; co") {
		t.Errorf("Slack markup was escaped in the file: %s", raw)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the state file (a temporary file was left behind?)", len(entries))
	}
	if found, err := f.Load(&got); !found || err != nil || got.Version != 1 || strings.Join(got.Items, "|") != strings.Join(want.Items, "|") {
		t.Errorf("Load = %+v, %v, %v; want %+v", got, found, err, want)
	}
}

func TestStateFileRefusesCorruptContent(t *testing.T) {
	tests := []struct{ name, content string }{
		{"truncated", `{"version":1,"items":["a"`},
		{"not JSON", "hello"},
		{"unknown field", `{"version":1,"itemz":[]}`},
		{"trailing data", `{"version":1} {"version":2}`},
		{"wrong type", `{"version":"one"}`},
		{"empty", ``},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "demo.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := OpenStateFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var got demoState
			found, err := f.Load(&got)
			if !found || err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("Load = %v, %v; want an error naming %s as corrupt", found, err, path)
			}
		})
	}
	if _, err := OpenStateFile(""); err == nil {
		t.Errorf("empty path accepted")
	}
}
