package inauth

import (
	"context"
	"errors"
	"net"
	"net/mail"
	"slices"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"
)

// DMARCResult is the outcome of DMARC (RFC 7489 §6.6) for a message.
type DMARCResult struct {
	// Result is pass, fail, none (no policy published, or no single
	// From: domain to look one up for), temperror or permerror.
	Result string
	// Domain is the From: domain (RFC5322.From, §3.1); OrgDomain its
	// organisational domain (§3.2).
	Domain, OrgDomain string
	// Policy is the policy the domain asks for: none, quarantine or
	// reject (sp= for a subdomain whose record is the organisational
	// domain's, §6.6.3), "" without a record.
	Policy string
	// Disposition is what the policy asks of this message after pct=
	// (§6.6.4): none, quarantine or reject; none for a message that
	// passes.
	Disposition string
	// SPFAligned and DKIMAligned report which identifier passed aligned.
	SPFAligned, DKIMAligned bool
	// SampledOut is set when pct= made the disposition less strict than
	// the policy (RFC 7489 §6.6.4; "sampled_out" in aggregate reports).
	SampledOut bool
	Reason     string
	// Published is the record evaluated, nil without one: what an
	// aggregate report (RFC 7489 §7.2) says was published, and where it
	// goes.
	Published *DMARCRecord
}

// DMARCRecord is a DMARC policy record as published (RFC 7489 §6.3).
type DMARCRecord struct {
	// Domain is where the record was found: the From: domain, or its
	// organisational domain.
	Domain string
	// ADKIM and ASPF are the alignment modes, "r" or "s".
	ADKIM, ASPF string
	// P and SP are p= and sp= ("" when sp= is absent).
	P, SP string
	// Pct is pct= (100 when absent).
	Pct int
	// Rua are the aggregate-report URIs of rua=, as written.
	Rua []string
}

// published is rec as a DMARCRecord found at domain.
func published(domain string, rec *dmarc.Record) *DMARCRecord {
	p := &DMARCRecord{Domain: domain, ADKIM: "r", ASPF: "r", P: string(rec.Policy), SP: string(rec.SubdomainPolicy), Pct: 100,
		Rua: slices.Clone(rec.ReportURIAggregate)}
	if rec.DKIMAlignment == dmarc.AlignmentStrict {
		p.ADKIM = "s"
	}
	if rec.SPFAlignment == dmarc.AlignmentStrict {
		p.ASPF = "s"
	}
	if rec.Percent != nil {
		p.Pct = *rec.Percent
	}
	return p
}

// OrgDomain is the organisational domain of d (RFC 7489 §3.2): one label
// more than its public suffix, by the public suffix list; d itself when d
// is a public suffix.
func OrgDomain(d string) string {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// aligned reports identifier alignment (RFC 7489 §3.1): strict, the same
// domain; relaxed, the same organisational domain.
func aligned(mode dmarc.AlignmentMode, a, b string) bool {
	a, b = strings.ToLower(a), strings.ToLower(b)
	if a == "" || b == "" {
		return false
	}
	if mode == dmarc.AlignmentStrict {
		return a == b
	}
	return OrgDomain(a) == OrgDomain(b)
}

// fromDomain returns the domain of the message's single From: address.
// RFC 7489 §6.6.1: a message with no From:, several, or several
// addresses in one has no single author domain to evaluate.
func fromDomain(values []string) (string, error) {
	if len(values) != 1 {
		return "", errors.New("not exactly one From: field")
	}
	list, err := mail.ParseAddressList(values[0])
	if err != nil || len(list) == 0 {
		return "", errors.New("From: field unreadable")
	}
	domain := ""
	for _, a := range list {
		at := strings.LastIndexByte(a.Address, '@')
		if at < 0 {
			return "", errors.New("From: address without a domain")
		}
		d := strings.ToLower(a.Address[at+1:])
		if domain != "" && d != domain {
			return "", errors.New("From: addresses of several domains")
		}
		domain = d
	}
	return domain, nil
}

// lookupDMARC returns the record at _dmarc.domain: nil without one.
// RFC 7489 §6.6.3: records that do not start v=DMARC1 are dropped, and
// more than one record is as none.
func lookupDMARC(ctx context.Context, r *budgeted, domain string) (*dmarc.Record, error) {
	txts, err := r.LookupTXT(ctx, "_dmarc."+domain)
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var found []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v=DMARC1") {
			found = append(found, t)
		}
	}
	if len(found) != 1 {
		return nil, nil
	}
	return dmarc.Parse(found[0])
}

// evalDMARC applies RFC 7489 §6.6: policy discovery at the From: domain,
// then at its organisational domain; a pass when SPF or a DKIM signature
// passed for an aligned domain. sample reports whether a message falls
// within pct percent (§6.6.4).
func evalDMARC(ctx context.Context, r *budgeted, from []string, spfRes SPFResult, dkims []DKIMResult, sample func(pct int) bool) DMARCResult {
	var res DMARCResult
	domain, err := fromDomain(from)
	if err != nil {
		res.Result, res.Reason = ResultPermError, err.Error()
		if len(from) == 0 {
			res.Result = ResultNone
		}
		return res
	}
	res.Domain, res.OrgDomain = domain, OrgDomain(domain)
	rec, err := lookupDMARC(ctx, r, domain)
	atOrg := false
	if err == nil && rec == nil && res.OrgDomain != domain {
		rec, err = lookupDMARC(ctx, r, res.OrgDomain)
		atOrg = true
	}
	switch {
	case err != nil && isTemporaryDNS(err):
		res.Result, res.Reason = ResultTempError, err.Error()
		return res
	case err != nil:
		res.Result, res.Reason = ResultPermError, err.Error()
		return res
	case rec == nil:
		res.Result, res.Reason = ResultNone, "no DMARC record"
		return res
	}
	recDomain := domain
	if atOrg {
		recDomain = res.OrgDomain
	}
	res.Published = published(recDomain, rec)
	res.Policy = string(rec.Policy)
	if atOrg && rec.SubdomainPolicy != "" {
		res.Policy = string(rec.SubdomainPolicy) // §6.3 sp=
	}
	// §3.1.2: SPF's authenticated identifier is the domain it checked.
	res.SPFAligned = spfRes.Result == ResultPass && aligned(rec.SPFAlignment, spfRes.Domain, domain)
	for _, d := range dkims {
		if d.Result == ResultPass && aligned(rec.DKIMAlignment, d.Domain, domain) {
			res.DKIMAligned = true
			break
		}
	}
	res.Disposition = "none"
	if res.SPFAligned || res.DKIMAligned {
		res.Result = ResultPass
		return res
	}
	res.Result = ResultFail
	res.Disposition = res.Policy
	if rec.Percent != nil && *rec.Percent < 100 && !sample(*rec.Percent) {
		// §6.6.4: outside pct, the next less strict policy applies.
		res.SampledOut = res.Policy != string(dmarc.PolicyNone)
		switch res.Policy {
		case string(dmarc.PolicyReject):
			res.Disposition = string(dmarc.PolicyQuarantine)
		case string(dmarc.PolicyQuarantine):
			res.Disposition = string(dmarc.PolicyNone)
		}
	}
	return res
}

func isTemporaryDNS(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.Temporary()
}
