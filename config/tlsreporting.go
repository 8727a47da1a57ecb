package config

// TLSReporting configures SMTP TLS Reporting (RFC 8460; package tlsrpt,
// schema #TLSReporting).
type TLSReporting struct {
	Enabled      bool   `json:"enabled"`
	Organization string `json:"organization"`
	ContactInfo  string `json:"contactInfo"`
	From         string `json:"from"`
	// Delay and Jitter place a day's reports after the day's end.
	Delay  Duration `json:"delay"`
	Jitter Duration `json:"jitter"`
	// Retry waits before a failed report is tried again; MaxAge gives it
	// up.
	Retry  Duration `json:"retry"`
	MaxAge Duration `json:"maxAge"`
	// HTTPTimeout bounds one upload to an https: rua.
	HTTPTimeout Duration `json:"httpTimeout"`
	// FlushInterval is how often the counts are saved and reports checked.
	FlushInterval     Duration `json:"flushInterval"`
	MaxDomains        int      `json:"maxDomains"`
	MaxFailureDetails int      `json:"maxFailureDetails"`
}

// TLSReportOrganization is organization-name: the configured one, else
// the hostname.
func (c *Config) TLSReportOrganization() string {
	if c.TLSReporting.Organization != "" {
		return c.TLSReporting.Organization
	}
	return c.Hostname
}

// TLSReportContact is contact-info: the configured one, else
// postmaster@hostname.
func (c *Config) TLSReportContact() string {
	if c.TLSReporting.ContactInfo != "" {
		return c.TLSReporting.ContactInfo
	}
	return "postmaster@" + c.Hostname
}

// TLSReportFrom is the report mail's sender: the configured one, else
// postmaster@hostname.
func (c *Config) TLSReportFrom() string {
	if c.TLSReporting.From != "" {
		return c.TLSReporting.From
	}
	return "postmaster@" + c.Hostname
}
