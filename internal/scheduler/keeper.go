package scheduler

import (
	"context"
	"time"

	"github.com/liverelay/liverelay/internal/store"
)

// keepLeases renews the node's heartbeat and the leases of its running
// tasks every TTL/3, until ctx is done. It is what makes "no destination
// ever gets two publishers" hold when the database is out of reach: a lease
// renewed by a statement sent at t expires, by the database's clock, no
// earlier than t + TTL, so a task whose last successful renewal was sent at
// t is stopped at t + TTL - stopMargin, before another node can claim it.
// Each renewal's context ends by then, so a hung connection cannot hold the
// stop back.
func (s *Scheduler) keepLeases(ctx context.Context) {
	ttl := s.opt.Leases.TTL()
	every := ttl / 3
	retry := max(every/5, 20*time.Millisecond)
	timer := time.NewTimer(every)
	defer timer.Stop()
	failing := false
	var lastLog time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		s.expireLeases(ttl)
		held, deadline := s.heldLeases(ttl)
		sent := time.Now()
		until := sent.Add(every)
		if !deadline.IsZero() && deadline.Before(until) {
			until = deadline
		}
		rctx, cancel := context.WithDeadline(ctx, until)
		kept, err := s.opt.Leases.Renew(rctx, held)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing || time.Since(lastLog) >= ttl {
				s.log.Error("renew leases", "leases", len(held), "err", err)
				lastLog = time.Now()
			}
			failing = true
			wait := retry
			if !deadline.IsZero() {
				wait = min(wait, max(time.Until(deadline), 0))
			}
			timer.Reset(wait)
			continue
		}
		if failing {
			s.log.Info("leases renewed again", "leases", len(kept))
			failing = false
		}
		s.renewed(held, kept, sent.Add(ttl))
		timer.Reset(every)
	}
}

// stopMargin is how long before a lease can expire the node stops the
// task: the time stopping takes (cancel and cut are immediate; the RTMP
// close is bounded), with room for the clocks' drift.
func stopMargin(ttl time.Duration) time.Duration { return ttl / 5 }

// heldLeases returns the leases of the running tasks that are not lost, and
// the moment the first of them must be stopped without a renewal.
func (s *Scheduler) heldLeases(ttl time.Duration) (held []store.Lease, deadline time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.running {
		if r.lost {
			continue
		}
		held = append(held, r.lease)
		stopAt := r.validUntil.Add(-stopMargin(ttl))
		if deadline.IsZero() || stopAt.Before(deadline) {
			deadline = stopAt
		}
	}
	return held, deadline
}

// expireLeases stops every task whose lease may expire before it could be
// renewed: the database has not answered for too long.
func (s *Scheduler) expireLeases(ttl time.Duration) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.running {
		if !r.lost && !now.Before(r.validUntil.Add(-stopMargin(ttl))) {
			s.loseLocked(r.lease, "the lease could not be renewed in time")
			n++
		}
	}
	if n > 0 {
		s.log.Error("leases not renewed in time: tasks stopped before their leases expire", "tasks", n)
	}
}

// renewed records a successful renewal sent before validUntil-TTL: the
// leases kept are valid until validUntil, the others are lost.
func (s *Scheduler) renewed(held, kept []store.Lease, validUntil time.Time) {
	ok := make(map[store.Lease]bool, len(kept))
	for _, l := range kept {
		ok[l] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range held {
		r := s.running[l.TaskID]
		if r == nil || r.lease != l {
			continue
		}
		if ok[l] {
			r.validUntil = validUntil
		} else {
			s.loseLocked(l, "the lease was taken over or ended")
		}
	}
}
