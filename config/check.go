package config

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/token"
)

// annotate records, from the CUE value, the positions that later stages
// (CEL compilation, policy tests, profile provenance) report errors at.
func (c *Config) annotate() {
	if len(c.Pools) == 0 {
		c.Pools = map[string]*Pool{"default": {Sources: map[string]*Source{"default": {}}}}
	}
	for i, r := range c.Rules.Message {
		r.whenAt = lazy(func() Pos { return c.posAt(fmt.Sprintf("rules.message[%d].when", i)) })
		if r.Reject != nil && r.Reject.Enhanced == "" {
			// The schema's default, which depends on the code: 4.7.1 or 5.7.1.
			r.Reject.Enhanced = fmt.Sprintf("%d.7.1", r.Reject.Code/100)
		}
	}
	for _, stage := range Stages {
		for i, r := range c.Rules.StageRules(stage) {
			r.Stage = stage
			r.whenAt = lazy(func() Pos { return c.posAt(fmt.Sprintf("rules.%s[%d].when", stage, i)) })
			r.at = lazy(func() Pos { return c.posAt(fmt.Sprintf("rules.%s[%d].name", stage, i)) })
			for _, rej := range []*Reject{r.Reject, r.Tempfail} {
				if rej != nil && rej.Enhanced == "" {
					rej.Enhanced = fmt.Sprintf("%d.7.1", rej.Code/100)
				}
			}
		}
	}
	for i, r := range c.Rules.Response {
		r.whenAt = lazy(func() Pos { return c.posAt(fmt.Sprintf("rules.response[%d].when", i)) })
	}
	for _, name := range slices.Sorted(maps.Keys(c.Profiles)) {
		p := c.Profiles[name]
		p.Name = name
		p.at = lazy(func() Pos { return c.labelPosAt("profiles." + cueLabel(name)) })
		for i, r := range p.Rules {
			r.Profile = name
			r.whenAt = lazy(func() Pos { return c.posAt(fmt.Sprintf("profiles.%s.rules[%d].when", cueLabel(name), i)) })
		}
	}
	for name, t := range c.Tests {
		t.at = lazy(func() Pos { return c.labelPosAt("tests." + cueLabel(name)) })
	}
}

// cueLabel quotes a map key for use in a CUE path.
func cueLabel(s string) string {
	return cue.MakePath(cue.Str(s)).String()
}

// posAt is the position of the value at a CUE path, as the user wrote it.
// A value that only the schema gave (a default) is reported at the
// nearest enclosing value the user wrote instead.
func (c *Config) posAt(path string) Pos {
	c.cueMu.Lock()
	defer c.cueMu.Unlock()
	return c.posAtLocked(path)
}

// posAtLocked is posAt with cueMu held.
func (c *Config) posAtLocked(path string) Pos {
	if !c.value.Exists() {
		return Pos{} // built in Go (tests), not loaded from CUE
	}
	p := cue.ParsePath(path)
	for {
		pos := valuePos(c.value.LookupPath(p), c.wd)
		sel := p.Selectors()
		if len(sel) <= 1 || (pos.IsValid() && !strings.HasPrefix(pos.File, "builtin:cuemta.dev/schema/")) {
			return pos
		}
		p = cue.MakePath(sel[:len(sel)-1]...)
	}
}

// labelPosAt is the position of the label of the field at a CUE path
// (the name of a profile or test), where the user wrote it.
func (c *Config) labelPosAt(path string) Pos {
	c.cueMu.Lock()
	defer c.cueMu.Unlock()
	if !c.value.Exists() {
		return Pos{}
	}
	v := c.value.LookupPath(cue.ParsePath(path))
	_, args := v.Expr()
	for _, a := range append([]cue.Value{v}, args...) {
		if p := a.Pos(); p.IsValid() && !strings.Contains(p.Filename(), builtinMarker+"schema/") {
			return posIn(p, c.wd)
		}
	}
	return c.posAtLocked(path)
}

// valuePos picks, among the conjuncts that make up v, the position of the
// one that is not the schema: that is what an operator wrote (in their
// files or in a built-in profile).
func valuePos(v cue.Value, wd string) Pos {
	if !v.Exists() {
		return Pos{}
	}
	var fallback Pos
	var walk func(v cue.Value, depth int) (Pos, bool)
	walk = func(v cue.Value, depth int) (Pos, bool) {
		op, args := v.Expr()
		if op == cue.AndOp && depth < 4 {
			// Prefer concrete conjuncts outside the schema, then any outside it.
			for _, a := range args {
				if p, ok := walk(a, depth+1); ok {
					return p, true
				}
			}
			return Pos{}, false
		}
		p := literalPos(v)
		if !p.IsValid() {
			return Pos{}, false
		}
		if strings.Contains(p.Filename(), builtinMarker+"schema/") {
			if !fallback.IsValid() {
				fallback = posIn(p, wd)
			}
			return Pos{}, false
		}
		return posIn(p, wd), true
	}
	if p, ok := walk(v, 0); ok {
		return p
	}
	if fallback.IsValid() {
		return fallback
	}
	return posIn(v.Pos(), wd)
}

