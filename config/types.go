package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"cuelang.org/go/cue"
)

// Config is the decoded, validated configuration. It mirrors #Config in
// schema/config.cue field for field (json tags are the CUE names).
type Config struct {
	Hostname  string                 `json:"hostname"`
	Listeners map[string]*Listener   `json:"listeners"`
	Admin     Admin                  `json:"admin"`
	Spool     Spool                  `json:"spool"`
	DNS       DNS                    `json:"dns"`
	Relay     Relay                  `json:"relay"`
	Reception Reception              `json:"reception"`
	Routes    map[string]string      `json:"routes"`
	Smarthost *Smarthost             `json:"smarthost,omitempty"`
	Delivery  Delivery               `json:"delivery"`
	Pools     map[string]*Pool       `json:"pools"`
	DKIM      DKIM                   `json:"dkim"`
	Retry     Retry                  `json:"retry"`
	Profiles  map[string]*Profile    `json:"profiles"`
	Rules     Rules                  `json:"rules"`
	Tests     map[string]*PolicyTest `json:"tests"`
	Log       Log                    `json:"log"`
	Events    Events                 `json:"events"`
	// Suppression is the suppression list's policy (package suppress).
	Suppression Suppression `json:"suppression"`
	Feedback    Feedback    `json:"feedback"`
	// TLSReporting is SMTP TLS Reporting (RFC 8460, tlsreporting.go).
	TLSReporting TLSReporting `json:"tlsReporting"`
	// DMARCReporting is DMARC aggregate reporting (RFC 7489 §7.2,
	// dmarcreporting.go).
	DMARCReporting DMARCReporting `json:"dmarcReporting"`
	// Cluster, when set, shares limits and suspensions with other nodes
	// through Redis (package cluster); nil: this node alone.
	Cluster *Cluster `json:"cluster,omitempty"`
	// Reputation is the reputation watch (reputation.go).
	Reputation Reputation `json:"reputation"`
	// DNSBL bounds dnsbl() and rhsbl() in stage rules (stagerules.go).
	DNSBL DNSBL `json:"dnsbl"`
	// Greylist is receiver greylisting (stagerules.go).
	Greylist Greylisting `json:"greylist"`

	// User and Group are the account serve switches to when started as
	// root ("" group: the user's primary group); AllowRoot lets it run
	// as root when no user is set. Package privdrop decides.
	User      string `json:"user"`
	Group     string `json:"group"`
	AllowRoot bool   `json:"allowRoot"`

	// Files are the CUE files the config was loaded from.
	Files []string `json:"-"`

	namesOnce sync.Once
	names     []string // profile names, sorted (see profileNames)

	// cueMu serialises reads of the CUE values below after the load: a
	// cue.Value evaluates lazily (Expr and Decode finalise its vertices in
	// place), so lanes resolving their profiles at once would race.
	cueMu sync.Mutex
	dir   string    // the config's directory: relative recipientsFile paths
	value cue.Value // the unified, validated config
	wd    string    // the working directory at load, for relative positions
	base  cue.Value // #BaseProfile, the floor under every profile
	relay cue.Value // #RelayDefaults, under the profiles of a static route
}

type Admin struct {
	Addr  string `json:"addr"`
	Token string `json:"token,omitempty"`
}

type Spool struct {
	Dir               string   `json:"dir"`
	SegmentSize       int64    `json:"segmentSize"`
	GroupCommitWindow Duration `json:"groupCommitWindow"`
	Reserve           int64    `json:"reserve"` // 0: see SpoolReserve
}

// MinSpoolReserve is the smallest default spool reserve.
const MinSpoolReserve = 4 << 20

// SpoolReserve is the spool reserve in force: spool.reserve when set,
// otherwise 1.5 times the largest message any listener accepts, and at
// least MinSpoolReserve.
func (c *Config) SpoolReserve() int64 {
	if c.Spool.Reserve > 0 {
		return c.Spool.Reserve
	}
	var largest int64
	for _, l := range c.Listeners {
		largest = max(largest, l.Limits.MaxMessageSize)
	}
	return max(largest+largest/2, MinSpoolReserve)
}

type DNS struct {
	Servers []string `json:"servers"`
	Timeout Duration `json:"timeout"`
	// DNSSEC is "off" or "trusted" (DNSSECTrusted).
	DNSSEC string `json:"dnssec"`
}

// DNSSECTrusted is dns.dnssec's value for resolvers whose AD bit is believed.
const DNSSECTrusted = "trusted"

