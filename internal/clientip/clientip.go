// Package clientip finds the address a request came from when Vigil sits
// behind reverse proxies: X-Forwarded-For is believed only on a connection
// from a trusted proxy, and then only up to the rightmost address no trusted
// proxy added, since anything left of that the client itself may have
// written.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/realclientip/realclientip-go"
)

// Resolver maps a request to its client address. The zero value and nil
// trust no proxy: the client is the connection's peer.
type Resolver struct {
	trusted []net.IPNet
	header  realclientip.Strategy
}

// New trusts the proxies at the given addresses or CIDR ranges
// (VIGIL_TRUSTED_PROXIES). An empty list trusts none.
func New(proxies []string) (*Resolver, error) {
	if len(proxies) == 0 {
		return &Resolver{}, nil
	}
	for _, p := range proxies {
		if _, err := netip.ParsePrefix(p); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(p); err != nil {
			return nil, fmt.Errorf("clientip: trusted proxy %q is neither an IP address nor a CIDR range", p)
		}
	}
	nets, err := realclientip.AddressesAndRangesToIPNets(proxies...)
	if err != nil {
		return nil, fmt.Errorf("clientip: trusted proxies: %w", err)
	}
	header, err := realclientip.NewRightmostTrustedRangeStrategy("X-Forwarded-For", nets)
	if err != nil {
		return nil, fmt.Errorf("clientip: %w", err)
	}
	return &Resolver{trusted: nets, header: header}, nil
}

// IP returns the client's address. On a connection from a trusted proxy it
// is the rightmost X-Forwarded-For entry that is not itself a trusted proxy;
// when there is none (no header, only proxies, or a malformed entry where
// the client should be), it is the proxy's own address, so that such
// requests share one bucket rather than escape the limit.
func (r *Resolver) IP(req *http.Request) string {
	peer := realclientip.RemoteAddrStrategy{}.ClientIP(nil, req.RemoteAddr)
	if peer == "" {
		// Not host:port (a test server's pipe, say): the whole value.
		return req.RemoteAddr
	}
	if r == nil || r.header == nil || !r.trusts(peer) {
		return peer
	}
	if ip := r.header.ClientIP(req.Header, req.RemoteAddr); ip != "" {
		return ip
	}
	return peer
}

func (r *Resolver) trusts(addr string) bool {
	ip := net.ParseIP(strings.SplitN(addr, "%", 2)[0])
	if ip == nil {
		return false
	}
	for _, n := range r.trusted {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// Bucket is the rate-limit key of a client address: the address itself for
// IPv4, its /64 for IPv6, since one host usually holds a whole /64 and
// could otherwise take a fresh budget per address.
func Bucket(ip string) string {
	a, err := netip.ParseAddr(strings.SplitN(ip, "%", 2)[0])
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
