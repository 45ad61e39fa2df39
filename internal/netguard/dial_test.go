package netguard

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	metadataIP = netip.MustParseAddr("169.254.169.254")
	loopback4  = netip.MustParseAddr("127.0.0.1")
	denyLoop   = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
)

func testDNS() *fakeDNS {
	return &fakeDNS{
		records: map[string][]netip.Addr{
			"public.test":   {netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")},
			"metadata.test": {metadataIP},
			// One good and one bad address: denied at create time, and
			// at dial time the bad one is skipped.
			"mixed.test":  {metadataIP, loopback4},
			"mixed6.test": {netip.MustParseAddr("fe80::1"), loopback4},
			"mcast6.test": {netip.MustParseAddr("ff02::1")},
			"loop.test":   {loopback4},
		},
		silent: map[string]bool{"slow.test": true},
	}
}

func TestCheckURLHost(t *testing.T) {
	g := guardWithDNS(t, testDNS())
	tests := []struct {
		url    string
		denied string // "" means allowed; otherwise the denied IP
	}{
		{"http://169.254.169.254/latest/meta-data/", "169.254.169.254"},
		{"rtmp://169.254.1.1:1935/live/stream", "169.254.1.1"},
		{"http://user:secret@169.254.169.254:80/x", "169.254.169.254"},
		{"http://[fe80::1%25eth0]:8080/x", "fe80::1%eth0"},
		{"http://[fe80::1]/x", "fe80::1"},
		{"http://[::ffff:169.254.169.254]/x", "169.254.169.254"},
		{"http://[::]:80/", "::"},
		{"http://0.0.0.0:8080/", "0.0.0.0"},
		{"udp://239.1.1.1:5000", "239.1.1.1"},
		{"http://169.254.169.254./", "169.254.169.254"},
		// numeric forms inet_aton accepts
		{"http://2852039166/", "169.254.169.254"},
		{"http://0xa9fea9fe/", "169.254.169.254"},
		{"http://0251.0376.0251.0376/", "169.254.169.254"},
		{"http://169.254.43518/", "169.254.169.254"},
		{"http://0/", "0.0.0.0"},
		// bare host and path, as the API allows for callbacks
		{"169.254.169.254/callback", "169.254.169.254"},
		{"169.254.169.254:8080/callback", "169.254.169.254"},
		{"metadata.test/callback", "169.254.169.254"},
		// names
		{"http://metadata.test/", "169.254.169.254"},
		{"http://METADATA.test./", "169.254.169.254"},
		{"http://mixed.test/", "169.254.169.254"},
		{"http://mixed6.test/", "fe80::1"},
		{"http://mcast6.test/", "ff02::1"},
		{"http://public.test/", ""},
		{"rtmp://public.test/live/x", ""},
		{"http://nxdomain.test/", ""}, // checked again at dial time
		// allowed literals
		{"http://127.0.0.1:8080/", ""},
		{"http://[::1]:8080/", ""},
		{"http://192.0.2.1/", ""},
		{"http://[2001:db8::1]/", ""},
		{"http://localhost:8080/", ""},
		{"http://loop.test/", ""},
		{"callback.example.invalid/path", ""},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := g.CheckURLHost(context.Background(), tt.url)
			if tt.denied == "" {
				if err != nil {
					t.Fatalf("CheckURLHost = %v, want allowed", err)
				}
				return
			}
			var de *DeniedError
			if !errors.As(err, &de) {
				t.Fatalf("CheckURLHost = %v, want *DeniedError", err)
			}
			if de.IP.String() != tt.denied {
				t.Errorf("denied IP %s, want %s", de.IP, tt.denied)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q leaks the URL's password", err)
			}
		})
	}
}

func TestCheckURLHostDenyLoopback(t *testing.T) {
	g := guardWithDNS(t, testDNS(), denyLoop...)
	for _, u := range []string{
		"http://127.0.0.1:8080/",
		"http://127.1.2.3/",
		"http://[::1]/",
		"http://[::ffff:127.0.0.1]/",
		"http://localhost/",
		"http://LocalHost.:8080/",
		"http://stream.localhost/",
		"http://loop.test/",
		"http://2130706433/", // 127.0.0.1
	} {
		err := g.CheckURLHost(context.Background(), u)
		var de *DeniedError
		if !errors.As(err, &de) {
			t.Errorf("CheckURLHost(%q) = %v, want denied", u, err)
			continue
		}
		if !de.IP.IsLoopback() {
			t.Errorf("CheckURLHost(%q) denied %s, want a loopback address", u, de.IP)
		}
	}
	if err := g.CheckURLHost(context.Background(), "http://public.test/"); err != nil {
		t.Errorf("public.test: %v", err)
	}
}

