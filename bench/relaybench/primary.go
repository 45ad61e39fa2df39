package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// The kinds of primary a failover trial kills: one for each kind of live
// source liverelay reads. The backup is always the RTMP stream src/live/src.
const (
	kindRTMP    = "rtmp"     // published to the source nginx, the publisher killed
	kindHTTPFLV = "http-flv" // ffmpeg serving FLV over HTTP, killed
	kindHLS     = "hls"      // ffmpeg's HLS muxer into a directory nginx serves, killed
)

// failoverKinds are the kinds --failover-kinds accepts, in table order.
var failoverKinds = []string{kindRTMP, kindHTTPFLV, kindHLS}

// noMediaTimeout is liverelay's default --no-media-timeout, which the bench
// leaves as it is: a source that sends nothing for this long is lost.
const noMediaTimeout = 3 * time.Second

// kindInfo says how a kind of primary is killed and how soon liverelay can
// notice, for the goal "gap ≤ detection + one GOP", and whether an ffmpeg
// relay reads it too.
type kindInfo struct {
	title     string
	detection time.Duration
	how       string
	ffmpeg    bool
}

func describeKind(kind string) kindInfo {
	switch kind {
	case kindHTTPFLV:
		return kindInfo{"HTTP-FLV primary (server killed)", 0, "at once: the connection closes", true}
	case kindHLS:
		// internal/hls: at the live edge the reader holds the playlist
		// reload for the read timeout (--no-media-timeout), and fails when
		// no new segment comes or no packet for that long. It fetches
		// ahead, so the hold may end before the media it holds is played.
		return kindInfo{"HLS primary (publisher killed, playlist stops growing)", noMediaTimeout,
			fmt.Sprintf("no new segment for --no-media-timeout %v: the reader holds its playlist reload at the live edge that long, while it still plays the segments it fetched (it starts 3 behind the edge)", noMediaTimeout), false}
	}
	return kindInfo{"RTMP primary (publisher killed)", 0, "at once: the unpublish notice", true}
}

// primary is one running primary: the URL the liverelay task reads, the URL
// the ffmpeg relay reads ("" where ffmpeg is not compared), and the
// programs that serve them.
type primary struct {
	kind         string
	lrURL, ffURL string
	pubs         []*proc
	segment      time.Duration // HLS: the playlist's target duration
}

// startPrimary starts a primary of kind and waits until a relay can read
// it: a primary that fails to open sends a task with a backup to the backup
// at once, and the trial would measure nothing.
func (b *bench) startPrimary(ctx context.Context, kind string, i int) (*primary, error) {
	p := &primary{kind: kind}
	name := fmt.Sprintf("primary-%s-%02d", kind, i)
	var err error
	switch kind {
	case kindRTMP:
		err = b.rtmpPrimary(ctx, p, name)
	case kindHTTPFLV:
		err = b.httpFLVPrimary(ctx, p)
	case kindHLS:
		err = b.hlsPrimary(ctx, p, name)
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("%s primary: %w", kind, err)
	}
	return p, nil
}

// kill kills every program of the primary at the same moment, then waits
// for them.
func (p *primary) kill() {
	for _, pub := range p.pubs {
		if !pub.exited() {
			_ = pub.cmd.Process.Kill()
		}
	}
	for _, pub := range p.pubs {
		pub.kill()
	}
}

func (b *bench) rtmpPrimary(ctx context.Context, p *primary, name string) error {
	url := b.src.url(name)
	pub, err := publish(b.ps, b.clip, url)
	if err != nil {
		return err
	}
	p.pubs = append(p.pubs, pub)
	p.lrURL, p.ffURL = url, url
	if err := b.waitPublishing(ctx, b.src, []string{name}, 20*time.Second); err != nil {
		return fmt.Errorf("%w: %s", err, pub.output())
	}
	return nil
}

// httpFLVPrimary serves the clip twice, on two ports, killed together:
// ffmpeg's HTTP server takes a single client, and each relay needs one.
func (b *bench) httpFLVPrimary(ctx context.Context, p *primary) error {
	for _, u := range []*string{&p.lrURL, &p.ffURL} {
		port, err := freePort()
		if err != nil {
			return err
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/live.flv", port)
		pub, err := serveFLV(b.ps, b.clip, url)
		if err != nil {
			return err
		}
		p.pubs = append(p.pubs, pub)
		if err := waitListening(ctx, pub, port, 10*time.Second); err != nil {
			return err
		}
		*u = url
	}
	return nil
}

// waitListening waits until pub listens on 127.0.0.1:port. It reads
// /proc/net/tcp rather than connecting: a connection would be the one
// client ffmpeg's HTTP server takes.
func waitListening(ctx context.Context, pub *proc, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !tcpListening(port) {
		if pub.exited() {
			return fmt.Errorf("%s exited: %s", pub.name, pub.output())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on port %d after %v", pub.name, port, timeout)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// tcpListening reports whether a socket listens on 127.0.0.1:port.
func tcpListening(port int) bool {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return false
	}
	defer f.Close()
	want := fmt.Sprintf("0100007F:%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st ...; st 0A is LISTEN.
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && fields[1] == want && fields[3] == "0A" {
			return true
		}
	}
	return false
}

// hlsMinSegments is how many segments the playlist lists before the trial
// starts: liverelay starts three segments from the live edge and fails a
// playlist that lists fewer (internal/hls).
const hlsMinSegments = 4

// hlsPrimary writes the clip as live HLS into a directory the source nginx
// serves. Only liverelay reads it: ffmpeg's HLS reader reloads a playlist
// that stopped growing up to -m3u8_hold_counters (1000) times before it
// gives up, and would need tuning of its own to be a fair peer.
func (b *bench) hlsPrimary(ctx context.Context, p *primary, name string) error {
	dir := b.src.hlsDir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pub, err := publishHLS(b.ps, b.clip, dir)
	if err != nil {
		return err
	}
	p.pubs = append(p.pubs, pub)
	p.lrURL = b.src.hlsURL(name)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if body, err := b.src.get("/hls/" + name + "/index.m3u8"); err == nil {
			if n, target := playlistSegments(body); n >= hlsMinSegments {
				p.segment = target
				return nil
			}
		}
		if pub.exited() {
			return fmt.Errorf("%s exited: %s", pub.name, pub.output())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("playlist %s lists fewer than %d segments after 30s", p.lrURL, hlsMinSegments)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// playlistSegments counts the segments of a media playlist and reads its
// target duration.
func playlistSegments(body []byte) (n int, target time.Duration) {
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#EXT-X-TARGETDURATION:"):
			if s, err := strconv.Atoi(strings.TrimPrefix(line, "#EXT-X-TARGETDURATION:")); err == nil {
				target = time.Duration(s) * time.Second
			}
		case line != "" && !strings.HasPrefix(line, "#"):
			n++
		}
	}
	return n, target
}
