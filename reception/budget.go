package reception

import "sync/atomic"

// DefaultMaxBytesInFlight is the schema's default for
// reception.maxBytesInFlight, used when a Policy has no Budget.
const DefaultMaxBytesInFlight = 256 << 20

// Budget bounds the message bytes that reception holds in memory at once,
// summed over every transaction of every listener that shares it. The
// engine owns one Budget for the process and hands it to each server it
// starts, so the bound survives a reload and holds across listeners.
//
// Invariant: memory is reserved before it is filled, in chunks, as the
// client's bytes arrive (see messageBuffer), so a transaction never holds
// more than it has been sent plus one chunk, and every reservation is
// released when its transaction ends, however it ends. A reservation that
// would take InFlight past Limit is refused; only lowering the limit (a
// reload) and the final copy of a finished message (see
// messageBuffer.assemble) can leave InFlight above it for a while.
//
// A Budget is safe for concurrent use.
type Budget struct {
	limit atomic.Int64
	used  atomic.Int64
	// Refusals, for metrics: at MAIL FROM for a declared SIZE that did not
	// fit, and during the message data.
	refusedMail atomic.Uint64
	refusedData atomic.Uint64
}

// NewBudget returns a budget of limit bytes; limit <= 0 means
// DefaultMaxBytesInFlight.
func NewBudget(limit int64) *Budget {
	b := &Budget{}
	b.SetLimit(limit)
	return b
}

// SetLimit changes the limit (a reload). Reservations already held stay;
// new ones are refused until InFlight is below the new limit.
func (b *Budget) SetLimit(limit int64) {
	if limit <= 0 {
		limit = DefaultMaxBytesInFlight
	}
	b.limit.Store(limit)
}

// Limit returns the limit in bytes.
func (b *Budget) Limit() int64 { return b.limit.Load() }

// InFlight returns the bytes reserved now.
func (b *Budget) InFlight() int64 { return b.used.Load() }

// Refusals returns how many transactions the budget refused: at MAIL FROM
// (a declared SIZE that did not fit) and during the message data.
func (b *Budget) Refusals() (atMail, inData uint64) {
	return b.refusedMail.Load(), b.refusedData.Load()
}

// reserve takes n bytes if they fit under the limit.
func (b *Budget) reserve(n int64) bool {
	limit := b.limit.Load()
	for {
		used := b.used.Load()
		if used+n > limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// force takes n bytes whatever the limit: memory already committed.
func (b *Budget) force(n int64) { b.used.Add(n) }

// release returns n bytes taken by reserve or force.
func (b *Budget) release(n int64) { b.used.Add(-n) }

// fits reports whether n more bytes would fit now, without taking them:
// the early check of a declared SIZE (RFC 1870) at MAIL FROM.
func (b *Budget) fits(n int64) bool { return b.used.Load()+n <= b.limit.Load() }
