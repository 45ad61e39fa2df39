// Package testpeer starts the real programs tests talk to: nginx with the
// RTMP module, ffmpeg publishers and recorders, and ffprobe to check what
// arrived. Everything listens on 127.0.0.1, on free ports, with its files
// under the test's temporary directory, and stops when the test ends.
package testpeer

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// installHint names the command that installs the peers; RequireTools quotes it.
const installHint = "run the test command from README.md (.ci/run), which installs them with " +
	"`apt-get install -y nginx libnginx-mod-rtmp ffmpeg`"

// nginxModule is the RTMP module Debian's libnginx-mod-rtmp installs.
const nginxModule = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

// RequireTools fails the test (never skips it) when one of the named
// programs is missing. "nginx" also requires the RTMP module.
func RequireTools(t testing.TB, names ...string) {
	t.Helper()
	var missing []string
	for _, name := range names {
		if _, err := lookTool(name); err != nil {
			missing = append(missing, name)
			continue
		}
		if name == "nginx" {
			if _, err := os.Stat(nginxModule); err != nil {
				missing = append(missing, "libnginx-mod-rtmp ("+nginxModule+")")
			}
		}
	}
	if len(missing) > 0 {
		t.Fatalf("testpeer: missing %v: %s", missing, installHint)
	}
}

// lookTool finds a program in PATH, or in /usr/sbin for nginx (not in the
// PATH of every user).
func lookTool(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err == nil {
		return path, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		p := dir + "/" + name
		if st, serr := os.Stat(p); serr == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", err
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
// Another program may take it before the caller binds it: callers that start
// a server check for bind errors and retry.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testpeer: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitFor polls cond every 50ms and fails the test, naming what it waited
// for, when cond is still false after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testpeer: timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// portOpen reports whether something accepts TCP connections on 127.0.0.1:port.
func portOpen(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
