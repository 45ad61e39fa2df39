package rtmp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type wireMsg struct {
	csid byte
	typ  uint8
	ts   uint32
	body []byte
}

// encode writes msgs with our chunk writer at chunkSize, after a Set Chunk
// Size message when chunkSize is not the default.
func encode(t testing.TB, chunkSize uint32, msgs []wireMsg) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := newChunkWriter(bufio.NewWriter(&buf))
	if chunkSize != 128 {
		if err := w.writeMessage(csidControl, msgSetChunkSize, 0, 0, be32(chunkSize)); err != nil {
			t.Fatal(err)
		}
		w.chunkSize = chunkSize
	}
	for _, m := range msgs {
		if err := w.writeMessage(m.csid, m.typ, 1, m.ts, m.body); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// decode reads every message of b, applying Set Chunk Size messages.
func decode(t testing.TB, src io.Reader) []wireMsg {
	t.Helper()
	r := newChunkReader(src, func(uint32) error { return nil })
	var out []wireMsg
	for {
		m, err := r.read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", len(out), err)
		}
		if m.typ == msgSetChunkSize {
			if err := r.setChunkSize(be32At(m.body)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if m.msid != 1 {
			t.Fatalf("message %d: stream id %d, want 1", len(out), m.msid)
		}
		out = append(out, wireMsg{byte(m.csid), m.typ, m.timestamp, append([]byte(nil), m.body...)})
	}
}

func sameMessages(t *testing.T, got, want []wireMsg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.csid != w.csid || g.typ != w.typ || g.ts != w.ts || !bytes.Equal(g.body, w.body) {
			t.Fatalf("message %d: csid %d type %d ts %#x len %d; want csid %d type %d ts %#x len %d",
				i, g.csid, g.typ, g.ts, len(g.body), w.csid, w.typ, w.ts, len(w.body))
		}
	}
}

// Interleaved streams, bodies across many chunks, every header type, the
// extended timestamp (absolute and delta), the 32-bit wrap: what the writer
// wrote is what the reader reads, whatever the read sizes.
func TestChunkReaderRoundTrip(t *testing.T) {
	var msgs []wireMsg
	for i, ts := range []uint32{0, 33, 66, 66, 0xfffff0, 0xffffff, 0x1000010, 0x1000020, 0xfffffff0, 0xfffffffe, 5, 40} {
		msgs = append(msgs,
			wireMsg{csidVideo, msgVideo, ts, bytes.Repeat([]byte{byte(i)}, 100+7000*(i%3))},
			wireMsg{csidAudio, msgAudio, ts + 1, bytes.Repeat([]byte{byte(i + 1)}, 300)},
			wireMsg{csidAudio, msgAudio, ts + 2, bytes.Repeat([]byte{byte(i + 2)}, 300)},
			wireMsg{csidData, msgDataAMF0, 0, nil},
		)
	}
	for _, size := range []uint32{128, 4096, 65536} {
		wire := encode(t, size, msgs)
		sameMessages(t, decode(t, bytes.NewReader(wire)), msgs)
		// One byte per read: every header and body crosses a refill.
		sameMessages(t, decode(t, iotest.OneByteReader(bytes.NewReader(wire))), msgs)
	}
}

// Forms our writer never produces, as other servers send them.
func TestChunkReaderHeaderForms(t *testing.T) {
	var wire []byte
	// csid 300 in the 3-byte form, type 0, ts 10, 3 bytes, type 9, msid 1.
	wire = append(wire, 1, byte(300-64), byte((300-64)>>8), 0, 0, 10, 0, 0, 3, 9, 1, 0, 0, 0, 'a', 'b', 'c')
	// Same stream, type 3 starting a new message: same length, type and
	// the previous delta (0 after a type 0 header).
	wire = append(wire, 3<<6|1, byte(300-64), byte((300-64)>>8), 'd', 'e', 'f')
	// csid 70 in the 2-byte form: type 0 at ts 100, then type 2 (+40),
	// then type 3 repeating the delta (+40 again).
	wire = append(wire, 0, 70-64, 0, 0, 100, 0, 0, 1, 8, 1, 0, 0, 0, 'x')
	wire = append(wire, 2<<6, 70-64, 0, 0, 40, 'y')
	wire = append(wire, 3<<6, 70-64, 'z')
	// An extended timestamp on a type 3 continuation chunk (csid 6, 130
	// bytes at the default chunk size of 128).
	hdr := []byte{6, 0xff, 0xff, 0xff, 0, 0, 130, 9, 1, 0, 0, 0}
	wire = append(wire, hdr...)
	wire = binary.BigEndian.AppendUint32(wire, 0x12345678)
	wire = append(wire, bytes.Repeat([]byte{7}, 128)...)
	wire = append(wire, 3<<6|6)
	wire = binary.BigEndian.AppendUint32(wire, 0x12345678)
	wire = append(wire, 7, 7)

	want := []wireMsg{
		{44, 9, 10, []byte("abc")}, // csid 300 truncated to a byte by wireMsg
		{44, 9, 10, []byte("def")},
		{70, 8, 100, []byte("x")},
		{70, 8, 140, []byte("y")},
		{70, 8, 180, []byte("z")},
		{6, 9, 0x12345678, bytes.Repeat([]byte{7}, 130)},
	}
	sameMessages(t, decode(t, bytes.NewReader(wire)), want)
}

func TestChunkReaderRejects(t *testing.T) {
	for name, wire := range map[string][]byte{
		"type 1 before type 0":      {1<<6 | 4, 0, 0, 1, 0, 0, 1, 8, 'a'},
		"type 3 before type 0":      {3<<6 | 4, 'a'},
		"type 0 inside a message":   append(append([]byte{4, 0, 0, 0, 0, 0, 200, 8, 1, 0, 0, 0}, make([]byte, 128)...), 4, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 'a'),
		"message over the limit":    {4, 0, 0, 0, 0xff, 0xff, 0xff, 8, 1, 0, 0, 0},
		"truncated inside a header": {4, 0, 0},
		"truncated inside a body":   {4, 0, 0, 0, 0, 0, 5, 8, 1, 0, 0, 0, 'a'},
	} {
		r := newChunkReader(bytes.NewReader(wire), func(uint32) error { return nil })
		if _, err := r.read(); err == nil {
			t.Errorf("%s: read a message", name)
		}
	}

	// Too many chunk streams.
	var wire []byte
	for id := 2; id < 2+maxChunkStreams+1; id++ {
		wire = append(wire, 0, byte(id), 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 'a')
	}
	r := newChunkReader(bytes.NewReader(wire), func(uint32) error { return nil })
	var err error
	for n := 0; err == nil; n++ {
		_, err = r.read()
		if n > maxChunkStreams+1 {
			t.Fatal("no limit on chunk streams")
		}
	}
	if !strings.Contains(err.Error(), "chunk streams") {
		t.Errorf("got %v, want the chunk stream limit", err)
	}
}

// An acknowledgement is sent each window of bytes received.
func TestChunkReaderAcks(t *testing.T) {
	msgs := []wireMsg{}
	for i := range 10 {
		msgs = append(msgs, wireMsg{csidVideo, msgVideo, uint32(i), make([]byte, 1000)})
	}
	wire := encode(t, 4096, msgs)
	var acks []uint32
	r := newChunkReader(iotest.OneByteReader(bytes.NewReader(wire)), func(n uint32) error { acks = append(acks, n); return nil })
	r.setWindowAckSize(2500)
	for {
		m, err := r.read()
		if err != nil {
			break
		}
		if m.typ == msgSetChunkSize {
			r.setChunkSize(be32At(m.body))
		}
	}
	// Checked after each chunk (about 1 kB here): one ack per window, late
	// by less than a chunk.
	if len(acks) < 3 {
		t.Fatalf("acks %v for %d bytes with a window of 2500", acks, len(wire))
	}
	prev := uint32(0)
	for _, a := range acks {
		if a-prev < 2500 || a-prev > 2500+1100 {
			t.Fatalf("acks %v: want one each 2500 bytes, within a chunk", acks)
		}
		prev = a
	}
}

// A steady stream allocates nothing per message once the buffers have
// grown to the largest message.
func TestChunkReaderAllocations(t *testing.T) {
	var msgs []wireMsg
	for i := range 200 {
		msgs = append(msgs, wireMsg{csidVideo, msgVideo, uint32(33 * i), make([]byte, 9000)},
			wireMsg{csidAudio, msgAudio, uint32(33 * i), make([]byte, 400)})
	}
	wire := encode(t, 4096, msgs)
	src := bytes.NewReader(wire)
	r := newChunkReader(src, func(uint32) error { return nil })
	read := func() {
		if _, err := r.read(); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		read() // set chunk size, then the first messages grow the buffers
	}
	r.setChunkSize(4096)
	allocs := testing.AllocsPerRun(300, read)
	if allocs != 0 {
		t.Fatalf("%v allocations per message", allocs)
	}
}

// FuzzChunkReader writes messages made from the input with our writer at a
// chunk size from the input, and reads them back.
func FuzzChunkReader(f *testing.F) {
	f.Add(uint16(128), []byte("\x06\x09hello\x04\x08world, audio"))
	f.Add(uint16(1), bytes.Repeat([]byte{5, 18, 1, 2, 3}, 20))
	f.Fuzz(func(t *testing.T, size uint16, in []byte) {
		chunkSize := uint32(size%8192) + 1
		var msgs []wireMsg
		ts := uint32(0)
		for len(in) >= 3 {
			n := int(in[2]) * 37
			body := bytes.Repeat(in[:1], n)
			csid := 2 + in[0]%62
			if csid == csidControl {
				csid = csidVideo // no control messages: they act on the reader
			}
			ts += uint32(in[1]) << (in[1] % 25)
			msgs = append(msgs, wireMsg{csid, 8 + in[1]%2, ts, body})
			in = in[3:]
		}
		sameMessages(t, decode(t, iotest.HalfReader(bytes.NewReader(encode(t, chunkSize, msgs)))), msgs)
	})
}
