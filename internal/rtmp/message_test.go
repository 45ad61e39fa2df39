package rtmp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"

	"github.com/liverelay/liverelay/internal/media"
)

// fakeConn reads from a fixed byte stream and records what is written.
type fakeConn struct {
	r io.Reader
	w bytes.Buffer
}

func (f *fakeConn) Read(p []byte) (int, error)       { return f.r.Read(p) }
func (f *fakeConn) Write(p []byte) (int, error)      { return f.w.Write(p) }
func (f *fakeConn) Close() error                     { return nil }
func (f *fakeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (f *fakeConn) SetDeadline(time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// newTestConn returns a Conn past its setup, reading serverBytes.
func newTestConn(serverBytes []byte, publish bool) (*Conn, *fakeConn) {
	fc := &fakeConn{r: bytes.NewReader(serverBytes)}
	c := &Conn{
		nconn:    fc,
		counter:  bytecounter.NewReadWriter(fc),
		opt:      Options{ReadTimeout: time.Second, WriteTimeout: time.Second},
		what:     "rtmp test",
		rawURL:   "rtmp://127.0.0.1/live/src",
		publish:  publish,
		started:  !publish,
		streamID: 1,
	}
	c.r = newChunkReader(c.counter, c.sendAck)
	c.r.beforeFill = c.renewReadDeadline
	c.w = newChunkWriter(bufio.NewWriter(c.counter))
	return c, fc
}

// serverStream writes messages as a server would.
type serverStream struct {
	buf bytes.Buffer
	w   *chunkWriter
}

func newServerStream() *serverStream {
	s := &serverStream{}
	s.w = newChunkWriter(bufio.NewWriter(&s.buf))
	return s
}

func (s *serverStream) msg(t testing.TB, csid byte, typ uint8, ts uint32, body []byte) {
	t.Helper()
	if err := s.w.writeMessage(csid, typ, 1, ts, body); err != nil {
		t.Fatal(err)
	}
}

func amf(t testing.TB, values ...any) []byte {
	t.Helper()
	b, err := amf0.Data(values).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func userControl(event uint16, data ...byte) []byte {
	return append([]byte{byte(event >> 8), byte(event)}, data...)
}

func flvTag(typ uint8, ts uint32, body []byte) []byte {
	b := []byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body)),
		byte(ts >> 16), byte(ts >> 8), byte(ts), byte(ts >> 24), 0, 0, 0}
	b = append(b, body...)
	n := uint32(11 + len(body))
	return append(b, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func TestReadPacket(t *testing.T) {
	s := newServerStream()
	avcHeader := []byte{0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f}
	s.msg(t, csidControl, msgSetChunkSize, 0, be32(100))
	s.w.chunkSize = 100
	s.msg(t, csidControl, msgWindowAckSize, 0, be32(500))
	s.msg(t, csidControl, msgUserControl, 0, userControl(eventStreamBegin, 0, 0, 0, 1))
	s.msg(t, csidData, msgDataAMF0, 0, amf(t, "|RtmpSampleAccess", true, true))
	s.msg(t, csidData, msgDataAMF0, 0, amf(t, "@setDataFrame", "onMetaData", amf0.ECMAArray{{Key: "width", Value: 1280.0}}))
	s.msg(t, csidVideo, msgVideo, 1000, avcHeader)
	s.msg(t, csidAudio, msgAudio, 1000, []byte{0xaf, 0, 0x12, 0x10})
	s.msg(t, csidControl, msgUserControl, 0, userControl(eventPingRequest, 0, 0, 0x30, 0x39))
	s.msg(t, csidVideo, msgVideo, 1033, bytes.Repeat([]byte{0x27}, 600)) // crosses the ack window
	s.msg(t, csidVideo, msgVideo, 1066, nil)                             // empty: dropped
	s.msg(t, csidCommand, msgCommandAMF0, 0, amf(t, "onStatus", 0.0, nil,
		amf0.Object{{Key: "level", Value: "status"}, {Key: "code", Value: "NetStream.Play.PublishNotify"}}))
	agg := append(flvTag(msgVideo, 5000, []byte{0x27, 1}), flvTag(msgAudio, 5010, []byte{0xaf, 1})...)
	s.msg(t, 7, msgAggregate, 1100, agg)
	// 32-bit wrap: 0xfffffff0 then 0x10 is 32 ms later, not 49 days earlier.
	// (Each step is read as the nearest value, so the clock gets there in
	// steps shorter than 2^31 ms.)
	s.msg(t, csidVideo, msgVideo, 0x70000000, []byte{0x27, 2})
	s.msg(t, csidVideo, msgVideo, 0xe0000000, []byte{0x27, 2})
	s.msg(t, csidVideo, msgVideo, 0xfffffff0, []byte{0x27, 2})
	s.msg(t, csidVideo, msgVideo, 0x10, []byte{0x27, 3})
	s.msg(t, csidControl, msgUserControl, 0, userControl(eventStreamEOF, 0, 0, 0, 1))

	c, fc := newTestConn(s.buf.Bytes(), false)
	type want struct {
		kind media.Kind
		dts  time.Duration
		n    int
	}
	wants := []want{
		{media.KindData, 0, -1},
		{media.KindVideo, 1000 * time.Millisecond, len(avcHeader)},
		{media.KindAudio, 1000 * time.Millisecond, 4},
		{media.KindVideo, 1033 * time.Millisecond, 600},
		{media.KindVideo, 1100 * time.Millisecond, 2},
		{media.KindAudio, 1110 * time.Millisecond, 2},
		{media.KindVideo, 0x70000000 * time.Millisecond, 2},
		{media.KindVideo, 0xe0000000 * time.Millisecond, 2},
		{media.KindVideo, (1<<32 - 16) * time.Millisecond, 2},
		{media.KindVideo, (1<<32 + 16) * time.Millisecond, 2},
	}
	for i, w := range wants {
		p, err := c.ReadPacket(context.Background())
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if p.Kind != w.kind || p.DTS != w.dts || (w.n >= 0 && len(p.Body) != w.n) {
			t.Fatalf("packet %d: kind %d dts %v len %d; want %+v", i, p.Kind, p.DTS, len(p.Body), w)
		}
		if p.Kind == media.KindData {
			if name, _, _ := amf0StringPrefix(p.Body); name != "onMetaData" {
				t.Fatalf("data packet starts with %q, want onMetaData (unwrapped)", name)
			}
		}
	}
	if _, err := c.ReadPacket(context.Background()); !errors.Is(err, ErrUnpublished) {
		t.Fatalf("after StreamEOF: %v, want ErrUnpublished", err)
	}
	if _, err := c.ReadPacket(context.Background()); !errors.Is(err, ErrUnpublished) {
		t.Fatalf("error is not sticky: %v", err)
	}

	// What the client answered: a pong echoing the ping, an acknowledgement.
	bc := bytecounter.NewReader(&fc.w)
	r := rawmessage.NewReader(bc, bc, func(uint32) error { return nil })
	var gotPong, gotAck bool
	for {
		m, err := r.Read()
		if err != nil {
			break
		}
		switch {
		case m.Type == msgUserControl && bytes.Equal(m.Body, userControl(eventPingResponse, 0, 0, 0x30, 0x39)):
			gotPong = true
		case m.Type == msgAck && len(m.Body) == 4 && be32At(m.Body) > 500:
			gotAck = true
		}
	}
	if !gotPong || !gotAck {
		t.Errorf("client answers: pong %v, ack %v", gotPong, gotAck)
	}
}

func TestReadPacketStatus(t *testing.T) {
	for _, tc := range []struct {
		code, level string
		unpublished bool
	}{
		{"NetStream.Play.UnpublishNotify", "status", true},
		{"NetStream.Play.Stop", "status", true},
		{"NetStream.Play.Failed", "error", false},
	} {
		s := newServerStream()
		s.msg(t, csidCommand, msgCommandAMF0, 0, amf(t, "onStatus", 0.0, nil,
			amf0.Object{{Key: "level", Value: tc.level}, {Key: "code", Value: tc.code}, {Key: "description", Value: "for live/src"}}))
		c, _ := newTestConn(s.buf.Bytes(), false)
		_, err := c.ReadPacket(context.Background())
		if errors.Is(err, ErrUnpublished) != tc.unpublished {
			t.Errorf("%s: %v; want ErrUnpublished %v", tc.code, err, tc.unpublished)
		}
		var se *StatusError
		if !tc.unpublished && (!errors.As(err, &se) || se.Code != tc.code) {
			t.Errorf("%s: %v; want a StatusError", tc.code, err)
		}
	}
}

func TestWritePacket(t *testing.T) {
	c, fc := newTestConn(nil, true)
	meta := amf(t, "onMetaData", amf0.ECMAArray{{Key: "duration", Value: 0.0}})
	wrapped := amf(t, "@setDataFrame", "onMetaData", amf0.ECMAArray{{Key: "duration", Value: 0.0}})
	for _, p := range []media.Packet{
		{Kind: media.KindData, Body: meta},
		{Kind: media.KindData, Body: wrapped},
		{Kind: media.KindVideo, DTS: 1<<32*time.Millisecond + 5*time.Millisecond + 900*time.Microsecond, Body: []byte{0x17, 1}},
		{Kind: media.KindAudio, DTS: 40 * time.Millisecond, Body: []byte{0xaf, 1}},
	} {
		if err := c.WritePacket(&p); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WritePacket(&media.Packet{Kind: 7}); err == nil {
		t.Error("kind 7 accepted")
	}
	if fc.w.Len() != 0 {
		t.Fatalf("%d bytes written before Flush, want the batch buffered", fc.w.Len())
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}

	bc := bytecounter.NewReader(&fc.w)
	r := rawmessage.NewReader(bc, bc, func(uint32) error { return nil })
	for i, want := range []struct {
		typ  uint8
		csid byte
		ts   time.Duration
		body []byte
	}{
		{msgDataAMF0, csidData, 0, wrapped},
		{msgDataAMF0, csidData, 0, wrapped},
		{msgVideo, csidVideo, 5 * time.Millisecond, []byte{0x17, 1}},
		{msgAudio, csidAudio, 40 * time.Millisecond, []byte{0xaf, 1}},
	} {
		m, err := r.Read()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.Type != want.typ || m.ChunkStreamID != want.csid || m.Timestamp != want.ts || !bytes.Equal(m.Body, want.body) ||
			m.MessageStreamID != 0x01000000 {
			t.Errorf("message %d: type %d csid %d ts %v msid %#x body %x; want %+v", i, m.Type, m.ChunkStreamID, m.Timestamp, m.MessageStreamID, m.Body, want)
		}
	}
}

// FuzzReadPacket feeds arbitrary server bytes (chunks of messages) to a
// playing connection: it must return packets that are audio, video or
// onMetaData with a body, or an error, and never panic or hang.
func FuzzReadPacket(f *testing.F) {
	s := newServerStream()
	s.w.chunkSize = 64
	s.msg(f, csidControl, msgSetChunkSize, 0, be32(64))
	s.msg(f, csidControl, msgWindowAckSize, 0, be32(100))
	s.msg(f, csidData, msgDataAMF0, 0, amf(f, "@setDataFrame", "onMetaData", amf0.ECMAArray{{Key: "w", Value: 1.0}}))
	s.msg(f, csidVideo, msgVideo, 10, bytes.Repeat([]byte{0x17}, 150))
	s.msg(f, csidControl, msgUserControl, 0, userControl(eventPingRequest, 1, 2, 3, 4))
	s.msg(f, 7, msgAggregate, 20, append(flvTag(8, 1, []byte{0xaf, 1}), flvTag(18, 2, amf(f, "onMetaData"))...))
	s.msg(f, csidCommand, msgCommandAMF0, 0, amf(f, "onStatus", 0.0, nil, amf0.Object{{Key: "code", Value: "NetStream.Play.Stop"}}))
	f.Add(s.buf.Bytes())
	f.Add([]byte{0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, _ := newTestConn(b, false)
		for range 1000 {
			p, err := c.ReadPacket(context.Background())
			if err != nil {
				return
			}
			switch p.Kind {
			case media.KindAudio, media.KindVideo:
				if len(p.Body) == 0 {
					t.Fatal("empty media packet")
				}
			case media.KindData:
				if name, _, _ := amf0StringPrefix(p.Body); name != "onMetaData" {
					t.Fatalf("data packet %q", name)
				}
			default:
				t.Fatalf("packet kind %d", p.Kind)
			}
		}
	})
}
