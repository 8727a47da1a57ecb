// Package dsn builds delivery status notifications (RFC 3464): the
// bounce or delay report sent back to a message's envelope sender, as a
// multipart/report (RFC 6522) with a human-readable part, a
// message/delivery-status part and the original headers
// (text/rfc822-headers).
//
// The caller sends the result with the null reverse-path (MAIL FROM:<>,
// RFC 3464 §2 and RFC 5321 §4.5.5) so that a DSN never causes another,
// and asks NeverBounce first.
package dsn
