package clientip

import (
	"net/http"
	"strings"
	"testing"
)

func TestIP(t *testing.T) {
	t.Parallel()
	proxies, err := New([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8:1::/48"})
	if err != nil {
		t.Fatal(err)
	}
	none, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		r      *Resolver
		remote string
		xff    []string // X-Forwarded-For headers, in order
		want   string
	}{
		{"no proxy trusted: the header is ignored", none, "203.0.113.9:5000", []string{"198.51.100.1"}, "203.0.113.9"},
		{"nil resolver", nil, "203.0.113.9:5000", []string{"198.51.100.1"}, "203.0.113.9"},
		{"untrusted peer: its header is ignored", proxies, "203.0.113.9:5000", []string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted proxy: the client it saw", proxies, "10.1.2.3:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted proxy by address", proxies, "192.0.2.7:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"a spoofed entry left of the real client is not believed", proxies, "10.1.2.3:5000", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"two proxies: skip both", proxies, "10.1.2.3:5000", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several headers are one list", proxies, "10.1.2.3:5000", []string{"1.1.1.1", "198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"no header: the proxy", proxies, "10.1.2.3:5000", nil, "10.1.2.3"},
		{"only proxies in the header: the proxy", proxies, "10.1.2.3:5000", []string{"10.4.4.4"}, "10.1.2.3"},
		{"garbage where the client should be: the proxy", proxies, "10.1.2.3:5000", []string{"1.1.1.1, not-an-ip"}, "10.1.2.3"},
		{"IPv6 proxy and client", proxies, "[2001:db8:1::5]:443", []string{"2001:db8:ffff::1"}, "2001:db8:ffff::1"},
		{"no port on the peer", proxies, "garbage", []string{"198.51.100.1"}, "garbage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", "http://vigil.test/c/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := tt.r.IP(req); got != tt.want {
				t.Fatalf("IP = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"10.0.0.0/33", "proxy.example", "10.0.0.1:80", ""} {
		if _, err := New([]string{bad}); err == nil || !strings.Contains(err.Error(), "trusted prox") {
			t.Errorf("New(%q) = %v, want an error naming the setting", bad, err)
		}
	}
}

func TestBucket(t *testing.T) {
	t.Parallel()
	tests := []struct{ ip, want string }{
		{"198.51.100.1", "198.51.100.1"},
		{"::ffff:198.51.100.1", "198.51.100.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::9", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"garbage", "garbage"},
	}
	for _, tt := range tests {
		if got := Bucket(tt.ip); got != tt.want {
			t.Errorf("Bucket(%q) = %q, want %q", tt.ip, got, tt.want)
		}
	}
}
