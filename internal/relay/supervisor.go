package relay

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/liverelay/liverelay/internal/backoff"
	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/task"
	"github.com/liverelay/liverelay/internal/timeline"
)

// codecConfig is the latest codec configuration a source sent: what must
// reach the destination before the first frame of that source.
type codecConfig struct {
	meta, video, audio *media.Packet
}

// update keeps a copy of p: packets live only as long as their batch.
func (c *codecConfig) update(p *media.Packet) {
	cp := &media.Packet{Kind: p.Kind, DTS: p.DTS, Body: append([]byte(nil), p.Body...)}
	switch {
	case p.IsMetadata():
		c.meta = cp
	case p.Kind == media.KindVideo:
		c.video = cp
	case p.Kind == media.KindAudio:
		c.audio = cp
	}
}

// Supervisor runs one task. Create it with NewSupervisor, run it with Run,
// and send it configuration changes with Update.
type Supervisor struct {
	cfg     Config
	rep     Reporter
	log     *slog.Logger
	updates chan *task.Task

	t    *task.Task
	urls []string // primary first, then the backups
	msgs chan readerMsg
	ctx  context.Context

	// The batch being written (nil: none), whose reader, and the next
	// packet; it is released once written. q is shared with the readers.
	pending    *batch
	pendingID  int
	pendingPos int
	q          *queue

	nextID      int
	cur         *reader
	curIdx      int
	curCfg      codecConfig
	curHasVideo bool
	curStarted  bool
	srcRetryAt  time.Time // zero: no attempt pending
	srcBackoff  *backoff.Backoff

	probe         *reader // the primary, retried while on a backup
	probeCfg      codecConfig
	probeHasVideo bool
	probeSince    time.Time
	probeRetryAt  time.Time
	probeBackoff  *backoff.Backoff

	sink          media.Sink
	sinkRetryAt   time.Time
	sinkBackoff   *backoff.Backoff
	sinkBytesBase uint64
	needConfig    bool // send the current source's codec config before its next frame
	waitKey       bool // drop video until a keyframe
	pushing       bool // TaskStart sent for this destination session
	lastWrite     time.Time
	unflushed     bool         // packets written to the sink since its last Flush
	out           media.Packet // the packet being written (WritePacket keeps no reference)

	tl *timeline.Timeline

	// VOD: the playlist (nil for live tasks), the frame held for pacing,
	// the pacing anchor, and the codec configuration the destination has.
	vod          *playlist
	held         *media.Packet
	heldOut      time.Duration
	paceAt       time.Time
	paceAnchored bool
	paceWall     time.Time
	paceOut      time.Duration
	sentCfg      codecConfig
	fillerFails  int  // filler files in a row that could not be played
	lastWasFile  bool // the last source opened was a file
	done         bool // the task completed (loops done): Run returns

	timer      *time.Timer
	timerArmed bool

	rs          task.RunState
	videoFrames int64
	hbAt        time.Time
	hbBytes     uint64
	hbFrames    int64
}

// NewSupervisor prepares a supervisor for t. resume is the task's last stored
// run state: a VOD task continues from its position.
func NewSupervisor(t *task.Task, cfg Config, rep Reporter, resume task.RunState) *Supervisor {
	c := cfg.withDefaults()
	s := &Supervisor{
		cfg:          c,
		rep:          rep,
		log:          c.Logger.With("task_id", t.ID),
		updates:      make(chan *task.Task, 1),
		msgs:         make(chan readerMsg, queueBatches),
		q:            newQueue(),
		srcBackoff:   backoff.New(c.BackoffMin, c.BackoffMax),
		probeBackoff: backoff.New(c.BackoffMin, c.BackoffMax),
		sinkBackoff:  backoff.New(c.BackoffMin, c.BackoffMax),
		tl:           timeline.New(),
	}
	s.setTask(t)
	s.rs = task.RunState{TaskID: t.ID, State: task.StateStarting}
	if t.IsVOD() {
		s.vod = newPlaylist(t, resume)
		s.rs.LoopsDone = s.vod.loops
		s.rs.Failovers, s.rs.Reconnects = resume.Failovers, resume.Reconnects
	}
	return s
}

