package mp4

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/liverelay/liverelay/internal/media"
)

// byteSource is where a file's bytes come from: ranged HTTP requests or a
// local file.
type byteSource interface {
	// ReadRange reads like io.ReaderAt, and gives up when ctx ends.
	ReadRange(ctx context.Context, p []byte, off int64) (int, error)
	Size() int64
	Close() error
}

// readerAtSource is a byteSource over an io.ReaderAt (a local file, or
// bytes in tests).
type readerAtSource struct {
	ra    io.ReaderAt
	size  int64
	close func() error
}

func (s *readerAtSource) ReadRange(ctx context.Context, p []byte, off int64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return s.ra.ReadAt(p, off)
}

func (s *readerAtSource) Size() int64 { return s.size }

func (s *readerAtSource) Close() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

// Read-ahead. Samples are small (bytes to a few hundred KiB) and one request
// per sample would be slow over HTTP, so reads are served from windows:
// one per track, each a copy of windowSize bytes of the file. A read looks
// in every window first, so in an interleaved file (samples stored in
// decode order, as muxers write them) the tracks share what was fetched and
// each byte is fetched once; in a file that stores its tracks apart, each
// track streams through its own window. Memory is bounded by the number of
// windows, whatever the length of the file.
const (
	windowSize = 512 << 10
	// headSize is what Open fetches first: the top-level boxes of any file
	// and the whole moov of most files that have it at the start.
	headSize = 256 << 10
	// maxTracks is how many tracks are played: one video, one audio.
	maxTracks = 2
	// scanSlot is the window used to find the moov; track i uses 1+i.
	scanSlot = 0
)

// windowReader serves reads from its windows and refills them.
type windowReader struct {
	src     byteSource
	size    int64
	winSize int
	wins    [1 + maxTracks]window

	fetched int64 // bytes read from src, for tests
}

type window struct {
	off int64
	buf []byte
}

func newWindowReader(src byteSource, head []byte) *windowReader {
	r := &windowReader{src: src, size: src.Size(), winSize: windowSize}
	// The head holds the first samples of a file whose moov comes last, and
	// the first track to play is the first to read them.
	r.wins[1] = window{off: 0, buf: head}
	return r
}

// errPastEnd marks a read beyond the end of the file: the tables point at
// bytes that are not there.
var errPastEnd = errors.New("past the end of the file")

// readAt fills p with the bytes at off, through window slot.
func (r *windowReader) readAt(ctx context.Context, slot int, p []byte, off uint64) error {
	if off > uint64(r.size) || uint64(len(p)) > uint64(r.size)-off {
		return errPastEnd
	}
	o, end := int64(off), int64(off)+int64(len(p))
	for i := range r.wins {
		w := &r.wins[i]
		if o >= w.off && end <= w.off+int64(len(w.buf)) {
			copy(p, w.buf[o-w.off:])
			return nil
		}
	}
	if len(p) > r.winSize {
		return r.fetch(ctx, p, o)
	}
	w := &r.wins[slot]
	n := int(min(int64(r.winSize), r.size-o))
	for i := range r.wins {
		// Stop at a window ahead rather than fetch its bytes again: when
		// the tracks are read a little out of file order, the track behind
		// then gets the gap and the track ahead the long window.
		if other := &r.wins[i]; i != slot && len(other.buf) > 0 && other.off > o {
			n = min(n, max(int(other.off-o), len(p)))
		}
	}
	if cap(w.buf) < n {
		w.buf = make([]byte, n, r.winSize)
	}
	w.buf = w.buf[:n]
	if err := r.fetch(ctx, w.buf, o); err != nil {
		w.buf = w.buf[:0]
		return err
	}
	w.off = o
	copy(p, w.buf)
	return nil
}

// release drops the buffer of a window no longer needed.
func (r *windowReader) release(slot int) { r.wins[slot] = window{} }

func (r *windowReader) fetch(ctx context.Context, p []byte, off int64) error {
	n, err := r.src.ReadRange(ctx, p, off)
	r.fetched += int64(n)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		// The file got shorter than it was when opened. (A body cut short
		// on the way is another error, io.ErrUnexpectedEOF: the network's
		// fault, not the file's.)
		return fmt.Errorf("%w: got %d of %d bytes at offset %d", media.ErrFileEndEarly, n, len(p), off)
	}
	return err
}
