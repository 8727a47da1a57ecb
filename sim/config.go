package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/load"
	"github.com/miekg/dns"

	"github.com/cuemta/cuemta/schema"
)

// Config mirrors #Sim in schema/sim.cue (json tags are the CUE names).
type Config struct {
	Hostname string `json:"hostname"`
	Port     int    `json:"port"` // 0 (Go only): any free port, shared by all MX hosts
	// MTASTSPort is the HTTPS port of the MTA-STS policy hosts (sites
	// with MTASTS); 0 (Go only): any free port, shared by all.
	MTASTSPort int              `json:"mtaSTSPort"`
	DNS        DNSConfig        `json:"dns"`
	Sites      map[string]*Site `json:"sites"`
}

// DNSConfig is the sim's DNS server.
type DNSConfig struct {
	Addr     string   `json:"addr"`
	TTL      Duration `json:"ttl"`
	Servfail []string `json:"servfail"`
	NullMX   []string `json:"nullMX"`
	// Records are extra records in zone-file form, such as
	// `_mta-sts.example.test. 300 IN TXT "v=STSv1; id=1"`.
	Records []string `json:"records,omitempty"`
	// DNSSEC lists the zones whose answers carry the AD bit.
	DNSSEC []string `json:"dnssec,omitempty"`
}

// Site is one provider.
type Site struct {
	Domains             []string   `json:"domains"`
	MX                  []MXHost   `json:"mx"`
	MaxConnections      int        `json:"maxConnections"`
	MaxConnectionsPerIP int        `json:"maxConnectionsPerIP"`
	MaxMessageSize      int64      `json:"maxMessageSize"`
	RateLimit           *RateLimit `json:"rateLimit,omitempty"`
	Greylist            *Greylist  `json:"greylist,omitempty"`
	UnknownUsers        []string   `json:"unknownUsers"`
	Latency             Duration   `json:"latency"`
	STARTTLS            bool       `json:"starttls"`
	Replies             Replies    `json:"replies"`
	// Withhold lists EHLO extensions the site does not offer, among
	// "8BITMIME" and "SMTPUTF8" (offered by default): a server without
	// them, to test the client's downgrades. Their MAIL parameters are
	// then refused with 555 5.5.4 (RFC 5321 §4.1.1.11).
	Withhold []string `json:"withhold,omitempty"`
	// OfferDSN makes the site offer DSN (RFC 3461): it then takes RET and
	// ENVID on MAIL and NOTIFY and ORCPT on RCPT, recorded with the
	// message (Message.MailParams, Message.RcptParams). Without it those
	// parameters get 555 5.5.4, as a server without DSN answers.
	OfferDSN bool `json:"offerDSN,omitempty"`
	// TLSCert and TLSKey are PEM files (a chain, the server's own
	// certificate first, and its key) the site serves on STARTTLS instead
	// of the sim's self-signed certificate: a test makes them to publish
	// matching TLSA records. Both or neither.
	TLSCert string `json:"tlsCert,omitempty"`
	TLSKey  string `json:"tlsKey,omitempty"`
	// MTASTS publishes an MTA-STS policy (RFC 8461) for the site's
	// domains: mta-sts.<domain> resolves to the first MX host's address,
	// where an HTTPS server (port Config.MTASTSPort, the STARTTLS
	// certificate) serves it. The _mta-sts TXT record is the test's to
	// publish (dns.records), so it controls the id.
	MTASTS *SiteMTASTS `json:"mtaSTS,omitempty"`
}

// SiteMTASTS is what a site's policy host serves at
// /.well-known/mta-sts.txt.
type SiteMTASTS struct {
	Policy string `json:"policy"` // the body, as served
	// ContentType of the answer; default "text/plain".
	ContentType string `json:"contentType,omitempty"`
	// Redirect answers 302 to this URL instead (clients must not follow).
	Redirect string `json:"redirect,omitempty"`
}

// Withholdable are the extensions Site.Withhold may name.
var Withholdable = []string{"8BITMIME", "SMTPUTF8"}

// offers reports whether the site offers an extension it may withhold.
func (s *Site) offers(ext string) bool {
	return !slices.ContainsFunc(s.Withhold, func(w string) bool { return strings.EqualFold(w, ext) })
}

