package inauth

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/cuemta/cuemta/delivery/mx"
)

// Resolver is the DNS that verification uses: delivery/mx.Resolver, on
// the configured servers.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupHost(ctx context.Context, host string) ([]netip.Addr, error)
	LookupMX(ctx context.Context, domain string) (*mx.Result, error)
	LookupPTR(ctx context.Context, addr netip.Addr) ([]string, time.Duration, error)
}

var _ Resolver = (*mx.Resolver)(nil)

// errBudget is the error of a query past the message's DNS budget: a
// temporary failure, since the same message may verify with a larger one.
var errBudget = errors.New("DNS query budget of the message spent")

// budgeted is a Resolver bounded to a number of queries for one message,
// which speaks net's error types, as the SPF, DKIM and DMARC libraries
// expect: NXDOMAIN is a *net.DNSError with IsNotFound, a failure to get
// an answer one with IsTemporary.
type budgeted struct {
	r    Resolver
	left atomic.Int64 // DKIM verifies signatures in parallel
}

func newBudgeted(r Resolver, queries int) *budgeted {
	b := &budgeted{r: r}
	b.left.Store(int64(queries))
	return b
}

// take spends one query of the budget.
func (b *budgeted) take(name string) error {
	if b.left.Add(-1) < 0 {
		return &net.DNSError{Err: errBudget.Error(), Name: name, IsTemporary: true}
	}
	return nil
}

// netError converts an mx lookup error to net's form.
func netError(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mx.ErrNoSuchDomain):
		return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	default:
		return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
	}
}

func (b *budgeted) LookupTXT(ctx context.Context, name string) ([]string, error) {
	if err := b.take(name); err != nil {
		return nil, err
	}
	txts, err := b.r.LookupTXT(ctx, name)
	return txts, netError(name, err)
}

// LookupIPAddr is LookupHost in net's form (SPF a and mx, RFC 7208 §5.3):
// a name without addresses is an empty answer, not an error.
func (b *budgeted) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if err := b.take(host); err != nil {
		return nil, err
	}
	addrs, err := b.r.LookupHost(ctx, host)
	if errors.Is(err, mx.ErrNoAddress) {
		return nil, nil
	}
	if err != nil {
		return nil, netError(host, err)
	}
	out := make([]net.IPAddr, len(addrs))
	for i, a := range addrs {
		out[i] = net.IPAddr{IP: a.AsSlice()}
	}
	return out, nil
}

// LookupMX returns the MX records only: SPF's mx mechanism has no
// implicit MX (RFC 7208 §5.4), and a null MX names no host.
func (b *budgeted) LookupMX(ctx context.Context, domain string) ([]*net.MX, error) {
	if err := b.take(domain); err != nil {
		return nil, err
	}
	res, err := b.r.LookupMX(ctx, domain)
	if errors.Is(err, mx.ErrNullMX) {
		return nil, nil
	}
	if err != nil {
		return nil, netError(domain, err)
	}
	if res.Implicit {
		return nil, nil
	}
	out := make([]*net.MX, len(res.Hosts))
	for i, h := range res.Hosts {
		out[i] = &net.MX{Host: h.Name, Pref: h.Pref}
	}
	return out, nil
}

// LookupAddr is the PTR lookup of SPF's ptr mechanism and %{p} macro.
func (b *budgeted) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	if err := b.take(addr); err != nil {
		return nil, err
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "not an IP address", Name: addr, IsNotFound: true}
	}
	names, _, err := b.r.LookupPTR(ctx, ip)
	return names, netError(addr, err)
}
