package reception

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/cuemta/cuemta/config"
)

// NewRelayPolicy parses the relay section of the configuration. Routes
// play no part: a route chooses the next hop of mail already accepted, it
// never makes a domain accepted from outside.
func NewRelayPolicy(c config.Relay) (RelayPolicy, error) {
	var r RelayPolicy
	for _, n := range c.Networks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return RelayPolicy{}, fmt.Errorf("relay network %q: %w", n, err)
		}
		r.Networks = append(r.Networks, p)
	}
	for _, d := range c.Domains {
		r.Domains = append(r.Domains, d.Domain)
		if d.Restricted {
			if r.Recipients == nil {
				r.Recipients = map[string][]string{}
			}
			r.Recipients[d.Domain] = append(r.Recipients[d.Domain], d.Locals...)
		}
	}
	return r, nil
}

// relayRules is a RelayPolicy prepared for lookups.
type relayRules struct {
	networks []netip.Prefix
	domains  map[string]bool // normalised (normalizeDomain)
	// recipients holds, for a domain that lists its recipients, the
	// accepted local parts, lower-cased.
	recipients map[string]map[string]bool
}

func newRelayRules(p RelayPolicy) (*relayRules, error) {
	r := &relayRules{domains: make(map[string]bool, len(p.Domains))}
	for _, n := range p.Networks {
		if !n.IsValid() {
			return nil, fmt.Errorf("invalid relay network %v", n)
		}
		// A v4-mapped prefix would never match: client addresses are
		// unmapped. config vet judges the open-relay threshold on this
		// same unmapped form (config.UnmapPrefix).
		r.networks = append(r.networks, config.UnmapPrefix(n))
	}
	norm := func(d string) (string, error) {
		n, err := normalizeDomain(d)
		if err != nil || n[0] == '[' {
			return "", fmt.Errorf("relay domain %q is not a domain name", d)
		}
		return n, nil
	}
	for _, d := range p.Domains {
		n, err := norm(d)
		if err != nil {
			return nil, err
		}
		r.domains[n] = true
	}
	for d, locals := range p.Recipients {
		n, err := norm(d)
		if err != nil {
			return nil, err
		}
		if !r.domains[n] {
			return nil, fmt.Errorf("relay domain %q has recipients but is not in Domains", d)
		}
		if r.recipients == nil {
			r.recipients = map[string]map[string]bool{}
		}
		set := r.recipients[n]
		if set == nil {
			set = map[string]bool{}
			r.recipients[n] = set
		}
		for _, l := range locals {
			set[strings.ToLower(l)] = true
		}
	}
	return r, nil
}

// fromNetwork reports whether ip is in one of the relay networks.
func (r *relayRules) fromNetwork(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	for _, n := range r.networks {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// acceptsDomain reports whether domain, as returned by normalizeDomain, is
// one this MTA receives mail for from anyone.
func (r *relayRules) acceptsDomain(domain string) bool {
	return r.domains[strings.ToLower(domain)]
}

// knownRecipient reports whether the local part may receive mail at
// domain (normalised): false only for a domain of relay.domains that
// lists its recipients and does not list this one. Local parts compare
// case-insensitively.
func (r *relayRules) knownRecipient(local, domain string) bool {
	set, ok := r.recipients[strings.ToLower(domain)]
	return !ok || set[strings.ToLower(local)]
}

// RFC 5321 §3.3 (550: mailbox unavailable) with RFC 3463 X.1.1 (bad
// destination mailbox address).
var errUnknownRecipient = newReply(550, "5.1.1", "No such user here")

// checkRecipient decides one RCPT whose address is syntactically valid
// (checkMailbox returned domain): an unknown recipient of a domain that
// lists its recipients is refused 550 5.1.1, whoever sends; otherwise
// relayCheck applies.
func (s *session) checkRecipient(to, domain string) error {
	local := to[:strings.LastIndexByte(to, '@')]
	if !s.srv.relay.knownRecipient(local, domain) {
		return errUnknownRecipient
	}
	if err := s.relayCheck(domain); err != nil {
		return err
	}
	return nil
}
