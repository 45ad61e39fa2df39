package netguard

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestCheckIPDefault(t *testing.T) {
	g := New(nil)
	tests := []struct {
		ip     string
		denied string // the prefix named in the error; "" means allowed
	}{
		// link-local, with cloud metadata
		{"169.254.169.254", "169.254.0.0/16"},
		{"169.254.0.0", "169.254.0.0/16"},
		{"169.254.255.255", "169.254.0.0/16"},
		{"169.253.255.255", ""},
		{"169.255.0.0", ""},
		{"fe80::1", "fe80::/10"},
		{"fe80::1%eth0", "fe80::/10"},
		{"febf:ffff::1", "fe80::/10"},
		{"fec0::1", ""},
		{"fe7f:ffff::1", ""},
		// unspecified and "this network"
		{"0.0.0.0", "0.0.0.0/8"},
		{"0.255.255.255", "0.0.0.0/8"},
		{"1.0.0.0", ""},
		{"::", "::/128"},
		{"::1", ""},
		// multicast
		{"224.0.0.0", "224.0.0.0/4"},
		{"224.0.0.251", "224.0.0.0/4"},
		{"239.255.255.255", "224.0.0.0/4"},
		{"223.255.255.255", ""},
		{"240.0.0.0", ""},
		{"ff02::1", "ff00::/8"},
		{"ff00::", "ff00::/8"},
		{"feff:ffff::1", ""},
		// IPv4-mapped IPv6 is checked as IPv4
		{"::ffff:169.254.1.1", "169.254.0.0/16"},
		{"::ffff:169.254.169.254", "169.254.0.0/16"},
		{"::ffff:0.0.0.0", "0.0.0.0/8"},
		{"::ffff:224.0.0.1", "224.0.0.0/4"},
		{"::ffff:127.0.0.1", ""},
		// allowed by default
		{"127.0.0.1", ""},
		{"10.0.0.1", ""},
		{"192.168.1.1", ""},
		{"8.8.8.8", ""},
		{"2001:db8::1", ""},
		{"fd00::1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.ip)
			err := g.CheckIP(ip)
			if tt.denied == "" {
				if err != nil {
					t.Fatalf("CheckIP(%s) = %v, want allowed", tt.ip, err)
				}
				return
			}
			var de *DeniedError
			if !errors.As(err, &de) {
				t.Fatalf("CheckIP(%s) = %v, want *DeniedError", tt.ip, err)
			}
			if got := de.Prefix.String(); got != tt.denied {
				t.Errorf("CheckIP(%s) names %s, want %s", tt.ip, got, tt.denied)
			}
			if de.IP != ip {
				t.Errorf("DeniedError.IP = %s, want %s", de.IP, ip)
			}
			if !errors.Is(err, ErrDenied) {
				t.Errorf("errors.Is(%v, ErrDenied) = false", err)
			}
		})
	}
}

func TestCheckIPInvalid(t *testing.T) {
	err := New(nil).CheckIP(netip.Addr{})
	if err == nil || errors.Is(err, ErrDenied) {
		t.Fatalf("CheckIP(zero Addr) = %v, want a non-denied error", err)
	}
}

func TestDeniedErrorMessage(t *testing.T) {
	err := New(nil).CheckIP(netip.MustParseAddr("169.254.169.254"))
	want := "address 169.254.169.254 is in a denied network (169.254.0.0/16)"
	if err == nil || err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
	de := &DeniedError{
		Host:   "metadata.internal",
		IP:     netip.MustParseAddr("169.254.169.254"),
		Prefix: netip.MustParsePrefix("169.254.0.0/16"),
	}
	want = "host metadata.internal: " + want
	if de.Error() != want {
		t.Fatalf("got %q, want %q", de.Error(), want)
	}
}

func TestNewExtra(t *testing.T) {
	extra, err := ParsePrefixes("127.0.0.0/8, ::1, 10.0.0.0/8, ::ffff:192.168.0.0/112")
	if err != nil {
		t.Fatal(err)
	}
	g := New(extra)
	tests := []struct {
		ip     string
		denied string
	}{
		{"127.0.0.1", "127.0.0.0/8"},
		{"127.255.255.255", "127.0.0.0/8"},
		{"::ffff:127.0.0.1", "127.0.0.0/8"},
		{"::1", "::1/128"},
		{"10.20.30.40", "10.0.0.0/8"},
		{"192.168.1.1", "192.168.0.0/16"},
		{"192.169.0.0", ""},
		{"11.0.0.0", ""},
		{"169.254.169.254", "169.254.0.0/16"}, // defaults still apply
	}
	for _, tt := range tests {
		err := g.CheckIP(netip.MustParseAddr(tt.ip))
		var de *DeniedError
		switch {
		case tt.denied == "" && err != nil:
			t.Errorf("CheckIP(%s) = %v, want allowed", tt.ip, err)
		case tt.denied != "" && !errors.As(err, &de):
			t.Errorf("CheckIP(%s) = %v, want denied by %s", tt.ip, err, tt.denied)
		case tt.denied != "" && de.Prefix.String() != tt.denied:
			t.Errorf("CheckIP(%s) names %s, want %s", tt.ip, de.Prefix, tt.denied)
		}
	}

	// New copies: changing the caller's slice or DefaultDenied's view
	// through Denied must not change the guard.
	extra[0] = netip.MustParsePrefix("8.8.8.0/24")
	g.Denied()[0] = netip.MustParsePrefix("8.8.4.0/24")
	if err := g.CheckIP(netip.MustParseAddr("127.0.0.1")); err == nil {
		t.Error("changing the extra slice after New changed the guard")
	}
	if err := g.CheckIP(netip.MustParseAddr("169.254.1.1")); err == nil {
		t.Error("changing the slice from Denied changed the guard")
	}
}

