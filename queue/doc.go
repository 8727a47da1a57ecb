// Package queue is cuemta's durable spool: the messages that were accepted
// and not yet finished, with their envelopes, bodies and retry schedule.
//
// Durability promise: Enqueue returns nil only after the fsync that covers
// the message (envelope AND body) has returned, and every state change
// (RecordAttempt, Reschedule, Update, Complete) is likewise durable when its
// call returns nil. A crash at any moment loses nothing that was
// acknowledged. Work that was not acknowledged (a call that returned an
// error or had not returned yet) may or may not survive a crash; when it
// survives it is whole, never half-applied.
//
// Layout under the spool directory (directories 0700, files 0600: the
// spool holds other people's mail, readable by the owning user alone):
//
//	LOCK      flock(2)ed by the owning process, holds its pid
//	wal/      github.com/tidwall/wal segments: one record per state change
//	body/     append-only body files, one frame per message body
//
// Bodies live outside the log (DESIGN.md has the measurements behind that):
// a log record holds the envelope and a reference (file, offset, length,
// CRC) to the body frame. Concurrent calls are group-committed: one
// goroutine writes the bodies of everything pending, then fsyncs the body
// file and writes+fsyncs one log batch, overlapping the two fsyncs, and
// only then answers every waiter. The in-memory index holds envelopes (in
// their compact encoded form) and the schedule, never bodies.
//
// Storage faults are never silent: a failed write or fsync fails every call
// in that batch with an error wrapping ErrNoSpace or ErrStorage, nothing of
// it enters the index, and before the next batch the spool cuts the log
// back to the last acknowledged record (ftruncate + fsync) and rolls to a
// fresh body file, so once the fault clears new calls succeed again.
//
// The disk never fills with received mail alone: Enqueue, the reception
// path, keeps Options.Reserve bytes free on the spool's filesystem (default
// DefaultReserve; the server passes spool.reserve, by default 1.5 times its
// largest message size) and is refused with ErrLowSpace, which wraps
// ErrNoSpace, when a message would leave less. RecordAttempt, Reschedule,
// Update, Complete, compaction and EnqueueReserved (bounces) may use the
// reserve, so the queue can still be drained and administered while
// reception is refused. LowSpace reports that state; it ends by itself once
// deliveries and compaction (which the spool starts early while low) have
// freed the reserve plus a margin.
//
// Damage is never silent either. Open repairs by itself only what a crash
// can leave: an unreadable end of the newest log segment that no valid
// record follows (a torn write; it is cut), and a last batch that
// references a body which does not read back (never acknowledged; it is
// dropped). Any other unreadable log record, or a body frame missing from
// its file, makes Open fail with an error wrapping ErrCorrupt that names
// the file and byte offset, rather than drop the acknowledged records
// around it. Bodies are checked whenever they are read: a damaged one makes
// Body fail with ErrCorrupt and is never returned. Damage confined to the
// last batch cannot be told apart from a crash during its write and is
// repaired as one. Salvage (`cuemta spool salvage`) copies every readable
// message of a damaged spool into a fresh one and reports what it could not
// read, by file and offset and by message ID.
package queue
