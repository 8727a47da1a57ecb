package mx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Defaults for zero Options fields.
const (
	DefaultTimeout   = 5 * time.Second
	DefaultCacheSize = 4096

	// maxPositiveTTL bounds how long an answer is trusted, whatever the
	// zone says.
	maxPositiveTTL = 24 * time.Hour
	// maxNegativeTTL bounds negative caching (RFC 2308 §5 suggests one to
	// three hours; a domain that has just been fixed should not wait long).
	maxNegativeTTL = time.Hour
	// maxCNAMEChain bounds CNAME following, against loops.
	maxCNAMEChain = 8
	// ednsSize is the EDNS0 UDP payload size (RFC 6891 §6.2.5; 1232 is the
	// DNS Flag Day 2020 value that avoids IP fragmentation).
	ednsSize = 1232
)

// Options configure a Resolver.
type Options struct {
	// Servers are recursive resolvers as host:port (a bare IP means port
	// 53), tried in order. Empty: the nameservers in /etc/resolv.conf.
	Servers []string
	// Timeout bounds each query to each server. Default 5s.
	Timeout time.Duration
	// Now is the clock for cache expiry. Default time.Now.
	Now func() time.Time
	// CacheSize is the number of (name, type) answers kept. 0 means
	// DefaultCacheSize; negative disables caching.
	CacheSize int
	// TrustAD: the servers validate DNSSEC and the path to them is
	// trusted (a resolver on loopback), so queries ask for the AD bit
	// (RFC 6840 §5.7) and an answer that carries it counts as
	// authenticated (RFC 4035 §3.2.3). Without it no answer is secure:
	// an AD bit from a resolver we have no reason to trust, or that an
	// attacker on the path could set, must not switch DANE on (RFC 7672
	// §2.1.3, RFC 4035 §4.9.3).
	TrustAD bool
}

// Resolver looks up MX and address records. It is safe for concurrent use.
type Resolver struct {
	servers  []string
	udp, tcp *dns.Client
	now      func() time.Time
	cache    *cache // nil: caching disabled
	trustAD  bool
}

// New returns a Resolver for opts.
func New(opts Options) (*Resolver, error) {
	servers, err := normaliseServers(opts.Servers)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	r := &Resolver{
		servers: servers,
		udp:     &dns.Client{Net: "udp", Timeout: timeout},
		tcp:     &dns.Client{Net: "tcp", Timeout: timeout},
		now:     opts.Now,
		trustAD: opts.TrustAD,
	}
	if r.now == nil {
		r.now = time.Now
	}
	switch {
	case opts.CacheSize == 0:
		r.cache = newCache(DefaultCacheSize)
	case opts.CacheSize > 0:
		r.cache = newCache(opts.CacheSize)
	}
	return r, nil
}

// Servers returns the servers queried, in order.
func (r *Resolver) Servers() []string { return append([]string(nil), r.servers...) }

func normaliseServers(in []string) ([]string, error) {
	if len(in) == 0 {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("mx: no DNS servers configured and /etc/resolv.conf unreadable: %w", err)
		}
		for _, s := range conf.Servers {
			in = append(in, net.JoinHostPort(s, conf.Port))
		}
		if len(in) == 0 {
			return nil, errors.New("mx: no DNS servers configured and none in /etc/resolv.conf")
		}
		return in, nil
	}
	out := make([]string, 0, len(in))
	for _, s := range in {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, net.JoinHostPort(a.String(), "53"))
			continue
		}
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, fmt.Errorf("mx: DNS server %q: want host:port: %w", s, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// answer is what a query established about one (name, type): the RCODE
// (success or NXDOMAIN), the records of the type owned by name (the end of
// any CNAME chain in the answer) and how long to trust it.
type answer struct {
	name  string // FQDN the records belong to, after CNAMEs
	rcode int
	rrs   []dns.RR
	ttl   time.Duration
	// secure: every message of the answer (each query of a CNAME chain
	// chased here) came with the AD bit from a trusted resolver.
	secure bool
}

// query answers (name, qtype) from the cache or the servers. It returns an
// error only for temporary failures; NXDOMAIN is an answer.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*answer, time.Duration, error) {
	name = strings.ToLower(dns.Fqdn(name))
	key := cacheKey{name, qtype}
	if r.cache != nil {
		if a, left, ok := r.cache.get(key, r.now()); ok {
			return a, left, nil
		}
	}
	a, err := r.resolve(ctx, name, qtype)
	if err != nil {
		return nil, 0, err
	}
	// Temporary failures are not cached: the caller's retry schedule
	// decides when to ask again.
	if r.cache != nil && a.ttl > 0 {
		r.cache.put(key, a, r.now().Add(a.ttl))
	}
	return a, a.ttl, nil
}

