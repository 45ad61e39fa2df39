package rtmp

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/rawmessage"
)

// TestChunkWriterHeaders checks the bytes of each header type.
func TestChunkWriterHeaders(t *testing.T) {
	var buf bytes.Buffer
	w := newChunkWriter(bufio.NewWriter(&buf))
	step := func(typ uint8, ts uint32, body []byte, want string) {
		t.Helper()
		buf.Reset()
		if err := w.writeMessage(csidAudio, typ, 1, ts, body); err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(buf.Bytes()); got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
	// type 0: timestamp 1000, length 2, type 8, stream id 1 little-endian
	step(8, 1000, []byte{0xaf, 0x00}, "04"+"0003e8"+"000002"+"08"+"01000000"+"af00")
	// type 1: length changes; delta 23
	step(8, 1023, []byte{0xaf, 0x01, 0x02}, "44"+"000017"+"000003"+"08"+"af0102")
	// type 2: same length and type; delta 24 (never type 3, even for the same delta)
	step(8, 1047, []byte{0xaf, 0x01, 0x03}, "84"+"000018"+"af0103")
	step(8, 1071, []byte{0xaf, 0x01, 0x04}, "84"+"000018"+"af0104")
	// backwards: type 0 again
	step(8, 500, []byte{0xaf, 0x01, 0x05}, "04"+"0001f4"+"000003"+"08"+"01000000"+"af0105")
}

// TestChunkWriterExtendedTimestamp checks that continuation chunks repeat
// the extended timestamp.
func TestChunkWriterExtendedTimestamp(t *testing.T) {
	var buf bytes.Buffer
	w := newChunkWriter(bufio.NewWriter(&buf))
	w.chunkSize = 2
	if err := w.writeMessage(csidVideo, 9, 1, 0x01000000, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	want := "06" + "ffffff" + "000003" + "09" + "01000000" + "01000000" + "0102" + "c6" + "01000000" + "03"
	if got := hex.EncodeToString(buf.Bytes()); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestChunkWriterRoundTrip reads what the writer wrote with gortmplib's
// reader, across chunk boundaries, the 2^24 ms extended timestamp threshold
// and the 2^32 ms wrap.
func TestChunkWriterRoundTrip(t *testing.T) {
	type msg struct {
		csid byte
		typ  uint8
		ts   uint32
		size int
	}
	var msgs []msg
	for i, ts := range []uint32{0, 33, 66, 0xfffff0, 0xffffff, 0x1000010, 0x1000020, 0xfffffff0, 0xfffffffe, 5, 40} {
		msgs = append(msgs,
			msg{csidVideo, 9, ts, 100 + 7000*(i%3)},
			msg{csidAudio, 8, ts + 1, 300},
			msg{csidData, 18, 0, 50},
		)
	}

	var buf bytes.Buffer
	w := newChunkWriter(bufio.NewWriter(&buf))
	w.chunkSize = 4096
	if err := w.writeMessage(csidControl, msgSetChunkSize, 0, 0, be32(4096)); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		body := bytes.Repeat([]byte{byte(i)}, m.size)
		if err := w.writeMessage(m.csid, m.typ, 1, m.ts, body); err != nil {
			t.Fatal(err)
		}
	}

	bc := bytecounter.NewReader(&buf)
	r := rawmessage.NewReader(bc, bc, func(uint32) error { return nil })
	first, err := r.Read()
	if err != nil || first.Type != msgSetChunkSize {
		t.Fatalf("first message %+v, %v", first, err)
	}
	if err := r.SetChunkSize(4096); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		got, err := r.Read()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if got.ChunkStreamID != m.csid || got.Type != m.typ || got.Timestamp != time.Duration(m.ts)*time.Millisecond ||
			got.MessageStreamID != 0x01000000 || len(got.Body) != m.size || (m.size > 0 && got.Body[m.size-1] != byte(i)) {
			t.Fatalf("message %d: got csid %d type %d ts %d msid %#x len %d; want %+v",
				i, got.ChunkStreamID, got.Type, got.Timestamp/time.Millisecond, got.MessageStreamID, len(got.Body), m)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("%d bytes left", buf.Len())
	}
}
