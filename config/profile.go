package config

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Profile levels, from least to most specific. A profile applies at the
// most specific level at which it matches a destination.
const (
	LevelDefault  = "default"  // the profile named "default": everywhere
	LevelProvider = "provider" // match.mx "*.suffix" patterns
	LevelSite     = "site"     // match.mx exact host names
	LevelDomain   = "domain"   // match.domains
)

// MatchedProfile is one profile that applies to a destination, with the
// level and the match entry that made it apply.
type MatchedProfile struct {
	*Profile
	Level string
	By    string // the domain or MX pattern that matched
}

// MatchProfiles returns the profiles that apply to a destination, most
// specific first: domain, site, provider, then "default". mxHosts are in
// preference order; the first host that matches a level decides it.
func (c *Config) MatchProfiles(domain string, mxHosts []string) []*Profile {
	m := c.Match(domain, mxHosts)
	out := make([]*Profile, len(m))
	for i, p := range m {
		out[i] = p.Profile
	}
	return out
}

// Match is MatchProfiles with the level and the entry each one matched by.
func (c *Config) Match(domain string, mxHosts []string) []MatchedProfile {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	var out []MatchedProfile
	seen := map[string]bool{}
	push := func(p *Profile, level, by string) {
		if p != nil && !seen[p.Name] {
			seen[p.Name] = true
			out = append(out, MatchedProfile{Profile: p, Level: level, By: by})
		}
	}
	if domain != "" {
		for _, name := range c.profileNames() {
			for _, d := range c.Profiles[name].Match.Domains {
				if strings.EqualFold(d, domain) {
					push(c.Profiles[name], LevelDomain, d)
				}
			}
		}
	}
	for _, h := range mxHosts {
		if p, pat := c.matchMX(h, false); p != nil {
			push(p, LevelSite, pat)
			break
		}
	}
	for _, h := range mxHosts {
		if p, pat := c.matchMX(h, true); p != nil {
			push(p, LevelProvider, pat)
			break
		}
	}
	if d, ok := c.Profiles["default"]; ok {
		push(d, LevelDefault, "")
	}
	return out
}

// MatchProvider returns the provider of a destination: the profile whose
// "*.suffix" MX pattern matches its MX hosts (the first host, in
// preference order, that matches one decides; the longest pattern wins),
// or nil. Unlike Match it looks at that level alone: Match lists each
// profile once, at the most specific level it matches, so a profile that
// matched the recipient domain too (google for gmail.com and
// gmail-smtp-in.l.google.com) appears there at LevelDomain, never at
// LevelProvider.
func (c *Config) MatchProvider(mxHosts []string) *MatchedProfile {
	for _, h := range mxHosts {
		if p, pat := c.matchMX(h, true); p != nil {
			return &MatchedProfile{Profile: p, Level: LevelProvider, By: pat}
		}
	}
	return nil
}

// profileNames lists the profiles in name order, computed once: matching
// runs for every message routed.
func (c *Config) profileNames() []string {
	c.namesOnce.Do(func() { c.names = slices.Sorted(maps.Keys(c.Profiles)) })
	return c.names
}

// matchMX finds the profile whose exact (wildcard=false) or longest
// suffix (wildcard=true) MX pattern matches host.
func (c *Config) matchMX(host string, wildcard bool) (*Profile, string) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	var best *Profile
	bestPat := ""
	for _, name := range c.profileNames() {
		for _, pat := range c.Profiles[name].Match.MX {
			pat = strings.ToLower(pat)
			suffix, isWild := strings.CutPrefix(pat, "*")
			switch {
			case !wildcard && !isWild && pat == host:
				return c.Profiles[name], pat
			case wildcard && isWild && strings.HasSuffix(host, suffix) && len(pat) > len(bestPat):
				best, bestPat = c.Profiles[name], pat
			}
		}
	}
	return best, bestPat
}

// claim is one match entry of a profile, as the duplicate check sees it.
type claim struct{ kind, value string }

func (cl claim) String() string {
	if cl.kind == "domain" {
		return "domain " + cl.value
	}
	return "MX pattern " + cl.value
}

func (p *Profile) claims() []claim {
	var out []claim
	for _, d := range p.Match.Domains {
		out = append(out, claim{"domain", strings.ToLower(d)})
	}
	for _, m := range p.Match.MX {
		out = append(out, claim{"mx", strings.ToLower(m)})
	}
	return out
}

