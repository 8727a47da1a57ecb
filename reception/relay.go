package reception

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/cuemta/cuemta/config"
)

// NewRelayPolicy parses the relay section of the configuration.
func NewRelayPolicy(c config.Relay) (RelayPolicy, error) {
	var r RelayPolicy
	for _, n := range c.Networks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			return RelayPolicy{}, fmt.Errorf("relay network %q: %w", n, err)
		}
		r.Networks = append(r.Networks, p)
	}
	r.Domains = append(r.Domains, c.Domains...)
	return r, nil
}

// relayRules is a RelayPolicy prepared for lookups.
type relayRules struct {
	networks []netip.Prefix
	domains  map[string]bool // lower-case, no trailing dot
}

func newRelayRules(p RelayPolicy) (*relayRules, error) {
	r := &relayRules{domains: make(map[string]bool, len(p.Domains))}
	for _, n := range p.Networks {
		if !n.IsValid() {
			return nil, fmt.Errorf("invalid relay network %v", n)
		}
		// A v4-mapped prefix would never match: client addresses are unmapped.
		if n.Addr().Is4In6() {
			n = netip.PrefixFrom(n.Addr().Unmap(), n.Bits()-96)
		}
		r.networks = append(r.networks, n.Masked())
	}
	for _, d := range p.Domains {
		norm, err := normalizeDomain(d)
		if err != nil || norm[0] == '[' {
			return nil, fmt.Errorf("relay domain %q is not a domain name", d)
		}
		r.domains[norm] = true
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
