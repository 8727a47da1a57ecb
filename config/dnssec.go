package config

import (
	"net"
	"net/netip"
	"strings"
)

// dnssecNotes note dns.dnssec: "trusted" with a resolver that is not on
// loopback (or none named, so whatever /etc/resolv.conf says): the AD bit
// then crosses a network where anyone on the path can set it, and DANE's
// protection is only as good as that path (RFC 4035 §4.9.3, RFC 7672
// §2.1.3). Not an error: a validating resolver on a trusted LAN or
// behind IPsec is a choice an operator may make.
func (c *Config) dnssecNotes() Errors {
	if !c.DNS.TrustAD() {
		return nil
	}
	if len(c.DNS.Servers) == 0 {
		return Errors{{Pos: c.posAt("dns.dnssec"), Msg: `note: dns.dnssec: "trusted" with no dns.servers believes the AD bit of whatever resolver /etc/resolv.conf names; name a validating resolver on loopback`}}
	}
	var remote []string
	for _, s := range c.DNS.Servers {
		host := s
		if h, _, err := net.SplitHostPort(s); err == nil {
			host = h
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.IsLoopback() {
			remote = append(remote, s)
		}
	}
	if len(remote) == 0 {
		return nil
	}
	return Errors{{Pos: c.posAt("dns.dnssec"), Msg: `note: dns.dnssec: "trusted" believes the AD bit from ` + strings.Join(remote, ", ") +
		`, which is not on loopback: anyone on the path to it can forge that bit and turn DANE off or on; prefer a validating resolver on this host`}}
}
