package mp4

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// FuzzOpenBytes opens arbitrary bytes as an MP4 and plays them: never a
// panic, and timestamps that never go backwards whatever the tables say.
func FuzzOpenBytes(f *testing.F) {
	tiny, _ := tinyMP4()
	f.Add(tiny)
	f.Add(tiny[:len(tiny)-7])
	path := encode(f, f.TempDir(), "seed.mp4", "-t", "0.5", "-s", "64x48", "-movflags", "+faststart")
	f.Add(readFile(f, path))
	f.Add([]byte("\x00\x00\x00\x08moov"))
	f.Add([]byte{0, 0, 0, 1, 'm', 'd', 'a', 't', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})

	f.Fuzz(func(t *testing.T, b []byte) {
		began := time.Now()
		defer func() {
			if d := time.Since(began); d > 2*time.Second {
				t.Fatalf("slow input: %v", d)
			}
		}()
		for _, start := range []time.Duration{0, 300 * time.Millisecond} {
			src, err := openReaderAt(context.Background(), bytes.NewReader(b), int64(len(b)), start)
			if err != nil {
				continue
			}
			var last time.Duration
			for i := 0; i < 10000; i++ {
				p, err := src.ReadPacket(context.Background())
				if err != nil {
					if errors.Is(err, ErrClosed) {
						t.Fatal(err)
					}
					break
				}
				if i > 0 && p.DTS < last {
					t.Fatalf("packet %d: DTS %v after %v", i, p.DTS, last)
				}
				last = p.DTS
			}
			src.Close()
		}
	})
}
