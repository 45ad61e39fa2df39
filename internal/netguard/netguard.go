// Package netguard keeps outbound connections (sources, backups, callbacks)
// out of denied networks, so that a URL given by an API user cannot make the
// relay reach cloud metadata services or other addresses it must not touch.
//
// A Guard is used twice: CheckURLHost when a task is created or modified (a
// denied host is a 400), and DialContext at every connection, because a name
// may resolve differently later (DNS rebinding) or not at all at create time.
// DialContext dials the very address it checked, never a second resolution.
//
// Loopback is allowed by default: tests and single-machine setups relay from
// and to 127.0.0.1. An operator who wants it denied adds 127.0.0.0/8 and
// ::1/128 to the denied-networks setting, as with private ranges
// (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7).
//
// IPv4-mapped IPv6 addresses (::ffff:169.254.1.1) are unmapped before they
// are checked, so they match the IPv4 prefixes.
//
// Using DialContext as an http.Transport's DialContext only guards the
// connection the transport makes: with a proxy (Transport.Proxy, e.g.
// http.ProxyFromEnvironment) that connection goes to the proxy, and the
// proxy reaches the target unchecked. Transports that use a Guard must have
// a nil Proxy.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DefaultDenied holds the networks every Guard denies: link-local (which
// holds cloud metadata services such as 169.254.169.254), the unspecified
// and "this network" addresses (0.0.0.0 reaches the local host on Linux),
// and multicast.
var DefaultDenied = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("ff00::/8"),
}

// ErrDenied matches every *DeniedError with errors.Is.
var ErrDenied = errors.New("address in a denied network")

// DeniedError reports an address that lies in a denied network.
type DeniedError struct {
	Host   string       // the host as given (a name or an IP literal); empty from CheckIP
	IP     netip.Addr   // the address that was denied, as given or resolved
	Prefix netip.Prefix // the denied network holding IP
}

func (e *DeniedError) Error() string {
	msg := fmt.Sprintf("address %s is in a denied network (%s)", e.IP, e.Prefix)
	if e.Host != "" && e.Host != e.IP.String() {
		return fmt.Sprintf("host %s: %s", e.Host, msg)
	}
	return msg
}

// Is reports whether target is ErrDenied.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// defaultResolveTimeout bounds the create-time resolution: an API request
// must not hang on a slow DNS server, and a name that does not resolve in
// time is checked again at connection time anyway.
const defaultResolveTimeout = 2 * time.Second

// Guard checks addresses against a fixed list of denied networks. It is
// safe for concurrent use.
type Guard struct {
	denied         []netip.Prefix
	resolver       *net.Resolver
	resolveTimeout time.Duration
}

// New returns a Guard denying DefaultDenied and the operator's extra
// networks. It panics if extra holds an invalid prefix (ParsePrefixes never
// returns one).
func New(extra []netip.Prefix) *Guard {
	denied := make([]netip.Prefix, 0, len(DefaultDenied)+len(extra))
	denied = append(denied, DefaultDenied...)
	for _, p := range extra {
		if !p.IsValid() {
			panic(fmt.Sprintf("netguard: invalid prefix %v", p))
		}
		denied = append(denied, normalizePrefix(p))
	}
	return &Guard{
		denied:         denied,
		resolver:       net.DefaultResolver,
		resolveTimeout: defaultResolveTimeout,
	}
}

// Denied returns a copy of the networks g denies, defaults first, for
// logging the effective configuration.
func (g *Guard) Denied() []netip.Prefix {
	return append([]netip.Prefix(nil), g.denied...)
}

// CheckIP returns a *DeniedError if ip lies in a denied network, and an
// error if ip is not a valid address; nil otherwise. A zone is ignored and
// an IPv4-mapped address is checked as IPv4.
func (g *Guard) CheckIP(ip netip.Addr) error {
	if !ip.IsValid() {
		return errors.New("netguard: invalid IP address")
	}
	// Prefix.Contains never matches an address with a zone or an
	// IPv4-mapped address against an IPv4 prefix: strip both first.
	bare := ip.WithZone("").Unmap()
	for _, p := range g.denied {
		if p.Contains(bare) {
			return &DeniedError{IP: ip, Prefix: p}
		}
	}
	return nil
}

// ParsePrefixes parses the operator's denied-networks setting: a
// comma-separated list of CIDR prefixes or bare addresses, such as
// "10.0.0.0/8, 192.168.0.0/16, fd00::/8, 127.0.0.1". A bare address becomes
// a /32 or /128; host bits are cleared (10.1.2.3/8 is 10.0.0.0/8); an
// IPv4-mapped prefix (::ffff:10.0.0.0/104) becomes its IPv4 form. Spaces
// around items and empty items are ignored, so "" yields no prefixes.
func ParsePrefixes(csv string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, item := range strings.Split(csv, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := parsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("netguard: denied network %q (item %d): %w", item, i+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not a CIDR prefix")
		}
		return normalizePrefix(p), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errors.New("not an IP address or CIDR prefix")
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("an IPv6 zone has no place in a network")
	}
	return normalizePrefix(netip.PrefixFrom(a, a.BitLen())), nil
}

// normalizePrefix clears host bits and turns an IPv4-mapped prefix into
// the IPv4 prefix it covers, since addresses are unmapped before matching.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}
