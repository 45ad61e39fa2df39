package rtmp

import (
	"errors"
	"fmt"
	"io"
)

// chunkReader reassembles RTMP messages from chunks.
//
// It stands in for gortmplib's rawmessage.Reader on the hot path of a relay:
//   - one read buffer per connection, read with as large a read as the
//     socket offers, so a burst of messages costs one syscall, and buffered
//     says whether more is waiting without a syscall;
//   - message bodies are assembled in a buffer kept per chunk stream and
//     reused, so a steady stream allocates nothing per message;
//   - chunk stream ids of the 2- and 3-byte forms (64..65599) are read.
//
// A message returned by read is valid until the next call.
type chunkReader struct {
	src       io.Reader
	buf       []byte
	r, w      int // buf[r:w] is read and not yet parsed
	chunkSize uint32

	// beforeFill runs before each read from src (the connection sets its
	// read deadline there).
	beforeFill func() error

	streams map[uint32]*chunkStream
	last    *chunkStream // the stream of the previous chunk (most chunks repeat it)
	lastID  uint32

	// Acknowledgements: the peer asks for one each ackWindow bytes.
	ackWindow uint32
	received  uint32 // bytes read from src, modulo 2^32 as RTMP counts them
	acked     uint32
	onAck     func(received uint32) error

	msg rtmpMessage
}

// rtmpMessage is one reassembled message.
type rtmpMessage struct {
	csid      uint32
	typ       uint8
	msid      uint32
	timestamp uint32 // ms, 32-bit as on the wire
	body      []byte
}

// chunkStream is the header state of one chunk stream: what a chunk with a
// compressed header (types 1, 2, 3) inherits.
type chunkStream struct {
	started   bool // a type 0 header was seen
	timestamp uint32
	delta     uint32
	length    uint32
	typ       uint8
	msid      uint32
	extended  bool // the last header carried an extended timestamp field
	body      []byte
	inMessage bool // body holds a partial message
}

const (
	readBufferSize = 32 << 10
	// maxMessageSize bounds a message a server may make us assemble (the
	// wire allows 16 MiB; a keyframe of a 4K stream is a few hundred KiB).
	maxMessageSize = 8 << 20
	// maxChunkStreams bounds the chunk streams a server may open.
	maxChunkStreams = 64
)

func newChunkReader(src io.Reader, onAck func(uint32) error) *chunkReader {
	return &chunkReader{
		src:       src,
		buf:       make([]byte, readBufferSize),
		chunkSize: 128,
		streams:   make(map[uint32]*chunkStream),
		onAck:     onAck,
	}
}

// buffered returns the number of bytes read from the connection and not yet
// parsed.
func (r *chunkReader) buffered() int { return r.w - r.r }

// setChunkSize applies a Set Chunk Size message of the peer.
func (r *chunkReader) setChunkSize(size uint32) error {
	if size == 0 || size > maxMessageSize {
		return fmt.Errorf("server set chunk size %d (want 1..%d)", size, maxMessageSize)
	}
	r.chunkSize = size
	return nil
}

// setWindowAckSize applies a Window Acknowledgement Size message.
func (r *chunkReader) setWindowAckSize(size uint32) { r.ackWindow = size }

// abort drops the partial message of a chunk stream (Abort message).
func (r *chunkReader) abort(csid uint32) {
	if cs := r.streams[csid]; cs != nil {
		cs.body, cs.inMessage = cs.body[:0], false
	}
}

// read returns the next complete message.
func (r *chunkReader) read() (*rtmpMessage, error) {
	for {
		done, cs, err := r.readChunk()
		if err != nil {
			return nil, err
		}
		if done {
			r.msg = rtmpMessage{csid: r.lastID, typ: cs.typ, msid: cs.msid, timestamp: cs.timestamp, body: cs.body}
			return &r.msg, nil
		}
	}
}

