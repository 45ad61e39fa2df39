package media

import (
	"bytes"
	"testing"
)

func TestWithInbandParams(t *testing.T) {
	sps := []byte{0x67, 0x64, 0x00, 0x1f, 0xac}
	pps := []byte{0x68, 0xee, 0x3c, 0x80}
	rec := []byte{1, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0, byte(len(sps))}
	rec = append(rec, sps...)
	rec = append(rec, 1, 0, byte(len(pps)))
	rec = append(rec, pps...)
	seq := append([]byte{0x17, 0, 0, 0, 0}, rec...)
	idr := []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 0x88, 0x84}

	got := WithInbandParams(seq, idr)
	want := []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 5}
	want = append(want, sps...)
	want = append(want, 0, 0, 0, 4)
	want = append(want, pps...)
	want = append(want, 0, 0, 0, 3, 0x65, 0x88, 0x84)
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
	for name, args := range map[string][2][]byte{
		"truncated record":    {seq[:12], idr},
		"not a keyframe body": {seq, []byte{0x17, 0, 0, 0, 0}},
		"h265":                {append([]byte{0x1c}, seq[1:]...), idr},
	} {
		if got := WithInbandParams(args[0], args[1]); got != nil {
			t.Errorf("%s: got %x, want nil", name, got)
		}
	}
}

func FuzzWithInbandParams(f *testing.F) {
	f.Add([]byte{0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 1, 0x67, 1, 0, 1, 0x68}, []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65})
	f.Fuzz(func(t *testing.T, seq, key []byte) {
		out := WithInbandParams(seq, key)
		if out != nil && (len(out) <= len(key) || !bytes.Equal(out[len(out)-(len(key)-5):], key[5:])) {
			t.Fatalf("frame payload not kept at the end")
		}
	})
}
