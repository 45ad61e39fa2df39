package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// CheckURLHost is the create-time check of a source, backup or callback URL.
// An IP-literal host in a denied network is denied. A name is resolved
// (bounded by a short timeout) and denied if any of its addresses is denied;
// a name that does not resolve, or not in time, is accepted, because
// DialContext checks again at every connection.
//
// A URL without "://" is read as a bare host and path with http://, as the
// API reads callback URLs. Errors never contain the URL, which may carry
// credentials. If ctx itself ends, CheckURLHost returns its error.
func (g *Guard) CheckURLHost(ctx context.Context, rawURL string) error {
	host, err := urlHost(rawURL)
	if err != nil {
		return err
	}
	if ip, ok := literalIP(host); ok {
		return g.checkHostIP(host, ip)
	}
	rctx, cancel := context.WithTimeout(ctx, g.resolveTimeout)
	defer cancel()
	addrs, err := g.lookup(rctx, "ip", host)
	if err != nil {
		// Unresolvable now is the task's problem at run time, not a 400;
		// but a caller that gave up gets its own error back.
		return ctx.Err()
	}
	for _, ip := range addrs {
		if err := g.checkHostIP(host, ip); err != nil {
			return err
		}
	}
	return nil
}

// urlHost returns the host of rawURL without brackets or port, and with an
// IPv6 zone if it has one.
func urlHost(rawURL string) (string, error) {
	s := strings.TrimSpace(rawURL)
	if !strings.Contains(s, "://") && !strings.HasPrefix(s, "//") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		// *url.Error quotes the whole URL; keep only the reason.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return "", fmt.Errorf("netguard: invalid URL: %w", err)
	}
	host := u.Hostname()
	if host == "" {
		return "", errors.New("netguard: URL has no host")
	}
	return host, nil
}

// DialContext connects like net.Dialer.DialContext, to a TCP or UDP
// address, but only to an allowed address: it resolves the host itself,
// drops the addresses in denied networks, and dials the remaining ones in
// order until one answers. It never dials a name, so the address connected
// to is the address checked. If every address is denied it returns the
// first *DeniedError. It fits http.Transport.DialContext (with a nil Proxy;
// see the package documentation).
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var family string // argument to the resolver: "ip", "ip4" or "ip6"
	switch network {
	case "tcp", "udp":
		family = "ip"
	case "tcp4", "udp4":
		family = "ip4"
	case "tcp6", "udp6":
		family = "ip6"
	default:
		return nil, fmt.Errorf("netguard: dial %s %s: network not supported", network, addr)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("netguard: dial %s: %w", network, err)
	}

	var candidates []netip.Addr
	if ip, ok := literalIP(host); ok {
		candidates = []netip.Addr{ip}
	} else {
		candidates, err = g.lookup(ctx, family, host)
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
	}

	var allowed []netip.Addr
	var firstDenied error
	for _, ip := range candidates {
		if !familyMatches(family, ip) {
			continue
		}
		if err := g.checkHostIP(host, ip); err != nil {
			if firstDenied == nil {
				firstDenied = err
			}
			continue
		}
		allowed = append(allowed, ip)
	}
	if len(allowed) == 0 {
		if firstDenied != nil {
			return nil, firstDenied
		}
		return nil, &net.OpError{Op: "dial", Net: network,
			Err: &net.AddrError{Err: "no suitable address found", Addr: host}}
	}
	return g.dialEach(ctx, network, port, allowed)
}

