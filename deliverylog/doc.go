// Package deliverylog writes cuemta's delivery log: one JSON object per line
// for every event in a message's life (reception, delivery, transient
// failure, bounce, expiry) and for every suspension and admin action.
//
// The log is written to a file with size-based rotation and/or mirrored on
// standard output. Writes are buffered and flushed periodically, when the
// buffer fills, and on Flush and Close, so logging costs a delivery worker
// one JSON encoding and a short critical section. README.md documents every
// field.
package deliverylog
