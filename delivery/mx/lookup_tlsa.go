package mx

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// TLSAResult is what DNS says about the TLSA records of one MX host.
type TLSAResult struct {
	// Name is the TLSA owner asked for: "_25._tcp.<host>." (RFC 7672 §2.2.3).
	Name string
	// Records are the TLSA records found (after any CNAME the server
	// followed); empty for NXDOMAIN, NODATA, or when not looked up.
	Records []*dns.TLSA
	// Secure: the answer (records or their denial) was authenticated. Only
	// secure records make DANE apply; insecure ones are ignored as if
	// absent (RFC 7672 §2.2).
	Secure bool
	// Skipped: the host's own address records were not authenticated, so
	// the TLSA records were not asked for (they could not be either).
	Skipped bool
	TTL     time.Duration
}

// LookupTLSA returns the TLSA records for SMTP to host at port.
//
// The lookup is made only when the host's address records (A, or AAAA
// when A failed) are authenticated: a host in an unsigned zone has no
// secure TLSA records to find, and skipping the query avoids the broken
// servers that fail TLSA queries altogether (RFC 7672 §2.2.3). Without
// Options.TrustAD nothing is looked up.
//
// An error (SERVFAIL, a timeout: Kind ErrTemporary) means the records of
// a signed zone could not be had: the host must not be used without them
// (RFC 7672 §2.1.1), so delivery tries another MX host or defers.
// NXDOMAIN and NODATA are not errors: the host has no TLSA records.
//
// A CNAME at the TLSA owner is followed by the query; the TLSA lookup at
// the host's CNAME-expanded name that RFC 7672 §2.2.3 prefers is not made.
func (r *Resolver) LookupTLSA(ctx context.Context, host string, port int) (*TLSAResult, error) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	name := "_" + strconv.Itoa(port) + "._tcp." + host + "."
	res := &TLSAResult{Name: name}
	if !r.trustAD {
		res.Skipped = true
		return res, nil
	}
	if _, ok := dns.IsDomainName(host); !ok || host == "" {
		return nil, &LookupError{Name: name, Type: "TLSA", Kind: ErrNoSuchDomain, Cause: errInvalidName}
	}
	if !r.addressSecure(ctx, host) {
		res.Skipped = true
		return res, nil
	}
	a, ttl, err := r.query(ctx, name, dns.TypeTLSA)
	if err != nil {
		return nil, &LookupError{Name: name, Type: "TLSA", Kind: ErrTemporary, Cause: err}
	}
	res.Secure, res.TTL = a.secure, ttl
	for _, rr := range a.rrs {
		if t, ok := rr.(*dns.TLSA); ok {
			res.Records = append(res.Records, t)
		}
	}
	return res, nil
}

// addressSecure reports whether host's A records (or, if that query
// failed, its AAAA records) came authenticated; delivery has just looked
// them up, so they are usually in the cache.
func (r *Resolver) addressSecure(ctx context.Context, host string) bool {
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		a, _, err := r.query(ctx, host, qt)
		if err == nil {
			return a.secure
		}
	}
	return false
}
