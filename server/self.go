package server

import (
	"net"
	"net/netip"
)

// listenerAddrs is where this server's SMTP listeners are: their bound
// addresses, and the configured ones (a listener not bound yet, such as
// while the spool's mail is dispatched at start, is still this server).
// Delivery never dials a next hop among them (delivery/self.go).
func (s *Server) listenerAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, l := range s.Snapshot().Config.Listeners {
		if ap, err := netip.ParseAddrPort(l.Addr); err == nil && ap.Port() != 0 {
			out = append(out, ap)
		} else if host, port, err := net.SplitHostPort(l.Addr); err == nil && host == "" && port != "0" {
			if ap, err := netip.ParseAddrPort("0.0.0.0:" + port); err == nil {
				out = append(out, ap) // ":25" is every address
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if ta, ok := l.ln.Addr().(*net.TCPAddr); ok {
			out = append(out, ta.AddrPort())
		}
	}
	return out
}
