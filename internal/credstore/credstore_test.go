package credstore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testToken = "vgl_abcdefghijklmnopqrstuvwxyz234567"

func TestSaveLoadRemove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vigil", "credentials.json")
	s := New(path)

	if _, err := s.Load(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load before Save: got %v, want ErrNotFound", err)
	}
	want := Credentials{Server: "http://127.0.0.1:8080", Token: testToken}
	if err := s.Save(want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("file mode = %#o, want 0600", got)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if got := di.Mode().Perm(); got != 0o700 {
		t.Errorf("dir mode = %#o, want 0700", got)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only credentials.json (no temporary files left)", len(entries))
	}
	got, err := s.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got != want {
		t.Errorf("Load = %v, want %v", got, want)
	}

	// Overwrite replaces the content.
	want2 := Credentials{Server: "https://vigil.example", Token: testToken + "x"}
	if err := s.Save(want2); err != nil {
		t.Fatalf("second Save: %v", err)
	}
	if got, err := s.Load(); err != nil || got != want2 {
		t.Fatalf("Load after overwrite = %v, %v; want %v", got, err, want2)
	}

	removed, err := s.Remove()
	if err != nil || !removed {
		t.Fatalf("Remove = %v, %v; want true, nil", removed, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file still there after Remove: %v", err)
	}
	removed, err = s.Remove()
	if err != nil || removed {
		t.Fatalf("second Remove = %v, %v; want false, nil", removed, err)
	}
}

func TestSaveTightensExistingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vigil")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := New(filepath.Join(dir, "credentials.json")).Save(Credentials{Server: "http://127.0.0.1:1", Token: testToken}); err != nil {
		t.Fatal(err)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := di.Mode().Perm(); got != 0o700 {
		t.Errorf("dir mode = %#o, want 0700", got)
	}
}

func TestLoadRefuses(t *testing.T) {
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		wantSub string
	}{
		{"readable by others", `{"server":"http://x","token":"` + testToken + `"}`, 0o644, "chmod 600"},
		{"not JSON", "vgl_secretgarbage", 0o600, "not valid JSON"},
		{"missing token", `{"server":"http://x"}`, 0o600, "lacks a server or token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "credentials.json")
			if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // umask may have narrowed it
				t.Fatal(err)
			}
			_, err := New(path).Load()
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.wantSub) {
				t.Errorf("error %q does not contain %q", err, tt.wantSub)
			}
			if strings.Contains(err.Error(), "vgl_") {
				t.Errorf("error %q leaks file content", err)
			}
		})
	}
}

func TestSaveRequiresBoth(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "c.json"))
	for _, c := range []Credentials{{Server: "http://x"}, {Token: testToken}} {
		if err := s.Save(c); err == nil {
			t.Errorf("Save(%v) succeeded, want an error", c)
		}
	}
}

func TestCredentialsRedact(t *testing.T) {
	c := Credentials{Server: "http://127.0.0.1:8080", Token: testToken}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("creds", "c", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), logged.String()} {
		if strings.Contains(s, testToken) {
			t.Errorf("token leaked in %q", s)
		}
		if !strings.Contains(s, "127.0.0.1:8080") {
			t.Errorf("server missing from %q", s)
		}
	}
}

func TestDefaultPathUsesXDG(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	got, err := DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "vigil", "credentials.json"); got != want {
		t.Errorf("DefaultPath = %q, want %q", got, want)
	}
}
