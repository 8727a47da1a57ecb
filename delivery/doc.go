// Package delivery sends spooled mail to its next hops, as fast as each
// receiving site allows and no faster.
//
// The shaping model:
//
//   - A site is the set of MX hosts that serve a recipient domain (or a
//     static route). Every domain hosted at the same provider resolves to
//     the same MX set and so shares one site, one set of limits and one
//     reputation.
//   - A lane is a site as seen from one egress source (a bind address in a
//     pool). Limits apply per lane: connections (maxConnections), messages
//     per connection, message and connection rates (token buckets). The
//     effective profile of a lane is config.Resolve(domain, mxHosts, source).
//   - Every SMTP reply goes through the response rules; their decision
//     (delivered, transient, permanent, throttled, greylisted, and actions:
//     suspend a site, a source-at-site, a tenant or a campaign; throttle;
//     retry after; bounce) is applied before the next message is sent.
//   - A recipient is the unit of outcome: in a multi-recipient message only
//     the recipients that failed temporarily are retried; permanent failures
//     and expiry at the profile's maxAge produce one RFC 3464 DSN per
//     message to its envelope sender (never to the null sender).
//   - A message goes to a next hop only in a form the hop can take
//     (downgrade.go): 8-bit bodies are made 7-bit for a hop without
//     8BITMIME, SMTPUTF8 mail that needs the extension only goes to a hop
//     that offers it (else 5.6.7), and a hop that is this MTA's own
//     listener is never dialled (self.go; else 5.4.6). These local
//     decisions bypass the response rules.
//
// The spool stays the source of truth: a message is in memory here only
// while an attempt is in flight, and its outcome is written back before it
// leaves; a crash mid-attempt means at worst a duplicate delivery, never a
// lost message.
package delivery