func TestCheckURLHostBadURL(t *testing.T) {
	g := New(nil)
	for _, u := range []string{
		"http://user:secret@[::1/x",
		"http:///nohost",
		"file:///etc/passwd",
		"",
		"http://us er:secret@host/\x7f",
	} {
		err := g.CheckURLHost(context.Background(), u)
		if err == nil {
			t.Errorf("CheckURLHost(%q) = nil, want an error", u)
			continue
		}
		if errors.Is(err, ErrDenied) {
			t.Errorf("CheckURLHost(%q) = %v, want a parse error, not a denial", u, err)
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("CheckURLHost(%q) error %q leaks the URL", u, err)
		}
	}
}

func TestCheckURLHostResolveTimeout(t *testing.T) {
	g := guardWithDNS(t, testDNS())
	g.resolveTimeout = 100 * time.Millisecond
	start := time.Now()
	if err := g.CheckURLHost(context.Background(), "http://slow.test/"); err != nil {
		t.Fatalf("CheckURLHost with a silent DNS server = %v, want nil", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("CheckURLHost took %v; the resolve timeout was not applied", d)
	}

	// A caller that gives up gets its own error, not an acceptance.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	g.resolveTimeout = time.Minute
	if err := g.CheckURLHost(ctx, "http://slow.test/"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("CheckURLHost with an expired ctx = %v, want DeadlineExceeded", err)
	}
}

// listen starts a TCP listener on 127.0.0.1 that writes "hello" to every
// connection.
func listen(t *testing.T) (port string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port
}

func readHello(t *testing.T, c net.Conn) {
	t.Helper()
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v; want hello", b, err)
	}
}

func TestDialContextAllowsLoopback(t *testing.T) {
	port := listen(t)
	g := guardWithDNS(t, testDNS())
	for _, host := range []string{"127.0.0.1", "localhost", "loop.test", "mixed.test", "mixed6.test", "2130706433"} {
		t.Run(host, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := g.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap(); got != loopback4 {
				t.Errorf("connected to %s, want 127.0.0.1", got)
			}
			readHello(t, c)
		})
	}
}

