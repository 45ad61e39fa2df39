package testpeer

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Nginx is an nginx with the RTMP module, started for one test.
//
// RTMP applications "live" and "app2" accept publishers and players
// (live on, record off); the HTTP server serves /stat (rtmp_stat all) and
// static files with range support.
type Nginx struct {
	RTMPPort, HTTPPort int
	Dir                string // prefix directory: nginx.conf, logs/, temp/, html/

	httpRoot string
	proc     *Proc
}

// NginxOptions configure StartNginx.
type NginxOptions struct {
	// HTTPRoot is served at / (with range support); "" means Dir/html.
	HTTPRoot string
}

const (
	nginxStartAttempts = 8
	nginxStartTimeout  = 10 * time.Second
)

var errBind = errors.New("port taken")

// StartNginx starts nginx on free ports of 127.0.0.1, with every file it
// writes under t.TempDir(), and stops it when the test ends. When another
// program takes one of the ports first, it tries again with new ones.
func StartNginx(t testing.TB, opt NginxOptions) *Nginx {
	t.Helper()
	RequireTools(t, "nginx")
	dir := t.TempDir()
	for _, sub := range []string{"logs", "temp", "html"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatalf("testpeer: %v", err)
		}
	}
	n := &Nginx{Dir: dir, httpRoot: opt.HTTPRoot}
	if n.httpRoot == "" {
		n.httpRoot = filepath.Join(dir, "html")
	}
	t.Cleanup(n.Stop)

	var err error
	for range nginxStartAttempts {
		n.RTMPPort, n.HTTPPort = FreePort(t), FreePort(t)
		for n.HTTPPort == n.RTMPPort {
			n.HTTPPort = FreePort(t)
		}
		if err = n.start(); !errors.Is(err, errBind) {
			break
		}
		t.Logf("testpeer: nginx: %v; trying other ports", err)
	}
	if err != nil {
		t.Fatalf("testpeer: start nginx: %v", err)
	}
	return n
}

// RTMPURL returns rtmp://127.0.0.1:PORT/app/stream.
func (n *Nginx) RTMPURL(app, stream string) string {
	return fmt.Sprintf("rtmp://127.0.0.1:%d/%s/%s", n.RTMPPort, app, stream)
}

// HTTPURL returns http://127.0.0.1:PORT/path (path starts with /).
func (n *Nginx) HTTPURL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", n.HTTPPort, path)
}

// Stop stops nginx (fast shutdown: every connection is closed at once) and
// waits for it to exit. Stopping a stopped nginx does nothing.
func (n *Nginx) Stop() {
	if n.proc != nil {
		n.proc.Stop()
	}
}

