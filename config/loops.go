package config

import (
	"maps"
	"net"
	"net/netip"
	"slices"
)

// checkRouteLoops refuses a route whose next hop is one of this MTA's own
// listeners: mail sent there comes straight back and is routed there
// again, a loop (RFC 5321 §6.3) that only the Received limit would end,
// after a hundred hops. A listener on an unspecified address (0.0.0.0,
// [::]) is reached through any local address; loopback and "localhost"
// are recognised, other local interface addresses are not.
func (c *Config) checkRouteLoops(add addFunc) {
	for _, dom := range slices.Sorted(maps.Keys(c.Routes)) {
		host, port, err := net.SplitHostPort(c.Routes[dom])
		if err != nil {
			continue // checkPorts reports it
		}
		for _, name := range slices.Sorted(maps.Keys(c.Listeners)) {
			lhost, lport, err := net.SplitHostPort(c.Listeners[name].Addr)
			if err != nil || lport != port || lport == "0" {
				continue
			}
			if sameHost(host, lhost) {
				add("routes."+cueLabel(dom), "routes.%s: %s is this server's own listener %q (%s), so mail routed there would come back and loop; route it to the next hop instead",
					cueLabel(dom), c.Routes[dom], name, c.Listeners[name].Addr)
			}
		}
	}
}

// sameHost reports whether a route host reaches a listener host.
func sameHost(route, listener string) bool {
	if route == listener {
		return true
	}
	r, rerr := netip.ParseAddr(route)
	if route == "localhost" {
		r, rerr = netip.MustParseAddr("127.0.0.1"), nil
	}
	l, lerr := netip.ParseAddr(listener)
	if listener == "" || (lerr == nil && l.IsUnspecified()) {
		return rerr == nil && r.IsLoopback() // any local address; loopback surely
	}
	if listener == "localhost" {
		return rerr == nil && r.IsLoopback()
	}
	return rerr == nil && lerr == nil && r.Unmap() == l.Unmap()
}
