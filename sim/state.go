package sim

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Stats is what the sim observed, by site name.
type Stats struct {
	Sites map[string]SiteStats `json:"sites"`
	// MaxConcurrent is the most simultaneous connections seen across all
	// sites together (a provider-wide cap is checked against it).
	MaxConcurrent int `json:"maxConcurrent"`
}

// SiteStats is what one site observed.
type SiteStats struct {
	// Connections accepted, including those refused for a cap.
	Connections int `json:"connections"`
	// MaxConcurrent is the most simultaneous connections seen, including
	// any beyond the cap (which were refused).
	MaxConcurrent int `json:"maxConcurrent"`
	Messages      int `json:"messages"`
	Recipients    int `json:"recipients"`
	// Rejected counts the replies of class 4 and 5 sent, by code.
	Rejected map[string]int `json:"rejected"`
	// PerIP breaks the counts down by client address.
	PerIP map[string]IPStats `json:"perIP"`
	// ConnectTimes are when the latest connections (at most
	// maxConnectTimes) were accepted, refused ones included: the wire's
	// view of connection rates and back-off pauses.
	ConnectTimes []ConnectTime `json:"connectTimes,omitempty"`
}

// ConnectTime is one accepted connection.
type ConnectTime struct {
	Time     time.Time  `json:"time"`
	ClientIP netip.Addr `json:"clientIP"`
}

// maxConnectTimes bounds SiteStats.ConnectTimes.
const maxConnectTimes = 10000

// IPStats are one client address's counts at a site.
type IPStats struct {
	Connections   int `json:"connections"`
	MaxConcurrent int `json:"maxConcurrent"`
	Messages      int `json:"messages"`
	// MaxPerWindow is the most messages accepted within any window of the
	// site's rateLimit.per (one minute without a rate limit).
	MaxPerWindow int `json:"maxPerWindow"`
}

// site is one provider's live configuration and state, guarded by Sim.mu.
type site struct {
	name        string
	cfg         Site
	tlsConfig   *tls.Config // cfg.TLSCert and cfg.TLSKey, loaded at Start; nil: the sim's
	domains     map[string]bool
	unknown     map[string]bool
	active      int
	activePerIP map[netip.Addr]int
	stats       SiteStats
	ipStats     map[netip.Addr]*IPStats
	accepted    map[netip.Addr][]time.Time // acceptance times within the window
	forcedSent  int                        // forced replies sent, against cfg.Replies.Times
	greySeen    map[triplet]time.Time
	greyPassed  map[triplet]bool
}

type triplet struct {
	from, rcpt string
	ip         netip.Addr
}

func newSite(name string, cfg Site) *site {
	st := &site{
		name: name, cfg: cfg,
		domains:     map[string]bool{},
		activePerIP: map[netip.Addr]int{},
		stats:       SiteStats{Rejected: map[string]int{}},
		ipStats:     map[netip.Addr]*IPStats{},
		accepted:    map[netip.Addr][]time.Time{},
		greySeen:    map[triplet]time.Time{},
		greyPassed:  map[triplet]bool{},
	}
	for _, d := range cfg.Domains {
		st.domains[strings.ToLower(d)] = true
	}
	st.setUnknown(cfg.UnknownUsers)
	return st
}

func (st *site) setUnknown(users []string) {
	st.unknown = map[string]bool{}
	for _, u := range users {
		st.unknown[strings.ToLower(u)] = true
	}
}

func (st *site) ip(a netip.Addr) *IPStats {
	s, ok := st.ipStats[a]
	if !ok {
		s = &IPStats{}
		st.ipStats[a] = s
	}
	return s
}

// connect counts a new connection and reports whether a cap refuses it.
func (st *site) connect(ip netip.Addr) (refuse bool) {
	st.active++
	st.activePerIP[ip]++
	st.stats.Connections++
	st.stats.MaxConcurrent = max(st.stats.MaxConcurrent, st.active)
	if len(st.stats.ConnectTimes) >= maxConnectTimes {
		st.stats.ConnectTimes = st.stats.ConnectTimes[1:]
	}
	st.stats.ConnectTimes = append(st.stats.ConnectTimes, ConnectTime{Time: time.Now(), ClientIP: ip})
	is := st.ip(ip)
	is.Connections++
	is.MaxConcurrent = max(is.MaxConcurrent, st.activePerIP[ip])
	return (st.cfg.MaxConnections > 0 && st.active > st.cfg.MaxConnections) ||
		(st.cfg.MaxConnectionsPerIP > 0 && st.activePerIP[ip] > st.cfg.MaxConnectionsPerIP)
}

func (st *site) disconnect(ip netip.Addr) {
	st.active--
	if st.activePerIP[ip]--; st.activePerIP[ip] <= 0 {
		delete(st.activePerIP, ip)
	}
}

func (st *site) window() time.Duration {
	if st.cfg.RateLimit != nil {
		return st.cfg.RateLimit.Per.D()
	}
	return time.Minute
}

// recent prunes and returns ip's acceptances within the window ending now.
func (st *site) recent(ip netip.Addr, now time.Time) []time.Time {
	ts := st.accepted[ip]
	cut := now.Add(-st.window())
	i := 0
	for i < len(ts) && !ts[i].After(cut) {
		i++
	}
	ts = ts[i:]
	st.accepted[ip] = ts
	return ts
}