func TestDialContextRefusesDenied(t *testing.T) {
	g := guardWithDNS(t, testDNS())
	for _, tt := range []struct{ network, addr, ip string }{
		{"tcp", "169.254.169.254:80", "169.254.169.254"},
		{"tcp4", "169.254.1.1:80", "169.254.1.1"},
		{"tcp", "[::ffff:169.254.169.254]:80", "169.254.169.254"},
		{"tcp", "[fe80::1%lo]:80", "fe80::1%lo"},
		{"tcp", "0.0.0.0:80", "0.0.0.0"},
		{"tcp", "[::]:80", "::"},
		{"udp", "224.0.0.251:5353", "224.0.0.251"},
		{"tcp", "metadata.test:80", "169.254.169.254"},
		{"tcp", "0xa9fea9fe:80", "169.254.169.254"},
		{"tcp6", "mcast6.test:80", "ff02::1"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := g.DialContext(ctx, tt.network, tt.addr)
		cancel()
		if c != nil {
			c.Close()
		}
		var de *DeniedError
		if !errors.As(err, &de) {
			t.Errorf("DialContext(%s, %s) = %v, want *DeniedError", tt.network, tt.addr, err)
			continue
		}
		if de.IP.String() != tt.ip {
			t.Errorf("DialContext(%s, %s) denied %s, want %s", tt.network, tt.addr, de.IP, tt.ip)
		}
	}
}

func TestDialContextExtraDeniesLoopback(t *testing.T) {
	port := listen(t)
	g := guardWithDNS(t, testDNS(), denyLoop...)
	for _, host := range []string{"127.0.0.1", "::1", "localhost", "loop.test", "mixed.test"} {
		c, err := g.DialContext(context.Background(), "tcp", net.JoinHostPort(host, port))
		if c != nil {
			c.Close()
		}
		if !errors.Is(err, ErrDenied) {
			t.Errorf("DialContext(%s) = %v, want denied", host, err)
		}
	}
}

func TestDialContextErrors(t *testing.T) {
	g := guardWithDNS(t, testDNS())
	ctx := context.Background()
	for _, tt := range []struct{ network, addr string }{
		{"unix", "/tmp/sock"},
		{"ip", "127.0.0.1"},
		{"tcp", "127.0.0.1"},         // no port
		{"tcp", "nxdomain.test:80"},  // does not resolve
		{"tcp6", "loop.test:80"},     // no IPv6 address
		{"tcp4", "[::1]:80"},         // family mismatch
		{"tcp", "public.test:99999"}, // bad port
	} {
		c, err := g.DialContext(ctx, tt.network, tt.addr)
		if c != nil {
			c.Close()
		}
		if err == nil || errors.Is(err, ErrDenied) {
			t.Errorf("DialContext(%s, %s) = %v, want a non-denial error", tt.network, tt.addr, err)
		}
	}
}

// TestDialContextHTTP uses the guard as an http.Transport dialer, as the
// callback client and the HTTP sources do.
func TestDialContextHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()

	client := func(g *Guard) *http.Client {
		return &http.Client{Transport: &http.Transport{DialContext: g.DialContext}, Timeout: 5 * time.Second}
	}
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	resp, err := client(New(nil)).Get("http://localhost:" + port + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("body %q", b)
	}

	_, err = client(New(denyLoop)).Get(srv.URL)
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("GET with loopback denied = %v, want ErrDenied", err)
	}
}

func TestParseInetAton(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2852039166", "169.254.169.254"},
		{"0xa9fea9fe", "169.254.169.254"},
		{"0XA9FEA9FE", "169.254.169.254"},
		{"025177524776", "169.254.169.254"},
		{"0251.0376.0251.0376", "169.254.169.254"},
		{"0xa9.0xfe.0xa9.0xfe", "169.254.169.254"},
		{"169.254.43518", "169.254.169.254"},
		{"169.16689662", "169.254.169.254"},
		{"127.1", "127.0.0.1"},
		{"0", "0.0.0.0"},
		{"4294967295", "255.255.255.255"},
		{"1.2.3.4", "1.2.3.4"},
		{"4294967296", ""},
		{"256.1.1.1", ""},
		{"1.2.3.256", ""},
		{"1.2.65536", ""},
		{"1.2.3.4.5", ""},
		{"08", ""},
		{"0x", ""},
		{"1..2", ""},
		{"", ""},
		{"1.2.3.", ""},
		{"-1", ""},
		{"+1", ""},
		{"1_0", ""},
		{"0b1", ""},
		{"example.com", ""},
		{"deadbeef", ""},
		{"0x1g", ""},
		{"99999999999999999999999", ""},
	}
	for _, tt := range tests {
		got, ok := parseInetAton(tt.in)
		if tt.want == "" {
			if ok {
				t.Errorf("parseInetAton(%q) = %s, want not an address", tt.in, got)
			}
			continue
		}
		if !ok || got.String() != tt.want {
			t.Errorf("parseInetAton(%q) = %s, %v; want %s", tt.in, got, ok, tt.want)
		}
	}
}

func FuzzParseInetAton(f *testing.F) {
	for _, s := range []string{"2852039166", "0xa9.0xfe.0xa9.0xfe", "0251.0376.0251.0376", "127.1", "1.2.3.4", "08"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ip, ok := parseInetAton(s)
		if !ok {
			return
		}
		if !ip.Is4() {
			t.Fatalf("parseInetAton(%q) = %s, not IPv4", s, ip)
		}
		// Whatever netip reads as a dotted quad, inet_aton reads the same
		// unless a part has a leading zero (octal to inet_aton).
		if want, err := netip.ParseAddr(s); err == nil && want != ip {
			t.Fatalf("parseInetAton(%q) = %s, netip says %s", s, ip, want)
		}
	})
}
