package mx

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

var errInvalidName = errors.New("not a valid domain name")

// LookupHost returns host's addresses, IPv4 first, then IPv6. An address
// literal is returned as is. When one family fails temporarily but the
// other has addresses, the addresses are returned: delivery can proceed.
func (r *Resolver) LookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	if _, ok := dns.IsDomainName(host); !ok || host == "" {
		return nil, &LookupError{Name: host, Type: "A", Kind: ErrNoSuchDomain, Cause: errInvalidName}
	}
	type family struct {
		qtype uint16
		ans   *answer
		err   error
	}
	fams := []*family{{qtype: dns.TypeA}, {qtype: dns.TypeAAAA}}
	done := make(chan struct{}, len(fams))
	for _, f := range fams {
		go func() {
			f.ans, _, f.err = r.query(ctx, host, f.qtype)
			done <- struct{}{}
		}()
	}
	for range fams {
		<-done
	}
	var addrs []netip.Addr
	for _, f := range fams {
		if f.err != nil {
			continue
		}
		for _, rr := range f.ans.rrs {
			var ip []byte
			switch v := rr.(type) {
			case *dns.A:
				ip = v.A
			case *dns.AAAA:
				ip = v.AAAA
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, nil
	}
	for _, f := range fams {
		if f.err == nil && f.ans.rcode == dns.RcodeNameError {
			return nil, &LookupError{Name: host, Type: dns.TypeToString[f.qtype], Kind: ErrNoSuchDomain}
		}
	}
	for _, f := range fams {
		if f.err != nil {
			return nil, &LookupError{Name: host, Type: dns.TypeToString[f.qtype], Kind: ErrTemporary, Cause: f.err}
		}
	}
	return nil, &LookupError{Name: host, Type: "A", Kind: ErrNoAddress}
}