// TrustAD reports whether the resolvers' AD bit counts (dns.dnssec "trusted").
func (d DNS) TrustAD() bool { return d.DNSSEC == DNSSECTrusted }

type Relay struct {
	Networks []string      `json:"networks"`
	Domains  []RelayDomain `json:"domains"`
}

// RelayDomain is one entry of relay.domains: a domain this MTA accepts
// mail for from anyone and, when Restricted, the only recipients it
// accepts there. In CUE it is a plain domain name or
// {domain, recipients?, recipientsFile?}.
type RelayDomain struct {
	// Domain is in normalised form (lower-case A-labels) after Load.
	Domain         string   `json:"domain"`
	Recipients     []string `json:"recipients,omitempty"`
	RecipientsFile string   `json:"recipientsFile,omitempty"`

	// Set by Load. Restricted: recipients or recipientsFile was given
	// and neither holds "*". Locals: the accepted local parts,
	// lower-cased, from both.
	Restricted bool     `json:"-"`
	Locals     []string `json:"-"`
}

// UnmarshalJSON accepts a plain domain name or the object form.
func (d *RelayDomain) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err == nil {
		*d = RelayDomain{Domain: name}
		return nil
	}
	type plain RelayDomain
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*d = RelayDomain(p)
	return nil
}

// DomainNames are the relay.domains names.
func (r Relay) DomainNames() []string {
	out := make([]string, len(r.Domains))
	for i, d := range r.Domains {
		out[i] = d.Domain
	}
	return out
}

// Reception is the reception policy shared by every listener.
type Reception struct {
	Limits ReceptionLimits `json:"limits"`
	// MaxBytesInFlight bounds the message bytes held in memory by all
	// SMTP transactions together.
	MaxBytesInFlight int64 `json:"maxBytesInFlight"`
}

// ReceptionLimits are the reception rate limits (reception.limits).
type ReceptionLimits struct {
	ClientIP ReceptionRate `json:"clientIP"`
	User     ReceptionRate `json:"user"`
	Tenant   ReceptionRate `json:"tenant"`
	// ClientIPExceptions are the networks the ClientIP limits skip; the
	// schema's default is relay.networks.
	ClientIPExceptions []string `json:"clientIPExceptions"`
}

// ReceptionRate limits one sender; a zero field is no limit.
type ReceptionRate struct {
	MessagesPerMinute    int `json:"messagesPerMinute"`
	RecipientsPerMessage int `json:"recipientsPerMessage"`
}

type Smarthost struct {
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	TLS      string `json:"tls"`
}

type Delivery struct {
	Port        int    `json:"port"`
	DefaultPool string `json:"defaultPool"`
	MaxWorkers  int    `json:"maxWorkers"`
	// DSN is the DSN mode by recipient domain and tenant (dsn.go).
	DSN DeliveryDSN `json:"dsn"`
	// DelayWarning is how long a recipient waits before its sender gets a
	// "delayed" DSN; 0: never.
	DelayWarning Duration `json:"delayWarning"`
	// TLSRoots is a PEM file of CA certificates used instead of the
	// system roots for tls "required" and MTA-STS; "": the system roots.
	TLSRoots string         `json:"tlsRoots"`
	MTASTS   DeliveryMTASTS `json:"mtaSTS"`
}

// DeliveryMTASTS configures MTA-STS (RFC 8461) for MX deliveries.
type DeliveryMTASTS struct {
	// Enabled: look up policies for every MX delivery; false: only for
	// profiles with tls "mta-sts".
	Enabled   bool `json:"enabled"`
	Port      int  `json:"port"` // the policy host's HTTPS port (443; others for tests)
	CacheSize int  `json:"cacheSize"`
}

type Listener struct {
	Name   string         `json:"name"`
	Addr   string         `json:"addr"`
	Mode   string         `json:"mode"` // "mx", "submission" or "feedback"
	TLS    *TLSFiles      `json:"tls,omitempty"`
	Auth   ListenerAuth   `json:"auth"`
	Limits ListenerLimits `json:"limits"`
	DSN    string         `json:"dsn"` // DSNMail or DSNNone
	// Verify is the verification of inbound mail (package inauth).
	Verify ListenerVerify `json:"verify"`
	// Milters are the listener's content filters, in order (milter/).
	Milters []Milter `json:"milters"`
}

// Milter is one content filter over the milter protocol (schema #Milter).
type Milter struct {
	Name     string         `json:"name"`
	Addr     string         `json:"addr"` // "unix:/path" or "inet:host:port"
	Timeouts MilterTimeouts `json:"timeouts"`
	OnError  string         `json:"onError"` // MilterTempfail, MilterAccept or MilterReject
}