// MXHost is one MX host of a site.
type MXHost struct {
	Host string `json:"host"`
	IP   string `json:"ip"`
	// BadCert: the STARTTLS certificate this host presents does not name
	// it (nor its address), for testing clients that verify.
	BadCert bool `json:"badCert,omitempty"`
}

// RateLimit allows Messages accepted messages per client address per Per.
type RateLimit struct {
	Messages int      `json:"messages"`
	Per      Duration `json:"per"`
	Reply    string   `json:"reply"`
}

// Greylist refuses a new (sender, recipient, client) triplet until Delay
// has passed since it was first seen.
type Greylist struct {
	Delay Duration `json:"delay"`
	Reply string   `json:"reply"`
}

// Replies are forced replies by stage; "" means none.
type Replies struct {
	Connect string `json:"connect,omitempty"`
	EHLO    string `json:"ehlo,omitempty"`
	Mail    string `json:"mail,omitempty"`
	Rcpt    string `json:"rcpt,omitempty"`
	Data    string `json:"data,omitempty"`
	// Times, when above 0, sends the forced replies that many times in
	// all (a provider that throttles once and then accepts), after which
	// the site behaves normally.
	Times int `json:"times,omitempty"`
}

// Duration is a time.Duration written as a Go duration string.
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"5m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Defaults for values a Go-built Config leaves zero (a CUE-loaded one has
// the schema's defaults).
const (
	defaultHostname = "sim.invalid"
	defaultTTL      = 5 * time.Minute
	defaultMaxSize  = 10 << 20
	defaultRateText = "421 4.7.28 Rate limited: too many messages from your IP, try again later"
	defaultGreyText = "451 4.7.1 Greylisted, please try again later"
)

// Load reads a sim configuration: a .cue file, or a directory of them,
// unified with #Sim from the embedded schema.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	dir, args := filepath.Dir(abs), []string{abs}
	if st.IsDir() {
		dir, args = abs, []string{"."}
	}
	overlay, err := schemaOverlay(dir)
	if err != nil {
		return nil, err
	}
	lc := &load.Config{Dir: dir, Overlay: overlay}
	insts := load.Instances(args, lc)
	if len(insts) != 1 || insts[0].Err != nil {
		if len(insts) == 1 {
			return nil, cueError(path, insts[0].Err)
		}
		return nil, fmt.Errorf("sim: expected one CUE instance in %s, got %d", path, len(insts))
	}
	ctx := cuecontext.New()
	user := ctx.BuildInstance(insts[0])
	if err := user.Err(); err != nil {
		return nil, cueError(path, err)
	}
	sinst := load.Instances([]string{schema.ImportPath}, lc)[0]
	if sinst.Err != nil {
		return nil, fmt.Errorf("sim: embedded schema: %w", sinst.Err)
	}
	sval := ctx.BuildInstance(sinst)
	if err := sval.Err(); err != nil {
		return nil, fmt.Errorf("sim: embedded schema: %w", err)
	}
	v := sval.LookupPath(cue.MakePath(cue.Def("Sim"))).Unify(user)
	if err := v.Validate(cue.Concrete(true), cue.Final()); err != nil {
		return nil, cueError(path, err)
	}
	cfg := &Config{}
	if err := v.Decode(cfg); err != nil {
		return nil, cueError(path, err)
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("sim: %s: %w", path, err)
	}
	return cfg, nil
}

// cueError lists every CUE error with its position, one per line, rather
// than the first and a count.
func cueError(path string, err error) error {
	wd, _ := os.Getwd()
	details := strings.TrimSpace(cueerrors.Details(err, &cueerrors.Config{Cwd: wd}))
	return fmt.Errorf("sim: %s:\n%s", path, details)
}

// schemaOverlay places the embedded schema where CUE finds the import
// cuemta.dev/schema, and a module file if dir has none.
func schemaOverlay(dir string) (map[string]load.Source, error) {
	ov := map[string]load.Source{}
	names, err := fs.Glob(schema.FS, "*.cue")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		b, err := fs.ReadFile(schema.FS, n)
		if err != nil {
			return nil, fmt.Errorf("sim: embedded schema: %w", err)
		}
		ov[filepath.Join(dir, "cue.mod", "pkg", schema.ImportPath, n)] = load.FromBytes(b)
	}
	if _, err := os.Stat(filepath.Join(dir, "cue.mod", "module.cue")); err != nil {
		ov[filepath.Join(dir, "cue.mod", "module.cue")] = load.FromString("module: \"cuemta.local/sim\"\nlanguage: version: \"v0.12.0\"\n")
	}
	return ov, nil
}

