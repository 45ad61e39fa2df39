package testpeer

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// ProbePacket is one packet as ffprobe sees it.
type ProbePacket struct {
	Stream   string // "video" or "audio"
	DTS, PTS time.Duration
	Keyframe bool
	Size     int
}

// Probe is what ffprobe found in a file.
type Probe struct {
	VideoCodec, AudioCodec string // ffprobe's codec names: "h264", "aac"...
	Packets                []ProbePacket
	Duration               time.Duration
}

// ProbeFile runs ffprobe on path and returns its streams and packets.
func ProbeFile(t testing.TB, path string) Probe {
	t.Helper()
	RequireTools(t, "ffprobe")
	ffprobe, _ := lookTool("ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ffprobe, "-v", "error", "-show_streams", "-show_packets", "-show_format",
		"-of", "json", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	setDeathSignal(cmd)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("testpeer: ffprobe %s: %v\n%s", path, err, stderr.String())
	}
	probe, err := parseProbe(out)
	if err != nil {
		t.Fatalf("testpeer: ffprobe %s: %v\n%.2000s", path, err, out)
	}
	return probe
}

func parseProbe(out []byte) (Probe, error) {
	var doc struct {
		Streams []struct {
			Index     int    `json:"index"`
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
		} `json:"streams"`
		Packets []struct {
			CodecType string `json:"codec_type"`
			PTSTime   string `json:"pts_time"`
			DTSTime   string `json:"dts_time"`
			Size      string `json:"size"`
			Flags     string `json:"flags"`
		} `json:"packets"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return Probe{}, err
	}
	var pr Probe
	for _, s := range doc.Streams {
		switch s.CodecType {
		case "video":
			if pr.VideoCodec == "" {
				pr.VideoCodec = s.CodecName
			}
		case "audio":
			if pr.AudioCodec == "" {
				pr.AudioCodec = s.CodecName
			}
		}
	}
	for _, p := range doc.Packets {
		if p.CodecType != "video" && p.CodecType != "audio" {
			continue
		}
		pts, okPTS := seconds(p.PTSTime)
		dts, okDTS := seconds(p.DTSTime)
		if !okDTS {
			dts = pts
		}
		if !okPTS {
			pts = dts
		}
		size, _ := strconv.Atoi(p.Size)
		pr.Packets = append(pr.Packets, ProbePacket{
			Stream:   p.CodecType,
			DTS:      dts,
			PTS:      pts,
			Keyframe: len(p.Flags) > 0 && p.Flags[0] == 'K',
			Size:     size,
		})
	}
	if d, ok := seconds(doc.Format.Duration); ok {
		pr.Duration = d
	}
	return pr, nil
}

func seconds(s string) (time.Duration, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return time.Duration(math.Round(f*1e6)) * time.Microsecond, true
}

// Stream returns the packets of one stream ("video" or "audio"), in file order.
func (p Probe) Stream(stream string) []ProbePacket {
	var out []ProbePacket
	for _, pk := range p.Packets {
		if pk.Stream == stream {
			out = append(out, pk)
		}
	}
	return out
}

// Count returns the number of packets of a stream.
func (p Probe) Count(stream string) int { return len(p.Stream(stream)) }

// Keyframes returns the number of keyframe packets of a stream.
func (p Probe) Keyframes(stream string) int {
	n := 0
	for _, pk := range p.Stream(stream) {
		if pk.Keyframe {
			n++
		}
	}
	return n
}

// MaxGap returns the largest DTS step between consecutive packets of a
// stream: the longest hole in it.
func (p Probe) MaxGap(stream string) time.Duration {
	var gap time.Duration
	pks := p.Stream(stream)
	for i := 1; i < len(pks); i++ {
		gap = max(gap, pks[i].DTS-pks[i-1].DTS)
	}
	return gap
}

// Backwards returns how many times the DTS of a stream decreases.
func (p Probe) Backwards(stream string) int {
	n := 0
	pks := p.Stream(stream)
	for i := 1; i < len(pks); i++ {
		if pks[i].DTS < pks[i-1].DTS {
			n++
		}
	}
	return n
}

// Span returns the DTS of the last packet of a stream minus that of the first.
func (p Probe) Span(stream string) time.Duration {
	pks := p.Stream(stream)
	if len(pks) < 2 {
		return 0
	}
	return pks[len(pks)-1].DTS - pks[0].DTS
}
