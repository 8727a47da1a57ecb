package mx

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// LookupPTR returns the names the reverse zone gives ip (RFC 1035 §3.5,
// RFC 3596 §2.5), lower-cased and without the final dot, and how long the
// answer may be kept (as LookupA). No PTR record gives an empty slice;
// NXDOMAIN a *LookupError with ErrNoSuchDomain; a failure to get an
// answer a *LookupError with ErrTemporary.
func (r *Resolver) LookupPTR(ctx context.Context, ip netip.Addr) ([]string, time.Duration, error) {
	name, err := dns.ReverseAddr(ip.Unmap().String())
	if err != nil {
		return nil, 0, &LookupError{Name: ip.String(), Type: "PTR", Kind: ErrNoSuchDomain, Cause: err}
	}
	a, ttl, err := r.query(ctx, name, dns.TypePTR)
	if err != nil {
		return nil, 0, &LookupError{Name: name, Type: "PTR", Kind: ErrTemporary, Cause: err}
	}
	if a.rcode == dns.RcodeNameError {
		return nil, ttl, &LookupError{Name: name, Type: "PTR", Kind: ErrNoSuchDomain}
	}
	out := []string{}
	for _, rr := range a.rrs {
		if p, ok := rr.(*dns.PTR); ok {
			out = append(out, strings.ToLower(strings.TrimSuffix(p.Ptr, ".")))
		}
	}
	return out, ttl, nil
}
