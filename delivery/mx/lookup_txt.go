package mx

import (
	"context"
	"strings"

	"github.com/miekg/dns"
)

// LookupTXT returns the TXT records at name, each record's strings joined
// without a separator (RFC 7208 §3.3 and RFC 8461 §3.1 read a record that
// way). A name without TXT records gives an empty slice; NXDOMAIN a
// *LookupError with ErrNoSuchDomain; a failure to get an answer a
// *LookupError with ErrTemporary.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return nil, &LookupError{Name: name, Type: "TXT", Kind: ErrNoSuchDomain, Cause: errInvalidName}
	}
	a, _, err := r.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, &LookupError{Name: name, Type: "TXT", Kind: ErrTemporary, Cause: err}
	}
	if a.rcode == dns.RcodeNameError {
		return nil, &LookupError{Name: name, Type: "TXT", Kind: ErrNoSuchDomain}
	}
	out := []string{}
	for _, rr := range a.rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}
