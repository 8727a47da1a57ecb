package config

import (
	"bufio"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cuemta/cuemta/internal/maildomain"
)

// Open-relay thresholds: a relay network wider than these is the internet,
// not a client network. An IPv4-mapped IPv6 prefix is judged as the IPv4
// prefix it stands for (reception unmaps it).
const (
	minRelayBitsV4 = 8
	minRelayBitsV6 = 16
)

// UnmapPrefix returns the IPv4 equivalent of an IPv4-mapped IPv6 prefix
// (::ffff:a.b.c.d/n with n >= 96 becomes a.b.c.d/(n-96)), else p masked.
// A prefix shorter than /96 that covers the mapped range is returned as
// is: it is wider than all of IPv4.
func UnmapPrefix(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
	}
	return p
}

// openRelayPrefix reports whether p (as written) admits almost any host
// on the internet, judged on its unmapped form.
func openRelayPrefix(p netip.Prefix) bool {
	u := UnmapPrefix(p)
	if u.Addr().Is4() {
		return u.Bits() < minRelayBitsV4
	}
	// ::/0 ... ::/15 hold all of IPv6 (and, through ::ffff:0:0/96, of IPv4).
	return u.Bits() < minRelayBitsV6
}

// normalizeRelay puts relay.domains and routes keys in the one form that
// reception and routing compare (lower-case A-labels) and reads the
// recipients files. dir resolves relative recipientsFile paths.
func (c *Config) normalizeRelay(dir string, add addFunc, addAt func(Pos, string, ...any)) {
	seen := map[string]int{}
	for i := range c.Relay.Domains {
		d := &c.Relay.Domains[i]
		path := fmt.Sprintf("relay.domains[%d]", i)
		norm, err := maildomain.Normalize(d.Domain)
		if err != nil {
			add(path, "relay.domains: %q is not a domain name", d.Domain)
			continue
		}
		if j, ok := seen[norm]; ok {
			add(path, "relay.domains: %s is already listed (relay.domains[%d]); give its recipients in one entry", norm, j)
		}
		seen[norm] = i
		d.Domain = norm
		if d.Recipients == nil && d.RecipientsFile == "" {
			continue
		}
		d.Restricted = true
		anyRcpt := false
		addLocal := func(r string, bad func(format string, args ...any)) {
			r = strings.TrimSpace(r)
			if r == "*" {
				anyRcpt = true
				return
			}
			local, dom, hasAt := strings.Cut(r, "@")
			if hasAt {
				if nd, err := maildomain.Normalize(dom); err != nil || nd != norm {
					bad("recipient %q is not an address in %s", r, norm)
					return
				}
			}
			if local == "" || strings.ContainsAny(local, "@ \t\"") {
				bad("recipient %q is not a local part or an address in %s", r, norm)
				return
			}
			d.Locals = append(d.Locals, strings.ToLower(local))
		}
		for j, r := range d.Recipients {
			addLocal(r, func(format string, args ...any) {
				add(fmt.Sprintf("%s.recipients[%d]", path, j), "relay.domains: "+format, args...)
			})
		}
		if f := d.RecipientsFile; f != "" {
			if !filepath.IsAbs(f) {
				f = filepath.Join(dir, f)
			}
			c.readRecipientsFile(f, path, add, addAt, addLocal)
		}
		if anyRcpt {
			d.Restricted, d.Locals = false, nil
		}
		slices.Sort(d.Locals)
		d.Locals = slices.Compact(d.Locals)
	}

	routes := make(map[string]string, len(c.Routes))
	for _, k := range slices.Sorted(maps.Keys(c.Routes)) {
		norm := k
		if k != "*" {
			n, err := maildomain.Normalize(k)
			if err != nil {
				add("routes."+cueLabel(k), "routes: %q is not a domain name", k)
				continue
			}
			norm = n
		}
		if prev, ok := routes[norm]; ok && prev != c.Routes[k] {
			add("routes."+cueLabel(k), "routes: %q and another key are both %s, with different next hops", k, norm)
		}
		routes[norm] = c.Routes[k]
	}
	c.Routes = routes
}

// readRecipientsFile adds each recipient of a recipientsFile; problems are
// reported at file:line.
func (c *Config) readRecipientsFile(f, path string, add addFunc, addAt func(Pos, string, ...any), addLocal func(string, func(string, ...any))) {
	fh, err := os.Open(f)
	if err != nil {
		add(path+".recipientsFile", "relay.domains: recipientsFile %s: %v", displayPath(f, c.wd), unwrapPathError(err))
		return
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	shown := displayPath(f, c.wd)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		addLocal(line, func(format string, args ...any) {
			addAt(Pos{File: shown, Line: n, Col: 1}, "relay.domains: "+format, args...)
		})
	}
	if err := sc.Err(); err != nil {
		add(path+".recipientsFile", "relay.domains: recipientsFile %s: %v", shown, err)
	}
}

// routeNotes are the notes on how a route and relay.domains combine.
func (c *Config) routeNotes() Errors {
	var notes Errors
	mx := false
	for _, l := range c.Listeners {
		if l.Mode == "mx" {
			mx = true
		}
	}
	if !mx {
		return nil
	}
	accepted := map[string]bool{}
	for _, d := range c.Relay.Domains {
		accepted[d.Domain] = true
	}
	for _, d := range slices.Sorted(maps.Keys(c.Routes)) {
		if d == "*" || accepted[d] {
			continue
		}
		notes = append(notes, Error{Pos: c.posAt("routes." + cueLabel(d)),
			Msg: fmt.Sprintf("note: routes.%s only chooses the next hop for mail this server already relays (from relay.networks or authenticated users); it does not make an MX listener accept %s from the internet — add it to relay.domains if this server is an MX for it", cueLabel(d), d)})
	}
	return notes
}
