package dmarcreport

import (
	"encoding/xml"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// FuzzParseRua: a rua from anyone's DNS never panics, and one accepted
// names one mailbox in a valid domain with a limit that is not negative.
func FuzzParseRua(f *testing.F) {
	for _, s := range []string{"mailto:agg@example.com", "mailto:agg@example.com!10m", " mailto:a%40b@x.test!0 ",
		"mailto:a@b.test,c@d.test", "https://x.test/r", "mailto:", "mailto:a@x.test!99999999999999999999t", "mailto:%zz@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		d, err := ParseRua(uri)
		if err != nil {
			return
		}
		if strings.Count(d.Address, "@") < 1 || !strings.HasSuffix(d.Address, "@"+d.Domain) || !validDomain(d.Domain) || d.Limit < 0 {
			t.Fatalf("ParseRua(%q) = %+v", uri, d)
		}
	})
}

// FuzzReportXML: whatever a sender puts in the names a result carries
// (From: and MAIL FROM domains, DKIM d= and s=, results), the report is
// XML that reads back with the same count.
func FuzzReportXML(f *testing.F) {
	f.Add("x.test", "bounce.x.test", "s1", "pass", "mfrom", "reject")
	f.Add("x.test\x00<", "]]>&amp;", "\xff\xfe", "p\u2028ass", "helo", "")
	f.Fuzz(func(t *testing.T, from, env, selector, result, scope, disposition string) {
		c := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		s, err := OpenStore(StoreOptions{Now: func() time.Time { return c }})
		if err != nil {
			t.Fatal(err)
		}
		r := Result{SourceIP: netip.MustParseAddr("192.0.2.1"), HeaderFrom: from, EnvelopeFrom: env,
			Published:   Policy{Domain: "x.test", P: disposition, Rua: []string{"mailto:agg@x.test"}},
			Disposition: disposition, DKIM: []DKIMAuth{{Domain: from, Selector: selector, Result: result}},
			SPF: SPFAuth{Domain: env, Scope: scope, Result: result}}
		s.Record(r)
		s.Record(r)
		due := s.CutAll()
		if len(due) != 1 {
			t.Fatalf("%d windows, want 1", len(due))
		}
		b, err := BuildReport(due[0], testSubmitter).XML()
		if err != nil {
			t.Fatal(err)
		}
		var back Feedback
		if err := xml.Unmarshal(b, &back); err != nil {
			t.Fatalf("report does not read back: %v\n%s", err, b)
		}
		if len(back.Records) != 1 || back.Records[0].Row.Count != 2 {
			t.Fatalf("records %+v, want one of count 2", back.Records)
		}
	})
}
