package config

// ProfileSettings mirrors #ProfileSettings. Every field is optional (nil =
// not set at this layer), so that layers can be merged; Resolve returns an
// EffectiveProfile in which every field is set.
type ProfileSettings struct {
	MaxConnections           *int             `json:"maxConnections,omitempty"`
	MaxMessagesPerConnection *int             `json:"maxMessagesPerConnection,omitempty"`
	MessageRate              *Rate            `json:"messageRate,omitempty"`
	ConnectionRate           *Rate            `json:"connectionRate,omitempty"`
	TLS                      *string          `json:"tls,omitempty"`
	DANE                     *bool            `json:"dane,omitempty"`
	ConnectTimeout           *Duration        `json:"connectTimeout,omitempty"`
	CommandTimeout           *Duration        `json:"commandTimeout,omitempty"`
	DataTimeout              *Duration        `json:"dataTimeout,omitempty"`
	Retry                    *RetrySettings   `json:"retry,omitempty"`
	Throttle                 *ThrottleBackoff `json:"throttle,omitempty"`
	Greylist                 *Greylist        `json:"greylist,omitempty"`
	ConnectFailures          *ConnectFailures `json:"connectFailures,omitempty"`
}

type RetrySettings struct {
	Schedule []Duration `json:"schedule,omitempty"`
	MaxAge   *Duration  `json:"maxAge,omitempty"`
	Jitter   *float64   `json:"jitter,omitempty"`
}

type ThrottleBackoff struct {
	Initial *Duration `json:"initial,omitempty"`
	Max     *Duration `json:"max,omitempty"`
	Factor  *float64  `json:"factor,omitempty"`
}

type Greylist struct {
	Delay      *Duration `json:"delay,omitempty"`
	SameSource *bool     `json:"sameSource,omitempty"`
}

type ConnectFailures struct {
	Threshold *int      `json:"threshold,omitempty"`
	Delay     *Duration `json:"delay,omitempty"`
}

// Profile mirrors #Profile.
type Profile struct {
	ProfileSettings
	Match    ProfileMatch                `json:"match"`
	Provider *ProviderLimits             `json:"provider,omitempty"`
	Sources  map[string]*ProfileSettings `json:"sources,omitempty"`
	Rules    []*ResponseRule             `json:"rules,omitempty"`

	Name string `json:"-"`
	Pos  Pos    `json:"-"` // see Where
	at   *lazyPos
}

// Where is where the profile is defined (its name).
func (p *Profile) Where() Pos { return p.at.or(p.Pos) }

// ProviderLimits mirrors #Profile.provider: limits shared by all the sites
// of a provider, per egress source. Nil fields are not limited.
type ProviderLimits struct {
	MaxConnections *int  `json:"maxConnections,omitempty"`
	MessageRate    *Rate `json:"messageRate,omitempty"`
	ConnectionRate *Rate `json:"connectionRate,omitempty"`
}

type ProfileMatch struct {
	Domains []string `json:"domains,omitempty"`
	MX      []string `json:"mx,omitempty"`
}
