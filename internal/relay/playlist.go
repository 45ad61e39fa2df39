package relay

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/liverelay/liverelay/internal/media"
	"github.com/liverelay/liverelay/internal/task"
)

// playlist is where a PullVodPushLive task is in its list of files.
type playlist struct {
	files []string
	index int
	loops int           // rounds completed
	start time.Duration // where the next open of files[index] starts
	// Of the file playing now:
	duration time.Duration
	offset   time.Duration // file time of the last frame written
	started  bool          // VodSourceFileStart sent
	// failed counts files in a row that could not be played; a whole round
	// of them hands over to the backups.
	failed int
}

// newPlaylist places a VOD task at its stored position when it has run
// before (resume after a restart or a pause), else at vod_start_video_*.
func newPlaylist(t *task.Task, resume task.RunState) *playlist {
	p := &playlist{files: t.SourceURLs}
	if !resume.StartedAt.IsZero() && resume.CurrentIndex < len(t.SourceURLs) {
		p.index, p.loops = resume.CurrentIndex, resume.LoopsDone
		p.start = time.Duration(resume.CurrentOffsetMS) * time.Millisecond
		return p
	}
	p.index = min(t.VodStartVideoIndex, len(t.SourceURLs)-1)
	p.start = time.Duration(t.VodStartVideoTime) * time.Second
	return p
}

func (p *playlist) url() string { return p.files[p.index] }

// advance moves to the start of the next file, counting a round when the
// list wraps.
func (p *playlist) advance() {
	p.index++
	p.start, p.offset, p.duration, p.started = 0, 0, 0, false
	if p.index >= len(p.files) {
		p.index = 0
		p.loops++
	}
}

// refresh applies a new list of files the way vod_refresh_type says.
func (p *playlist) refresh(t *task.Task) {
	playing := p.url()
	offset := p.offset
	p.files = t.SourceURLs
	p.started, p.failed = false, 0
	switch t.VodRefreshType {
	case task.RefreshFromFileStart, task.RefreshFromBreak:
		// The file that was playing, found by URL in the new list, else
		// by its index.
		if i := slices.Index(p.files, playing); i >= 0 {
			p.index = i
		} else {
			p.index = min(p.index, len(p.files)-1)
		}
		p.start = 0
		if t.VodRefreshType == task.RefreshFromBreak {
			p.start = offset
		}
	default:
		p.index = min(t.VodStartVideoIndex, len(p.files)-1)
		p.start = time.Duration(t.VodStartVideoTime) * time.Second
	}
}

func (s *Supervisor) isVOD() bool { return s.vod != nil }

// pacing reports whether the current source is played against the wall
// clock: files are (the playlist, filler backups); live sources come at
// their own pace.
func (s *Supervisor) pacing() bool { return s.cur != nil && s.cur.file }

// onPlaylist reports whether the current source is the task's playlist.
func (s *Supervisor) onPlaylist() bool { return s.vod != nil && s.curIdx == 0 }

// fillerBackups reports whether the backups are files looped as filler
// (backup_source_type PullVodPushLive) rather than live sources.
func (s *Supervisor) fillerBackups() bool { return s.t.BackupSourceType == task.PullVodPushLive }

// onFillerEnd moves to the next filler file when one ends or cannot be
// played; when none of them plays, the primary is retried after a backoff.
func (s *Supervisor) onFillerEnd(err error) {
	<-s.cur.done
	s.cur = nil
	url := s.cfg.Redact(s.urls[s.curIdx])
	if errors.Is(err, io.EOF) || errors.Is(err, media.ErrFileEndEarly) {
		s.fillerFails = 0
	} else {
		s.fillerFails++
		s.setError(CodeSourceUnavailable, "filler file "+url+": "+err.Error())
		s.alarm(AlarmPullFileFailed, "filler file "+url+" cannot be played: "+err.Error(), url)
	}
	if s.fillerFails >= len(s.urls)-1 {
		s.fillerFails = 0
		s.rs.Reconnects++
		s.curIdx = 0
		s.rs.OnBackup = false
		s.srcRetryAt = s.cfg.Now().Add(s.srcBackoff.Next())
		s.rearm()
		s.report()
		return
	}
	next := s.curIdx + 1
	if next >= len(s.urls) {
		next = 1
	}
	s.openSource(next)
}

