package rtmp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bluenviron/gortmplib/pkg/amf0"

	"github.com/liverelay/liverelay/internal/media"
)

// handle processes one message from the server. It answers control
// messages, queues media packets (play), and returns commands to the caller.
func (c *Conn) handle(msg *rtmpMessage) (cmd command, isCmd bool, err error) {
	body := msg.body
	switch msg.typ {
	case msgSetChunkSize:
		if len(body) < 4 {
			return command{}, false, errors.New("short set chunk size message")
		}
		if err := c.r.setChunkSize(be32At(body) & 0x7fffffff); err != nil {
			return command{}, false, err
		}

	case msgAbort:
		if len(body) >= 4 {
			c.r.abort(be32At(body))
		}

	case msgWindowAckSize:
		if len(body) >= 4 {
			c.r.setWindowAckSize(be32At(body))
		}

	case msgUserControl:
		if len(body) < 2 {
			return command{}, false, nil
		}
		switch uint16(body[0])<<8 | uint16(body[1]) {
		case eventStreamEOF:
			if c.started {
				return command{}, false, fmt.Errorf("StreamEOF: %w", ErrUnpublished)
			}
		case eventPingRequest:
			if len(body) >= 6 {
				resp := make([]byte, 6)
				binary.BigEndian.PutUint16(resp, eventPingResponse)
				copy(resp[2:], body[2:6])
				if err := c.writeControl(msgUserControl, resp); err != nil {
					return command{}, false, fmt.Errorf("ping response: %w", err)
				}
			}
		}

	case msgCommandAMF3, msgCommandAMF0:
		if msg.typ == msgCommandAMF3 {
			// An AMF3 command message is an AMF0 one after a format byte.
			if len(body) == 0 {
				return command{}, false, nil
			}
			body = body[1:]
		}
		cmd, err := parseCommand(body)
		if err != nil {
			// A command we cannot read cannot be one we wait for.
			return command{}, false, nil
		}
		return cmd, true, nil

	case msgAudio, msgVideo:
		// Empty audio/video messages carry nothing; some servers send them.
		if len(body) > 0 {
			c.queue(media.Kind(msg.typ), msg.timestamp, body)
		}

	case msgDataAMF3, msgDataAMF0:
		if msg.typ == msgDataAMF3 {
			if len(body) == 0 {
				return command{}, false, nil
			}
			body = body[1:]
		}
		return command{}, false, c.handleData(msg.timestamp, body)

	case msgAggregate:
		return command{}, false, c.splitAggregate(msg.timestamp, body)
	}
	// Acknowledgements, peer bandwidth, shared objects: nothing to do.
	return command{}, false, nil
}

// handleData queues onMetaData (unwrapped from @setDataFrame) and reports the
// end of a recorded stream (onPlayStatus NetStream.Play.Complete). Other data
// messages (|RtmpSampleAccess, onBWDone...) concern players only.
func (c *Conn) handleData(ts uint32, body []byte) error {
	name, rest, ok := amf0StringPrefix(body)
	if !ok {
		return nil
	}
	if name == "@setDataFrame" {
		body = rest
		if name, _, ok = amf0StringPrefix(body); !ok {
			return nil
		}
	}
	switch name {
	case "onMetaData":
		c.queue(media.KindData, ts, body)
	case "onPlayStatus":
		if len(body) > maxCommandSize {
			return nil
		}
		data, err := amf0.Unmarshal(body)
		if err != nil || len(data) < 2 {
			return nil
		}
		if st, ok := statusOf(command{name: name, args: data[1:]}); ok && st.code == "NetStream.Play.Complete" {
			return fmt.Errorf("%s: %w", st.code, ErrUnpublished)
		}
	}
	return nil
}

// splitAggregate queues the messages of an aggregate message (type 22), which
// Wowza, Red5 and FMS send: FLV tags, each an 11-byte header (type, size,
// timestamp, stream id), a body and a 4-byte back pointer. The first tag's
// timestamp lines up with the aggregate's; the others keep their offsets.
func (c *Conn) splitAggregate(ts uint32, b []byte) error {
	first := true
	var base uint32
	for len(b) > 0 {
		if len(b) < 11 {
			return errors.New("aggregate message: truncated tag header")
		}
		typ := b[0]
		size := uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		tagTS := uint32(b[7])<<24 | uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6])
		b = b[11:]
		if uint32(len(b)) < size {
			return errors.New("aggregate message: truncated tag body")
		}
		body := b[:size:size]
		b = b[size:]
		if len(b) >= 4 {
			b = b[4:] // back pointer
		} else {
			b = nil
		}
		if first {
			base, first = tagTS, false
		}
		subTS := ts + (tagTS - base)
		switch typ {
		case msgAudio, msgVideo:
			if len(body) > 0 {
				c.queue(media.Kind(typ), subTS, body)
			}
		case msgDataAMF0:
			if err := c.handleData(subTS, body); err != nil {
				return err
			}
		}
	}
	return nil
}

// queue appends a packet, turning the 32-bit RTMP timestamp into a DTS that
// keeps growing past 2^32 ms: each timestamp is read as the value nearest to
// the last audio or video one (serial number arithmetic), which also keeps a
// source that restarts its clock where it belongs. Data messages do not move
// that reference: nginx-rtmp stamps the onMetaData it sends a new player 0,
// whatever the stream's clock.
func (c *Conn) queue(kind media.Kind, ts uint32, body []byte) {
	var dts int64
	switch {
	case !c.haveTS:
		dts = int64(ts)
		if kind != media.KindData {
			c.lastTS, c.haveTS = dts, true
		}
	default:
		dts = c.lastTS + int64(int32(ts-uint32(c.lastTS)))
		if kind != media.KindData {
			c.lastTS = dts
		}
	}
	c.pending = append(c.pending, media.Packet{
		Kind: kind,
		DTS:  time.Duration(dts) * time.Millisecond,
		Body: body,
	})
}

// amf0StringPrefix decodes the AMF0 string at the start of b.
func amf0StringPrefix(b []byte) (s string, rest []byte, ok bool) {
	if len(b) < 3 || b[0] != 0x02 {
		return "", nil, false
	}
	n := int(b[1])<<8 | int(b[2])
	if len(b) < 3+n {
		return "", nil, false
	}
	return string(b[3 : 3+n]), b[3+n:], true
}

var setDataFrame = []byte{0x02, 0x00, 0x0d, '@', 's', 'e', 't', 'D', 'a', 't', 'a', 'F', 'r', 'a', 'm', 'e'}

// withSetDataFrame prefixes onMetaData with @setDataFrame, the form servers
// expect from a publisher (and store as the stream's metadata). Bodies that
// already have it, and other data messages, are sent as they are.
func withSetDataFrame(body []byte) []byte {
	name, _, ok := amf0StringPrefix(body)
	if !ok || name != "onMetaData" {
		return body
	}
	out := make([]byte, 0, len(setDataFrame)+len(body))
	return append(append(out, setDataFrame...), body...)
}

// amf0Object builds an object from key, value pairs; []any values become
// strict arrays.
func amf0Object(kv ...any) amf0.Object {
	obj := make(amf0.Object, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if arr, ok := v.([]any); ok {
			v = amf0.StrictArray(arr)
		}
		obj = append(obj, amf0.ObjectEntry{Key: kv[i].(string), Value: v})
	}
	return obj
}

func be32At(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
