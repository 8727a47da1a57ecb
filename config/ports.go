package config

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
)

// The schema checks that a host:port has a numeric port of at most five
// digits; here it is checked to be a TCP port. An address to connect to
// (a route, the smarthost, a DNS server) needs 1-65535; an address to
// listen on may also say 0, for a free port the system picks (tests do).

// checkPorts checks the port of every host:port in the config;
// delivery.port is an integer the schema bounds itself.
func (c *Config) checkPorts(add addFunc) {
	for _, name := range slices.Sorted(maps.Keys(c.Listeners)) {
		path := "listeners." + cueLabel(name) + ".addr"
		checkPort(add, path, path, c.Listeners[name].Addr, true, "")
	}
	checkPort(add, "admin.addr", "admin.addr", c.Admin.Addr, true, "")
	for i, s := range c.DNS.Servers {
		path := fmt.Sprintf("dns.servers[%d]", i)
		checkPort(add, path, path, s, false, " (DNS servers listen on 53)")
	}
	for _, dom := range slices.Sorted(maps.Keys(c.Routes)) {
		path := "routes." + cueLabel(dom)
		what := path
		if dom == "*" {
			what += " (the smarthost)"
		}
		checkPort(add, path, what, c.Routes[dom], false, " (SMTP relays listen on 25, or 587 for submission)")
	}
	for i, r := range c.Rules.Message {
		if r.Route != "" {
			checkPort(add, fmt.Sprintf("rules.message[%d].route", i), fmt.Sprintf("rule %q: route", r.Name), r.Route, false, "")
		}
	}
}

// checkPort reports a host:port whose port is not a TCP port; listen
// allows 0. Addresses the schema let through always split.
func checkPort(add addFunc, path, what, hostport string, listen bool, hint string) {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return
	}
	switch {
	case listen && (n < 0 || n > 65535):
		add(path, "%s: port %s in %q is out of range: expected 1 to 65535, or 0 for a free port the system picks", what, p, hostport)
	case !listen && (n < 1 || n > 65535):
		add(path, "%s: port %s in %q is out of range: expected 1 to 65535%s", what, p, hostport, hint)
	}
}
