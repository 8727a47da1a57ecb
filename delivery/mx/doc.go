// Package mx resolves the next hop for a recipient domain: its MX hosts in
// preference order (RFC 5321 §5.1), their addresses, and their TLSA records
// for DANE (RFC 7672), with github.com/miekg/dns against configured servers.
//
// Errors are classified for the delivery scheduler: IsPermanent reports a
// domain that cannot receive mail (NXDOMAIN, null MX per RFC 7505, a host
// without addresses), everything else (SERVFAIL, REFUSED, timeouts) is a
// temporary failure to be retried. Answers, positive and negative, are
// cached for their TTL by an injected clock.
//
// DNSSEC is the servers' business: this package checks no signatures. With
// Options.TrustAD it asks for the AD bit and reports an answer as secure
// when every message behind it carried the bit; without it nothing is
// secure, so DANE never applies.
package mx
