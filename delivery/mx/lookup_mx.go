package mx

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Host is one MX target.
type Host struct {
	Name string // lower case, without the trailing dot
	Pref uint16
}

// Result is the next hop for a domain.
type Result struct {
	Domain string
	// Hosts in the order to try them: ascending preference, random order
	// among equal preferences (shuffled on every call).
	Hosts []Host
	// Implicit: the domain has no MX records, so the domain itself is the
	// only host (RFC 5321 §5.1).
	Implicit bool
	// TTL is how much longer the answer may be trusted.
	TTL time.Duration
	// Secure: the MX RRset (or, for an implicit MX, the authenticated
	// NODATA) came validated from a trusted resolver (Options.TrustAD).
	// Only then are the hosts' TLSA records looked up (RFC 7672 §2.2.1).
	Secure bool
}

// LookupMX returns the MX hosts of domain.
func (r *Resolver) LookupMX(ctx context.Context, domain string) (*Result, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	fail := func(kind, cause error) error {
		return &LookupError{Name: domain, Type: "MX", Kind: kind, Cause: cause}
	}
	if _, ok := dns.IsDomainName(domain); !ok || domain == "" {
		return nil, fail(ErrNoSuchDomain, errInvalidName)
	}
	a, ttl, err := r.query(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, fail(ErrTemporary, err)
	}
	if a.rcode == dns.RcodeNameError {
		return nil, fail(ErrNoSuchDomain, nil)
	}
	res := &Result{Domain: domain, TTL: ttl, Secure: a.secure}
	if len(a.rrs) == 0 {
		// RFC 5321 §5.1: no MX records: an implicit MX of preference 0
		// pointing at the domain (after CNAMEs) itself; a CNAME target
		// with bytes that need escaping (a dot inside a label) is no host
		// name, as for an MX exchange below.
		if strings.ContainsRune(a.name, '\\') {
			return nil, fail(ErrTemporary, errors.New("the CNAME target is not a host name"))
		}
		res.Hosts = []Host{{Name: display(a.name)}}
		res.Implicit = true
		return res, nil
	}
	hosts := make([]Host, 0, len(a.rrs))
	null := false
	for _, rr := range a.rrs {
		mx := rr.(*dns.MX)
		if mx.Mx == "." {
			null = true
			continue
		}
		if _, ok := dns.IsDomainName(mx.Mx); !ok || mx.Mx == "" || strings.ContainsRune(mx.Mx, '\\') {
			// A record whose exchange did not unpack (rdata that holds
			// only the preference) names no host to connect to; nor does
			// one with bytes that need escaping (a dot or a space inside
			// a label): a host name is letters, digits and hyphens
			// (RFC 5321 §2.3.5).
			continue
		}
		hosts = append(hosts, Host{Name: display(strings.ToLower(mx.Mx)), Pref: mx.Preference})
	}
	if len(hosts) == 0 && null {
		// RFC 7505 §3. A "." among real MX records violates §3 ("MUST NOT
		// advertise any other MX RR"); we then just skip the unusable one.
		return nil, fail(ErrNullMX, nil)
	}
	if len(hosts) == 0 {
		// MX records that name no usable host: a broken answer, worth
		// asking again rather than bouncing on.
		return nil, fail(ErrTemporary, errors.New("no MX record names a usable host"))
	}
	res.Hosts = order(hosts)
	return res, nil
}

// order sorts by preference, drops duplicate names (keeping the most
// preferred) and shuffles runs of equal preference: RFC 5321 §5.1 says
// the sender MUST randomize them to spread the load.
func order(hosts []Host) []Host {
	slices.SortStableFunc(hosts, func(a, b Host) int { return int(a.Pref) - int(b.Pref) })
	seen := make(map[string]bool, len(hosts))
	out := hosts[:0]
	for _, h := range hosts {
		if !seen[h.Name] {
			seen[h.Name] = true
			out = append(out, h)
		}
	}
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && out[j].Pref == out[i].Pref {
			j++
		}
		run := out[i:j]
		rand.Shuffle(len(run), func(a, b int) { run[a], run[b] = run[b], run[a] })
		i = j
	}
	return out
}
