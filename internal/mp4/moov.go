package mp4

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/liverelay/liverelay/internal/media"
)

const (
	// maxMoovSize bounds the moov read into memory. Its sample tables grow
	// with the file (about 10 bytes a sample): 24 hours of 60 fps video and
	// 48 kHz AAC take about 100 MiB.
	maxMoovSize = 256 << 20
	// maxTopLevelBoxes bounds the walk to the moov.
	maxTopLevelBoxes = 4096
)

// findMoov walks the top-level boxes, reading only their headers, and
// returns the moov box (header included).
func findMoov(ctx context.Context, r *windowReader) ([]byte, error) {
	var hdr [16]byte
	var pos int64
	for i := 0; pos < r.size; i++ {
		if i == maxTopLevelBoxes {
			return nil, fmt.Errorf("%w: more than %d top-level boxes", ErrCorrupt, maxTopLevelBoxes)
		}
		n := min(int64(len(hdr)), r.size-pos)
		if n < 8 {
			break // trailing bytes, not a box
		}
		if err := r.readAt(ctx, scanSlot, hdr[:n], uint64(pos)); err != nil {
			return nil, err
		}
		typ := hdr[4:8]
		if !validFourCC(typ) {
			if i == 0 {
				return nil, fmt.Errorf("%w: not an MP4 file", ErrCorrupt)
			}
			return nil, fmt.Errorf("%w: no box at offset %d", ErrCorrupt, pos)
		}
		size, hdrLen := uint64(binary.BigEndian.Uint32(hdr[:4])), uint64(8)
		switch size {
		case 0: // to the end of the file
			size = uint64(r.size - pos)
		case 1:
			if n < 16 {
				return nil, fmt.Errorf("%w: box %q at offset %d: truncated header", ErrCorrupt, typ, pos)
			}
			size, hdrLen = binary.BigEndian.Uint64(hdr[8:]), 16
		}
		if size < hdrLen {
			return nil, fmt.Errorf("%w: box %q at offset %d: size %d", ErrCorrupt, typ, pos, size)
		}
		switch string(typ) {
		case "moov":
			if size > maxMoovSize {
				return nil, fmt.Errorf("moov box of %d bytes: more than the %d we accept", size, maxMoovSize)
			}
			if size > uint64(r.size-pos) {
				return nil, fmt.Errorf("%w: the moov box runs past the end of the file (truncated file?)", ErrCorrupt)
			}
			moov := make([]byte, size)
			if err := r.readAt(ctx, scanSlot, moov, uint64(pos)); err != nil {
				return nil, err
			}
			return moov, nil
		case "moof":
			return nil, errFragmented
		}
		if size > uint64(r.size-pos) {
			break // a box cut short: nothing can follow it
		}
		pos += int64(size)
	}
	return nil, fmt.Errorf("%w: no moov box (the file may be truncated, or not an MP4 file)", ErrCorrupt)
}

var errFragmented = errors.New("fragmented MP4 (moof) is not supported")

// decodeMoov decodes the moov with mp4ff. mp4ff was not written for hostile
// input: a panic inside it becomes an error.
func decodeMoov(moov []byte) (m *mp4.MoovBox, err error) {
	defer func() {
		if p := recover(); p != nil {
			m, err = nil, fmt.Errorf("%w: decode moov: %v", ErrCorrupt, p)
		}
	}()
	box, err := mp4.DecodeBoxSR(0, bits.NewFixedSliceReader(moov))
	if err != nil {
		return nil, fmt.Errorf("%w: decode moov: %v", ErrCorrupt, err)
	}
	m, ok := box.(*mp4.MoovBox)
	if !ok {
		return nil, fmt.Errorf("%w: decode moov: got %s", ErrCorrupt, box.Type())
	}
	return m, nil
}

type codec uint8

const (
	codecH264 codec = iota + 1
	codecH265
	codecAAC
)

// track is one track being played.
type track struct {
	kind       media.Kind
	codec      codec
	timescale  uint32
	seqHeader  []byte // FLV body of the sequence header
	lengthSize int    // NALU length size of the samples as stored (video)
	table      *sampleTable
	// shift maps media time to the file's presentation timeline (edit
	// list): output ticks = media ticks + shift.
	shift    int64
	duration time.Duration // presentation duration
	slot     int           // read-ahead window
	cur      cursor
}

// outDTS returns the decode time of the cursor's sample on the output
// timeline, in ticks.
func (t *track) outDTS() int64 { return t.cur.dts + t.shift }

