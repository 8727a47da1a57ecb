// Package reputation looks up our own egress addresses and sending
// domains in DNS blocklists (RFC 5782): each source's address in the
// configured DNSBLs (§2.1, reversed octets or nibbles) and each sending
// domain in the configured domain lists (§2.2).
//
// Invariants: every query goes through the Resolver given (the configured
// DNS servers); a list that cannot be asked (a timeout, SERVFAIL) leaves
// the target's state as it was, so a failing list neither lists nor
// delists anyone; only answers in 127.0.0.0/8 count as a listing (§2.3),
// and 127.255.255.0/24, which lists use to say they refused the query
// (Spamhaus's "open resolver" and quota codes), does not.
package reputation

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/cuemta/cuemta/delivery/mx"
)

// Resolver is the DNS the watch asks.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]netip.Addr, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

var _ Resolver = (*mx.Resolver)(nil)

// Target is one thing watched: an egress source's address, or a
// sending domain.
type Target struct {
	Source string     // the source's name (pools.*.sources), "" for a domain
	Addr   netip.Addr // the source's address
	Domain string     // a sending domain, "" for a source
}

// String names the target in logs.
func (t Target) String() string {
	if t.Domain != "" {
		return t.Domain
	}
	return t.Source + " (" + t.Addr.String() + ")"
}

// Result is one lookup of a target in one list.
type Result struct {
	Target
	List   string // the list's zone
	Listed bool
	// Codes are the list's A answers (127.0.0.x: which sublist).
	Codes []string
	// Reason is the list's TXT record, when it publishes one.
	Reason string
	// Err is set when the list could not be asked; Listed is then
	// meaningless.
	Err error
}

// Name is the query name of addr in a DNSBL zone (RFC 5782 §2.1): the
// octets of an IPv4 address in reverse order, the nibbles of an IPv6
// address in reverse order, then the zone.
func Name(addr netip.Addr, zone string) string {
	addr = addr.Unmap()
	zone = strings.TrimSuffix(zone, ".")
	if addr.Is4() {
		b := addr.As4()
		return fmt.Sprintf("%d.%d.%d.%d.%s", b[3], b[2], b[1], b[0], zone)
	}
	b := addr.As16()
	var s strings.Builder
	for i := len(b) - 1; i >= 0; i-- {
		fmt.Fprintf(&s, "%x.%x.", b[i]&0xf, b[i]>>4)
	}
	return s.String() + zone
}

// DomainName is the query name of domain in a domain list (RFC 5782 §2.2).
func DomainName(domain, zone string) string {
	return strings.TrimSuffix(strings.ToLower(domain), ".") + "." + strings.TrimSuffix(zone, ".")
}

// refusalCodes is 127.255.255.0/24: answers that say the list refused the
// query, not that the name is listed.
var refusalCodes = netip.MustParsePrefix("127.255.255.0/24")

// Check looks t up in the list zone.
func Check(ctx context.Context, r Resolver, t Target, zone string) Result {
	res := Result{Target: t, List: zone}
	name := DomainName(t.Domain, zone)
	if t.Domain == "" {
		name = Name(t.Addr, zone)
	}
	addrs, err := r.LookupHost(ctx, name)
	switch {
	case errors.Is(err, mx.ErrNoSuchDomain), errors.Is(err, mx.ErrNoAddress):
		return res // NXDOMAIN or NODATA: not listed (§2.1)
	case err != nil:
		res.Err = err
		return res
	}
	for _, a := range addrs {
		switch {
		case refusalCodes.Contains(a):
			res.Err = fmt.Errorf("list %s refused the query (answer %s)", zone, a)
			return res
		case a.Is4() && a.As4()[0] == 127:
			res.Listed = true
			res.Codes = append(res.Codes, a.String())
		}
	}
	slices.Sort(res.Codes)
	if res.Listed {
		// §2.1: the TXT record, when there is one, says why; a failure to
		// read it does not undo the listing.
		if txts, err := r.LookupTXT(ctx, name); err == nil && len(txts) > 0 {
			res.Reason = strings.Join(txts, " ")
		}
	}
	return res
}

// State remembers which targets are listed where, between rounds. It is
// not safe for concurrent use.
type State struct {
	listed map[string]Result // key: list + " " + target
}

// NewState is a state with nothing listed.
func NewState() *State { return &State{listed: map[string]Result{}} }

func key(r Result) string { return r.List + " " + r.Target.String() }

// Update records a round's results and returns those that changed: newly
// listed (Listed) and delisted (not Listed). A result with Err changes
// nothing. Targets or lists no longer watched are delisted.
func (s *State) Update(results []Result) []Result {
	var changed []Result
	seen := map[string]bool{}
	for _, r := range results {
		k := key(r)
		seen[k] = true
		if r.Err != nil {
			continue
		}
		_, was := s.listed[k]
		switch {
		case r.Listed && !was:
			s.listed[k] = r
			changed = append(changed, r)
		case r.Listed:
			s.listed[k] = r
		case was:
			delete(s.listed, k)
			changed = append(changed, r)
		}
	}
	for k, r := range s.listed {
		if !seen[k] {
			delete(s.listed, k)
			r.Listed, r.Codes, r.Reason = false, nil, ""
			changed = append(changed, r)
		}
	}
	return changed
}

// Listed reports whether a source is listed in any list.
func (s *State) Listed(source string) bool {
	for _, r := range s.listed {
		if r.Source == source && r.Domain == "" {
			return true
		}
	}
	return false
}

// Round checks every target in every list that applies to it: sources in
// dnsbls, domains in domainLists.
func Round(ctx context.Context, r Resolver, targets []Target, dnsbls, domainLists []string) []Result {
	var out []Result
	for _, t := range targets {
		lists := dnsbls
		if t.Domain != "" {
			lists = domainLists
		}
		for _, z := range lists {
			out = append(out, Check(ctx, r, t, z))
		}
	}
	return out
}
