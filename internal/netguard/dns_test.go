package netguard

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// fakeDNS is a DNS server on 127.0.0.1 answering A and AAAA queries from a
// fixed table, so that tests can make names resolve to denied addresses
// without touching the machine's resolver. Names missing from the table get
// NXDOMAIN; names in silent get no answer at all.
type fakeDNS struct {
	records map[string][]netip.Addr // lower-case name without trailing dot
	silent  map[string]bool
}

// guardWithDNS returns a Guard denying extra whose resolver asks only dns.
func guardWithDNS(t *testing.T, dns *fakeDNS, extra ...netip.Prefix) *Guard {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go dns.serve(pc)
	server := pc.LocalAddr().String()
	g := New(extra)
	g.resolver = &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", server)
		},
	}
	return g
}

func (s *fakeDNS) serve(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if resp := s.answer(buf[:n]); resp != nil {
			pc.WriteTo(resp, from)
		}
	}
}

const (
	dnsTypeA    = 1
	dnsTypeAAAA = 28
)

func (s *fakeDNS) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	// Question: labels, then type and class.
	var labels []string
	i := 12
	for {
		if i >= len(q) {
			return nil
		}
		l := int(q[i])
		i++
		if l == 0 {
			break
		}
		if l > 63 || i+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i:i+l]))
		i += l
	}
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i:])
	question := q[12 : i+4]
	name := strings.ToLower(strings.Join(labels, "."))
	if s.silent[name] {
		return nil
	}

	addrs, found := s.records[name]
	var answers [][]byte
	for _, a := range addrs {
		switch {
		case qtype == dnsTypeA && a.Is4():
			b := a.As4()
			answers = append(answers, b[:])
		case qtype == dnsTypeAAAA && a.Is6():
			b := a.As16()
			answers = append(answers, b[:])
		}
	}

	flags := uint16(1<<15 | 1<<10 | 1<<7) // response, authoritative, recursion available
	flags |= binary.BigEndian.Uint16(q[2:]) & (1 << 8)
	if !found {
		flags |= 3 // NXDOMAIN
	}
	resp := make([]byte, 12, 512)
	copy(resp, q[:2])
	binary.BigEndian.PutUint16(resp[2:], flags)
	binary.BigEndian.PutUint16(resp[4:], 1)
	binary.BigEndian.PutUint16(resp[6:], uint16(len(answers)))
	resp = append(resp, question...)
	for _, rdata := range answers {
		resp = append(resp, 0xc0, 12) // pointer to the question's name
		resp = binary.BigEndian.AppendUint16(resp, qtype)
		resp = binary.BigEndian.AppendUint16(resp, 1) // class IN
		resp = binary.BigEndian.AppendUint32(resp, 60)
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(rdata)))
		resp = append(resp, rdata...)
	}
	return resp
}