// rateLimited reports whether ip has used up its messages for the window
// (a sliding window over acceptance times).
func (st *site) rateLimited(ip netip.Addr, now time.Time) bool {
	rl := st.cfg.RateLimit
	return rl != nil && len(st.recent(ip, now)) >= rl.Messages
}

func (st *site) accept(ip netip.Addr, rcpts int, now time.Time) {
	st.accepted[ip] = append(st.recent(ip, now), now)
	st.stats.Messages++
	st.stats.Recipients += rcpts
	is := st.ip(ip)
	is.Messages++
	is.MaxPerWindow = max(is.MaxPerWindow, len(st.accepted[ip]))
}

// greylisted reports whether the triplet must still wait.
func (st *site) greylisted(t triplet, now time.Time) bool {
	g := st.cfg.Greylist
	if g == nil || st.greyPassed[t] {
		return false
	}
	first, seen := st.greySeen[t]
	if !seen {
		st.greySeen[t] = now
		return true
	}
	if now.Sub(first) < g.Delay.D() {
		return true
	}
	st.greyPassed[t] = true
	delete(st.greySeen, t)
	return false
}

func (st *site) isUnknown(addr string) bool {
	addr = strings.ToLower(addr)
	local, _, _ := strings.Cut(addr, "@")
	return st.unknown[addr] || st.unknown[local]
}

func (st *site) countReply(line string) {
	if c := replyCode(line); c >= 400 {
		st.stats.Rejected[strconv.Itoa(c)]++
	}
}

func (st *site) snapshot() SiteStats {
	out := st.stats
	out.Rejected = make(map[string]int, len(st.stats.Rejected))
	for k, v := range st.stats.Rejected {
		out.Rejected[k] = v
	}
	out.ConnectTimes = slices.Clone(st.stats.ConnectTimes)
	out.PerIP = make(map[string]IPStats, len(st.ipStats))
	for ip, v := range st.ipStats {
		out.PerIP[ip.String()] = *v
	}
	return out
}

// Stats returns a copy of everything observed so far.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Sites: make(map[string]SiteStats, len(s.sites)), MaxConcurrent: s.maxActive}
	for name, st := range s.sites {
		out.Sites[name] = st.snapshot()
	}
	return out
}

// ResetStats forgets the observations (not the greylist or rate state).
func (s *Sim) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.sites {
		st.stats = SiteStats{Rejected: map[string]int{}}
		st.ipStats = map[netip.Addr]*IPStats{}
	}
	s.maxActive = s.active
	s.messages = nil
}

// update changes a site's behaviour while running.
func (s *Sim) update(name string, fn func(st *site)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.sites[name]
	if !ok {
		return fmt.Errorf("sim: no site %q", name)
	}
	fn(st)
	return nil
}

// SetMaxConnections changes a site's concurrent connection cap (0:
// unlimited). Open connections are not closed.
func (s *Sim) SetMaxConnections(name string, n int) error {
	return s.update(name, func(st *site) { st.cfg.MaxConnections = n })
}

// SetRateLimit changes a site's rate limit (nil: none).
func (s *Sim) SetRateLimit(name string, rl *RateLimit) error {
	if rl != nil && rl.Reply == "" {
		c := *rl
		c.Reply = defaultRateText
		rl = &c
	}
	return s.update(name, func(st *site) { st.cfg.RateLimit = rl })
}

// SetLatency changes the delay before each of a site's replies.
func (s *Sim) SetLatency(name string, d time.Duration) error {
	return s.update(name, func(st *site) { st.cfg.Latency = Duration(d) })
}

// SetUnknownUsers replaces a site's unknown users.
func (s *Sim) SetUnknownUsers(name string, users []string) error {
	return s.update(name, func(st *site) { st.setUnknown(users) })
}

// SetReplies replaces a site's forced replies.
func (s *Sim) SetReplies(name string, r Replies) error {
	for _, line := range []string{r.Connect, r.EHLO, r.Mail, r.Rcpt, r.Data} {
		if line != "" && replyCode(line) == 0 {
			return fmt.Errorf("sim: reply %q does not start with a code", line)
		}
	}
	return s.update(name, func(st *site) { st.cfg.Replies, st.forcedSent = r, 0 })
}

// SetServfail makes the DNS answer SERVFAIL for domain (or stop).
func (s *Sim) SetServfail(domain string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.servfail[fqdn(domain)] = true
	} else {
		delete(s.servfail, fqdn(domain))
	}
}

// Active returns the connections currently open to a site.
func (s *Sim) Active(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.sites[name]; ok {
		return st.active
	}
	return 0
}

// record counts an accepted message and keeps it per Options.Keep.
func (s *Sim) record(m Message) {
	s.log.Debug("sim: message", "site", m.Site, "mx", m.MXHost, "client", m.ClientIP,
		"from", m.From, "rcpts", m.Rcpts, "size", m.Size, "tls", m.TLS)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sites[m.Site].accept(m.ClientIP, len(m.Rcpts), m.Time)
	switch k := s.opts.Keep; {
	case k < 0:
	case k > 0 && len(s.messages) >= k:
		s.messages = append(s.messages[1:], m)
	default:
		s.messages = append(s.messages, m)
	}
}
