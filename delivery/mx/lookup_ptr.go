package mx

import (
	"context"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// LookupPTR returns the names the PTR records of addr give (RFC 1035
// §3.5, in-addr.arpa / ip6.arpa), lower case, without the trailing dot.
// An address without PTR records gives an empty slice; NXDOMAIN a
// *LookupError with ErrNoSuchDomain; a failure to get an answer a
// *LookupError with ErrTemporary.
func (r *Resolver) LookupPTR(ctx context.Context, addr netip.Addr) ([]string, error) {
	name, err := dns.ReverseAddr(addr.Unmap().String())
	if err != nil {
		return nil, &LookupError{Name: addr.String(), Type: "PTR", Kind: ErrNoSuchDomain, Cause: err}
	}
	a, _, err := r.query(ctx, name, dns.TypePTR)
	if err != nil {
		return nil, &LookupError{Name: name, Type: "PTR", Kind: ErrTemporary, Cause: err}
	}
	if a.rcode == dns.RcodeNameError {
		return nil, &LookupError{Name: name, Type: "PTR", Kind: ErrNoSuchDomain}
	}
	out := []string{}
	for _, rr := range a.rrs {
		if p, ok := rr.(*dns.PTR); ok {
			out = append(out, display(strings.ToLower(p.Ptr)))
		}
	}
	return out, nil
}
