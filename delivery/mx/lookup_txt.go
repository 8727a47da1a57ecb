package mx

import (
	"context"
	"strings"

	"github.com/miekg/dns"
)

// LookupTXT returns the TXT records of name, each the concatenation of
// its character-strings (RFC 7208 §3.3, RFC 8460 §3 read a record so). A
// name without TXT records (NODATA) gives an empty list; NXDOMAIN is a
// *LookupError of kind ErrNoSuchDomain, a failure to get an answer one of
// kind ErrTemporary.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	fail := func(kind, cause error) error {
		return &LookupError{Name: name, Type: "TXT", Kind: kind, Cause: cause}
	}
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return nil, fail(ErrNoSuchDomain, errInvalidName)
	}
	a, _, err := r.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, fail(ErrTemporary, err)
	}
	if a.rcode == dns.RcodeNameError {
		return nil, fail(ErrNoSuchDomain, nil)
	}
	out := make([]string, 0, len(a.rrs))
	for _, rr := range a.rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}
