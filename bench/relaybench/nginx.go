package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// nginxModule is the RTMP module of Debian's libnginx-mod-rtmp.
const nginxModule = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

// nginx is one nginx-rtmp, a single process (no master), listening on free
// ports of 127.0.0.1, with every file under dir. Its HTTP port also serves
// dir/html/hls at /hls/: the playlists and segments of the HLS primaries of
// the failover scenario.
type nginx struct {
	name     string
	dir      string
	rtmpPort int
	httpPort int
	proc     *proc
}

var errBind = errors.New("port taken")

// startNginx starts an nginx-rtmp whose application "live" accepts
// publishers and players; /stat serves rtmp_stat. It retries with other
// ports when another program takes one first.
func startNginx(ctx context.Context, ps *procs, name, dir string, maxConns int) (*nginx, error) {
	bin, err := lookNginx()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(nginxModule); err != nil {
		return nil, fmt.Errorf("nginx RTMP module missing (apt-get install libnginx-mod-rtmp): %w", err)
	}
	for _, sub := range []string{"logs", "temp", "html/hls"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	n := &nginx{name: name, dir: dir}
	for range 8 {
		if n.rtmpPort, err = freePort(); err != nil {
			return nil, err
		}
		if n.httpPort, err = freePort(); err != nil {
			return nil, err
		}
		if n.httpPort == n.rtmpPort {
			continue
		}
		if err = n.start(ctx, ps, bin, maxConns); !errors.Is(err, errBind) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("nginx %s: %w", name, err)
	}
	return n, nil
}

func lookNginx() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if st, err := os.Stat("/usr/sbin/nginx"); err == nil && !st.IsDir() {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("nginx not found (apt-get install nginx libnginx-mod-rtmp)")
}

func (n *nginx) start(ctx context.Context, ps *procs, bin string, maxConns int) error {
	conf := filepath.Join(n.dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(n.config(maxConns)), 0o644); err != nil {
		return err
	}
	logFile := filepath.Join(n.dir, "logs", "error.log")
	_ = os.Remove(logFile)
	p, err := ps.start("nginx "+n.name, nil, bin, "-p", n.dir, "-c", conf, "-e", logFile)
	if err != nil {
		return err
	}
	n.proc = p
	deadline := time.Now().Add(10 * time.Second)
	for {
		log, _ := os.ReadFile(logFile)
		if s := string(log); strings.Contains(s, "Address already in use") || strings.Contains(s, "bind() to") {
			p.kill()
			return errBind
		}
		if p.exited() {
			return fmt.Errorf("exited: %s%s", p.output(), log)
		}
		if _, err := n.get("/stat"); err == nil && portOpen(n.rtmpPort) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.kill()
			return fmt.Errorf("not serving after 10s: %s%s", p.output(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// config is nginx.conf. master_process off: one process, which the
// kernel kills with the bench (Pdeathsig), and whose CPU is easy to read.
func (n *nginx) config(maxConns int) string {
	temp := func(name string) string {
		return fmt.Sprintf("    %s_temp_path %s;\n", name, filepath.Join(n.dir, "temp", name))
	}
	return fmt.Sprintf(`# written by bench/relaybench
load_module %[1]s;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile %[2]d;
pid %[3]s;
error_log %[4]s warn;

events {
    worker_connections %[5]d;
}

rtmp {
    server {
        listen 127.0.0.1:%[6]d;
        chunk_size 4096;
        application live {
            live on;
            record off;
            allow publish all;
            allow play all;
            drop_idle_publisher 10s;
        }
    }
}

http {
    access_log off;
%[7]s
    default_type application/octet-stream;
    types {
        video/mp2t ts;
        application/vnd.apple.mpegurl m3u8;
    }

    server {
        listen 127.0.0.1:%[8]d;
        location = /stat {
            rtmp_stat all;
        }
        location /hls/ {
            root %[9]s;
        }
    }
}
`, nginxModule, 2*maxConns+64, filepath.Join(n.dir, "nginx.pid"), filepath.Join(n.dir, "logs", "error.log"),
		maxConns+64, n.rtmpPort,
		temp("client_body")+temp("proxy")+temp("fastcgi")+temp("uwsgi")+temp("scgi"),
		n.httpPort, filepath.Join(n.dir, "html"))
}

func (n *nginx) url(stream string) string {
	return fmt.Sprintf("rtmp://127.0.0.1:%d/live/%s", n.rtmpPort, stream)
}

// hlsDir is the directory served at /hls/name/.
func (n *nginx) hlsDir(name string) string { return filepath.Join(n.dir, "html", "hls", name) }

func (n *nginx) hlsURL(name string) string {
	return fmt.Sprintf("http://127.0.0.1:%d/hls/%s/index.m3u8", n.httpPort, name)
}

var statHTTP = &http.Client{Timeout: 5 * time.Second}

func (n *nginx) get(path string) ([]byte, error) {
	resp, err := statHTTP.Get(fmt.Sprintf("http://127.0.0.1:%d%s", n.httpPort, path))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return b, nil
}

// rtmpStat is the part of nginx-rtmp's /stat the bench reads.
type rtmpStat struct {
	Streams []statStream `xml:"server>application>live>stream"`
}

type statStream struct {
	Name    string       `xml:"name"`
	BytesIn int64        `xml:"bytes_in"`
	Clients []statClient `xml:"client"`
}

type statClient struct {
	ID         int       `xml:"id"`
	Dropped    int64     `xml:"dropped"`
	Timestamp  int64     `xml:"timestamp"` // ms, of the last message
	Publishing *struct{} `xml:"publishing"`
}

func (n *nginx) stat() (map[string]statStream, error) {
	b, err := n.get("/stat")
	if err != nil {
		return nil, err
	}
	var st rtmpStat
	if err := xml.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("nginx %s /stat: %w", n.name, err)
	}
	out := make(map[string]statStream, len(st.Streams))
	for _, s := range st.Streams {
		out[s.Name] = s
	}
	return out, nil
}

// publisher returns the publishing client of a stream.
func (s statStream) publisher() (statClient, bool) {
	for _, c := range s.Clients {
		if c.Publishing != nil {
			return c, true
		}
	}
	return statClient{}, false
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portOpen(port int) bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