// literalPos is where a value is written: for a field, its value rather
// than its label, so that positions inside a string literal (CEL errors)
// can be computed from it.
func literalPos(v cue.Value) token.Pos {
	if f, ok := v.Source().(*ast.Field); ok && f.Value != nil {
		return f.Value.Pos()
	}
	return v.Pos()
}

// check finds what the schema cannot see: references between sections,
// open relays and profiles that could never take effect.
func (c *Config) check() Errors {
	var errs Errors
	add := func(path, format string, args ...any) {
		errs = append(errs, Error{Pos: c.posAt(path), Msg: fmt.Sprintf(format, args...)})
	}
	addAt := func(pos Pos, format string, args ...any) {
		errs = append(errs, Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
	c.normalizeRelay(c.dir, add, addAt)
	c.checkRelay(add)
	c.checkListeners(add)
	c.checkReferences(add)
	c.checkProfiles(add)
	c.checkTimings(add)
	c.checkPorts(add)
	c.checkRouteLoops(add)
	c.checkCodes(add)
	c.checkTests(add)
	c.checkHooks(add)
	c.checkFeedback(add)
	c.checkCluster(add)
	c.checkDMARCReporting(add)
	return errs
}

type addFunc func(path, format string, args ...any)

func (c *Config) checkRelay(add addFunc) {
	for i, n := range c.Relay.Networks {
		p, err := netip.ParsePrefix(n)
		if err != nil {
			add(fmt.Sprintf("relay.networks[%d]", i), "relay.networks: %q is not a CIDR network: %v", n, err)
			continue
		}
		// Anything wider than a /8 (IPv4) or /16 (IPv6) is the internet,
		// not a client network: that is an open relay. Judged on the
		// unmapped prefix, as reception uses it: ::ffff:0.0.0.0/96 is
		// 0.0.0.0/0.
		if openRelayPrefix(p) {
			also := ""
			if u := UnmapPrefix(p); u != p.Masked() {
				also = " (the IPv4-mapped range " + u.String() + ")"
			}
			add(fmt.Sprintf("relay.networks[%d]", i), "relay.networks: %s%s would let almost any host on the internet relay mail through this server without authentication (an open relay); list only your own client networks", n, also)
		}
	}
	host, _, err := net.SplitHostPort(c.Admin.Addr)
	if err == nil && !isLoopbackHost(host) && c.Admin.Token == "" {
		add("admin.addr", "admin.addr: %s is reachable from other hosts; set admin.token (a bearer token) or listen on 127.0.0.1", c.Admin.Addr)
	}
	if c.Smarthost != nil {
		if _, ok := c.Routes["*"]; !ok {
			add("smarthost", `smarthost: settings for a smarthost, but routes has no "*" entry naming it`)
		}
	}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

func (c *Config) checkListeners(add addFunc) {
	byAddr := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(c.Listeners)) {
		l := c.Listeners[name]
		path := "listeners." + cueLabel(name)
		if prev, ok := byAddr[l.Addr]; ok {
			add(path+".addr", "listeners.%s.addr: %s is already used by listener %q", name, l.Addr, prev)
		}
		byAddr[l.Addr] = name
		if l.Auth.Enabled && l.TLS == nil {
			add(path, "listeners.%s: AUTH is only offered after STARTTLS, so a listener with auth needs tls {cert, key}", name)
		}
		if l.Auth.Enabled && len(l.Auth.Users) == 0 {
			add(path+".auth", "listeners.%s.auth: AUTH is enabled but no users are configured, so nobody could log in", name)
		}
		// A message larger than the whole budget could never be received:
		// each attempt would end in 452 4.3.1 and the sender retry in vain.
		if budget := c.Reception.MaxBytesInFlight; l.Limits.MaxMessageSize > budget {
			add(path+".limits.maxMessageSize", "listeners.%s.limits.maxMessageSize: %d is more than reception.maxBytesInFlight (%d), so a message of that size could never be received; raise reception.maxBytesInFlight or lower maxMessageSize", name, l.Limits.MaxMessageSize, budget)
		}
	}
}

func (c *Config) checkReferences(add addFunc) {
	sources := map[string]bool{}
	for _, pool := range c.Pools {
		for s := range pool.Sources {
			sources[s] = true
		}
	}
	if _, ok := c.Pools[c.Delivery.DefaultPool]; !ok {
		at := "delivery.defaultPool"
		if !c.value.LookupPath(cue.ParsePath(at)).IsConcrete() || strings.HasPrefix(c.posAt(at).File, "builtin:") {
			at = "pools"
		}
		add(at, "delivery.defaultPool: no pool named %q (pools: %s)", c.Delivery.DefaultPool, strings.Join(slices.Sorted(maps.Keys(c.Pools)), ", "))
	}
	for i, r := range c.Rules.Message {
		path := fmt.Sprintf("rules.message[%d]", i)
		if r.Pool != "" {
			if _, ok := c.Pools[r.Pool]; !ok {
				add(path+".pool", "rule %q: no pool named %q (pools: %s)", r.Name, r.Pool, strings.Join(slices.Sorted(maps.Keys(c.Pools)), ", "))
			}
		}
		if len(r.DKIM) > 0 && !r.DKIM.None() {
			c.checkKeyList(add, path+".dkim", fmt.Sprintf("rule %q", r.Name), r.DKIM)
		}
	}
	c.checkSigning(add)
	for _, name := range slices.Sorted(maps.Keys(c.Profiles)) {
		for _, s := range slices.Sorted(maps.Keys(c.Profiles[name].Sources)) {
			if !sources[s] {
				add("profiles."+cueLabel(name)+".sources."+cueLabel(s), "profile %q: no egress source named %q in any pool", name, s)
			}
		}
	}
}

// checkSigning checks the key names of dkim.domains and dkim.default, and
// that no domain is listed twice in different case (which one would sign
// would depend on map order).
func (c *Config) checkSigning(add addFunc) {
	seen := map[string]string{}
	for _, d := range slices.Sorted(maps.Keys(c.DKIM.Domains)) {
		path := "dkim.domains." + cueLabel(d)
		if other, ok := seen[strings.ToLower(d)]; ok {
			add(path, "dkim.domains: %q and %q are the same domain", other, d)
		}
		seen[strings.ToLower(d)] = d
		c.checkKeyList(add, path+".keys", fmt.Sprintf("dkim.domains %q", d), c.DKIM.Domains[d].Keys)
	}
	c.checkKeyList(add, "dkim.default", "dkim.default", c.DKIM.Default)
	for _, l := range slices.Sorted(maps.Keys(c.Listeners)) {
		v := c.Listeners[l].Verify
		if v.ARCSeal == "" {
			continue
		}
		path := "listeners." + cueLabel(l) + ".verify.arcSeal"
		if c.DKIM.Keys[v.ARCSeal] == nil {
			add(path, "listener %q: verify.arcSeal: no DKIM key named %q (%s)", l, v.ARCSeal, keyNames(c.DKIM.Keys))
		}
		if !v.ARC {
			add(path, "listener %q: verify.arcSeal needs verify.arc: the seal's cv is the validation of the chain that came", l)
		}
	}
}

// checkKeyList reports each name of a list of keys to apply that is no
// key, is "none" beside other names, or is listed twice (a second
// signature by the same key adds nothing).
func (c *Config) checkKeyList(add addFunc, path, what string, l KeyList) {
	// A rule's single name has no element i: the position falls back
	// to the name itself (posAt).
	at := func(i int) string { return fmt.Sprintf("%s[%d]", path, i) }
	for i, name := range l {
		switch {
		case name == NoSigning && len(l) > 1 && c.DKIM.Keys[name] == nil:
			add(at(i), "%s: \"none\" means do not sign: write it alone, not in a list of keys", what)
		case c.DKIM.Keys[name] == nil:
			add(at(i), "%s: no DKIM key named %q (%s)", what, name, keyNames(c.DKIM.Keys))
		case slices.Index(l, name) < i:
			add(at(i), "%s: DKIM key %q is listed twice", what, name)
		}
	}
}

func keyNames(keys map[string]*DKIMKey) string {
	if len(keys) == 0 {
		return "dkim.keys defines none"
	}
	return "keys: " + strings.Join(slices.Sorted(maps.Keys(keys)), ", ")
}

func (c *Config) checkTests(add addFunc) {
	for _, name := range slices.Sorted(maps.Keys(c.Tests)) {
		t := c.Tests[name]
		n := 0
		for _, given := range []bool{t.Message != nil, t.Reply != nil, t.Stage != nil} {
			if given {
				n++
			}
		}
		if n != 1 {
			add("tests."+cueLabel(name), "test %q: give exactly one of message, reply or stage", name)
		}
	}
}

// PosOf is the position of the value at a CUE path (such as
// `dkim.keys."k1".keyFile`), for errors found by later load stages.
func (c *Config) PosOf(path string) Pos { return c.posAt(path) }

// Label quotes a map key for use in a path given to PosOf.
func Label(key string) string { return cueLabel(key) }

// checkDMARCReporting refuses DMARC reporting without a listener that
// verifies DMARC: its reports could never count anything.
func (c *Config) checkDMARCReporting(add addFunc) {
	if !c.DMARCReporting.Enabled {
		return
	}
	for _, l := range c.Listeners {
		if l.Verify.DMARC {
			return
		}
	}
	add("dmarcReporting.enabled", "dmarcReporting.enabled: no listener verifies DMARC (listeners.*.verify.dmarc), so there would be nothing to report")
}
