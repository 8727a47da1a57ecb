package config

// DMARCReporting configures DMARC aggregate reports about verified
// inbound mail (RFC 7489 §7.2; package dmarcreport, schema
// #DMARCReporting).
type DMARCReporting struct {
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
	// FlushInterval is how often the counts are saved and reports checked.
	FlushInterval Duration `json:"flushInterval"`
	MaxDomains    int      `json:"maxDomains"`
	MaxRecords    int      `json:"maxRecords"`
	MaxRows       int      `json:"maxRows"`
}

// DMARCReportOrganization is org_name: the configured one, else the
// hostname.
func (c *Config) DMARCReportOrganization() string {
	if c.DMARCReporting.Organization != "" {
		return c.DMARCReporting.Organization
	}
	return c.Hostname
}

// DMARCReportFrom is the report mail's sender and the reports' email:
// the configured one, else postmaster@hostname.
func (c *Config) DMARCReportFrom() string {
	if c.DMARCReporting.From != "" {
		return c.DMARCReporting.From
	}
	return "postmaster@" + c.Hostname
}
