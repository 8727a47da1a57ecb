package sim

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Options configure a Sim.
type Options struct {
	// Now is the clock for greylisting, rate windows and message times.
	// Default time.Now.
	Now func() time.Time
	// Logger receives a line per connection and rejection at Debug level.
	// Default: discard.
	Logger *slog.Logger
	// OnMessage, if set, is called with each accepted message (before the
	// client sees the 250), from the connection's goroutine.
	OnMessage func(Message)
	// Keep is how many accepted messages Messages keeps, the most recent:
	// 0 keeps all (tests), negative none (long runs; Stats still count).
	Keep int
	// IdleTimeout closes a connection that sends nothing for this long
	// (real time). Default 5m.
	IdleTimeout time.Duration
}

// Message is one accepted message.
type Message struct {
	Site     string     `json:"site"`
	MXHost   string     `json:"mxHost"`
	ClientIP netip.Addr `json:"clientIP"`
	Helo     string     `json:"helo"`
	From     string     `json:"from"`
	// MailParams are the parameters of MAIL FROM as sent ("SIZE=123",
	// "BODY=8BITMIME", "SMTPUTF8").
	MailParams []string `json:"mailParams,omitempty"`
	Rcpts      []string `json:"rcpts"`
	// RcptParams are each recipient's RCPT TO parameters as sent
	// ("NOTIFY=SUCCESS", "ORCPT=rfc822;..."), beside Rcpts.
	RcptParams [][]string `json:"rcptParams,omitempty"`
	// Body is the message exactly as received, dot-stuffing undone: the
	// bytes a test checks a downgrade on.
	Body []byte    `json:"-"`
	Size int       `json:"size"`
	TLS  bool      `json:"tls"`
	Time time.Time `json:"time"`
}

// Sim is a running fake provider.
type Sim struct {
	cfg  *Config
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	sites    map[string]*site
	byIP     map[netip.Addr]*listenerInfo
	servfail map[string]bool
	nullMX   map[string]bool
	records  []dns.RR        // cfg.DNS.Records, parsed
	dnssec   map[string]bool // FQDNs of zones answered with AD
	messages []Message
	conns    map[net.Conn]struct{}
	closed   bool
	// connections open across all sites, and the most seen at once
	active, maxActive int

	port      int
	dnsAddr   string
	listeners []net.Listener
	dnsSrv    []*dns.Server
	tlsConfig *tls.Config
	certPool  *x509.CertPool
	certPEM   []byte
	wg        sync.WaitGroup

	// MTA-STS policy hosts (mtasts.go).
	stsPort    int
	httpSrv    []*http.Server
	stsFetches map[string]int // by site

}

// listenerInfo is what an MX listener needs to know about itself.
type listenerInfo struct {
	site *site
	host string
	ip   netip.Addr
}

// New prepares a Sim for cfg; Start binds it.
func New(cfg *Config, opts Options) (*Sim, error) {
	if cfg == nil {
		return nil, errors.New("sim: nil config")
	}
	cfg.withDefaults()
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 5 * time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Sim{
		cfg: cfg, opts: opts, log: log,
		sites:    map[string]*site{},
		byIP:     map[netip.Addr]*listenerInfo{},
		servfail: map[string]bool{},
		nullMX:   map[string]bool{},
		dnssec:   map[string]bool{},
		conns:    map[net.Conn]struct{}{},
	}
	for _, d := range cfg.DNS.Servfail {
		s.servfail[fqdn(d)] = true
	}
	for _, d := range cfg.DNS.NullMX {
		s.nullMX[fqdn(d)] = true
	}
	for _, d := range cfg.DNS.DNSSEC {
		s.dnssec[fqdn(d)] = true
	}
	for _, r := range cfg.DNS.Records {
		rr, _ := dns.NewRR(r) // checked by cfg.check
		rr.Header().Name = strings.ToLower(rr.Header().Name)
		s.records = append(s.records, rr)
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Sites)) {
		st := newSite(name, *cfg.Sites[name])
		s.sites[name] = st
		if st.cfg.MTASTS != nil {
			// The policy host of each domain is the first MX host's address.
			for _, d := range st.cfg.Domains {
				rr, err := dns.NewRR(fmt.Sprintf("mta-sts.%s. %d IN A %s", strings.ToLower(d), int(time.Duration(cfg.DNS.TTL)/time.Second), st.cfg.MX[0].IP))
				if err != nil {
					return nil, fmt.Errorf("sim: site %s: %w", name, err)
				}
				s.records = append(s.records, rr)
			}
		}
		for _, mx := range st.cfg.MX {
			ip := netip.MustParseAddr(mx.IP) // checked by cfg.check
			s.byIP[ip] = &listenerInfo{site: st, host: strings.ToLower(mx.Host), ip: ip}
		}
	}
	return s, nil
}

