// Package mx resolves the next hop for a recipient domain: its MX hosts in
// preference order (RFC 5321 §5.1) and their addresses, with github.com/miekg/dns
// against configured servers.
//
// Errors are classified for the delivery scheduler: IsPermanent reports a
// domain that cannot receive mail (NXDOMAIN, null MX per RFC 7505, a host
// without addresses), everything else (SERVFAIL, REFUSED, timeouts) is a
// temporary failure to be retried. Answers, positive and negative, are
// cached for their TTL by an injected clock.
package mx
