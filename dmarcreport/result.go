package dmarcreport

import (
	"net/netip"
)

// Result is one verified message, recorded at reception when DMARC found
// a policy record for its From: domain.
type Result struct {
	// SourceIP is the connecting client's address (source_ip).
	SourceIP netip.Addr
	// HeaderFrom is the RFC5322.From domain (header_from).
	HeaderFrom string
	// EnvelopeFrom is the RFC5321.MailFrom domain; "" for the null
	// sender (envelope_from is then empty).
	EnvelopeFrom string
	// Published is the record evaluated; it may be the organisational
	// domain's (RFC 7489 §6.6.3). Its Domain names the report.
	Published Policy
	// Disposition is none, quarantine or reject: what the policy asked
	// of this message after pct (policy_evaluated disposition).
	Disposition string
	// SampledOut is set when the record's pct made Disposition less
	// strict than its policy: the report gives the reason "sampled_out".
	SampledOut bool
	// DKIMAligned and SPFAligned are policy_evaluated dkim and spf: pass
	// when true, else fail.
	DKIMAligned bool
	SPFAligned  bool
	// DKIM holds every signature checked, aligned or not (may be empty).
	DKIM []DKIMAuth
	// SPF is the SPF check of the message.
	SPF SPFAuth
}

// Policy is the published DMARC record (policy_published), plus where
// its reports go.
type Policy struct {
	// Domain is where the record was found: the From: domain or its
	// organisational domain.
	Domain string
	// ADKIM and ASPF are the alignment modes, "r" or "s".
	ADKIM, ASPF string
	// P and SP are none, quarantine or reject; SP is "" when absent.
	P, SP string
	// Pct is the record's pct, 0..100.
	Pct int
	// Rua are the record's rua= URIs as written, one per entry (e.g.
	// "mailto:agg@example.com!10m").
	Rua []string
}

// DKIMAuth is one DKIM signature's check (auth_results dkim). Result is
// none, pass, fail, policy, neutral, temperror or permerror.
type DKIMAuth struct{ Domain, Selector, Result string }

// SPFAuth is the SPF check (auth_results spf). Scope is "mfrom" or
// "helo"; Result is none, neutral, pass, fail, softfail, temperror or
// permerror.
type SPFAuth struct{ Domain, Scope, Result string }

// Recorder is told every verified message; it must be cheap and safe for
// concurrent use (reception calls it inline).
type Recorder interface {
	Record(Result)
}