// Start binds the DNS server and every MX listener and starts serving.
func (s *Sim) Start() error {
	if s.needsTLS() {
		cfg, pool, pemData, err := selfSigned(s.cfg)
		if err != nil {
			return fmt.Errorf("sim: certificate: %w", err)
		}
		s.tlsConfig, s.certPool, s.certPEM = cfg, pool, pemData
	}
	for _, st := range s.sites {
		if st.cfg.TLSCert == "" {
			continue
		}
		kp, err := tls.LoadX509KeyPair(st.cfg.TLSCert, st.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("sim: site %s: %w", st.name, err)
		}
		st.tlsConfig = &tls.Config{Certificates: []tls.Certificate{kp}}
	}
	if err := s.startDNS(); err != nil {
		s.Close()
		return err
	}
	if err := s.listenMX(); err != nil {
		s.Close()
		return err
	}
	if err := s.startMTASTS(); err != nil {
		s.Close()
		return err
	}
	for _, ln := range s.listeners {
		info := s.byIP[addrOf(ln.Addr())]
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.acceptLoop(ln, info)
		}()
	}
	return nil
}

func (s *Sim) needsTLS() bool {
	for _, st := range s.sites {
		if st.cfg.STARTTLS || st.cfg.MTASTS != nil {
			return true
		}
	}
	return false
}

// listenMX binds every MX address at the shared port. With port 0 the
// first bind picks a free port and the others follow it; if one of them
// finds it taken, all are retried on a new port.
func (s *Sim) listenMX() error {
	ips := make([]netip.Addr, 0, len(s.byIP))
	for _, name := range slices.Sorted(maps.Keys(s.sites)) {
		for _, mx := range s.sites[name].cfg.MX {
			ips = append(ips, netip.MustParseAddr(mx.IP))
		}
	}
	attempts := 1
	if s.cfg.Port == 0 {
		attempts = 10
	}
	var lastErr error
	for range attempts {
		port := s.cfg.Port
		var lns []net.Listener
		for _, ip := range ips {
			ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, uint16(port)).String())
			if err != nil {
				lastErr = fmt.Errorf("sim: listen on %s port %d: %w", ip, port, err)
				break
			}
			if port == 0 {
				port = ln.Addr().(*net.TCPAddr).Port
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(ips) {
			s.listeners, s.port = lns, port
			return nil
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	return lastErr
}

// Close stops every server and connection and waits for them.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	for _, ln := range s.listeners {
		ln.Close()
	}
	for _, d := range s.dnsSrv {
		d.Shutdown()
	}
	for _, h := range s.httpSrv {
		h.Close()
	}
	s.wg.Wait()
	return nil
}

// DNSAddr is the DNS server's host:port (UDP and TCP).
func (s *Sim) DNSAddr() string { return s.dnsAddr }

// AddRecords serves more records, in zone-file form, from now on: such
// as TLSA records, whose owner names the port (RFC 6698 §3) that is only
// known once Start has bound it.
func (s *Sim) AddRecords(records ...string) error {
	var rrs []dns.RR
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil || rr == nil {
			return fmt.Errorf("sim: record %q: %v", r, err)
		}
		rr.Header().Name = strings.ToLower(rr.Header().Name)
		rrs = append(rrs, rr)
	}
	s.mu.Lock()
	s.records = append(s.records, rrs...)
	s.mu.Unlock()
	return nil
}

// Port is the SMTP port every MX host listens on.
func (s *Sim) Port() int { return s.port }

// MXAddrs returns each MX host's host:port by host name.
func (s *Sim) MXAddrs() map[string]string {
	out := map[string]string{}
	for ip, info := range s.byIP {
		out[info.host] = net.JoinHostPort(ip.String(), strconv.Itoa(s.port))
	}
	return out
}

// CertPool trusts the certificate of STARTTLS sites (nil when none).
func (s *Sim) CertPool() *x509.CertPool { return s.certPool }

// CertPEM is the certificate of STARTTLS sites and policy hosts in PEM,
// for a client's trust roots (cuemta's delivery.tlsRoots); nil when none.
func (s *Sim) CertPEM() []byte { return s.certPEM }

// Messages returns the accepted messages in order of acceptance.
func (s *Sim) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	copy(out, s.messages)
	return out
}

// Describe writes the listening addresses, one per line.
func (s *Sim) Describe(w io.Writer) {
	fmt.Fprintf(w, "dns %s\n", s.dnsAddr)
	for _, name := range slices.Sorted(maps.Keys(s.sites)) {
		st := s.sites[name]
		for _, mx := range st.cfg.MX {
			fmt.Fprintf(w, "site %s mx %s %s (%s)\n", name, mx.Host,
				net.JoinHostPort(mx.IP, strconv.Itoa(s.port)), strings.Join(st.cfg.Domains, ", "))
		}
		if st.cfg.MTASTS != nil {
			fmt.Fprintf(w, "site %s mta-sts policy https://%s\n", name, net.JoinHostPort(st.cfg.MX[0].IP, strconv.Itoa(s.stsPort)))
		}
	}
}

func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	if ua, ok := a.(*net.UDPAddr); ok {
		return ua.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

func fqdn(d string) string { return dns.Fqdn(strings.ToLower(d)) }
