package mp4

import (
	"encoding/binary"
	"iter"
)

// A few boxes are handled at the byte level, before and beside mp4ff: the
// top-level walk (so that the moov is found with range reads of box
// headers only, whatever lies between), and the codec configuration
// records, which are passed on as the file stores them.

// rawBox is a box inside a byte slice: its type and where its header,
// payload and end are.
type rawBox struct {
	typ                 string
	start, payload, end int
}

// rawBoxes yields the boxes laid end to end in b[from:to], and stops at the
// first malformed header.
func rawBoxes(b []byte, from, to int) iter.Seq[rawBox] {
	return func(yield func(rawBox) bool) {
		if to > len(b) {
			to = len(b)
		}
		for pos := from; to-pos >= 8; {
			size := uint64(binary.BigEndian.Uint32(b[pos:]))
			hdr := 8
			switch size {
			case 0:
				size = uint64(to - pos)
			case 1:
				if to-pos < 16 {
					return
				}
				size, hdr = binary.BigEndian.Uint64(b[pos+8:]), 16
			}
			if size < uint64(hdr) || size > uint64(to-pos) {
				return
			}
			box := rawBox{typ: string(b[pos+4 : pos+8]), start: pos, payload: pos + hdr, end: pos + int(size)}
			if !yield(box) {
				return
			}
			pos = box.end
		}
	}
}

// child returns the first box of type typ in parent's payload, skipping
// skip bytes of parent fields first.
func child(b []byte, parent rawBox, skip int, typ string) (rawBox, bool) {
	for c := range rawBoxes(b, parent.payload+skip, parent.end) {
		if c.typ == typ {
			return c, true
		}
	}
	return rawBox{}, false
}

// validFourCC reports whether a box type looks like one: printable ASCII,
// or the © of QuickTime metadata.
func validFourCC(t []byte) bool {
	for _, c := range t {
		if (c < 0x20 || c > 0x7e) && c != 0xa9 {
			return false
		}
	}
	return true
}

// visualSampleEntryFields is the size of a VisualSampleEntry's own fields,
// between its header and its child boxes (ISO/IEC 14496-12, 12.1.3).
const visualSampleEntryFields = 78

// codecRecord is the decoder configuration record of a trak's first sample
// entry (avcC or hvcC payload), found at the byte level.
type codecRecord struct {
	record     []byte // a copy, NALU length size set to 4
	lengthSize int    // NALU length size of the samples, as stored
}

// prepareMoov looks into each trak of the moov, in order, for the avcC or
// hvcC record of its first sample entry, and returns copies of them.
//
// It also edits the moov bytes before mp4ff decodes them: it sets the NALU
// length size of those records to 4 (mp4ff refuses any other size; we
// rewrite such samples to 4-byte lengths anyway, so the record we send says
// 4 too), and it renames the metadata boxes (udta, meta) of the moov and
// its traks to "free", so that metadata we never use cannot make a
// playable file fail to decode.
func prepareMoov(moov []byte) []codecRecord {
	var out []codecRecord
	top, ok := first(rawBoxes(moov, 0, len(moov)))
	if !ok {
		return nil
	}
	for box := range rawBoxes(moov, top.payload, top.end) {
		switch box.typ {
		case "udta", "meta":
			copy(moov[box.start+4:], "free")
		case "trak":
			out = append(out, trakRecord(moov, box))
		}
	}
	return out
}

func trakRecord(b []byte, trak rawBox) codecRecord {
	for box := range rawBoxes(b, trak.payload, trak.end) {
		if box.typ == "udta" || box.typ == "meta" {
			copy(b[box.start+4:], "free")
		}
	}
	box := trak
	for _, typ := range []string{"mdia", "minf", "stbl"} {
		var ok bool
		if box, ok = child(b, box, 0, typ); !ok {
			return codecRecord{}
		}
	}
	stsd, ok := child(b, box, 0, "stsd")
	if !ok {
		return codecRecord{}
	}
	// stsd: version and flags, entry count, then the entries.
	entry, ok := first(rawBoxes(b, stsd.payload+8, stsd.end))
	if !ok {
		return codecRecord{}
	}
	var recType string
	var lengthByte int // offset in the record of the byte holding lengthSizeMinusOne
	switch entry.typ {
	case "avc1", "avc3":
		recType, lengthByte = "avcC", 4
	case "hvc1", "hev1":
		recType, lengthByte = "hvcC", 21
	default:
		return codecRecord{}
	}
	rec, ok := child(b, entry, visualSampleEntryFields, recType)
	if !ok || rec.end-rec.payload <= lengthByte {
		return codecRecord{}
	}
	lb := &b[rec.payload+lengthByte]
	lengthSize := int(*lb&3) + 1
	*lb |= 3
	return codecRecord{record: append([]byte(nil), b[rec.payload:rec.end]...), lengthSize: lengthSize}
}

func first[T any](seq iter.Seq[T]) (T, bool) {
	for v := range seq {
		return v, true
	}
	var zero T
	return zero, false
}
