// Package milter runs a listener's content filters (config
// listeners.*.milters) over Sendmail's milter protocol, version 6, with
// github.com/d--j/go-milter as the protocol engine, and applies what they
// ask to the message before the message rules see it.
//
// When: the whole conversation runs at the end of DATA, once the message
// is complete, with the connection, HELO, MAIL FROM and each RCPT TO
// replayed from the transaction. That costs a filter nothing it needs
// (the message is what scanners judge), holds no milter connection open
// for an idle or refused SMTP session, and gives one place to bound the
// time: the client waits for one reply, to the end of data. What follows
// from it, in Sendmail's semantics:
//   - A filter's reject or tempfail at any stage, a recipient's included,
//     refuses the message: after DATA there is one reply for every
//     recipient (RFC 5321 §4.2.5: only LMTP has one per recipient), and a
//     recipient the client heard 250 for is never dropped silently.
//   - accept ends that filter's part with no changes; the next filter
//     still runs. continue goes on to the next stage.
//   - discard takes the message from the client (250) and drops it:
//     reception.Discarded, logged and counted (outcome "discard").
//   - quarantine is taken as accept, with the filter's reason logged at
//     warning level and counted (outcome "quarantine"); nothing is held.
//
// Changes honoured: add, insert and change (or delete) header fields, and
// replace the body. Envelope changes (add or delete a recipient, change
// the sender) are not offered in the negotiation: made after the client
// heard its replies they would bypass relay control and the suppression
// list. A filter that insists on them fails to negotiate, which is an
// error like any other.
//
// Errors: a filter that cannot be dialled, does not answer within its
// timeouts, breaks the protocol or sends a change it was not offered is
// handled by its onError: "tempfail" (451 4.7.1), "accept" (fail open:
// the message goes on as this filter had never been asked, logged at
// error level and counted) or "reject" (550 5.7.1). Nothing a filter
// does can lose a message: the stored message always has CRLF line
// endings and a header section that reads back as one.
package milter
