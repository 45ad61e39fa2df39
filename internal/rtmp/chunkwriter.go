package rtmp

import (
	"bufio"
	"encoding/binary"
	"fmt"
)

// chunkWriter splits messages into RTMP chunks.
//
// It stands in for gortmplib's rawmessage.Writer, which leaves the extended
// timestamp of type-3 chunks zero instead of repeating the header's value.
// That matters when a message longer than a chunk follows a header whose
// timestamp (or delta) is 2^24 ms (4h39m) or more, for instance the first
// keyframe after a type-0 header late in a stream: readers that check the
// repeated field (librtmp-style heuristics) then take the 4 bytes as payload
// and lose the chunk stream. (nginx-rtmp happens to skip them.) This writer
//   - repeats the extended timestamp in type-3 continuation chunks, as the
//     specification, Flash, librtmp and ffmpeg do;
//   - starts every message with a type 0, 1 or 2 header, never type 3, so a
//     message's timestamp never depends on how a server reads a type-3 header
//     (nginx-rtmp takes the extended field of one as the new delta);
//   - treats timestamps as 32-bit serial numbers: a timestamp that wraps past
//     2^32 ms is a small positive delta, not a jump backwards;
//   - writes message stream ids little-endian, as the specification says;
//   - writes bodies from the caller's slice, without a copy per chunk.
type chunkWriter struct {
	bw        *bufio.Writer
	chunkSize uint32
	streams   [64]chunkStreamState // indexed by chunk stream id (2..63)
	hdr       [18]byte
}

type chunkStreamState struct {
	used      bool
	msid      uint32
	typ       uint8
	length    uint32
	timestamp uint32
}

const (
	// Chunk stream ids, as ffmpeg assigns them.
	csidControl       = 2 // protocol control and user control messages
	csidCommand       = 3 // NetConnection commands
	csidAudio         = 4
	csidData          = 5
	csidVideo         = 6
	csidStreamCommand = 8 // NetStream commands (play, publish)

	maxChunkSize = 0x7fffffff
)

func newChunkWriter(bw *bufio.Writer) *chunkWriter {
	return &chunkWriter{bw: bw, chunkSize: 128}
}

// writeMessage writes one message and flushes it (control messages and
// commands; media is buffered by Conn.WritePacket and flushed per batch).
func (w *chunkWriter) writeMessage(csid byte, typ uint8, msid, timestamp uint32, body []byte) error {
	if err := w.bufferMessage(csid, typ, msid, timestamp, body); err != nil {
		return err
	}
	return w.bw.Flush()
}

func (w *chunkWriter) bufferMessage(csid byte, typ uint8, msid, timestamp uint32, body []byte) error {
	if csid < 2 || csid > 63 {
		return fmt.Errorf("chunk stream id %d out of range", csid)
	}
	if len(body) > 0xffffff {
		return fmt.Errorf("message of %d bytes exceeds the 16 MiB RTMP limit", len(body))
	}
	length := uint32(len(body))
	st := &w.streams[csid]

	h := w.hdr[:0]
	var tsField uint32 // absolute timestamp (type 0) or delta (types 1, 2)
	delta := timestamp - st.timestamp
	switch {
	case !st.used || st.msid != msid || int32(delta) < 0:
		tsField = timestamp
		h = append(h, csid) // fmt 0
		h = appendUint24(h, min(tsField, 0xffffff))
		h = appendUint24(h, length)
		h = append(h, typ)
		h = binary.LittleEndian.AppendUint32(h, msid)
	case st.typ != typ || st.length != length:
		tsField = delta
		h = append(h, 1<<6|csid)
		h = appendUint24(h, min(tsField, 0xffffff))
		h = appendUint24(h, length)
		h = append(h, typ)
	default:
		tsField = delta
		h = append(h, 2<<6|csid)
		h = appendUint24(h, min(tsField, 0xffffff))
	}
	extended := tsField >= 0xffffff
	if extended {
		h = binary.BigEndian.AppendUint32(h, tsField)
	}
	*st = chunkStreamState{used: true, msid: msid, typ: typ, length: length, timestamp: timestamp}

	if _, err := w.bw.Write(h); err != nil {
		return err
	}
	for first := true; first || len(body) > 0; first = false {
		if !first {
			c := w.hdr[:0]
			c = append(c, 3<<6|csid)
			if extended {
				c = binary.BigEndian.AppendUint32(c, tsField)
			}
			if _, err := w.bw.Write(c); err != nil {
				return err
			}
		}
		n := min(uint32(len(body)), w.chunkSize)
		if _, err := w.bw.Write(body[:n]); err != nil {
			return err
		}
		body = body[n:]
	}
	return nil
}

func appendUint24(b []byte, v uint32) []byte {
	return append(b, byte(v>>16), byte(v>>8), byte(v))
}