// readChunk reads one chunk; done says whether it completed a message.
func (r *chunkReader) readChunk() (done bool, cs *chunkStream, err error) {
	if err := r.ensure(1); err != nil {
		return false, nil, err
	}
	b0 := r.buf[r.r]
	format := b0 >> 6
	csid := uint32(b0 & 0x3f)
	hdr := 1
	switch csid {
	case 0:
		hdr = 2
	case 1:
		hdr = 3
	}
	hdr += [4]int{11, 7, 3, 0}[format]
	if err := r.ensure(hdr); err != nil {
		return false, nil, err
	}
	p := r.buf[r.r : r.r+hdr]
	switch csid {
	case 0:
		csid = 64 + uint32(p[1])
		p = p[2:]
	case 1:
		csid = 64 + uint32(p[1]) + uint32(p[2])<<8
		p = p[3:]
	default:
		p = p[1:]
	}
	r.r += hdr

	cs = r.last
	if cs == nil || r.lastID != csid {
		if cs = r.streams[csid]; cs == nil {
			if len(r.streams) >= maxChunkStreams {
				return false, nil, fmt.Errorf("more than %d chunk streams", maxChunkStreams)
			}
			cs = &chunkStream{}
			r.streams[csid] = cs
		}
		r.last, r.lastID = cs, csid
	}
	if format != 0 && !cs.started {
		return false, nil, fmt.Errorf("chunk stream %d: type %d chunk before a type 0 chunk", csid, format)
	}
	if format != 3 && cs.inMessage {
		return false, nil, fmt.Errorf("chunk stream %d: type %d chunk inside a message (want type 3)", csid, format)
	}

	var tsField uint32
	if format < 3 {
		tsField = uint24(p)
		cs.extended = tsField == 0xffffff
	}
	if format < 2 {
		cs.length = uint24(p[3:])
		cs.typ = p[6]
		if cs.length > maxMessageSize {
			return false, nil, fmt.Errorf("chunk stream %d: message of %d bytes (limit %d)", csid, cs.length, maxMessageSize)
		}
	}
	if format == 0 {
		cs.msid = uint32(p[7]) | uint32(p[8])<<8 | uint32(p[9])<<16 | uint32(p[10])<<24
	}
	if cs.extended {
		if err := r.ensure(4); err != nil {
			return false, nil, err
		}
		ext := be32At(r.buf[r.r:])
		r.r += 4
		if format < 3 {
			tsField = ext
		}
		// In a type 3 chunk the field repeats the header's value.
	}
	switch {
	case format == 0:
		cs.timestamp, cs.delta, cs.started = tsField, 0, true
	case format < 3:
		cs.timestamp += tsField
		cs.delta = tsField
	case !cs.inMessage:
		// A type 3 chunk starting a message repeats the previous delta.
		cs.timestamp += cs.delta
	}
	if !cs.inMessage {
		cs.body, cs.inMessage = cs.body[:0], true
	}

	n := min(cs.length-uint32(len(cs.body)), r.chunkSize)
	if err := r.copyBody(cs, int(n)); err != nil {
		return false, nil, err
	}
	if err := r.ack(); err != nil {
		return false, nil, err
	}
	if uint32(len(cs.body)) < cs.length {
		return false, cs, nil
	}
	cs.inMessage = false
	return true, cs, nil
}

// copyBody appends n bytes of chunk payload to the stream's message body,
// refilling the read buffer as it empties.
func (r *chunkReader) copyBody(cs *chunkStream, n int) error {
	for n > 0 {
		if r.r == r.w {
			if err := r.fill(); err != nil {
				return err
			}
		}
		k := min(n, r.w-r.r)
		cs.body = append(cs.body, r.buf[r.r:r.r+k]...)
		r.r += k
		n -= k
	}
	return nil
}

// ensure makes n (at most len(buf)) unparsed bytes available.
func (r *chunkReader) ensure(n int) error {
	for r.w-r.r < n {
		if err := r.fill(); err != nil {
			return err
		}
	}
	return nil
}

// fill reads once from src, after moving unparsed bytes to the front.
func (r *chunkReader) fill() error {
	if r.r > 0 {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	if r.beforeFill != nil {
		if err := r.beforeFill(); err != nil {
			return err
		}
	}
	n, err := r.src.Read(r.buf[r.w:])
	r.w += n
	r.received += uint32(n)
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	if errors.Is(err, io.EOF) && r.w > 0 {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// ack sends an acknowledgement once a window of bytes has been received.
// Bytes still unparsed count as received: the peer counts what it sent.
func (r *chunkReader) ack() error {
	if r.ackWindow == 0 || r.received-r.acked < r.ackWindow {
		return nil
	}
	r.acked = r.received
	return r.onAck(r.received)
}

func uint24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }
