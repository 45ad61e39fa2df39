// Package rtmp plays and publishes RTMP streams with message-level
// pass-through: audio, video and data message bodies travel as they are, as
// media.Packet, and only timestamps are looked at.
//
// It builds on gortmplib's low-level packages (handshake, chunk reading, AMF0)
// and speaks the command sequence itself, because gortmplib's Client only
// hands out decoded messages.
package rtmp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortmplib/pkg/bytecounter"
	"github.com/bluenviron/gortmplib/pkg/handshake"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/redact"
)

// ErrUnpublished is returned by ReadPacket when the server says the stream
// ended: NetStream.Play.UnpublishNotify, NetStream.Play.Stop,
// NetStream.Play.Complete or a StreamEOF user control event.
var ErrUnpublished = errors.New("stream unpublished")

// Options tune a connection. The zero value is usable.
type Options struct {
	// DialContext opens the TCP connection; nil means a net.Dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLSConfig is used for rtmps; ServerName is filled from the URL's host
	// when empty.
	TLSConfig *tls.Config
	// WriteTimeout bounds each WritePacket (and each write during setup).
	// Default 5s.
	WriteTimeout time.Duration
	// ReadTimeout is how long a playing connection may receive nothing
	// before ReadPacket fails (it may take up to a tenth longer: the
	// deadline is renewed lazily, not on every read), and bounds the whole
	// setup (handshake, connect, createStream, play or publish) of Play and
	// Publish unless ctx has an earlier deadline. Default 10s.
	ReadTimeout time.Duration
}

const (
	defaultWriteTimeout = 5 * time.Second
	defaultReadTimeout  = 10 * time.Second

	publishChunkSize = 65536
	// writeBufferSize holds the messages of a batch between two flushes.
	writeBufferSize = 64 << 10
	// closeTimeout bounds the polite FCUnpublish/deleteStream of Close.
	closeTimeout = time.Second
)

// RTMP message types.
const (
	msgSetChunkSize     = 1
	msgAbort            = 2
	msgAck              = 3
	msgUserControl      = 4
	msgWindowAckSize    = 5
	msgSetPeerBandwidth = 6
	msgAudio            = 8
	msgVideo            = 9
	msgDataAMF3         = 15
	msgCommandAMF3      = 17
	msgDataAMF0         = 18
	msgCommandAMF0      = 20
	msgAggregate        = 22
)

// User control events.
const (
	eventStreamBegin     = 0
	eventStreamEOF       = 1
	eventSetBufferLength = 3
	eventPingRequest     = 6
	eventPingResponse    = 7
)

// Conn is a playing or publishing RTMP connection.
//
// A playing Conn is read by one goroutine (ReadPacket); a publishing Conn is
// written by one goroutine (WritePacket, Flush) and never read: servers do
// not need our acknowledgements, and reading would race with writing. Close
// may be called from any goroutine, at any time, to abort either.
type Conn struct {
	nconn    net.Conn
	counter  *bytecounter.ReadWriter
	r        *chunkReader
	w        *chunkWriter
	opt      Options
	what     string // "rtmp play <redacted URL>", the prefix of every error
	rawURL   string // to redact server texts that echo it
	streamID uint32 // message stream id returned by createStream
	publish  bool

	// play
	started bool           // NetStream.Play.Start (or Reset) received
	pending []media.Packet // packets decoded but not returned yet
	head    int            // index of the next pending packet
	pkt     media.Packet   // the packet ReadPacket returned last
	haveTS  bool
	lastTS  int64 // last timestamp, ms, unwrapped past 2^32
	readErr error // sticky
	// The read deadline, renewed only when less than ReadTimeout remains,
	// and the context whose cancellation closes the connection: both are
	// set up once, not for every packet.
	readDeadline time.Time
	watched      context.Context
	stopWatch    func() bool

	// publish
	wmu      sync.Mutex
	writeErr error // sticky
	// writeDeadlineSet: the deadline of the pending flush is set.
	writeDeadlineSet bool

	closeOnce sync.Once
	closeErr  error
}

// Play connects to rawURL and asks to play its stream. It returns once the
// server has answered NetStream.Play.Start (or NetStream.Play.Reset). nginx-rtmp
// says so even when nobody publishes the stream yet: packets then start when a
// publisher comes, and ReadPacket times out if none does.
//
// ctx bounds and cancels the setup only; the Conn outlives it.
func Play(ctx context.Context, rawURL string, opt Options) (*Conn, error) {
	return open(ctx, rawURL, opt, false)
}

// Publish connects to rawURL and publishes its stream ("live"). It returns
// once the server has answered NetStream.Publish.Start. A refusal (for
// example NetStream.Publish.BadName when the name is already published) is a
// *StatusError that names the status code.
//
// ctx bounds and cancels the setup only; the Conn outlives it.
func Publish(ctx context.Context, rawURL string, opt Options) (*Conn, error) {
	return open(ctx, rawURL, opt, true)
}

func open(ctx context.Context, rawURL string, opt Options, publish bool) (*Conn, error) {
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = defaultWriteTimeout
	}
	if opt.ReadTimeout <= 0 {
		opt.ReadTimeout = defaultReadTimeout
	}
	what := "rtmp play "
	if publish {
		what = "rtmp publish "
	}
	what += redact.URL(rawURL)

	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the whole URL: keep only its reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: invalid URL: %v", what, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "rtmp" && scheme != "rtmps" {
		return nil, fmt.Errorf("%s: unsupported scheme %q (want rtmp or rtmps)", what, u.Scheme)
	}
	tcURL, app, stream, err := SplitURL(u)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}

	setupCtx, cancel := context.WithTimeout(ctx, opt.ReadTimeout)
	defer cancel()

	nconn, err := dial(setupCtx, u, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, contextError(ctx, setupCtx, err))
	}
	c := &Conn{
		nconn:   nconn,
		counter: bytecounter.NewReadWriter(nconn),
		opt:     opt,
		what:    what,
		rawURL:  rawURL,
		publish: publish,
	}
	c.r = newChunkReader(c.counter, c.sendAck)
	c.w = newChunkWriter(bufio.NewWriterSize(c.counter, writeBufferSize))

	// Closing the connection is the only way to interrupt a blocked read or
	// write; the deadline covers a server that accepts and never answers.
	stop := context.AfterFunc(setupCtx, func() { nconn.Close() })
	if dl, ok := setupCtx.Deadline(); ok {
		nconn.SetDeadline(dl)
	}
	err = c.setup(tcURL, app, stream)
	if !stop() || err != nil {
		nconn.Close()
		if err == nil {
			err = setupCtx.Err()
		}
		return nil, fmt.Errorf("%s: %w", what, contextError(ctx, setupCtx, err))
	}
	nconn.SetDeadline(time.Time{})
	c.r.beforeFill = c.renewReadDeadline
	return c, nil
}

// contextError prefers the context's reason over the error a closed
// connection or an expired deadline produced because of it. (A deadline may
// fire a moment before its context reports it.)
func contextError(parent, setup context.Context, err error) error {
	expired := func(ctx context.Context) bool {
		dl, ok := ctx.Deadline()
		return ok && !time.Now().Before(dl)
	}
	switch {
	case parent.Err() != nil:
		return fmt.Errorf("%w (%v)", parent.Err(), err)
	case expired(parent):
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	case setup.Err() != nil || expired(setup):
		return fmt.Errorf("setup timed out: %w", err)
	}
	return err
}

