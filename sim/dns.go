package sim

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// startDNS binds UDP and TCP on the same address (port 0: any free port,
// the same for both).
func (s *Sim) startDNS() error {
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", s.cfg.DNS.Addr)
		if err != nil {
			return fmt.Errorf("sim: dns: %w", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			lastErr = fmt.Errorf("sim: dns: %w", err)
			if strings.HasSuffix(s.cfg.DNS.Addr, ":0") {
				continue
			}
			return lastErr
		}
		s.dnsAddr = pc.LocalAddr().String()
		h := dns.HandlerFunc(s.serveDNS)
		for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				srv.ActivateAndServe()
			}()
			<-started
			s.dnsSrv = append(s.dnsSrv, srv)
		}
		return nil
	}
	return lastErr
}

// serveDNS answers authoritatively for the sites' domains and MX hosts:
// MX for each domain (preference 10, 20, ... in the order given), A for
// each MX host, the configured extra records, NODATA for other types of
// known names, NXDOMAIN for unknown names under a known domain and
// REFUSED outside them. Answers from a dnssec zone carry the AD bit when
// the query asks for it, as a validating resolver's would.
func (s *Sim) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg).SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	ttl := uint32(s.cfg.DNS.TTL.D() / time.Second)
	zone := s.zoneOf(name)
	switch {
	case zone != "" && s.servfail[zone]:
		m.Rcode = dns.RcodeServerFailure
	case s.nullMX[name]:
		if q.Qtype == dns.TypeMX {
			m.Answer = append(m.Answer, &dns.MX{Hdr: hdr(name, dns.TypeMX, ttl), Preference: 0, Mx: "."}) // RFC 7505 §3
		}
	default:
		s.answer(m, q, name, ttl)
		if len(m.Answer) == 0 && m.Rcode == dns.RcodeSuccess && !s.knownName(name) {
			m.Rcode = dns.RcodeNameError
			if zone == "" {
				m.Rcode = dns.RcodeRefused
			}
		}
	}
	s.mu.Unlock()
	if len(m.Answer) == 0 && (m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError) {
		// RFC 2308 §3: negative answers carry the zone's SOA.
		apex := zone
		if apex == "" {
			apex = name
		}
		m.Ns = append(m.Ns, &dns.SOA{Hdr: hdr(apex, dns.TypeSOA, ttl), Ns: "ns." + apex, Mbox: "hostmaster." + apex,
			Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: ttl})
	}
	opt := req.IsEdns0()
	if zone != "" && s.dnssecZone(zone) && m.Rcode != dns.RcodeServerFailure && m.Rcode != dns.RcodeRefused &&
		(req.AuthenticatedData || (opt != nil && opt.Do())) {
		m.AuthenticatedData = true // RFC 6840 §5.7: only to a client that asked
	}
	if opt != nil {
		m.SetEdns0(opt.UDPSize(), opt.Do()) // RFC 3225 §3: DO is copied into the reply
	}
	if w.LocalAddr().Network() == "udp" {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size) // sets TC when it does not fit (RFC 1035 §4.2.1)
	}
	w.WriteMsg(m)
}

// answer fills m.Answer for a name the sim knows.
func (s *Sim) answer(m *dns.Msg, q dns.Question, name string, ttl uint32) {
	for _, st := range s.sites {
		if !st.domains[strings.TrimSuffix(name, ".")] {
			continue
		}
		if q.Qtype == dns.TypeMX || q.Qtype == dns.TypeANY {
			for i, mx := range st.cfg.MX {
				m.Answer = append(m.Answer, &dns.MX{Hdr: hdr(name, dns.TypeMX, ttl), Preference: uint16(10 * (i + 1)), Mx: fqdn(mx.Host)})
			}
		}
	}
	for _, rr := range s.records {
		h := rr.Header()
		if h.Name == name && (h.Rrtype == q.Qtype || q.Qtype == dns.TypeANY || h.Rrtype == dns.TypeCNAME) {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	if q.Qtype != dns.TypeA && q.Qtype != dns.TypeANY {
		return
	}
	var ips []netip.Addr
	for ip, info := range s.byIP {
		if fqdn(info.host) == name {
			ips = append(ips, ip)
		}
	}
	sort.Slice(ips, func(i, j int) bool { return ips[i].Less(ips[j]) })
	for _, ip := range ips {
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr(name, dns.TypeA, ttl), A: ip.AsSlice()})
	}
}

// knownName reports a name that exists (possibly without records of the
// type asked): a site domain, a null-MX domain or an MX host.
func (s *Sim) knownName(name string) bool {
	if s.nullMX[name] {
		return true
	}
	for _, rr := range s.records {
		if rr.Header().Name == name {
			return true
		}
	}
	for _, st := range s.sites {
		if st.domains[strings.TrimSuffix(name, ".")] {
			return true
		}
	}
	for _, info := range s.byIP {
		if fqdn(info.host) == name {
			return true
		}
	}
	return false
}

// zoneOf returns the closest enclosing domain the sim is authoritative
// for (site domains, null-MX and SERVFAIL domains), or "".
func (s *Sim) zoneOf(name string) string {
	best := ""
	consider := func(z string) {
		if (name == z || strings.HasSuffix(name, "."+z)) && len(z) > len(best) {
			best = z
		}
	}
	for _, st := range s.sites {
		for d := range st.domains {
			consider(fqdn(d))
		}
	}
	for z := range s.nullMX {
		consider(z)
	}
	for z := range s.servfail {
		consider(z)
	}
	for _, rr := range s.records {
		consider(rr.Header().Name)
	}
	for z := range s.dnssec {
		consider(z)
	}
	return best
}

// dnssecZone reports whether zone is, or is under, a zone configured as
// DNSSEC-signed.
func (s *Sim) dnssecZone(zone string) bool {
	for z := range s.dnssec {
		if zone == z || strings.HasSuffix(zone, "."+z) {
			return true
		}
	}
	return false
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}
