package mailcatcher

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serve runs c's SMTP server on loopback until the returned stop is called.
func serve(t *testing.T, c *Catcher) (addr string, stop func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.ServeSMTP(l) }()
	return l.Addr().String(), func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("ServeSMTP: %v", err)
		}
	}
}

func TestOpenKeepsMailAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".vigil", "mail.json")
	c, err := Open(path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	addr, stop := serve(t, c)
	binary := "Subject: bytes\r\nContent-Type: application/octet-stream\r\n\r\n\xff\xfe\x00 not UTF-8\r\n"
	for _, msg := range []string{sampleMessage, binary} {
		if err := send(addr, "vigil@example.com", []string{"ada@example.com"}, msg); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	before := c.Messages()
	stop()

	c, err = Open(path, nil)
	if err != nil {
		t.Fatalf("Open after restart: %v", err)
	}
	addr, stop = serve(t, c)
	defer stop()
	after := c.Messages()
	if len(after) != 2 {
		t.Fatalf("after restart %d messages, want 2", len(after))
	}
	for i := range before {
		b, a := before[i], after[i]
		if a.ID != b.ID || a.From != b.From || strings.Join(a.To, ",") != strings.Join(b.To, ",") || a.Subject != b.Subject ||
			!bytes.Equal(a.Raw, b.Raw) || !a.ReceivedAt.Equal(b.ReceivedAt) {
			t.Errorf("message %d changed across the restart:\n before %+v\n after  %+v", i, b, a)
		}
	}
	if after[0].Subject != "Café <notice>" {
		t.Errorf("subject after restart = %q", after[0].Subject)
	}
	// New mail continues the ids, and is saved too.
	if err := send(addr, "vigil@example.com", []string{"bob@example.com"}, "Subject: third\r\n\r\nhi\r\n"); err != nil {
		t.Fatalf("send after restart: %v", err)
	}
	msgs := c.Messages()
	if len(msgs) != 3 || msgs[2].ID != 3 {
		t.Fatalf("after a new delivery: %+v", msgs)
	}
	if again, err := Open(path, nil); err != nil || len(again.Messages()) != 3 {
		t.Errorf("a third Open sees %d messages (%v), want 3", len(again.Messages()), err)
	}
	// Clear is kept as well.
	c.Clear()
	if again, err := Open(path, nil); err != nil || len(again.Messages()) != 0 {
		t.Errorf("after Clear, Open sees %d messages (%v), want 0", len(again.Messages()), err)
	}
}

func TestOpenRefusesCorruptState(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{"not JSON", `{"version":1,"messages":[`, "corrupt"},
		{"other version", `{"version":7,"next_id":1,"messages":[]}`, "version 7"},
		{"ids out of order", `{"version":1,"next_id":9,"messages":[{"id":2},{"id":1}]}`, "increasing"},
		{"next id behind", `{"version":1,"next_id":2,"messages":[{"id":5}]}`, "next_id"},
		{"raw not base64", `{"version":1,"next_id":2,"messages":[{"id":1,"raw":"%%%"}]}`, "corrupt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mail.json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(path, nil)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open = %v, want an error naming %s and saying %q", err, path, tc.want)
			}
		})
	}
}