func dial(ctx context.Context, u *url.URL, opt Options) (net.Conn, error) {
	host, port := u.Hostname(), u.Port()
	tlsOn := strings.EqualFold(u.Scheme, "rtmps")
	if port == "" {
		port = "1935"
		if tlsOn {
			port = "443"
		}
	}
	dialer := opt.DialContext
	if dialer == nil {
		dialer = (&net.Dialer{}).DialContext
	}
	nconn, err := dialer(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, err
	}
	if !tlsOn {
		return nconn, nil
	}
	cfg := &tls.Config{}
	if opt.TLSConfig != nil {
		cfg = opt.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	tc := tls.Client(nconn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nconn.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// setup runs the handshake and the command sequence ffmpeg and OBS use:
//
//	play:    connect, createStream, set buffer length, play
//	publish: set chunk size, connect, releaseStream, FCPublish, createStream, publish
func (c *Conn) setup(tcURL, app, stream string) error {
	if _, _, err := handshake.DoClient(c.counter, false, false); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}

	if c.publish {
		// Our chunk size first: every later message uses it.
		if err := c.writeControl(msgSetChunkSize, be32(publishChunkSize)); err != nil {
			return err
		}
		c.w.chunkSize = publishChunkSize
	}

	connectObj := amf0Object(
		"app", app,
		"tcUrl", tcURL,
	)
	if c.publish {
		connectObj = append(connectObj, amf0Object(
			"type", "nonprivate",
			"flashVer", "FMLE/3.0 (compatible; liverelay)",
		)...)
	} else {
		connectObj = append(connectObj, amf0Object(
			"flashVer", "LNX 9,0,124,2",
			"fpad", false,
			"capabilities", 15.0,
			"audioCodecs", 3575.0, // all legacy FLV sound formats
			"videoCodecs", 252.0, // all legacy FLV video codecs
			"videoFunction", 1.0,
			"objectEncoding", 0.0,
			// Enhanced RTMP: ask for H.265, AV1 and VP9 where the server has them.
			"fourCcList", []any{"avc1", "hvc1", "av01", "vp09"},
		)...)
	}
	if err := c.writeCommand(csidCommand, 0, "connect", 1, connectObj); err != nil {
		return err
	}
	if _, err := c.awaitResult("connect", 1); err != nil {
		return err
	}

	if c.publish {
		// Neither has an answer that matters: nginx-rtmp sends none for
		// releaseStream, and onFCPublish is informational.
		if err := c.writeCommand(csidCommand, 0, "releaseStream", 2, nil, stream); err != nil {
			return err
		}
		if err := c.writeCommand(csidCommand, 0, "FCPublish", 3, nil, stream); err != nil {
			return err
		}
	}
	const createTxn = 4
	if err := c.writeCommand(csidCommand, 0, "createStream", createTxn, nil); err != nil {
		return err
	}
	res, err := c.awaitResult("createStream", createTxn)
	if err != nil {
		return err
	}
	id, ok := streamIDOf(res)
	if !ok {
		return fmt.Errorf("createStream: no stream id in the answer %v", res.args)
	}
	c.streamID = id

	if c.publish {
		if err := c.writeCommand(csidStreamCommand, c.streamID, "publish", 5, nil, stream, "live"); err != nil {
			return err
		}
		return c.awaitStatus("publish", func(s status) bool { return s.code == "NetStream.Publish.Start" })
	}

	// A short client buffer: we relay, we do not render.
	body := make([]byte, 10)
	binary.BigEndian.PutUint16(body, eventSetBufferLength)
	binary.BigEndian.PutUint32(body[2:], c.streamID)
	binary.BigEndian.PutUint32(body[6:], 1000)
	if err := c.writeControl(msgUserControl, body); err != nil {
		return err
	}
	if err := c.writeCommand(csidStreamCommand, c.streamID, "play", 5, nil, stream); err != nil {
		return err
	}
	err = c.awaitStatus("play", func(s status) bool {
		return s.code == "NetStream.Play.Start" || s.code == "NetStream.Play.Reset"
	})
	c.started = err == nil
	return err
}

func streamIDOf(res command) (uint32, bool) {
	for _, a := range res.args {
		if f, ok := a.(float64); ok && f >= 0 && f <= math.MaxUint32 && f == math.Trunc(f) {
			return uint32(f), true
		}
	}
	return 0, false
}

// awaitResult reads until the _result or _error of transaction txn.
func (c *Conn) awaitResult(name string, txn float64) (command, error) {
	for {
		cmd, err := c.nextCommand()
		if err != nil {
			return command{}, fmt.Errorf("%s: %w", name, err)
		}
		if cmd.txn != txn || (cmd.name != "_result" && cmd.name != "_error") {
			continue
		}
		st, _ := statusOf(cmd)
		if cmd.name == "_error" || st.isError() {
			return command{}, c.statusError(name, st)
		}
		return cmd, nil
	}
}

// awaitStatus reads until an onStatus that done accepts, or one with level
// error.
func (c *Conn) awaitStatus(name string, done func(status) bool) error {
	for {
		cmd, err := c.nextCommand()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		st, ok := statusOf(cmd)
		if !ok {
			continue
		}
		switch {
		case cmd.name == "_error" || st.isError():
			return c.statusError(name, st)
		case cmd.name == "onStatus" && done(st):
			return nil
		}
	}
}

func (c *Conn) statusError(cmd string, st status) error {
	return &StatusError{
		Command:     cmd,
		Level:       st.level,
		Code:        st.code,
		Description: redact.Text(st.description, c.rawURL),
	}
}

// nextCommand reads messages until a command, handling the rest (and
// queueing media, which a server may send before play's onStatus).
func (c *Conn) nextCommand() (command, error) {
	for {
		msg, err := c.r.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || isEOF(err) {
				return command{}, fmt.Errorf("connection closed by the server before it answered: %w", err)
			}
			return command{}, err
		}
		queued := len(c.pending)
		cmd, isCmd, err := c.handle(msg)
		// Media queued before play's answer outlives the next read, which
		// reuses the message buffer: keep copies.
		for i := queued; i < len(c.pending); i++ {
			c.pending[i].Body = append([]byte(nil), c.pending[i].Body...)
		}
		if err != nil {
			return command{}, err
		}
		if isCmd {
			return cmd, nil
		}
	}
}

// ReadPacket returns the next audio, video or onMetaData message of a
// playing connection. The packet is valid until the next call. Control
// messages, acknowledgements and pings are handled on the way.
//
// It returns an error wrapping ErrUnpublished when the server says the stream
// ended, and fails after ReadTimeout without a message. Cancelling ctx closes
// the connection (so a blocked read returns): the Conn is unusable after that.
// Errors are sticky.
func (c *Conn) ReadPacket(ctx context.Context) (*media.Packet, error) {
	if c.publish {
		return nil, fmt.Errorf("%s: ReadPacket on a publishing connection", c.what)
	}
	if c.readErr != nil {
		return nil, c.readErr
	}
	if p := c.popPending(); p != nil {
		return p, nil
	}
	c.watch(ctx)
	for {
		msg, err := c.r.read()
		if err != nil {
			return nil, c.failRead(ctx, err)
		}
		cmd, isCmd, err := c.handle(msg)
		if err == nil && isCmd {
			err = c.playCommand(cmd)
		}
		if err != nil {
			return nil, c.failRead(ctx, err)
		}
		if p := c.popPending(); p != nil {
			return p, nil
		}
	}
}

// Buffered reports whether ReadPacket has a packet, or bytes of one, that it
// can return without waiting for the network.
func (c *Conn) Buffered() bool { return c.head < len(c.pending) || c.r.buffered() > 0 }

// watch makes cancelling ctx close the connection, so that a blocked read
// returns. The watch is set up once per context.
func (c *Conn) watch(ctx context.Context) {
	if ctx == c.watched || ctx.Done() == nil {
		return
	}
	if c.stopWatch != nil {
		c.stopWatch()
	}
	c.watched = ctx
	c.stopWatch = context.AfterFunc(ctx, func() { c.nconn.Close() })
}

// renewReadDeadline runs before each read from the network of a playing
// connection. Renewing the deadline costs a timer update, so it is renewed
// only once less than ReadTimeout is left, to ReadTimeout plus a tenth.
func (c *Conn) renewReadDeadline() error {
	now := time.Now()
	if c.readDeadline.Sub(now) >= c.opt.ReadTimeout {
		return nil
	}
	c.readDeadline = now.Add(c.opt.ReadTimeout + c.opt.ReadTimeout/10)
	return c.nconn.SetReadDeadline(c.readDeadline)
}

func (c *Conn) failRead(ctx context.Context, err error) error {
	var ne net.Error
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case errors.As(err, &ne) && ne.Timeout():
		err = fmt.Errorf("nothing received for %v: %w", c.opt.ReadTimeout, err)
	case isEOF(err):
		err = fmt.Errorf("connection closed by the server: %w", err)
	}
	c.readErr = fmt.Errorf("%s: %w", c.what, err)
	return c.readErr
}

