// Package smtpclient is the SMTP client used for delivery. Every server
// reply comes back typed with the stage of the transaction it answered
// (greeting, ehlo, starttls, auth, mail, rcpt, data, eod), so that
// response rules and DSNs can say exactly what the remote side said when.
//
// Failures are of three kinds:
//   - *Reply: the server answered with a code the step did not want;
//   - *NetError: the network failed (refused, reset, timed out) or the
//     server spoke something that is not SMTP; the connection is dead;
//   - *TLSError: STARTTLS could not be had (see IsTLSFailure).
//
// Send pipelines MAIL, RCPT and DATA when the server offers PIPELINING
// (RFC 2920). The package is built on net and bufio rather than
// net/textproto: textproto flushes each command line (defeating
// pipelining) and its ReadResponse drops the enhanced status code and
// bounds neither line length nor line count.
//
// A Conn is used by one goroutine at a time.
package smtpclient