// Restart stops nginx and starts it again on the same ports, as a
// destination that drops and comes back. It retries binding for a while.
func (n *Nginx) Restart(t testing.TB) {
	t.Helper()
	n.Stop()
	deadline := time.Now().Add(nginxStartTimeout)
	for {
		err := n.start()
		if err == nil {
			return
		}
		if !errors.Is(err, errBind) || time.Now().After(deadline) {
			t.Fatalf("testpeer: restart nginx on ports %d, %d: %v", n.RTMPPort, n.HTTPPort, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ErrorLog returns nginx's error log (info level: it shows RTMP sessions).
func (n *Nginx) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "logs", "error.log"))
	return string(b)
}

// start writes the configuration and starts nginx on n's ports. It returns
// once nginx serves /stat, which it does only after binding every listening
// socket, so a port answering is ours and not another program's.
func (n *Nginx) start() error {
	conf := filepath.Join(n.Dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(n.config()), 0o644); err != nil {
		return err
	}
	logFile := filepath.Join(n.Dir, "logs", "error.log")
	_ = os.Remove(logFile) // only this start's messages
	path, err := lookTool("nginx")
	if err != nil {
		return err
	}
	p, err := startProc(path, "-p", n.Dir, "-c", conf, "-e", logFile)
	if err != nil {
		return err
	}
	n.proc = p

	deadline := time.Now().Add(nginxStartTimeout)
	for {
		if log := n.ErrorLog(); strings.Contains(log, "Address already in use") || strings.Contains(log, "bind() to") {
			p.Kill()
			return fmt.Errorf("%w: %s", errBind, firstLine(log, "bind()"))
		}
		if p.Exited() {
			log := n.ErrorLog()
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("%w: %s", errBind, firstLine(log, "bind()"))
			}
			return fmt.Errorf("nginx exited (%v): %s%s", p.Err(), p.Output(), log)
		}
		if n.serving() && portOpen(n.RTMPPort) {
			return nil
		}
		if time.Now().After(deadline) {
			p.Kill()
			return fmt.Errorf("nginx not serving after %v: %s%s", nginxStartTimeout, p.Output(), n.ErrorLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serving reports whether our nginx answers /stat.
func (n *Nginx) serving() bool {
	body, err := n.get("/stat")
	return err == nil && strings.Contains(body, "<nginx_rtmp_version>")
}

var statClient = &http.Client{Timeout: 2 * time.Second}

func (n *Nginx) get(path string) (string, error) {
	resp, err := statClient.Get(n.HTTPURL(path))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), nil
}

func firstLine(s, containing string) string {
	for line := range strings.Lines(s) {
		if strings.Contains(line, containing) {
			return strings.TrimSpace(line)
		}
	}
	return strings.TrimSpace(s)
}

// config returns nginx.conf.
//
// master_process is off: with a master, a test binary that dies (timeout,
// panic) takes the master down with it (Pdeathsig) but its worker lives on,
// holding its ports, forever. A single process dies with the test.
func (n *Nginx) config() string {
	app := func(name string) string {
		return fmt.Sprintf(`
        application %s {
            live on;
            record off;
            allow publish all;
            allow play all;
            drop_idle_publisher 10s;
        }`, name)
	}
	temp := func(name string) string {
		return fmt.Sprintf("    %s_temp_path %s;\n", name, filepath.Join(n.Dir, "temp", name))
	}
	return fmt.Sprintf(`# written by internal/testpeer
load_module %[1]s;
daemon off;
master_process off;
worker_processes 1;
pid %[2]s;
error_log %[3]s info;

events {
    worker_connections 512;
}

rtmp {
    server {
        listen 127.0.0.1:%[4]d;
        chunk_size 4096;
%[5]s
%[6]s
    }
}

http {
    access_log off;
%[7]s
    default_type application/octet-stream;
    types {
        text/html html;
        video/x-flv flv;
        video/mp4 mp4;
        video/mp2t ts;
        application/vnd.apple.mpegurl m3u8;
    }

    server {
        listen 127.0.0.1:%[8]d;
        location = /stat {
            rtmp_stat all;
        }
        location / {
            root %[9]s;
        }
    }
}
`, nginxModule, filepath.Join(n.Dir, "nginx.pid"), filepath.Join(n.Dir, "logs", "error.log"),
		n.RTMPPort, app("live"), app("app2"),
		temp("client_body")+temp("proxy")+temp("fastcgi")+temp("uwsgi")+temp("scgi"),
		n.HTTPPort, n.httpRoot)
}

// Stat is the part of nginx-rtmp's /stat document tests look at.
type Stat struct {
	Applications []StatApplication `xml:"server>application"`
}

// StatApplication is one RTMP application of /stat.
type StatApplication struct {
	Name    string       `xml:"name"`
	Streams []StatStream `xml:"live>stream"`
}

// StatStream is one live stream of /stat.
type StatStream struct {
	Name    string       `xml:"name"`
	Clients []StatClient `xml:"client"`
	BytesIn int64        `xml:"bytes_in"`
}

// StatClient is one connection to a stream: a publisher or a player.
type StatClient struct {
	ID         int       `xml:"id"`
	Address    string    `xml:"address"`
	FlashVer   string    `xml:"flashver"`
	Publishing *struct{} `xml:"publishing"`
}

// Stat fetches and parses /stat.
func (n *Nginx) Stat(t testing.TB) Stat {
	t.Helper()
	st, err := n.TryStat()
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	return st
}

// TryStat is Stat for a goroutine that is not the test's: it returns the
// error instead of failing the test.
func (n *Nginx) TryStat() (Stat, error) {
	body, err := n.get("/stat")
	if err != nil {
		return Stat{}, fmt.Errorf("nginx stat: %w", err)
	}
	var st Stat
	if err := xml.Unmarshal([]byte(body), &st); err != nil {
		return Stat{}, fmt.Errorf("nginx stat: %w\n%s", err, body)
	}
	return st, nil
}

// Publishers returns how many clients publish app/stream.
func (st Stat) Publishers(app, stream string) int {
	count := 0
	for _, c := range st.clients(app, stream) {
		if c.Publishing != nil {
			count++
		}
	}
	return count
}

// Players returns how many clients play app/stream.
func (st Stat) Players(app, stream string) int {
	count := 0
	for _, c := range st.clients(app, stream) {
		if c.Publishing == nil {
			count++
		}
	}
	return count
}

// clients returns the clients of app/stream.
func (st Stat) clients(app, stream string) []StatClient {
	for _, a := range st.Applications {
		if a.Name != app {
			continue
		}
		for _, s := range a.Streams {
			if s.Name == stream {
				return s.Clients
			}
		}
	}
	return nil
}

// Publishers returns how many clients publish app/stream (0 or 1).
func (n *Nginx) Publishers(t testing.TB, app, stream string) int {
	t.Helper()
	return n.Stat(t).Publishers(app, stream)
}

// Players returns how many clients play app/stream.
func (n *Nginx) Players(t testing.TB, app, stream string) int {
	t.Helper()
	return n.Stat(t).Players(app, stream)
}