// playCommand reacts to a command received while playing.
func (c *Conn) playCommand(cmd command) error {
	if cmd.name == "close" {
		return errors.New("server sent close")
	}
	st, ok := statusOf(cmd)
	if !ok || cmd.name != "onStatus" {
		return nil
	}
	switch st.code {
	case "NetStream.Play.UnpublishNotify", "NetStream.Play.Stop":
		return fmt.Errorf("%s: %w", st.code, ErrUnpublished)
	}
	if st.isError() {
		return c.statusError("play", st)
	}
	return nil
}

func (c *Conn) popPending() *media.Packet {
	if c.head >= len(c.pending) {
		c.pending, c.head = c.pending[:0], 0
		return nil
	}
	c.pkt = c.pending[c.head]
	c.pending[c.head] = media.Packet{}
	c.head++
	return &c.pkt
}

// WritePacket queues one packet on a publishing connection: audio, video or
// data (onMetaData is sent as @setDataFrame onMetaData, as servers expect
// from publishers). The timestamp is p.DTS in milliseconds as a 32-bit RTMP
// timestamp, wrapping past 2^32 ms (49.7 days) as RTMP timestamps do.
//
// Packets are buffered (up to 64 KiB; a larger burst is written out as the
// buffer fills) and sent by Flush: a batch of packets costs one syscall.
// The body is not retained. Writing, from the first WritePacket after a
// Flush to the end of the next Flush, must complete within WriteTimeout.
// Errors are sticky.
func (c *Conn) WritePacket(p *media.Packet) error {
	if !c.publish {
		return fmt.Errorf("%s: WritePacket on a playing connection", c.what)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	var csid byte
	var typ uint8
	body := p.Body
	switch p.Kind {
	case media.KindAudio:
		csid, typ = csidAudio, msgAudio
	case media.KindVideo:
		csid, typ = csidVideo, msgVideo
	case media.KindData:
		csid, typ = csidData, msgDataAMF0
		body = withSetDataFrame(body)
	default:
		return fmt.Errorf("%s: packet kind %d is not audio, video or data", c.what, p.Kind)
	}
	ts := uint32(int64(p.DTS / time.Millisecond)) // wraps modulo 2^32 on purpose

	if !c.writeDeadlineSet {
		if err := c.nconn.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout)); err != nil {
			return c.failWrite(err)
		}
		c.writeDeadlineSet = true
	}
	if err := c.w.bufferMessage(csid, typ, c.streamID, ts, body); err != nil {
		return c.failWrite(err)
	}
	return nil
}