func (s *Supervisor) setTask(t *task.Task) {
	s.t = t
	s.urls = append(append([]string(nil), t.SourceURLs[:1]...), t.BackupSourceURLs...)
}

// Update hands a changed task configuration to the running supervisor. It
// never blocks: only the latest configuration matters.
func (s *Supervisor) Update(t *task.Task) {
	for {
		select {
		case s.updates <- t:
			return
		default:
		}
		select {
		case <-s.updates:
		default:
		}
	}
}

// Run relays until ctx is done. It reports the run state through the
// Reporter; the caller writes the final state after Run returns.
func (s *Supervisor) Run(ctx context.Context) {
	s.ctx = ctx
	s.timer = time.NewTimer(time.Hour)
	s.timer.Stop()
	defer s.shutdown()

	now := s.cfg.Now()
	s.rs.StartedAt = now
	s.hbAt = now
	s.report()
	s.dialSink()
	s.openSource(0)

	heartbeat := time.NewTicker(time.Second)
	defer heartbeat.Stop()
	for !s.done {
		msgs := s.msgs
		if s.pending != nil {
			msgs = nil // a paced frame waits: read nothing more until it is out
		}
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			s.handle(m)
		case <-s.timer.C:
			s.timerArmed = false
			s.onTimer()
		case <-heartbeat.C:
			s.heartbeat()
		case t := <-s.updates:
			s.applyUpdate(t)
		}
		s.drain()
		s.flush()
	}
}

// drain writes the pending batch, packet by packet, until it is done or a
// paced frame must wait for its time.
func (s *Supervisor) drain() {
	for s.pending != nil && s.held == nil && !s.done {
		b := s.pending
		if s.pendingPos == len(b.pkts) {
			s.pending = nil
			s.q.released(b.size)
			b.release()
			return
		}
		p := &b.pkts[s.pendingPos]
		s.pendingPos++
		switch {
		case s.cur != nil && s.pendingID == s.cur.id:
			s.onPacket(p)
		case s.probe != nil && s.pendingID == s.probe.id:
			s.onProbePacket(p)
		}
		// Anything else comes from a reader already replaced: dropped.
	}
}

// flush sends what was written since the last flush: one write per batch.
func (s *Supervisor) flush() {
	if s.sink == nil || !s.unflushed {
		return
	}
	s.unflushed = false
	if err := s.sink.Flush(); err != nil {
		s.onSinkLost(err)
	}
}

func (s *Supervisor) shutdown() {
	if s.pending != nil {
		s.pending.release()
		s.pending = nil
	}
	if s.cur != nil {
		s.cur.stop()
	}
	if s.probe != nil {
		s.probe.stop()
	}
	if s.sink != nil {
		s.sinkBytesBase += s.sink.BytesWritten()
		s.sink.Close()
		s.sink = nil
	}
	s.timer.Stop()
	s.updateStats(s.cfg.Now())
}

