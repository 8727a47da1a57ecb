package delivery

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/cuemta/cuemta/smtpreply"
)

// errMailLoop: every address of a next hop is one of this MTA's own
// listeners, so mail sent there would come straight back (RFC 5321 §5.1).
var errMailLoop = errors.New("mail loop")

// selfSet is where this MTA listens, for telling a next hop that is this
// MTA itself: exact listener addresses, and the ports of listeners on an
// unspecified address (0.0.0.0, ::), which are reached at any local
// address: loopback and every interface address.
type selfSet struct {
	exact map[netip.AddrPort]bool
	any   map[uint16]bool
	local map[netip.Addr]bool
}

// self returns the listeners' addresses as they are now (a reload may
// add or drop listeners). Interface addresses are read only when a
// listener is on an unspecified address.
func (e *Scheduler) self() selfSet {
	s := selfSet{exact: map[netip.AddrPort]bool{}, any: map[uint16]bool{}}
	if e.opts.Listeners == nil {
		return s
	}
	for _, ap := range e.opts.Listeners() {
		a := ap.Addr().Unmap()
		if a.IsUnspecified() {
			s.any[ap.Port()] = true
			continue
		}
		s.exact[netip.AddrPortFrom(a, ap.Port())] = true
	}
	if len(s.any) > 0 {
		s.local = map[netip.Addr]bool{}
		addrs, err := e.opts.InterfaceAddrs()
		if err != nil {
			// Loopback is still recognised; other local addresses are
			// not, and the Received limit ends such a loop.
			e.opts.Logger.Warn("local interface addresses unknown: a next hop at one of them is not recognised as this server", "err", err)
		}
		for _, a := range addrs {
			s.local[a.Unmap()] = true
		}
	}
	return s
}

// has reports whether a (with the hop's port) reaches one of the
// listeners.
func (s selfSet) has(a netip.Addr, port string) bool {
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return false
	}
	a = a.Unmap()
	if s.exact[netip.AddrPortFrom(a, uint16(p))] {
		return true
	}
	return s.any[uint16(p)] && (a.IsLoopback() || s.local[a])
}

// interfaceAddrs lists the host's interface addresses (net.InterfaceAddrs).
func interfaceAddrs() ([]netip.Addr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, nil
}

// loopReply is the bounce of a job whose next hop is this server: RFC
// 3463 X.4.6, routing loop detected.
func loopReply(j *job, err error) smtpreply.Reply {
	what := "MX for " + j.domain
	if j.hop != nil && j.hop.static {
		what = "route for " + j.domain
	}
	detail := strings.TrimPrefix(err.Error(), errMailLoop.Error()+": ")
	return smtpreply.New(554, "5.4.6", "mail loop: "+what+" points back to this server: "+detail) // RFC 3463 §3.5
}

// greetsAsUs reports whether a next hop's 220 greeting names this MTA's
// own hostname, which is how Postfix tells that an MX reached at an
// address that is not ours (NAT, a load balancer in front) is still
// this server: its first word is the server's name (RFC 5321 §4.2, §4.3.1).
// A hostname without a dot, or localhost.localdomain, is not unique (the
// default config's "localhost" is what many test and development servers
// greet with too), so it never matches.
func greetsAsUs(greeting smtpreply.Reply, hostname string) bool {
	hostname = strings.TrimSuffix(hostname, ".")
	if !strings.Contains(hostname, ".") || strings.EqualFold(hostname, "localhost.localdomain") {
		return false
	}
	name, _, _ := strings.Cut(strings.TrimSpace(greeting.Text), " ") // Text has no enhanced code
	return strings.EqualFold(strings.TrimSuffix(name, "."), hostname)
}