// check enforces what the schema cannot: addresses and domains belong to
// one site each.
func (c *Config) check() error {
	var errs []error
	for _, r := range c.DNS.Records {
		if _, err := dns.NewRR(r); err != nil {
			errs = append(errs, fmt.Errorf("dns.records: %q: %w", r, err))
		}
	}
	ips := map[netip.Addr]string{}
	domains := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(c.Sites)) {
		s := c.Sites[name]
		if s == nil {
			errs = append(errs, fmt.Errorf("site %s: empty", name))
			continue
		}
		if len(s.Domains) == 0 || len(s.MX) == 0 {
			errs = append(errs, fmt.Errorf("site %s: needs at least one domain and one MX host", name))
		}
		for _, d := range s.Domains {
			d = strings.ToLower(d)
			if other, ok := domains[d]; ok {
				errs = append(errs, fmt.Errorf("site %s: domain %s already belongs to site %s", name, d, other))
			}
			domains[d] = name
		}
		for _, mx := range s.MX {
			ip, err := netip.ParseAddr(mx.IP)
			if err != nil || !ip.Is4() || !ip.IsLoopback() {
				errs = append(errs, fmt.Errorf("site %s: MX %s: ip %q is not an IPv4 loopback address", name, mx.Host, mx.IP))
				continue
			}
			if other, ok := ips[ip]; ok {
				errs = append(errs, fmt.Errorf("site %s: MX %s: %s is already used by site %s", name, mx.Host, ip, other))
			}
			ips[ip] = name
		}
		if (s.TLSCert == "") != (s.TLSKey == "") {
			errs = append(errs, fmt.Errorf("site %s: tlsCert and tlsKey go together", name))
		}
		if s.RateLimit != nil && (s.RateLimit.Messages < 1 || s.RateLimit.Per <= 0) {
			errs = append(errs, fmt.Errorf("site %s: rateLimit needs messages >= 1 and per > 0", name))
		}
		for _, w := range s.Withhold {
			if !slices.ContainsFunc(Withholdable, func(x string) bool { return strings.EqualFold(x, w) }) {
				errs = append(errs, fmt.Errorf("site %s: withhold %q: only %s can be withheld", name, w, strings.Join(Withholdable, " and ")))
			}
		}
		for _, r := range []string{s.Replies.Connect, s.Replies.EHLO, s.Replies.Mail, s.Replies.Rcpt, s.Replies.Data} {
			if r != "" && replyCode(r) == 0 {
				errs = append(errs, fmt.Errorf("site %s: reply %q does not start with a code", name, r))
			}
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills what a Go-built Config left zero.
func (c *Config) withDefaults() {
	if c.Hostname == "" {
		c.Hostname = defaultHostname
	}
	if c.DNS.Addr == "" {
		c.DNS.Addr = "127.0.0.1:0"
	}
	if c.DNS.TTL <= 0 {
		c.DNS.TTL = Duration(defaultTTL)
	}
	for _, s := range c.Sites {
		if s.MaxMessageSize <= 0 {
			s.MaxMessageSize = defaultMaxSize
		}
		if s.RateLimit != nil && s.RateLimit.Reply == "" {
			s.RateLimit.Reply = defaultRateText
		}
		if s.Greylist != nil && s.Greylist.Reply == "" {
			s.Greylist.Reply = defaultGreyText
		}
		if s.MTASTS != nil && s.MTASTS.ContentType == "" {
			s.MTASTS.ContentType = "text/plain"
		}
	}
}

// replyCode is the code at the start of a reply line, 0 if none.
func replyCode(r string) int {
	if len(r) < 3 || (len(r) > 3 && r[3] != ' ') {
		return 0
	}
	n, err := strconv.Atoi(r[:3])
	if err != nil || n < 200 || n > 599 {
		return 0
	}
	return n
}