func TestNewPanicsOnInvalidPrefix(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New with an invalid prefix did not panic")
		}
	}()
	New([]netip.Prefix{{}})
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  ", nil},
		{"10.0.0.0/8,192.168.0.0/16,fd00::/8", []string{"10.0.0.0/8", "192.168.0.0/16", "fd00::/8"}},
		{" 10.0.0.0/8 , 172.16.0.0/12 ,", []string{"10.0.0.0/8", "172.16.0.0/12"}},
		{",,10.0.0.0/8,,", []string{"10.0.0.0/8"}},
		{"127.0.0.1", []string{"127.0.0.1/32"}},
		{"::1", []string{"::1/128"}},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}},
		{"fd12:3456::1/8", []string{"fd00::/8"}},
		{"0.0.0.0/0,::/0", []string{"0.0.0.0/0", "::/0"}},
		{"::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}},
		{"::ffff:192.168.1.1", []string{"192.168.1.1/32"}},
		{"::ffff:0:0/96", []string{"0.0.0.0/0"}},
	}
	for _, tt := range tests {
		got, err := ParsePrefixes(tt.in)
		if err != nil {
			t.Errorf("ParsePrefixes(%q) error: %v", tt.in, err)
			continue
		}
		var gotS []string
		for _, p := range got {
			gotS = append(gotS, p.String())
		}
		if !slices.Equal(gotS, tt.want) {
			t.Errorf("ParsePrefixes(%q) = %v, want %v", tt.in, gotS, tt.want)
		}
	}
}

func TestParsePrefixesErrors(t *testing.T) {
	tests := []struct {
		in      string
		badItem string // must appear in the error
	}{
		{"10.0.0.0/33", `"10.0.0.0/33" (item 1)`},
		{"10.0.0.0/8,192.168.0.0/-1", `"192.168.0.0/-1" (item 2)`},
		{"10.0.0.0/8, example.com", `"example.com" (item 2)`},
		{"10.0.0.0/8;192.168.0.0/16", `"10.0.0.0/8;192.168.0.0/16" (item 1)`},
		{"fe80::1%eth0", `"fe80::1%eth0" (item 1)`},
		{"fe80::%eth0/10", `"fe80::%eth0/10" (item 1)`},
		{"::/129", `"::/129" (item 1)`},
		{"10.0.0/8", `"10.0.0/8" (item 1)`},
		{"/8", `"/8" (item 1)`},
		{"10.0.0.0/", `"10.0.0.0/" (item 1)`},
		{"a,b", `"a" (item 1)`},
	}
	for _, tt := range tests {
		got, err := ParsePrefixes(tt.in)
		if err == nil {
			t.Errorf("ParsePrefixes(%q) = %v, want error", tt.in, got)
			continue
		}
		if got != nil {
			t.Errorf("ParsePrefixes(%q) returned %v along with an error", tt.in, got)
		}
		if !strings.Contains(err.Error(), tt.badItem) {
			t.Errorf("ParsePrefixes(%q) error %q does not name %s", tt.in, err, tt.badItem)
		}
	}
}

func FuzzParsePrefixes(f *testing.F) {
	for _, s := range []string{
		"", "10.0.0.0/8,192.168.0.0/16,fd00::/8", "127.0.0.1", "::1", "::ffff:10.0.0.0/104",
		"fe80::1%eth0", "10.1.2.3/8", " , ,", "0.0.0.0/0", "1.2.3.4/33",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParsePrefixes(s)
		if err != nil {
			if got != nil {
				t.Fatalf("prefixes %v returned with error %v", got, err)
			}
			return
		}
		strs := make([]string, len(got))
		for i, p := range got {
			switch {
			case !p.IsValid():
				t.Fatalf("invalid prefix %v", p)
			case p != p.Masked():
				t.Fatalf("prefix %v has host bits set", p)
			case p.Addr().Zone() != "":
				t.Fatalf("prefix %v has a zone", p)
			case p.Addr().Is4In6() && p.Bits() >= 96:
				t.Fatalf("prefix %v left in IPv4-mapped form", p)
			}
			strs[i] = p.String()
		}
		// The output is a fixed point: printed and parsed again, it is
		// the same list, and New accepts it.
		again, err := ParsePrefixes(strings.Join(strs, ","))
		if err != nil {
			t.Fatalf("reparsing %v: %v", strs, err)
		}
		if !slices.Equal(again, got) {
			t.Fatalf("reparsed %v as %v", got, again)
		}
		New(got)
	})
}
