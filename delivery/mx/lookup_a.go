package mx

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// LookupA returns the IPv4 addresses at name and how long the answer may
// be kept (the records' TTL, or for NXDOMAIN and NODATA the negative TTL
// of RFC 2308 §5; 0: do not keep). A name without A records gives no
// addresses and no error; NXDOMAIN a *LookupError with ErrNoSuchDomain
// (and the negative TTL); a failure to get an answer a *LookupError with
// ErrTemporary. DNS blocklists (RFC 5782 §2.1) answer this way.
func (r *Resolver) LookupA(ctx context.Context, name string) ([]netip.Addr, time.Duration, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return nil, 0, &LookupError{Name: name, Type: "A", Kind: ErrNoSuchDomain, Cause: errInvalidName}
	}
	a, ttl, err := r.query(ctx, name, dns.TypeA)
	if err != nil {
		return nil, 0, &LookupError{Name: name, Type: "A", Kind: ErrTemporary, Cause: err}
	}
	if a.rcode == dns.RcodeNameError {
		return nil, ttl, &LookupError{Name: name, Type: "A", Kind: ErrNoSuchDomain}
	}
	var out []netip.Addr
	for _, rr := range a.rrs {
		if v, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(v.A); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, ttl, nil
}