func (s *Supervisor) fileEventData() map[string]any {
	return map[string]any{
		"index":       s.vod.index,
		"url":         s.cfg.Redact(s.vod.url()),
		"duration_ms": s.vod.duration.Milliseconds(),
		"loop":        s.vod.loops + 1,
	}
}

// onFileEnd handles the end of a file reader: the clean end, an early end,
// or a file that could not be played.
func (s *Supervisor) onFileEnd(err error) {
	<-s.cur.done
	s.cur = nil
	url := s.cfg.Redact(s.vod.url())
	switch {
	case errors.Is(err, io.EOF):
		s.vod.failed = 0
	case errors.Is(err, media.ErrFileEndEarly):
		s.vod.failed = 0
		s.alarm(AlarmFileEndEarly, "file "+url+" ended early: "+err.Error(), url)
	case errors.Is(err, ErrUnsupportedCodec):
		s.vod.failed++
		s.setError(CodeUnsupportedCodec, "file "+url+": "+err.Error())
		s.alarm(AlarmUnsupportedCodec, err.Error(), url)
	default:
		s.vod.failed++
		s.setError(CodeSourceUnavailable, "file "+url+": "+err.Error())
		s.alarm(AlarmPullFileFailed, "file "+url+" cannot be played: "+err.Error(), url)
	}
	if s.vod.started {
		s.rep.Event(task.EventVodSourceFileFinish, s.fileEventData())
	}
	s.vod.advance()
	if s.vod.index == 0 && s.t.VodLoopTime != task.LoopForever && s.vod.loops >= s.t.VodLoopTime {
		s.finish(task.ExitLoopsDone)
		return
	}
	if s.vod.failed >= len(s.vod.files) {
		// Not one file of the list can be played.
		s.vod.failed = 0
		if len(s.urls) > 1 {
			s.rs.Failovers++
			s.alarm(AlarmSourceFailover, "no file of the list can be played, switching to "+s.cfg.Redact(s.urls[1]), s.cfg.Redact(s.urls[1]))
			s.openSource(1)
			return
		}
		s.rs.Reconnects++
		s.srcRetryAt = s.cfg.Now().Add(s.srcBackoff.Next())
		s.rearm()
		s.report()
		return
	}
	s.openSource(0)
}

// finish ends a task that completed its rounds.
func (s *Supervisor) finish(reason string) {
	s.done = true
	s.rs.State, s.rs.ExitReason = task.StateFinished, reason
	s.rs.LoopsDone = s.vod.loops
	s.updateStats(s.cfg.Now())
	s.report()
}

// hold keeps a paced frame until its time (or until a destination is
// there again); while a frame is held, no more packets are read.
func (s *Supervisor) hold(p *media.Packet, out time.Duration, due time.Time) {
	s.held, s.heldOut = p, out
	if s.sink == nil {
		return // dialSink releases it
	}
	s.paceAt = due
	s.rearm()
}

// releaseHeld writes the held frame once its time has come.
func (s *Supervisor) releaseHeld() {
	if s.held == nil || s.sink == nil || s.cfg.Now().Before(s.paceAt) {
		return
	}
	p, out := s.held, s.heldOut
	s.held, s.paceAt = nil, time.Time{}
	s.emit(p, out)
}

// due returns when a paced frame with output DTS out should be written:
// against one anchor per destination session, so there is no drift over
// hours.
func (s *Supervisor) due(out time.Duration) time.Time {
	now := s.cfg.Now()
	if !s.paceAnchored {
		s.paceWall, s.paceOut, s.paceAnchored = now, out, true
	}
	at := s.paceWall.Add(out - s.paceOut)
	if now.Sub(at) > 2*time.Second {
		// Far behind (the machine stalled): start again from now rather
		// than burst seconds of media.
		s.paceWall, s.paceOut = now, out
		at = now
	}
	return at
}

// sameConfig reports whether a file's codec configuration equals what the
// destination has, so it need not be sent again at a file switch.
func sameConfig(a, b codecConfig) bool {
	eq := func(x, y *media.Packet) bool {
		if x == nil || y == nil {
			return x == y
		}
		return bytes.Equal(x.Body, y.Body)
	}
	return eq(a.video, b.video) && eq(a.audio, b.audio)
}