// rearm sets the one timer of the task to the earliest pending retry: no
// timer runs while nothing is pending.
func (s *Supervisor) rearm() {
	var next time.Time
	for _, t := range []time.Time{s.srcRetryAt, s.sinkRetryAt, s.probeRetryAt, s.paceAt} {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if s.timerArmed {
		s.timer.Stop()
		s.timerArmed = false
	}
	if next.IsZero() {
		return
	}
	s.timer.Reset(max(next.Sub(s.cfg.Now()), 0))
	s.timerArmed = true
}

func (s *Supervisor) onTimer() {
	now := s.cfg.Now()
	if s.sink == nil && !s.sinkRetryAt.IsZero() && !now.Before(s.sinkRetryAt) {
		s.sinkRetryAt = time.Time{}
		s.dialSink()
	}
	if s.cur == nil && !s.srcRetryAt.IsZero() && !now.Before(s.srcRetryAt) {
		s.srcRetryAt = time.Time{}
		s.openSource(s.curIdx)
	}
	if s.probe == nil && !s.probeRetryAt.IsZero() && !now.Before(s.probeRetryAt) {
		s.probeRetryAt = time.Time{}
		if s.curIdx != 0 {
			s.startProbe()
		}
	}
	s.releaseHeld()
	s.rearm()
}

// newReader starts reading urls[idx]: for a VOD task's primary, the
// playlist's current file from its start position.
func (s *Supervisor) newReader(idx int) *reader {
	s.nextID++
	if idx == 0 && s.vod != nil {
		url, start := s.vod.url(), s.vod.start
		return startReader(s.ctx, s.nextID, url, true, func(ctx context.Context) (media.Source, error) {
			return s.cfg.OpenFile(ctx, url, start)
		}, &s.cfg, s.msgs, s.q)
	}
	url := s.urls[idx]
	if idx > 0 && s.fillerBackups() {
		return startReader(s.ctx, s.nextID, url, true, func(ctx context.Context) (media.Source, error) {
			return s.cfg.OpenFile(ctx, url, 0)
		}, &s.cfg, s.msgs, s.q)
	}
	return startReader(s.ctx, s.nextID, url, false, func(ctx context.Context) (media.Source, error) {
		return s.cfg.OpenSource(ctx, url)
	}, &s.cfg, s.msgs, s.q)
}

// openSource makes urls[idx] the current source.
func (s *Supervisor) openSource(idx int) {
	if s.cur != nil {
		s.cur.stop()
	}
	if idx == 0 && s.probe != nil {
		s.probe.stop()
		s.probe = nil
	}
	s.curIdx = idx
	s.cur = s.newReader(idx)
	if s.cur.file && !s.lastWasFile {
		// From a live source to files: pace from where the output is now.
		// Between files the anchor stays, or each switch would gain a frame.
		s.paceAnchored = false
	}
	s.lastWasFile = s.cur.file
	s.curCfg = codecConfig{}
	s.curHasVideo = false
	s.curStarted = false
	s.needConfig, s.waitKey = true, true
	s.rs.CurrentSourceURL = s.cfg.Redact(s.urls[idx])
	if idx == 0 && s.vod != nil {
		// Until its first frame is written, the file is at its start
		// position: index and offset must agree in every stored state,
		// or a restart resumes the new file at the old file's offset.
		s.vod.offset = s.vod.start
		s.rs.CurrentSourceURL = s.cfg.Redact(s.vod.url())
		s.rs.CurrentIndex = s.vod.index
		s.rs.CurrentOffsetMS = s.vod.offset.Milliseconds()
	}
	s.rs.OnBackup = idx > 0
	if idx > 0 && s.probe == nil && s.probeRetryAt.IsZero() {
		s.probeRetryAt = s.cfg.Now().Add(s.probeBackoff.Next())
		s.rearm()
	}
	s.report()
}

func (s *Supervisor) startProbe() {
	s.probe = s.newReader(0)
	s.probeCfg = codecConfig{}
	s.probeHasVideo = false
	s.probeSince = time.Time{}
}

func (s *Supervisor) handle(m readerMsg) {
	if m.batch != nil {
		// Written by drain, after this.
		s.pending, s.pendingID, s.pendingPos = m.batch, m.id, 0
		return
	}
	switch {
	case s.cur != nil && m.id == s.cur.id:
		switch {
		case m.opened:
			if s.onPlaylist() {
				s.vod.duration = m.duration
			}
		case m.err != nil && s.onPlaylist():
			s.onFileEnd(m.err)
		case m.err != nil && s.curIdx > 0 && s.fillerBackups():
			s.onFillerEnd(m.err)
		case m.err != nil:
			s.onSourceLost(m.err)
		}
	case s.probe != nil && m.id == s.probe.id:
		if m.opened {
			return
		}
		if m.err != nil {
			<-s.probe.done
			s.probe = nil
			s.probeRetryAt = s.cfg.Now().Add(s.probeBackoff.Next())
			s.rearm()
		}
	}
	// Anything else comes from a reader already replaced: drop it.
}

func (s *Supervisor) onSourceLost(err error) {
	<-s.cur.done
	failed := s.urls[s.curIdx]
	s.cur = nil

	var se *sourceError
	opened := errors.As(err, &se) && se.opened
	code := CodeSourceUnavailable
	if opened {
		code = CodeSourceLost
	}
	if errors.Is(err, ErrUnsupportedCodec) {
		code = CodeUnsupportedCodec
		s.alarm(AlarmUnsupportedCodec, err.Error(), s.cfg.Redact(failed))
	}
	s.setError(code, "source "+s.cfg.Redact(failed)+": "+err.Error())
	s.log.Warn("source interrupted", "source", s.cfg.Redact(failed), "err", err)

	next := (s.curIdx + 1) % len(s.urls)
	if next != 0 {
		// Fail over to the next backup at once.
		s.rs.Failovers++
		s.alarm(AlarmSourceFailover, "switching from "+s.cfg.Redact(failed)+" to "+s.cfg.Redact(s.urls[next]), s.cfg.Redact(s.urls[next]))
		s.openSource(next)
		return
	}
	// Every source of the list failed (or there is only one): retry the
	// primary after a backoff.
	s.rs.Reconnects++
	s.curIdx = 0
	s.rs.OnBackup = false
	s.srcRetryAt = s.cfg.Now().Add(s.srcBackoff.Next())
	s.rearm()
	s.report()
}

func (s *Supervisor) onProbePacket(p *media.Packet) {
	if p.IsSequenceHeader() || p.IsMetadata() {
		s.probeCfg.update(p)
		s.probeHasVideo = s.probeHasVideo || p.Kind == media.KindVideo
		return
	}
	s.probeHasVideo = s.probeHasVideo || p.Kind == media.KindVideo
	now := s.cfg.Now()
	if s.probeSince.IsZero() {
		s.probeSince = now
	}
	if now.Sub(s.probeSince) < s.cfg.HoldTime && s.vod == nil {
		return
	}
	if s.probeHasVideo && !p.IsVideoKeyframe() {
		return
	}
	// The primary has been steady for the hold time and this is a keyframe:
	// switch back to it.
	s.log.Info("primary recovered, switching back", "source", s.cfg.Redact(s.urls[0]))
	s.alarm(AlarmSourceRecovered, "primary source delivered media for "+s.cfg.HoldTime.String()+", switching back", s.cfg.Redact(s.urls[0]))
	s.cur.stop()
	s.cur, s.probe = s.probe, nil
	s.curIdx = 0
	s.curCfg, s.curHasVideo = s.probeCfg, s.probeHasVideo
	s.curStarted = false
	s.needConfig, s.waitKey = true, true
	s.rs.CurrentSourceURL = s.cfg.Redact(s.urls[0])
	s.rs.OnBackup = false
	s.probeBackoff.Reset()
	s.srcBackoff.Reset()
	s.onPacket(p)
}

func (s *Supervisor) onPacket(p *media.Packet) {
	if p.IsSequenceHeader() || p.IsMetadata() {
		s.curCfg.update(p)
		s.curHasVideo = s.curHasVideo || p.Kind == media.KindVideo
		if !s.needConfig && s.sink != nil {
			// A codec change in the middle of a source: pass it on now.
			s.write(p.Kind, s.tl.Last(), p.Body)
		}
		return
	}
	s.curHasVideo = s.curHasVideo || p.Kind == media.KindVideo
	now := s.cfg.Now()
	if !s.curStarted {
		gap := time.Duration(0)
		if !s.lastWrite.IsZero() {
			gap = now.Sub(s.lastWrite)
		}
		// Wait for the keyframe before anchoring, so the new source's first
		// frame lands after the real gap.
		if p.Kind == media.KindVideo && !p.IsVideoKeyframe() || p.Kind == media.KindAudio && s.curHasVideo {
			return
		}
		s.tl.Switch(gap)
		s.curStarted = true
		s.srcBackoff.Reset()
	}
	out, ok := s.tl.Map(p.Kind, p.DTS)
	if !ok {
		return // overlaps the previous source's tail
	}
	if s.sink == nil {
		if s.pacing() {
			s.hold(p, out, time.Time{}) // a file waits where it was for the destination
		}
		return // a live source keeps being read so the task resumes at the live edge
	}
	if s.waitKey {
		if p.Kind == media.KindVideo && !p.IsVideoKeyframe() {
			return
		}
		if p.Kind == media.KindAudio && s.curHasVideo {
			return
		}
	}
	s.waitKey = false
	if s.pacing() {
		// Frames due within the batch window go out together, early by
		// at most that window (the anchor does not move: no drift).
		if due := s.due(out); due.After(now.Add(s.cfg.Batch)) {
			s.hold(p, out, due.Add(-s.cfg.Batch))
			return
		}
	}
	s.emit(p, out)
}

// emit writes a frame with its output DTS, after the codec configuration
// when the destination needs it.
func (s *Supervisor) emit(p *media.Packet, out time.Duration) {
	body := p.Body
	if s.needConfig {
		if !(s.pacing() && s.pushing && sameConfig(s.curCfg, s.sentCfg)) {
			changed := s.pushing && s.sentCfg.video != nil && !sameConfig(s.curCfg, s.sentCfg)
			for _, c := range []*media.Packet{s.curCfg.meta, s.curCfg.video, s.curCfg.audio} {
				if c != nil && !s.write(c.Kind, s.tl.Last(), c.Body) {
					return
				}
			}
			s.sentCfg = s.curCfg
			if changed && s.curCfg.video != nil {
				// The encoding changed inside one destination session: carry
				// the new parameter sets in the keyframe too, for stream
				// parsers that keep the first sequence header.
				if b := media.WithInbandParams(s.curCfg.video.Body, body); b != nil {
					body = b
				}
			}
		}
		s.needConfig = false
	}
	if !s.write(p.Kind, out, body) {
		return
	}
	s.lastWrite = s.cfg.Now()
	if p.Kind == media.KindVideo {
		s.videoFrames++
	}
	s.rs.FramesOut++
	if !s.pushing {
		s.pushing = true
		s.sinkBackoff.Reset()
		s.rep.Event(task.EventTaskStart, map[string]any{"source_url": s.rs.CurrentSourceURL})
	}
	if s.onPlaylist() {
		s.vod.offset = p.DTS
		if !s.vod.started {
			s.vod.started = true
			s.rs.CurrentIndex = s.vod.index
			s.rs.CurrentSourceURL = s.cfg.Redact(s.vod.url())
			s.rep.Event(task.EventVodSourceFileStart, s.fileEventData())
		}
	}
	if s.rs.State != task.StateRunning {
		s.rs.State = task.StateRunning
		s.report()
	}
}

// write sends one packet to the destination (buffered until the loop's
// flush); on failure it drops the connection and schedules a redial.
func (s *Supervisor) write(kind media.Kind, dts time.Duration, body []byte) bool {
	s.out = media.Packet{Kind: kind, DTS: dts, Body: body}
	err := s.sink.WritePacket(&s.out)
	s.out.Body = nil
	if err != nil {
		s.onSinkLost(err)
		return false
	}
	s.unflushed = true
	return true
}

func (s *Supervisor) dialSink() {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
	sink, err := s.cfg.OpenSink(ctx, s.t.Destination)
	cancel()
	if err != nil {
		if s.ctx.Err() != nil {
			return
		}
		s.setError(CodeDestinationFailed, "destination "+s.cfg.Redact(s.t.Destination)+": "+err.Error())
		s.alarm(AlarmPushStreamFailed, err.Error(), s.rs.CurrentSourceURL)
		s.log.Warn("destination unavailable", "destination", s.cfg.Redact(s.t.Destination), "err", err)
		s.sinkRetryAt = s.cfg.Now().Add(s.sinkBackoff.Next())
		s.rearm()
		s.report()
		return
	}
	s.sink = sink
	s.needConfig, s.waitKey = true, true
	s.paceAnchored = false
	s.sentCfg = codecConfig{}
	if s.held != nil {
		p, out := s.held, s.heldOut
		s.held = nil
		s.needConfig, s.waitKey = true, false
		if s.curHasVideo && !p.IsVideoKeyframe() {
			// A new destination session must start at a keyframe: drop
			// frames (audio too) up to the next one.
			s.waitKey = true
			return
		}
		s.emit(p, out)
	}
}

func (s *Supervisor) onSinkLost(err error) {
	s.sinkBytesBase += s.sink.BytesWritten()
	s.sink.Close()
	s.sink = nil
	s.pushing = false
	s.rs.Reconnects++
	s.setError(CodeDestinationFailed, "destination "+s.cfg.Redact(s.t.Destination)+": "+err.Error())
	s.alarm(AlarmPushStreamUnstable, err.Error(), s.rs.CurrentSourceURL)
	s.log.Warn("destination lost", "destination", s.cfg.Redact(s.t.Destination), "err", err)
	s.sinkRetryAt = s.cfg.Now().Add(s.sinkBackoff.Next())
	s.rearm()
	s.report()
}

func (s *Supervisor) applyUpdate(t *task.Task) {
	oldURLs, oldFiles := s.urls, s.t.SourceURLs
	s.setTask(t)
	if s.vod != nil {
		if !slices.Equal(oldFiles, t.SourceURLs) {
			// New files take effect by vod_refresh_type, over the same
			// destination connection.
			s.vod.refresh(t)
			s.held, s.paceAt = nil, time.Time{}
			s.srcRetryAt = time.Time{}
			if s.probe != nil {
				s.probe.stop()
				s.probe = nil
			}
			s.openSource(0)
			s.rearm()
		}
		if t.VodLoopTime != task.LoopForever && s.vod.loops >= t.VodLoopTime {
			s.finish(task.ExitLoopsDone)
		}
		return
	}
	if !slices.Equal(oldURLs, s.urls) {
		// New sources take effect at once, over the same destination
		// connection (the timeline keeps the output continuous).
		s.srcRetryAt = time.Time{}
		s.probeRetryAt = time.Time{}
		if s.probe != nil {
			s.probe.stop()
			s.probe = nil
		}
		s.openSource(0)
	}
}

// alarm records a TaskAlarm event.
func (s *Supervisor) alarm(typ, msg, sourceURL string) {
	s.rep.Event(task.EventTaskAlarm, map[string]any{"type": typ, "message": msg, "source_url": sourceURL})
}

func (s *Supervisor) setError(code, msg string) {
	s.rs.LastError = &task.ErrorInfo{Code: code, Message: msg, At: s.cfg.Now().UTC()}
	s.rs.State = task.StateRecovering
}

func (s *Supervisor) updateStats(now time.Time) {
	bytes := s.sinkBytesBase
	if s.sink != nil {
		bytes += s.sink.BytesWritten()
	}
	if el := now.Sub(s.hbAt); el > 0 {
		s.rs.BitrateBPS = int64(float64(bytes-s.hbBytes) * 8 / el.Seconds())
		s.rs.FPS = float64(s.videoFrames-s.hbFrames) / el.Seconds()
	}
	s.rs.BytesOut = int64(bytes)
	s.rs.FramesDropped = s.q.dropped.Load()
	s.hbAt, s.hbBytes, s.hbFrames = now, bytes, s.videoFrames
}

func (s *Supervisor) heartbeat() {
	now := s.cfg.Now()
	s.updateStats(now)
	if s.vod != nil {
		s.rs.CurrentOffsetMS = s.vod.offset.Milliseconds()
		s.rs.LoopsDone = s.vod.loops
	}
	if s.sink == nil || s.cur == nil || !s.curStarted || now.Sub(s.lastWrite) > s.cfg.NoMediaTimeout {
		if s.rs.State == task.StateRunning {
			s.rs.State = task.StateRecovering
		}
	}
	s.report()
}

func (s *Supervisor) report() {
	s.rs.LastHeartbeat = s.cfg.Now().UTC()
	s.rep.Report(s.rs)
}

// RunState returns the last run state (for tests and shutdown).
func (s *Supervisor) RunState() task.RunState { return s.rs }
