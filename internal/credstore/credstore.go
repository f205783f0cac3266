// Package credstore keeps the Vigil server address and agent token that
// `starter login` saved, in a file only its owner can read.
package credstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// ErrNotFound is returned by Load when nobody has logged in yet.
var ErrNotFound = errors.New("credstore: no saved credentials")

// maxFileSize bounds what Load reads: the file holds two short strings.
const maxFileSize = 64 << 10

// Credentials are what login saves: the server it verified the token on and
// the token itself: a personal token, or the identity provider's ID token of
// a sign-in session (then Session is set).
type Credentials struct {
	Server  string   `json:"server"`
	Token   string   `json:"token"`
	Session *Session `json:"session,omitempty"`
}

// Session is an identity provider sign-in: what renews Token and what ends it.
type Session struct {
	Issuer        string    `json:"issuer"`
	ClientID      string    `json:"client_id"`
	TokenURL      string    `json:"token_url"`
	RevocationURL string    `json:"revocation_url,omitempty"`
	RefreshToken  string    `json:"refresh_token"`
	Expiry        time.Time `json:"expiry"`
}

// String redacts the tokens.
func (c Credentials) String() string {
	return fmt.Sprintf("{server: %s, token: %s, session: %t}", c.Server, redact(c.Token), c.Session != nil)
}

// GoString redacts the tokens in %#v output.
func (c Credentials) GoString() string {
	return fmt.Sprintf("credstore.Credentials{Server: %q, Token: %q, Session: %t}", c.Server, redact(c.Token), c.Session != nil)
}

// LogValue redacts the tokens in slog output.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("server", c.Server), slog.String("token", redact(c.Token)), slog.Bool("session", c.Session != nil))
}

// String redacts the refresh token.
func (s Session) String() string {
	return fmt.Sprintf("{issuer: %s, client_id: %s, refresh_token: %s}", s.Issuer, s.ClientID, redact(s.RefreshToken))
}

// GoString redacts the refresh token in %#v output.
func (s Session) GoString() string { return s.String() }

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Store reads and writes one credentials file.
type Store struct {
	path string
}

// New returns a store for the file at path.
func New(path string) *Store { return &Store{path: path} }

// DefaultPath is $XDG_CONFIG_HOME/vigil/credentials.json (os.UserConfigDir).
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("credstore: find config directory: %w", err)
	}
	return filepath.Join(dir, "vigil", "credentials.json"), nil
}

// Path is the file the store uses.
func (s *Store) Path() string { return s.path }

// Load reads the saved credentials. It refuses a file that others can read
// or write, as ssh does, because the token would then be exposed or
// replaceable.
func (s *Store) Load() (Credentials, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return Credentials{}, ErrNotFound
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("credstore: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Credentials{}, fmt.Errorf("credstore: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Credentials{}, fmt.Errorf("credstore: %s is not a regular file", s.path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Credentials{}, fmt.Errorf("credstore: %s is accessible by other users (mode %#o); run `chmod 600 %s` or log in again", s.path, perm, s.path)
	}
	if fi.Size() > maxFileSize {
		return Credentials{}, fmt.Errorf("credstore: %s is too large to be a credentials file", s.path)
	}
	var c Credentials
	dec := json.NewDecoder(f)
	if err := dec.Decode(&c); err != nil {
		// The decoder's message can quote file content; keep it out.
		return Credentials{}, fmt.Errorf("credstore: %s is not valid JSON; log in again", s.path)
	}
	if c.Server == "" || c.Token == "" {
		return Credentials{}, fmt.Errorf("credstore: %s lacks a server or token; log in again", s.path)
	}
	return c, nil
}

// Save writes c atomically: a private temporary file in the same directory,
// synced, then renamed over the old file, so a crash leaves either the old
// credentials or the new ones, never a torn file. The directory is made
// 0700 and the file 0600.
func (s *Store) Save(c Credentials) (err error) {
	if c.Server == "" || c.Token == "" {
		return errors.New("credstore: server and token are required")
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("credstore: encode: %w", err)
	}
	data = append(data, '\n')
	defer clear(data)

	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("credstore: create %s: %w", dir, err)
	}
	// MkdirAll leaves an existing directory's mode alone; ours holds a
	// token, so tighten it.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("credstore: restrict %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".credentials-*.tmp") // created 0600
	if err != nil {
		return fmt.Errorf("credstore: create temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("credstore: restrict temporary file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("credstore: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("credstore: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("credstore: close: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("credstore: replace %s: %w", s.path, err)
	}
	// Make the rename itself durable.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Remove deletes the saved credentials. It reports whether there were any.
func (s *Store) Remove() (bool, error) {
	err := os.Remove(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("credstore: remove: %w", err)
	}
	return true, nil
}
