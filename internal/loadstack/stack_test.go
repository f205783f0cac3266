package loadstack

import (
	"context"
	"strings"
	"testing"
)

func TestReadyField(t *testing.T) {
	tests := []struct {
		line, key, want, wantErr string
	}{
		{"devserver ready addr=127.0.0.1:7233 namespace=default", "addr", "127.0.0.1:7233", ""},
		{"devserver ready addr=127.0.0.1:7233 namespace=default", "namespace", "default", ""},
		{"devserver ready", "addr", "", "has no addr="},
		{"devserver ready address=x", "addr", "", "has no addr="},
	}
	for _, tc := range tests {
		got, err := readyField(tc.line, tc.key)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("readyField(%q, %q) error %v, want %q", tc.line, tc.key, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("readyField(%q, %q) = %q, %v; want %q", tc.line, tc.key, got, err, tc.want)
		}
	}
}

func TestRandomToken(t *testing.T) {
	for _, n := range []int{1, 16, 24, 32} {
		a, b := randomToken(n), randomToken(n)
		if len(a) != n || a == b {
			t.Errorf("randomToken(%d) = %q, %q", n, a, b)
		}
	}
}

func TestStartRefusesAMissingDevserver(t *testing.T) {
	_, err := Start(context.Background(), Options{Devserver: t.TempDir() + "/none", Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("err = %v, want one saying how to build the devserver", err)
	}
}

func TestStartRefusesABadAdminDSN(t *testing.T) {
	s := &Stack{opts: Options{AdminDSN: "host=x password=secret", Logf: func(string, ...any) {}}}
	err := s.createDatabase(context.Background())
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("err = %v, want a refusal that does not echo the DSN", err)
	}
}
