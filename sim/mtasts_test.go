package sim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/mtasts"
)

const stsSim = `
sites: {
	sts: {
		domains: ["sts.test", "other.test"]
		mx: [{host: "mx.sts.test", ip: "127.0.31.1"}, {host: "mx2.sts.test", ip: "127.0.31.2", badCert: true}]
		starttls: true
		mtaSTS: policy: "version: STSv1\nmode: enforce\nmx: mx.sts.test\nmax_age: 600\n"
	}
	html: {
		domains: ["html.test"]
		mx: [{host: "mx.html.test", ip: "127.0.31.3"}]
		mtaSTS: {policy: "version: STSv1\nmode: enforce\nmx: mx.html.test\nmax_age: 600\n", contentType: "text/html"}
	}
	moved: {
		domains: ["moved.test"]
		mx: [{host: "mx.moved.test", ip: "127.0.31.4"}]
		mtaSTS: {policy: "", redirect: "https://mta-sts.sts.test/.well-known/mta-sts.txt"}
	}
}
dns: records: ["_mta-sts.sts.test. 300 IN TXT \"v=STSv1; id=1\""]
`

// TestMTASTSPolicyHost: a site with mtaSTS serves its policy over HTTPS
// at mta-sts.<domain> (which the sim's DNS resolves), with a certificate
// the sim's pool trusts, as configured, and counts the fetches.
func TestMTASTSPolicyHost(t *testing.T) {
	s := start(t, stsSim, nil)
	r := resolver(t, s)
	f := &mtasts.Fetcher{Resolver: r, Roots: s.CertPool(), Port: s.MTASTSPort(), Timeout: 5 * time.Second}
	ctx := context.Background()
	for _, d := range []string{"sts.test", "other.test"} {
		body, err := f.Fetch(ctx, d)
		if err != nil || !strings.Contains(body, "mode: enforce") {
			t.Fatalf("policy of %s: %q, %v", d, body, err)
		}
	}
	if n := s.PolicyFetches("sts"); n != 2 {
		t.Errorf("PolicyFetches(sts) = %d, want 2", n)
	}
	if _, err := f.Fetch(ctx, "html.test"); !errors.Is(err, mtasts.ErrInvalid) {
		t.Errorf("policy served as text/html: %v, want ErrInvalid", err)
	}
	if _, err := f.Fetch(ctx, "moved.test"); !errors.Is(err, mtasts.ErrFetch) || !strings.Contains(err.Error(), "302") {
		t.Errorf("redirected policy: %v, want ErrFetch with the 302", err)
	}
	txt, err := r.LookupTXT(ctx, "_mta-sts.sts.test")
	if err != nil || len(txt) != 1 || txt[0] != "v=STSv1; id=1" {
		t.Errorf("TXT = %q, %v", txt, err)
	}
	// The badCert host presents a certificate that does not name it.
	leaf := s.tlsConfig.Certificates[0].Leaf
	if leaf.VerifyHostname("mx.sts.test") != nil || leaf.VerifyHostname("mx2.sts.test") == nil || leaf.VerifyHostname("mta-sts.other.test") != nil {
		t.Errorf("certificate names %v", leaf.DNSNames)
	}
}