// dialEach dials the addresses in order. Like net.Dialer, it gives each
// attempt a share of the time left, so that one black-holed address does
// not use up the whole deadline.
func (g *Guard) dialEach(ctx context.Context, network, port string, addrs []netip.Addr) (net.Conn, error) {
	d := net.Dialer{
		// Belt and braces: check the address the socket is about to
		// connect to, whatever the dialer did to get there.
		ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("netguard: unexpected dial address: %w", err)
			}
			return g.CheckIP(ap.Addr())
		},
	}
	var lastErr error
	for i, ip := range addrs {
		if err := ctx.Err(); err != nil {
			if lastErr == nil {
				lastErr = err
			}
			break
		}
		actx, cancel := partialDeadline(ctx, len(addrs)-i)
		c, err := d.DialContext(actx, network, net.JoinHostPort(ip.String(), port))
		cancel()
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// minAttemptTime is the least time partialDeadline gives one attempt, as in
// the net package.
const minAttemptTime = 2 * time.Second

func partialDeadline(ctx context.Context, remainingAttempts int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || remainingAttempts <= 1 {
		return ctx, func() {}
	}
	share := time.Until(deadline) / time.Duration(remainingAttempts)
	if share < minAttemptTime {
		share = min(minAttemptTime, time.Until(deadline))
	}
	return context.WithTimeout(ctx, share)
}

func familyMatches(family string, ip netip.Addr) bool {
	switch family {
	case "ip4":
		return ip.Is4()
	case "ip6":
		return ip.Is6()
	}
	return true
}

func (g *Guard) checkHostIP(host string, ip netip.Addr) error {
	err := g.CheckIP(ip)
	var de *DeniedError
	if errors.As(err, &de) {
		de.Host = host
	}
	return err
}

// lookup resolves a name to unmapped, distinct addresses. Names under
// "localhost" are loopback without asking DNS (RFC 6761), so that denying
// 127.0.0.0/8 and ::1/128 also denies them whatever the resolver says.
func (g *Guard) lookup(ctx context.Context, family, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if isLocalhost(host) {
		addrs = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}
	} else {
		var err error
		addrs, err = g.resolver.LookupNetIP(ctx, family, host)
		if err != nil {
			return nil, err
		}
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		// LookupNetIP may return IPv4 results in their IPv4-mapped form.
		a = a.Unmap()
		if familyMatches(family, a) && !containsAddr(out, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no suitable address", Name: host, IsNotFound: true}
	}
	return out, nil
}

func containsAddr(list []netip.Addr, a netip.Addr) bool {
	for _, b := range list {
		if a == b {
			return true
		}
	}
	return false
}

func isLocalhost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// literalIP reports whether host is an IP address rather than a name: a
// standard literal (with an optional IPv6 zone), or one of the numeric IPv4
// forms that inet_aton and so curl, ffmpeg and browsers accept, such as
// 2852039166, 0xa9fea9fe, 0251.0376.0251.0376 or 169.254.43518, which are
// classic ways around address filters. A trailing dot is ignored, and an
// IPv4-mapped address is returned as IPv4.
func literalIP(host string) (netip.Addr, bool) {
	h := strings.TrimSuffix(host, ".")
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.Unmap(), true
	}
	return parseInetAton(h)
}

// parseInetAton parses the IPv4 forms inet_aton(3) accepts: one to four
// dot-separated parts, each decimal, octal (leading 0) or hexadecimal
// (leading 0x); the last part fills the bytes the others leave.
func parseInetAton(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var ip uint32
	for i, part := range parts {
		v, ok := parseAtonPart(part)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if v > 0xff {
				return netip.Addr{}, false
			}
			ip |= uint32(v) << (8 * (3 - i))
			continue
		}
		restBits := 8 * (4 - i)
		if v >= 1<<restBits {
			return netip.Addr{}, false
		}
		ip |= uint32(v)
	}
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

func parseAtonPart(s string) (uint64, bool) {
	base := uint64(10)
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, s = 8, s[1:]
	}
	if s == "" {
		return 0, false
	}
	var v uint64
	for _, c := range []byte(s) {
		var d uint64
		switch {
		case '0' <= c && c <= '9':
			d = uint64(c - '0')
		case 'a' <= c && c <= 'f':
			d = uint64(c-'a') + 10
		case 'A' <= c && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		v = v*base + d
		if v > 0xffffffff {
			return 0, false
		}
	}
	return v, true
}