// MilterTimeouts bound one conversation with a milter.
type MilterTimeouts struct {
	Connect Duration `json:"connect"`
	Command Duration `json:"command"`
	Data    Duration `json:"data"`
	Total   Duration `json:"total"`
}

// The values of Milter.OnError.
const (
	MilterTempfail = "tempfail"
	MilterAccept   = "accept"
	MilterReject   = "reject"
)

// ListenerVerify says which checks a listener applies to mail from
// outside (neither relay.networks nor an authenticated user).
type ListenerVerify struct {
	SPF           bool     `json:"spf"`
	DKIM          bool     `json:"dkim"`
	DMARC         bool     `json:"dmarc"`
	ARC           bool     `json:"arc"`
	ARCSeal       string   `json:"arcSeal"`    // a DKIMKey name; "": none
	AuthservID    string   `json:"authservID"` // "": Config.Hostname
	MaxSignatures int      `json:"maxSignatures"`
	MaxQueries    int      `json:"maxQueries"`
	Timeout       Duration `json:"timeout"`
}

// Any reports whether a check is on.
func (v ListenerVerify) Any() bool { return v.SPF || v.DKIM || v.DMARC || v.ARC }

type TLSFiles struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

type ListenerAuth struct {
	Enabled bool              `json:"enabled"`
	Users   map[string]string `json:"users"` // user -> bcrypt hash
}

type ListenerLimits struct {
	MaxMessageSize      int64    `json:"maxMessageSize"`
	MaxRecipients       int      `json:"maxRecipients"`
	MaxConnections      int      `json:"maxConnections"`
	MaxConnectionsPerIP int      `json:"maxConnectionsPerIP"`
	CommandTimeout      Duration `json:"commandTimeout"`
	DataTimeout         Duration `json:"dataTimeout"`
	MinDataRate         int64    `json:"minDataRate"` // bytes per second, after DataTimeout
	MaxDataTime         Duration `json:"maxDataTime"`
}

type Pool struct {
	Sources map[string]*Source `json:"sources"`
}

type Source struct {
	Addr string `json:"addr"`
	EHLO string `json:"ehlo"`
}

// DKIM mirrors the schema's dkim: the keys, which of them sign for which
// domain, and the keys that sign what no domain claims (package dkim's
// SigningTable reads it).
type DKIM struct {
	Keys map[string]*DKIMKey `json:"keys"`
	// Domains lists, per domain, the keys applied (all, in order) to mail
	// whose From: or envelope sender is that domain or below it.
	Domains map[string]*DKIMDomain `json:"domains"`
	// Default are the keys applied when no rule and no domain chose.
	Default        KeyList `json:"default"`
	BySenderDomain bool    `json:"bySenderDomain"`
}

// DKIMDomain is the signing of one domain.
type DKIMDomain struct {
	Keys KeyList `json:"keys"`
}

// KeyList is a list of DKIM key names, all applied in order. In a message
// rule it is written as one name or a list; the name "none" alone (written
// `dkim: "none"`) means do not sign.
type KeyList []string

// NoSigning is the rule value `dkim: "none"`.
const NoSigning = "none"

// None reports whether the list is the rule value "none": do not sign.
func (l KeyList) None() bool { return len(l) == 1 && l[0] == NoSigning }

// UnmarshalJSON accepts a name as a one-name list.
func (l *KeyList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = KeyList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("dkim: want a key name or a list of key names: %w", err)
	}
	*l = KeyList(many)
	return nil
}

type DKIMKey struct {
	Domain           string   `json:"domain"`
	Selector         string   `json:"selector"`
	KeyFile          string   `json:"keyFile"`
	Headers          []string `json:"headers"`
	Canonicalization string   `json:"canonicalization"`
}

type Retry struct {
	Schedule []Duration `json:"schedule"`
	MaxAge   Duration   `json:"maxAge"`
	Jitter   float64    `json:"jitter"`
}

type Rules struct {
	Message        []*MessageRule  `json:"message"`
	Response       []*ResponseRule `json:"response"`
	TenantHeader   string          `json:"tenantHeader"`
	CampaignHeader string          `json:"campaignHeader"`
	// Stage rules, by SMTP stage (stagerules.go).
	Connect []*StageRule `json:"connect"`
	Helo    []*StageRule `json:"helo"`
	Mail    []*StageRule `json:"mail"`
	Rcpt    []*StageRule `json:"rcpt"`
}