// buildTracks picks the first supported video and audio tracks of the moov.
func buildTracks(moov *mp4.MoovBox, records []codecRecord) ([]*track, error) {
	if moov.Mvhd == nil || moov.Mvhd.Timescale == 0 {
		return nil, fmt.Errorf("%w: no movie header", ErrCorrupt)
	}
	if moov.Mvex != nil {
		return nil, errFragmented
	}
	movieTS := moov.Mvhd.Timescale
	var video, audio *track
	var unsupported error
	for i, trak := range moov.Traks {
		if trak.Mdia == nil || trak.Mdia.Hdlr == nil || trak.Mdia.Mdhd == nil ||
			trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil || trak.Mdia.Minf.Stbl.Stsd == nil {
			continue
		}
		var kind media.Kind
		switch trak.Mdia.Hdlr.HandlerType {
		case "vide":
			if video != nil {
				continue
			}
			kind = media.KindVideo
		case "soun":
			if audio != nil {
				continue
			}
			kind = media.KindAudio
		default:
			continue // subtitles, timecodes, hints...
		}
		var rec codecRecord
		if i < len(records) {
			rec = records[i]
		}
		t, err := newTrack(trak, kind, rec, movieTS)
		if err != nil {
			var uc *UnsupportedCodecError
			if errors.As(err, &uc) {
				unsupported = err
				continue // another track of this kind may do
			}
			if errors.Is(err, errNoSamples) {
				continue
			}
			return nil, fmt.Errorf("trak %d: %w", i+1, err)
		}
		if kind == media.KindVideo {
			video = t
		} else {
			audio = t
		}
	}
	if unsupported != nil {
		// A file whose video or audio we cannot play is not played with
		// one of the two: the caller raises an alarm naming the codec.
		if video == nil || audio == nil {
			return nil, unsupported
		}
	}
	var tracks []*track
	for _, t := range []*track{video, audio} {
		if t != nil {
			t.slot = 1 + len(tracks)
			tracks = append(tracks, t)
		}
	}
	if len(tracks) == 0 {
		return nil, errors.New("no audio or video track")
	}
	return tracks, nil
}

// newTrack checks one trak and prepares it for playing.
func newTrack(trak *mp4.TrakBox, kind media.Kind, rec codecRecord, movieTS uint32) (*track, error) {
	mdhd, stbl := trak.Mdia.Mdhd, trak.Mdia.Minf.Stbl
	t := &track{kind: kind, timescale: mdhd.Timescale}
	if err := t.setCodec(stbl.Stsd, rec); err != nil {
		return nil, err
	}
	if t.timescale == 0 {
		return nil, fmt.Errorf("%w: timescale 0", ErrCorrupt)
	}
	var err error
	if t.table, err = newSampleTable(stbl, tickLimit(t.timescale), kind == media.KindAudio); err != nil {
		if errors.Is(err, errNoSamples) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := t.applyEdits(trak.Edts, movieTS, mdhd.Duration); err != nil {
		return nil, err
	}
	return t, nil
}

// setCodec reads the sample entry and builds the sequence header.
func (t *track) setCodec(stsd *mp4.StsdBox, rec codecRecord) error {
	if len(stsd.Children) == 0 {
		return fmt.Errorf("%w: empty sample description", ErrCorrupt)
	}
	fourCC := stsd.Children[0].Type()
	switch fourCC {
	case "avc1", "avc3", "hvc1", "hev1":
		if t.kind != media.KindVideo {
			return &UnsupportedCodecError{Codec: fourCC}
		}
		if rec.record == nil {
			return fmt.Errorf("%w: %s sample entry without its configuration record", ErrCorrupt, fourCC)
		}
		if rec.lengthSize == 3 {
			return fmt.Errorf("%w: %s: NALU length size 3", ErrCorrupt, fourCC)
		}
		t.codec, t.lengthSize = codecH264, rec.lengthSize
		codecID := byte(media.CodecIDH264)
		if fourCC == "hvc1" || fourCC == "hev1" {
			t.codec, codecID = codecH265, media.CodecIDH265
		}
		// Key frame, codec id; packet type 0 (sequence header); composition time 0.
		t.seqHeader = append([]byte{1<<4 | codecID, 0, 0, 0, 0}, rec.record...)
		return nil
	case "mp4a":
		if t.kind != media.KindAudio {
			return &UnsupportedCodecError{Codec: fourCC}
		}
		entry, ok := stsd.Children[0].(*mp4.AudioSampleEntryBox)
		if !ok {
			return fmt.Errorf("%w: mp4a sample entry", ErrCorrupt)
		}
		esds := entry.Esds
		if esds == nil && entry.Wave != nil {
			esds = entry.Wave.Esds // QuickTime style
		}
		if esds == nil || esds.DecConfigDescriptor == nil {
			return fmt.Errorf("%w: mp4a sample entry without esds", ErrCorrupt)
		}
		dcd := esds.DecConfigDescriptor
		switch dcd.ObjectType {
		case 0x40, 0x66, 0x67, 0x68: // MPEG-4 AAC; MPEG-2 AAC Main, LC, SSR
		case 0x69, 0x6b:
			return &UnsupportedCodecError{Codec: "mp3"}
		default:
			return &UnsupportedCodecError{Codec: fmt.Sprintf("mp4a (object type 0x%02x)", dcd.ObjectType)}
		}
		if dcd.DecSpecificInfo == nil || len(dcd.DecSpecificInfo.DecConfig) < 2 {
			return fmt.Errorf("%w: AAC without AudioSpecificConfig", ErrCorrupt)
		}
		t.codec = codecAAC
		// AAC, 44 kHz, 16 bits, stereo (what FLV says for any AAC); packet type 0.
		t.seqHeader = append([]byte{0xaf, 0}, dcd.DecSpecificInfo.DecConfig...)
		return nil
	}
	return &UnsupportedCodecError{Codec: codecName(fourCC)}
}

// applyEdits reads the edit list. Empty edits at its start delay the
// track; the first edit with media delays it by minus its media time (the
// decoder delay of B-frames, AAC priming): media time m is shown at 0.
// Later edits (cuts inside the track) are not applied: every sample is
// played. Without an edit list, media time 0 is shown at 0.
func (t *track) applyEdits(edts *mp4.EdtsBox, movieTS uint32, mdhdDuration uint64) error {
	maxTicks := int64(tickLimit(t.timescale))
	if edts == nil || len(edts.Elst) == 0 || len(edts.Elst[0].Entries) == 0 {
		d := mdhdDuration
		if d == 0 || d > uint64(maxTicks) { // unknown (or all ones): what the samples say
			d = 0
			for i, n := range t.table.sttsCount {
				d += uint64(n) * uint64(t.table.sttsDelta[i])
			}
		}
		t.duration = ticksToDuration(int64(d), t.timescale)
		return nil
	}
	maxMovieTicks := tickLimit(movieTS)
	var delay, total uint64 // movie ticks
	mediaTime, found := int64(0), false
	for _, e := range edts.Elst[0].Entries {
		total += e.SegmentDuration
		if e.SegmentDuration > maxMovieTicks || total > maxMovieTicks || e.MediaTime > maxTicks {
			return fmt.Errorf("%w: edit list out of range", ErrCorrupt)
		}
		switch {
		case found:
		case e.MediaTime < 0: // empty edit
			delay += e.SegmentDuration
		default:
			mediaTime, found = e.MediaTime, true
		}
	}
	t.shift = mulDiv(int64(delay), uint64(t.timescale), uint64(movieTS)) - mediaTime
	t.duration = ticksToDuration(int64(total), movieTS)
	if total == 0 { // edits of unknown duration
		var d int64
		for i, n := range t.table.sttsCount {
			d += int64(n) * int64(t.table.sttsDelta[i])
		}
		t.duration = ticksToDuration(max(d+t.shift, 0), t.timescale)
	}
	return nil
}

// codecName names a sample entry's codec for an error message.
func codecName(fourCC string) string {
	names := map[string]string{
		"av01": "av1", "vp08": "vp8", "vp09": "vp9", "mp4v": "mpeg4", "vvc1": "h266", "vvi1": "h266",
		"dvh1": "h265 (dolby vision dvh1)", "dvhe": "h265 (dolby vision dvhe)", "dvav": "h264 (dolby vision dvav)",
		"ac-3": "ac3", "ec-3": "eac3", "ac-4": "ac4", "Opus": "opus", "fLaC": "flac", ".mp3": "mp3",
		"alac": "alac", "lpcm": "pcm", "twos": "pcm", "sowt": "pcm", "samr": "amr", "mjpg": "mjpeg", "jpeg": "mjpeg",
		"encv": "encrypted video (encv)", "enca": "encrypted audio (enca)",
	}
	if n, ok := names[fourCC]; ok {
		return n
	}
	return fmt.Sprintf("%q", bytes.TrimRight([]byte(fourCC), "\x00"))
}
