package server

import (
	"fmt"
	"testing"

	"github.com/cuemta/cuemta/inauth"
	"github.com/cuemta/cuemta/reception"
)

// TestDMARCResult: which verified messages an aggregate report counts,
// and how a verification becomes a report's row.
func TestDMARCResult(t *testing.T) {
	published := &inauth.DMARCRecord{Domain: "x.test", ADKIM: "r", ASPF: "s", P: "reject", Pct: 100, Rua: []string{"mailto:agg@x.test"}}
	verified := func(change func(*inauth.Results)) *inauth.Results {
		r := &inauth.Results{Checks: inauth.Checks{SPF: true, DKIM: true, DMARC: true},
			SPF:   inauth.SPFResult{Result: "pass", Domain: "x.test", Scope: "mailfrom"},
			DKIM:  []inauth.DKIMResult{{Result: "pass", Domain: "x.test", Selector: "s1"}},
			DMARC: inauth.DMARCResult{Result: "pass", Domain: "news.x.test", Disposition: "none", DKIMAligned: true, Published: published}}
		if change != nil {
			change(r)
		}
		return r
	}
	sub := &reception.Submission{From: "Bounce@X.test", ClientIP: "::ffff:192.0.2.7"}
	tests := []struct {
		name string
		sub  *reception.Submission
		r    *inauth.Results
		want string // "" when not counted
	}{
		{"aligned", sub, verified(nil),
			"192.0.2.7 from=news.x.test env=x.test x.test/r/s/reject/100 none dkim=true spf=false sampled=false [{x.test s1 pass}] {x.test mfrom pass}"},
		{"null sender checked at HELO", &reception.Submission{ClientIP: "192.0.2.8"}, verified(func(r *inauth.Results) {
			r.SPF = inauth.SPFResult{Result: "fail", Domain: "mail.x.test", Scope: "helo"}
			r.DKIM = nil
			r.DMARC.Result, r.DMARC.Disposition, r.DMARC.DKIMAligned, r.DMARC.SampledOut = "fail", "quarantine", false, true
		}), "192.0.2.8 from=news.x.test env= x.test/r/s/reject/100 quarantine dkim=false spf=false sampled=true [] {mail.x.test helo fail}"},
		{"SPF not checked", sub, verified(func(r *inauth.Results) { r.Checks.SPF, r.SPF = false, inauth.SPFResult{} }),
			"192.0.2.7 from=news.x.test env=x.test x.test/r/s/reject/100 none dkim=true spf=false sampled=false [{x.test s1 pass}] { mfrom none}"},
		{"DMARC not checked", sub, verified(func(r *inauth.Results) { r.Checks.DMARC = false }), ""},
		{"no record", sub, verified(func(r *inauth.Results) { r.DMARC.Published, r.DMARC.Result = nil, "none" }), ""},
		{"record without rua", sub, verified(func(r *inauth.Results) {
			p := *published
			p.Rua = nil
			r.DMARC.Published = &p
		}), ""},
		{"temperror", sub, verified(func(r *inauth.Results) { r.DMARC.Result = "temperror" }), ""},
		{"no client address", &reception.Submission{From: "a@x.test"}, verified(nil), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, ok := dmarcResult(tc.sub, tc.r)
			got := ""
			if ok {
				p := res.Published
				got = fmt.Sprintf("%s from=%s env=%s %s/%s/%s/%s/%d %s dkim=%v spf=%v sampled=%v %v %v", res.SourceIP, res.HeaderFrom, res.EnvelopeFrom,
					p.Domain, p.ADKIM, p.ASPF, p.P, p.Pct, res.Disposition, res.DKIMAligned, res.SPFAligned, res.SampledOut, res.DKIM, res.SPF)
				if fmt.Sprint(p.Rua) != "[mailto:agg@x.test]" {
					t.Errorf("rua %v", p.Rua)
				}
			}
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}
