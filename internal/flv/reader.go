// Package flv reads FLV: the file header and the tags that follow it, from a
// file or a live HTTP-FLV stream. A tag body is an RTMP message body, so tags
// become media.Packets as they are.
package flv

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/liverelay/liverelay/internal/media"
)

// Sizes of the fixed parts of an FLV stream.
const (
	headerSize    = 9  // "FLV", version, flags, data offset
	tagHeaderSize = 11 // type, size, timestamp, extended timestamp, stream id
	backPtrSize   = 4  // PreviousTagSize after the header and after each tag
)

// DefaultMaxTagSize is the largest tag body a Reader accepts unless told
// otherwise. The size field has 24 bits (16 MiB - 1); real tags stay far
// below this (a 4K keyframe is a few MiB), so a larger one means a corrupt
// or hostile stream.
const DefaultMaxTagSize = 8 << 20

// maxHeaderPadding bounds the bytes a header's data offset may ask us to
// skip before the first tag. Muxers write 9 (no padding).
const maxHeaderPadding = 1 << 16

// ErrNotFLV reports input that does not start with the FLV signature.
var ErrNotFLV = errors.New("not an FLV stream (no FLV signature)")

// ErrTagTooLarge reports a tag whose body exceeds the Reader's MaxTagSize.
var ErrTagTooLarge = errors.New("FLV tag too large")

// Header is the FLV file header.
type Header struct {
	Version  uint8
	HasAudio bool
	HasVideo bool
}

// Reader reads an FLV stream: ReadHeader once, then ReadTag until an error.
// It is not safe for concurrent use.
type Reader struct {
	// MaxTagSize is the largest body accepted; 0 means DefaultMaxTagSize.
	MaxTagSize int

	r   io.Reader
	hdr [tagHeaderSize]byte
	buf []byte // body of the last tag, reused
	pkt media.Packet
}

// NewReader returns a Reader reading from r. It does its own buffering only
// when r is not already an io.ByteReader (a *bufio.Reader, a bytes.Reader).
func NewReader(r io.Reader) *Reader {
	if _, ok := r.(io.ByteReader); !ok {
		r = bufio.NewReaderSize(r, 64<<10)
	}
	return &Reader{r: r}
}

// Buffered reports whether bytes already read from the underlying reader
// wait to be parsed, so that the next ReadTag may not need to wait for it
// (a relay gathers what is there into one batch).
func (r *Reader) Buffered() bool {
	br, ok := r.r.(*bufio.Reader)
	return ok && br.Buffered() > 0
}

// ReadHeader reads the 9-byte FLV header and PreviousTagSize0. It returns
// ErrNotFLV when the signature is wrong, and io.ErrUnexpectedEOF (or io.EOF
// on empty input) when the input is short.
func (r *Reader) ReadHeader() (Header, error) {
	var b [headerSize]byte
	if _, err := io.ReadFull(r.r, b[:]); err != nil {
		return Header{}, fmt.Errorf("flv header: %w", err)
	}
	if b[0] != 'F' || b[1] != 'L' || b[2] != 'V' {
		return Header{}, ErrNotFLV
	}
	h := Header{Version: b[3], HasAudio: b[4]&0x04 != 0, HasVideo: b[4]&0x01 != 0}
	offset := binary.BigEndian.Uint32(b[5:])
	if offset < headerSize || offset-headerSize > maxHeaderPadding {
		return Header{}, fmt.Errorf("flv header: invalid data offset %d", offset)
	}
	if _, err := io.CopyN(io.Discard, r.r, int64(offset-headerSize)+backPtrSize); err != nil {
		return Header{}, fmt.Errorf("flv header: %w", noEOF(err))
	}
	return h, nil
}

// ReadTag reads the next audio (8), video (9) or script data (18) tag,
// skipping tags of other types, and its trailing PreviousTagSize. The
// packet's DTS is the tag's 32-bit timestamp in milliseconds, as written
// (not unwrapped). The packet and its Body are valid until the next call.
//
// It returns io.EOF at a clean end (between tags), io.ErrUnexpectedEOF
// inside a tag, ErrTagTooLarge for a body larger than MaxTagSize, and an
// error for an encrypted tag (filter bit set), which cannot be relayed.
// PreviousTagSize is not checked: muxers get it wrong, and it carries
// nothing a reader needs.
func (r *Reader) ReadTag() (*media.Packet, error) {
	maxSize := r.MaxTagSize
	if maxSize <= 0 {
		maxSize = DefaultMaxTagSize
	}
	for {
		if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("flv tag header: %w", err)
		}
		h := r.hdr[:]
		if h[0]&0x20 != 0 {
			return nil, errors.New("flv tag: encrypted tags are not supported")
		}
		typ := h[0] & 0x1f
		size := int(h[1])<<16 | int(h[2])<<8 | int(h[3])
		// 24 low bits, then the extended byte holds the upper 8 bits.
		ts := uint32(h[7])<<24 | uint32(h[4])<<16 | uint32(h[5])<<8 | uint32(h[6])

		switch media.Kind(typ) {
		case media.KindAudio, media.KindVideo, media.KindData:
		default:
			if _, err := io.CopyN(io.Discard, r.r, int64(size)+backPtrSize); err != nil {
				return nil, fmt.Errorf("flv tag (type %d): %w", typ, noEOF(err))
			}
			continue
		}
		if size > maxSize {
			return nil, fmt.Errorf("%w: type %d, %d bytes (limit %d)", ErrTagTooLarge, typ, size, maxSize)
		}
		body, err := r.readBody(size)
		if err != nil {
			return nil, fmt.Errorf("flv tag (type %d, %d bytes): %w", typ, size, err)
		}
		if _, err := io.ReadFull(r.r, r.hdr[:backPtrSize]); err != nil {
			return nil, fmt.Errorf("flv tag (type %d): previous tag size: %w", typ, noEOF(err))
		}
		r.pkt = media.Packet{Kind: media.Kind(typ), DTS: time.Duration(ts) * time.Millisecond, Body: body}
		return &r.pkt, nil
	}
}

// readBody reads size bytes into the reused buffer. The buffer grows with
// the bytes that actually arrive, never at once to the size a header claims,
// so a lying header on a short input costs no large allocation.
func (r *Reader) readBody(size int) ([]byte, error) {
	const step = 256 << 10
	if cap(r.buf) >= size {
		r.buf = r.buf[:size]
		if _, err := io.ReadFull(r.r, r.buf); err != nil {
			return nil, noEOF(err)
		}
		return r.buf, nil
	}
	r.buf = r.buf[:0]
	for len(r.buf) < size {
		n := min(size-len(r.buf), max(step, len(r.buf)))
		start := len(r.buf)
		r.buf = slices.Grow(r.buf, n)[:start+n]
		if _, err := io.ReadFull(r.r, r.buf[start:]); err != nil {
			return nil, noEOF(err)
		}
	}
	return r.buf, nil
}

// noEOF turns io.EOF inside a structure into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
