// Package suppress is the suppression list: the addresses mail is not
// sent to, per tenant or for every tenant (tenant ""), each with a reason,
// the time it was added, its source (bounce, complaint, operator, import)
// and an optional expiry.
//
// Invariants:
//   - Add and Remove return only once the change is on disk (the record is
//     written and fsynced): an entry that was acknowledged survives a
//     crash, kill -9 included.
//   - The on-disk state is a snapshot (replaced atomically, see
//     internal/atomicfile) plus an append-only log of changes after it,
//     each record with its length and a CRC-32C. Replaying the log over
//     the snapshot is idempotent, so a crash between writing a new snapshot
//     and truncating the log loses nothing and adds nothing.
//   - A torn record at the end of the log (a crash in mid-write) is cut
//     off at Open; damage that is more than one record long is reported
//     as an error and nothing is cut, so bad data is never silently lost.
//   - An expired entry never matches; compaction drops it.
//   - Addresses are compared in one normalised form (Normalize):
//     lower-case, domain in A-labels. Suppression is a safety list, so a
//     local part that differs only in case is the same mailbox here.
//
// The in-memory index is sized for millions of entries: an open-addressed
// table of 4-byte slot numbers keyed by a 64-bit hash of tenant and
// address, fixed 24-byte slots, the keys in one byte arena (compared on
// every hit, so a hash collision never matches the wrong address) and the
// reasons interned. bench/README.md has the figures.
package suppress