// resolve asks the servers, following a CNAME chain the server left
// unfinished.
func (r *Resolver) resolve(ctx context.Context, name string, qtype uint16) (*answer, error) {
	var ttl time.Duration = -1
	secure := r.trustAD
	for range maxCNAMEChain {
		msg, err := r.exchange(ctx, name, qtype)
		if err != nil {
			return nil, err
		}
		a := parseAnswer(msg, name, qtype)
		if ttl >= 0 && a.ttl > ttl {
			a.ttl = ttl
		}
		// A chain is only as secure as its least secure link.
		secure = secure && msg.AuthenticatedData
		a.secure = secure
		// A chain that ends without records of the type and without
		// NXDOMAIN means the server did not chase the target for us.
		if a.rcode == dns.RcodeSuccess && len(a.rrs) == 0 && a.name != name && !hasNegativeProof(msg) {
			name, ttl = a.name, a.ttl
			continue
		}
		return a, nil
	}
	return nil, fmt.Errorf("CNAME chain longer than %d at %s", maxCNAMEChain, name)
}

// hasNegativeProof reports an SOA in the authority section: the server
// chased the chain and found no data at its end (RFC 2308 §2.2).
func hasNegativeProof(m *dns.Msg) bool {
	for _, rr := range m.Ns {
		if _, ok := rr.(*dns.SOA); ok {
			return true
		}
	}
	return false
}

func parseAnswer(m *dns.Msg, name string, qtype uint16) *answer {
	a := &answer{name: name, rcode: m.Rcode}
	minTTL := uint32(maxPositiveTTL / time.Second)
	// Follow the CNAME chain inside the answer section (RFC 1034 §3.6.2).
	for range maxCNAMEChain {
		next := ""
		for _, rr := range m.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, a.name) {
				next = strings.ToLower(c.Target)
				minTTL = min(minTTL, c.Hdr.Ttl)
				break
			}
		}
		if next == "" {
			break
		}
		a.name = next
	}
	for _, rr := range m.Answer {
		h := rr.Header()
		if h.Rrtype == qtype && strings.EqualFold(h.Name, a.name) {
			a.rrs = append(a.rrs, rr)
			minTTL = min(minTTL, h.Ttl)
		}
	}
	if len(a.rrs) > 0 {
		a.ttl = time.Duration(minTTL) * time.Second
		return a
	}
	a.ttl = negativeTTL(m)
	return a
}

// negativeTTL is how long NXDOMAIN or NODATA may be cached: the SOA's
// TTL capped by its MINIMUM field (RFC 2308 §5), bounded by
// maxNegativeTTL. Without an SOA the answer is not cached (RFC 2308 §5).
func negativeTTL(m *dns.Msg) time.Duration {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			ttl := time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
			return min(ttl, maxNegativeTTL)
		}
	}
	return 0
}

// exchange sends one query to each server in turn until one gives a
// definitive answer (NOERROR or NXDOMAIN).
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(ednsSize, false)
	// RFC 6840 §5.7: a query with AD set asks the resolver to say whether
	// it validated the answer. DO is not needed for that and would bring
	// RRSIGs we do not check ourselves.
	m.AuthenticatedData = r.trustAD
	var errs []error
	for _, srv := range r.servers {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		resp, err := r.exchangeOne(ctx, m, srv)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", srv, err))
			continue
		}
		switch resp.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s answered %s", srv, rcodeName(resp.Rcode)))
	}
	return nil, errors.Join(errs...)
}

func (r *Resolver) exchangeOne(ctx context.Context, m *dns.Msg, srv string) (*dns.Msg, error) {
	resp, _, err := r.udp.ExchangeContext(ctx, m, srv)
	if err == nil && resp.Truncated {
		// RFC 7766 §5: a truncated UDP answer is retried over TCP.
		resp, _, err = r.tcp.ExchangeContext(ctx, m, srv)
	}
	if err != nil {
		return nil, err
	}
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, m.Question[0].Name) ||
		resp.Question[0].Qtype != m.Question[0].Qtype {
		return nil, errors.New("answer does not match the question")
	}
	return resp, nil
}

func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE %d", rc)
}

// display turns an FQDN into the usual form without the root dot.
func display(name string) string {
	if name == "." {
		return name
	}
	return strings.TrimSuffix(name, ".")
}
