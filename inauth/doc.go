// Package inauth verifies inbound mail: SPF (RFC 7208) for the client's
// address and the envelope sender, DKIM (RFC 6376) for every signature up
// to a bound, and DMARC (RFC 7489) for the From: domain, with the
// organisational domain from the public suffix list, and the ARC chain
// (RFC 8617) of the hosts that forwarded it; and it writes the outcome as
// an Authentication-Results field (RFC 8601).
//
// Invariants:
//   - Every DNS query goes through the Resolver given (the configured
//     servers; never the system resolver), within one Budget per message:
//     a count of queries and a deadline. A verification that runs out of
//     either gives temperror for what was left, never a stall.
//   - Verification only reports: nothing here refuses a message. Message
//     rules read the results (spf, dkim, dmarc, auth) and decide.
//   - Results are values, never errors: a message whose records cannot be
//     read gets permerror or temperror, as the RFCs name them.
package inauth