// Flush sends the packets WritePacket queued.
func (c *Conn) Flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	if c.w.bw.Buffered() == 0 {
		return nil
	}
	if !c.writeDeadlineSet {
		if err := c.nconn.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout)); err != nil {
			return c.failWrite(err)
		}
	}
	if err := c.w.bw.Flush(); err != nil {
		return c.failWrite(err)
	}
	c.writeDeadlineSet = false
	return nil
}

func (c *Conn) failWrite(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		err = fmt.Errorf("write stalled for %v: %w", c.opt.WriteTimeout, err)
	}
	c.writeErr = fmt.Errorf("%s: %w", c.what, err)
	return c.writeErr
}

// BytesRead returns the number of bytes received, handshake included.
func (c *Conn) BytesRead() uint64 { return c.counter.Reader.Count() }

// BytesWritten returns the number of bytes sent, handshake included.
func (c *Conn) BytesWritten() uint64 { return c.counter.Writer.Count() }

// Close closes the connection. A publishing connection that is idle first
// tells the server it stops (FCUnpublish, deleteStream), briefly; one whose
// write is blocked is closed at once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		if c.publish && c.wmu.TryLock() {
			if c.writeErr == nil {
				c.nconn.SetWriteDeadline(time.Now().Add(closeTimeout))
				_ = c.writeCommandNoFlush(csidCommand, 0, "FCUnpublish", 6, nil, c.streamName())
				_ = c.writeCommandNoFlush(csidCommand, 0, "deleteStream", 7, nil, float64(c.streamID))
				_ = c.w.bw.Flush()
				c.writeErr = fmt.Errorf("%s: %w", c.what, net.ErrClosed)
			}
			c.wmu.Unlock()
		}
		c.closeErr = c.nconn.Close()
		if c.stopWatch != nil {
			c.stopWatch()
		}
	})
	return c.closeErr
}

func (c *Conn) streamName() string {
	u, err := url.Parse(c.rawURL)
	if err != nil {
		return ""
	}
	_, _, stream, _ := SplitURL(u)
	return stream
}

// sendAck acknowledges received bytes; the chunk reader calls it each
// window the server asked for, from within read, so it never races with
// other writes of a playing connection.
func (c *Conn) sendAck(count uint32) error {
	return c.writeControl(msgAck, be32(count))
}

func (c *Conn) writeControl(typ uint8, body []byte) error {
	if err := c.nconn.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout)); err != nil {
		return err
	}
	return c.w.writeMessage(csidControl, typ, 0, 0, body)
}

func (c *Conn) writeCommand(csid byte, msid uint32, name string, txn float64, args ...any) error {
	if err := c.nconn.SetWriteDeadline(time.Now().Add(c.opt.WriteTimeout)); err != nil {
		return err
	}
	if err := c.writeCommandNoFlush(csid, msid, name, txn, args...); err != nil {
		return err
	}
	return c.w.bw.Flush()
}

func (c *Conn) writeCommandNoFlush(csid byte, msid uint32, name string, txn float64, args ...any) error {
	body, err := encodeCommand(name, txn, args...)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	if err := c.w.bufferMessage(csid, msgCommandAMF0, msid, 0, body); err != nil {
		return fmt.Errorf("send %s: %w", name, err)
	}
	return nil
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
