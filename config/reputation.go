package config

// Reputation mirrors the schema's reputation: the DNSBLs and domain lists
// our sources and sending domains are looked up in (package reputation).
type Reputation struct {
	DNSBLs      []string `json:"dnsbls"`
	DomainLists []string `json:"domainLists"`
	Domains     []string `json:"domains"`
	Interval    Duration `json:"interval"`
	Suspend     bool     `json:"suspend"`
}

// Enabled reports whether there is a list to look anything up in.
func (r Reputation) Enabled() bool { return len(r.DNSBLs) > 0 || len(r.DomainLists) > 0 }
