// Package reception receives mail over SMTP (RFC 5321) for one configured
// listener and hands each accepted message to a Sink, which stores it
// durably and returns its queue ID.
//
// The protocol engine is github.com/emersion/go-smtp v0.25.1, forked
// server-side in internal/smtpd (see its FORK.md: end-of-data and bare-CR
// fixes, segmentation-independent line limits, the EHLO first line,
// RCPT TO:<postmaster>, 501 for bad AUTH base64, command, connect and
// HELO hooks), because
// after STARTTLS nothing outside it sees the plaintext. This package
// supplies the policy around it: connection limits counted on the listener, relay
// control, STARTTLS-only AUTH PLAIN/LOGIN against bcrypt hashes, size and
// recipient limits, read deadlines for commands and message data, a defence
// against SMTP smuggling (bare CR or LF in message data is refused), one
// line-length rule for DATA and BDAT, a header-size bound and a Received
// hop limit checked before any rule runs, per-connection limits on refused
// RCPTs and NOOP/RSET, the
// Received trace header, Message-ID and Date for submission listeners, the
// stage rules at connect, HELO, MAIL and RCPT after this package's own
// checks of each stage (stages.go; the relay check always first), and a
// graceful Shutdown that lets transactions in progress finish.
//
// State that must outlive one Server is owned by the caller and passed in
// Policy: a Guard (one per process) holds the AUTH failure counts per
// client and per user, the bcrypt slots (half the CPUs, a bounded wait)
// and the rate-limit buckets per client IP, user and tenant; ConnCounts
// (one per bound listener) hold its connection counts. So a reload, which
// makes a new Server per listener while the old one drains, resets no
// count, and a client escapes no limit by reconnecting. Every table is
// bounded: entries expire and each table has a cap.
//
// Timeouts: limits.commandTimeout is go-smtp's ReadTimeout, the deadline
// for each command line (and WriteTimeout for each reply). go-smtp would
// keep that one deadline for a whole DATA upload, so while message data is
// read the connection instead gives every network read a fresh
// limits.dataTimeout: an idle timeout per block, as RFC 5321 §4.5.3.2
// describes, which a slow but live upload of a large message survives.
// Per-read renewal alone would let a byte now and then hold DATA open for
// ever, so the data phase also has an average minimum rate (minDataRate,
// after one dataTimeout) and an absolute bound (maxDataTime); breaking
// either is 421 4.4.2 and a close (datalimits.go).
//
// Memory: message data is held in 64 KiB chunks reserved, as the bytes
// arrive, in a Budget shared by every reception server of the process (config
// reception.maxBytesInFlight). A transaction that would pass it is
// answered 452 4.3.1, as is a MAIL FROM whose SIZE does not fit, and every
// reservation is released when its transaction ends, however it ends. The
// stored message is built with one copy of the data, into a buffer that
// already has room for the Received header (msgbuf.go).
//
// Replies follow RFC 5321 with RFC 3463 enhanced status codes. The 250
// after the message data is sent only once Sink.Accept has returned a queue
// ID, so "queued" always means stored. A Sink that is short of storage says
// so through SpaceReporter, and MAIL FROM is then answered 452 4.3.1 before
// the client sends any data.
package reception
