package standin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// StateFile is a JSON file a stand-in keeps its state in across restarts.
// Each Save replaces the whole file atomically (a temporary file in the same
// directory, synced, then renamed over it), so a crash or a kill mid-write
// leaves the previous state, never half of one.
type StateFile struct{ path string }

// OpenStateFile names the state file at path and creates its directory
// (mode 0700: the state holds what people typed) if it is missing.
func OpenStateFile(path string) (*StateFile, error) {
	if path == "" {
		return nil, errors.New("state file: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	return &StateFile{path: path}, nil
}

// Path is where the state lives.
func (f *StateFile) Path() string { return f.path }

// Load decodes the file into v, refusing unknown fields and trailing data.
// found is false, and v untouched, when the file does not exist yet. The
// error names the file and says how to start afresh.
func (f *StateFile) Load(v any) (found bool, err error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("state file %s: %w", f.path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return true, f.Corrupt(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return true, f.Corrupt(errors.New("data after the JSON object"))
	}
	return true, nil
}

// Corrupt is the error for a state file whose content cannot be used.
func (f *StateFile) Corrupt(why error) error {
	return fmt.Errorf("state file %s is corrupt (%w); move it aside, or delete it to start empty", f.path, why)
}

// Save replaces the file with v as JSON, readable by its owner only.
func (f *StateFile) Save(v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Slack markup (<@U…>, &amp;) stays as it was sent
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("state file %s: encode: %w", f.path, err)
	}
	if err := writeAtomic(f.path, buf.Bytes()); err != nil {
		return fmt.Errorf("state file %s: %w", f.path, err)
	}
	return nil
}

func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable once the directory is synced too.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