// Suppression: which hard bounces add their recipient to the suppression
// list, and for how long.
type Suppression struct {
	Categories  []string `json:"categories"`
	ExpireAfter Duration `json:"expireAfter"`
}

type Log struct {
	File    string `json:"file"`
	Stdout  bool   `json:"stdout"`
	MaxSize int64  `json:"maxSize"`
	Keep    int    `json:"keep"`
}

// Pos is a position in a config file, for messages that point at the line
// an operator has to change.
type Pos struct {
	File      string `json:"file,omitempty"`
	Line, Col int    `json:"-"`
}

func (p Pos) String() string {
	if p.File == "" {
		return "-"
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// IsValid reports whether the position names a file.
func (p Pos) IsValid() bool { return p.File != "" }

// lazyPos finds a position on first use: looking positions up in CUE
// costs more than the rest of a load, and most loads report none.
type lazyPos struct {
	once sync.Once
	find func() Pos
	pos  Pos
}

// or returns the lazily found position, or def when there is none to find
// (a config built in Go).
func (l *lazyPos) or(def Pos) Pos {
	if l == nil || def.IsValid() {
		return def
	}
	l.once.Do(func() { l.pos = l.find() })
	return l.pos
}

func lazy(find func() Pos) *lazyPos { return &lazyPos{find: find} }

type MessageRule struct {
	Name          string            `json:"name"`
	When          string            `json:"when"`
	Pool          string            `json:"pool,omitempty"`
	Route         string            `json:"route,omitempty"`
	Tenant        *string           `json:"tenant,omitempty"`
	Campaign      *string           `json:"campaign,omitempty"`
	Priority      *int              `json:"priority,omitempty"`
	DKIM          KeyList           `json:"dkim,omitempty"`
	AddHeaders    map[string]string `json:"addHeaders,omitempty"`
	RemoveHeaders []string          `json:"removeHeaders,omitempty"`
	Reject        *Reject           `json:"reject,omitempty"`
	Stop          bool              `json:"stop"`

	// WhenPos is where the `when` expression starts; the loader leaves it
	// to Where to find, since finding it costs and only errors need it.
	WhenPos Pos `json:"-"`
	whenAt  *lazyPos
}

// Where is where the rule's `when` expression starts.
func (r *MessageRule) Where() Pos { return r.whenAt.or(r.WhenPos) }

type Reject struct {
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced"`
	Text     string `json:"text"`
}

type ResponseRule struct {
	Name       string     `json:"name"`
	When       string     `json:"when"`
	Ref        string     `json:"ref,omitempty"`
	Classify   string     `json:"classify,omitempty"`
	Suspend    *Suspend   `json:"suspend,omitempty"`
	Throttle   *Throttle  `json:"throttle,omitempty"`
	RetryAfter *Duration  `json:"retryAfter,omitempty"`
	Bounce     bool       `json:"bounce"`
	Threshold  *Threshold `json:"threshold,omitempty"`
	// Category is the #Category the rule gives the reply ("" derives it).
	Category string `json:"category,omitempty"`

	// Profile is the profile that carries the rule ("" for global rules);
	// WhenPos is where the `when` expression starts (see Where).
	Profile string `json:"-"`
	WhenPos Pos    `json:"-"`
	whenAt  *lazyPos
}

// Where is where the rule's `when` expression starts.
func (r *ResponseRule) Where() Pos { return r.whenAt.or(r.WhenPos) }

type Suspend struct {
	Scope string   `json:"scope"`
	For   Duration `json:"for"`
}

type Throttle struct {
	Scope          string   `json:"scope"` // "source" or "provider"
	MaxConnections int      `json:"maxConnections,omitempty"`
	MessageRate    *Rate    `json:"messageRate,omitempty"`
	For            Duration `json:"for"`
}

type Threshold struct {
	Count  int      `json:"count"`
	Within Duration `json:"within"`
}

// PolicyTest mirrors #PolicyTest.
type PolicyTest struct {
	Message *TestMessage `json:"message,omitempty"`
	Reply   *TestReply   `json:"reply,omitempty"`
	Stage   *TestStage   `json:"stage,omitempty"`
	Expect  TestExpect   `json:"expect"`

	Pos Pos `json:"-"` // see Where
	at  *lazyPos
}

// Where is where the test is defined (its name).
func (t *PolicyTest) Where() Pos { return t.at.or(t.Pos) }

type TestMessage struct {
	Sender     string            `json:"sender"`
	Recipients []string          `json:"recipients"`
	Headers    map[string]string `json:"headers"`
	Size       int64             `json:"size"`
	Listener   string            `json:"listener"`
	ClientIP   string            `json:"clientIP"`
	User       string            `json:"user"`
	Tenant     string            `json:"tenant"`
	Campaign   string            `json:"campaign"`
	Tags       []string          `json:"tags"`
	// Auth is the verification the rules see; nil: not verified.
	Auth *TestAuth `json:"auth,omitempty"`
}

// TestAuth is a policy test's verification of inbound mail.
type TestAuth struct {
	SPF struct {
		Result string `json:"result"`
		Domain string `json:"domain"`
		Scope  string `json:"scope"`
	} `json:"spf"`
	DKIM []struct {
		Result   string `json:"result"`
		Domain   string `json:"domain"`
		Selector string `json:"selector"`
	} `json:"dkim"`
	DMARC struct {
		Result      string `json:"result"`
		Policy      string `json:"policy"`
		Disposition string `json:"disposition"`
		Domain      string `json:"domain"`
	} `json:"dmarc"`
	ARC struct {
		Result string `json:"result"`
		Sealer string `json:"sealer"`
	} `json:"arc"`
}

type TestReply struct {
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced"`
	Text     string `json:"text"`
	// Lines is the reply as a server wrapped it (see rules.ReplyInput).
	Lines    []string `json:"lines,omitempty"`
	Stage    string   `json:"stage"`
	Domain   string   `json:"domain"`
	MX       string   `json:"mx"`
	Source   string   `json:"source"`
	Pool     string   `json:"pool"`
	Tenant   string   `json:"tenant"`
	Campaign string   `json:"campaign"`
	Attempt  int      `json:"attempt"`
	Previous int      `json:"previous"`
}

type TestExpect struct {
	Pool     *string `json:"pool,omitempty"`
	Route    *string `json:"route,omitempty"`
	Tenant   *string `json:"tenant,omitempty"`
	Campaign *string `json:"campaign,omitempty"`
	Priority *int    `json:"priority,omitempty"`
	// DKIM is the names of the keys applied, one name or a list; "none"
	// or []: unsigned.
	DKIM   *KeyList `json:"dkim,omitempty"`
	Reject *struct {
		Code     *int    `json:"code,omitempty"`
		Enhanced *string `json:"enhanced,omitempty"`
	} `json:"reject,omitempty"`
	Accept   *bool   `json:"accept,omitempty"`
	Classify *string `json:"classify,omitempty"`
	Rule     *string `json:"rule,omitempty"`
	Suspend  *struct {
		Scope *string   `json:"scope,omitempty"`
		For   *Duration `json:"for,omitempty"`
	} `json:"suspend,omitempty"`
	RetryAfter *Duration `json:"retryAfter,omitempty"`
	Bounce     *bool     `json:"bounce,omitempty"`
	Category   *string   `json:"category,omitempty"`
	Throttle   *struct {
		Scope          *string   `json:"scope,omitempty"`
		MaxConnections *int      `json:"maxConnections,omitempty"`
		MessageRate    *Rate     `json:"messageRate,omitempty"`
		For            *Duration `json:"for,omitempty"`
	} `json:"throttle,omitempty"`
	Matched []string `json:"matched,omitempty"`
	// Stage decisions (stage tests).
	Action *string  `json:"action,omitempty"`
	Tags   []string `json:"tags,omitempty"`
}

// Duration is a time.Duration written in CUE as a Go duration string.
type Duration time.Duration

func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"5m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// Rate is a number of events per Per, written "600/m".
type Rate struct {
	N   float64
	Per time.Duration
}

// PerSecond is the rate in events per second.
func (r Rate) PerSecond() float64 {
	if r.Per <= 0 {
		return 0
	}
	return r.N / r.Per.Seconds()
}

func (r Rate) String() string {
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.Per]
	return strconv.FormatFloat(r.N, 'f', -1, 64) + "/" + unit
}

// ParseRate parses "N/s", "N/m" or "N/h".
func ParseRate(s string) (Rate, error) {
	n, unit, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("bad rate %q: want N/s, N/m or N/h", s)
	}
	f, err := strconv.ParseFloat(n, 64)
	if err != nil || f < 0 {
		return Rate{}, fmt.Errorf("bad rate %q: %q is not a number", s, n)
	}
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	if per == 0 {
		return Rate{}, fmt.Errorf("bad rate %q: unit must be s, m or h", s)
	}
	return Rate{N: f, Per: per}, nil
}

func (r *Rate) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("rate must be a string such as \"600/m\": %w", err)
	}
	v, err := ParseRate(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func (r Rate) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }
