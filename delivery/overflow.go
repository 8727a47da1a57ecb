package delivery

import "time"

// A lane holds at most maxLaneQueue jobs in memory. A job that arrives at
// a full lane is parked instead: its message is hidden from the scheduler
// by an in-memory lease (parkLease), its ID joins the lane's overflow list
// in arrival order, and nothing is written to the spool, because parking
// is neither a delivery attempt nor a failure. As the lane works its
// queue down to half the bound it releases parked messages in order: their
// lease moves to now, so the next scheduler pass takes them (due order
// among them is kept by spacing their leases a nanosecond apart).
//
// The lease is the safety net. A parked message whose release never comes
// (its lane was replaced by a reload, or suspended) is due again when the
// lease ends, and is parked again, at no cost to the spool, if its lane is
// still full. A restart forgets leases and overflow lists alike, and every
// parked message is due at its stored time.

const (
	// maxLaneQueue bounds the jobs a lane holds in memory.
	maxLaneQueue = 10000
	// releaseBelow is the queue length under which a lane releases
	// parked messages.
	releaseBelow = maxLaneQueue / 2
	// parkLease is how long a parked message stays hidden unless its
	// lane releases it first.
	parkLease = 30 * time.Second
	// releaseTimeout is how long a lane waits for the messages it
	// released to arrive before it releases more regardless.
	releaseTimeout = 5 * time.Second
)

// parkLocked parks a job at a full lane. The lease is taken before the ID
// joins the overflow list, so a release can never be overtaken by it.
func (l *lane) parkLocked(j *job, now time.Time) {
	e := l.site.sched
	e.opts.Store.Lease(j.att.env.ID, now.Add(parkLease))
	if len(l.overflow) == 0 {
		e.opts.Logger.Info("lane full: further mail waits in the spool until it has room",
			"site", l.site.key, "source", l.source, "queued", len(l.queue))
	}
	l.overflow = append(l.overflow, j.att.env.ID)
}

// arrivedLocked notes a job reaching the lane, which may be one it
// released.
func (l *lane) arrivedLocked() {
	if l.inTransit > 0 {
		l.inTransit--
	}
}

// releaseLocked takes from the overflow list the parked messages the lane
// has room for once its queue is below releaseBelow, counting those it
// released earlier and that have not arrived yet. The caller releases them
// with release, outside the lane's lock.
func (l *lane) releaseLocked(now time.Time) []string {
	if len(l.overflow) == 0 {
		return nil
	}
	if l.inTransit > 0 && now.Sub(l.releasedAt) > releaseTimeout {
		l.inTransit = 0 // routed elsewhere, finished by the operator, ...
	}
	held := len(l.queue) + l.inTransit
	if held >= releaseBelow {
		return nil
	}
	k := min(len(l.overflow), maxLaneQueue-held)
	ids := l.overflow[:k:k]
	l.overflow = l.overflow[k:]
	if len(l.overflow) == 0 {
		l.overflow = nil // let the backing array go
	}
	l.inTransit += k
	l.releasedAt = now
	return ids
}

// release makes parked messages due now, in order, and wakes the
// scheduler.
func (l *lane) release(ids []string, now time.Time) {
	if len(ids) == 0 {
		return
	}
	e := l.site.sched
	for i, id := range ids {
		e.opts.Store.Lease(id, now.Add(time.Duration(i)))
	}
	e.Wake()
}