// checkProfiles finds profiles that could never take effect or that
// fight over a destination.
func (c *Config) checkProfiles(add addFunc) {
	owners := map[claim][]string{}
	for _, name := range slices.Sorted(maps.Keys(c.Profiles)) {
		p := c.Profiles[name]
		path := "profiles." + cueLabel(name)
		c.checkSettings(add, path, quote(name), &p.ProfileSettings)
		for _, s := range slices.Sorted(maps.Keys(p.Sources)) {
			c.checkSettings(add, path+".sources."+cueLabel(s), quote(name)+" (source "+quote(s)+")", p.Sources[s])
		}
		if name == "default" {
			if len(p.Match.Domains)+len(p.Match.MX) > 0 {
				add(path+".match", "profile \"default\" applies to every destination; it cannot have a match (give the matching part a profile of its own)")
			}
			continue
		}
		if len(p.Match.Domains)+len(p.Match.MX) == 0 {
			add(path, "profile %q matches nothing: give it match.domains (recipient domains) or match.mx (MX host names or \"*.suffix\" patterns)", name)
		}
		for i, m := range p.Match.MX {
			if msg := badMXPattern(m); msg != "" {
				add(fmt.Sprintf("%s.match.mx[%d]", path, i), "profile %q: MX pattern %q %s", name, m, msg)
			}
		}
		for _, cl := range p.claims() {
			owners[cl] = append(owners[cl], name)
		}
	}
	// Whoever shares every claim with one other profile never decides
	// anything on its own: report it as shadowed, else each shared claim.
	shadowed := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(c.Profiles)) {
		p := c.Profiles[name]
		cls := p.claims()
		if name == "default" || len(cls) == 0 {
			continue
		}
		for _, other := range slices.Sorted(maps.Keys(c.Profiles)) {
			if other == name || other == "default" || !covers(c.Profiles[other], cls) {
				continue
			}
			// Two identical matches: report the one written later.
			if covers(p, c.Profiles[other].claims()) && posLess(p.Where(), c.Profiles[other].Where()) {
				continue
			}
			shadowed[name] = true
			add("profiles."+cueLabel(name), "profile %q never takes effect: everything it matches is also claimed by profile %q (%s); merge them or remove one", name, other, c.Profiles[other].Where())
			break
		}
	}
	keys := make([]claim, 0, len(owners))
	for cl := range owners {
		keys = append(keys, cl)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	for _, cl := range keys {
		names := owners[cl]
		if len(names) < 2 {
			continue
		}
		for _, n := range names[1:] {
			if shadowed[n] || shadowed[names[0]] {
				continue
			}
			add("profiles."+cueLabel(n)+".match", "profile %q: %s is also claimed by profile %q (%s); a destination can belong to one profile per level", n, cl, names[0], c.Profiles[names[0]].Where())
		}
	}
}

func covers(p *Profile, cls []claim) bool {
	have := map[claim]bool{}
	for _, cl := range p.claims() {
		have[cl] = true
	}
	for _, cl := range cls {
		if !have[cl] {
			return false
		}
	}
	return true
}

func posLess(a, b Pos) bool {
	if a.File != b.File {
		return a.File < b.File
	}
	if a.Line != b.Line {
		return a.Line < b.Line
	}
	return a.Col < b.Col
}

// badMXPattern says what is wrong with an MX pattern, or "" if nothing.
func badMXPattern(m string) string {
	switch {
	case m == "" || m == "*" || m == "*.":
		return "matches nothing useful: write a host name or a \"*.suffix\" pattern such as \"*.google.com\""
	case strings.HasSuffix(m, "."):
		return "ends with a dot: write host names without the root dot (MX hosts are compared without it)"
	case strings.Contains(strings.TrimPrefix(m, "*."), "*"):
		return "has a wildcard that is not the leading label: only \"*.suffix\" patterns are supported"
	case strings.HasPrefix(m, "*") && !strings.HasPrefix(m, "*."):
		return "must start with \"*.\" to match the hosts under a domain"
	case strings.Contains(m, ".."):
		return "has an empty label (\"..\")"
	}
	host := strings.TrimPrefix(m, "*.")
	for _, r := range host {
		if !(r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return fmt.Sprintf("has the character %q, which cannot appear in a host name", r)
		}
	}
	if !strings.Contains(host, ".") {
		return "is a bare label: it would never match a real MX host"
	}
	return ""
}

// checkSettings rejects limits that would stall a site forever.
func (c *Config) checkSettings(add addFunc, path, who string, s *ProfileSettings) {
	zero := func(field string, ok bool, what string) {
		if ok {
			add(path+"."+field, "profile %s: %s is 0, so %s and mail to the site would wait until it expires; to pause a site on purpose, suspend it", who, field, what)
		}
	}
	zero("maxConnections", s.MaxConnections != nil && *s.MaxConnections == 0, "no connection could ever open")
	zero("maxMessagesPerConnection", s.MaxMessagesPerConnection != nil && *s.MaxMessagesPerConnection == 0, "no message could be sent on a connection")
	zero("messageRate", s.MessageRate != nil && s.MessageRate.N == 0, "no message could ever be sent")
	zero("connectionRate", s.ConnectionRate != nil && s.ConnectionRate.N == 0, "no connection could ever open")
	if s.Retry != nil {
		c.checkRetry(add, path+".retry", "profile "+who, s.Retry.Schedule, s.Retry.MaxAge)
	}
	c.checkBackoff(add, path, who, s)
}
