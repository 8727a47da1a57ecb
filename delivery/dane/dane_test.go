package dane

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/cuemta/cuemta/internal/testpki"
	"github.com/miekg/dns"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// issue makes a certificate for names, valid from nb to na, signed by
// parent (self-signed when nil).
func issue(t *testing.T, cn string, ca bool, nb, na time.Time, parent *testpki.Issued, names ...string) *testpki.Issued {
	return testpki.Issue(t, testpki.Spec{CommonName: cn, CA: ca, NotBefore: nb, NotAfter: na, DNSNames: names}, parent)
}

func sum256(b []byte) []byte { h := sha256.Sum256(b); return h[:] }
func sum512(b []byte) []byte { h := sha512.Sum512(b); return h[:] }

func TestVerify(t *testing.T) {
	valid := func() (time.Time, time.Time) { return now.Add(-time.Hour), now.Add(24 * time.Hour) }
	nb, na := valid()
	rootCA := issue(t, "Test Root", true, nb, na, nil)
	interCA := issue(t, "Test Intermediate", true, nb, na, rootCA)
	root, inter := rootCA.Cert, interCA.Cert
	leaf := issue(t, "mx.example.test", false, nb, na, interCA, "mx.example.test").Cert
	wild := issue(t, "wildcard", false, nb, na, interCA, "*.example.test").Cert
	expired := issue(t, "mx.example.test", false, now.Add(-48*time.Hour), now.Add(-24*time.Hour), interCA, "mx.example.test").Cert
	// A self-signed certificate that names nothing we ask for and has
	// expired: DANE-EE accepts it all the same.
	selfExpired := issue(t, "whatever", false, now.Add(-48*time.Hour), now.Add(-24*time.Hour), nil, "other.invalid").Cert
	otherRoot := issue(t, "Other Root", true, nb, na, nil).Cert

	chain := []*x509.Certificate{leaf, inter, root}
	names := []string{"mx.example.test", "example.test"}
	tests := []struct {
		name    string
		chain   []*x509.Certificate
		records []Record
		names   []string
		want    error // nil: authenticated
	}{
		{"DANE-EE SPKI SHA2-256", chain, []Record{{3, 1, 1, sum256(leaf.RawSubjectPublicKeyInfo)}}, names, nil},
		{"DANE-EE Cert SHA2-256", chain, []Record{{3, 0, 1, sum256(leaf.Raw)}}, names, nil},
		{"DANE-EE Cert SHA2-512", chain, []Record{{3, 0, 2, sum512(leaf.Raw)}}, names, nil},
		{"DANE-EE SPKI Full", chain, []Record{{3, 1, 0, leaf.RawSubjectPublicKeyInfo}}, names, nil},
		{"DANE-EE ignores names and dates", []*x509.Certificate{selfExpired}, []Record{{3, 1, 1, sum256(selfExpired.RawSubjectPublicKeyInfo)}}, names, nil},
		{"DANE-EE of another key", chain, []Record{{3, 1, 1, sum256(otherRoot.RawSubjectPublicKeyInfo)}}, names, ErrNoMatch},
		{"DANE-EE data of the right key, wrong matching type", chain, []Record{{3, 1, 2, sum256(leaf.RawSubjectPublicKeyInfo)}}, names, ErrNoMatch},
		{"one of several records matches", chain, []Record{{3, 1, 1, sum256(otherRoot.RawSubjectPublicKeyInfo)}, {3, 1, 1, sum256(leaf.RawSubjectPublicKeyInfo)}}, names, nil},
		{"DANE-TA root Cert SHA2-256", chain, []Record{{2, 0, 1, sum256(root.Raw)}}, names, nil},
		{"DANE-TA intermediate SPKI SHA2-256", chain, []Record{{2, 1, 1, sum256(inter.RawSubjectPublicKeyInfo)}}, names, nil},
		{"DANE-TA accepts the recipient domain as name", []*x509.Certificate{wild, inter, root}, []Record{{2, 0, 1, sum256(root.Raw)}}, []string{"mx.other.test", "a.example.test"}, nil},
		{"DANE-TA wildcard covers the MX host", []*x509.Certificate{wild, inter, root}, []Record{{2, 0, 1, sum256(root.Raw)}}, names, nil},
		{"DANE-TA name mismatch", chain, []Record{{2, 0, 1, sum256(root.Raw)}}, []string{"mx.other.test", "other.test"}, ErrNameMismatch},
		{"DANE-TA expired leaf", []*x509.Certificate{expired, inter, root}, []Record{{2, 0, 1, sum256(root.Raw)}}, names, ErrExpired},
		{"DANE-TA anchor absent from the chain", []*x509.Certificate{leaf, inter}, []Record{{2, 0, 1, sum256(root.Raw)}}, names, ErrNoMatch},
		{"DANE-TA full certificate absent from the chain", []*x509.Certificate{leaf, inter}, []Record{{2, 0, 0, root.Raw}}, names, nil},
		{"DANE-TA does not match the leaf itself", []*x509.Certificate{leaf, inter, root}, []Record{{2, 0, 1, sum256(leaf.Raw)}}, names, ErrNoMatch},
		{"DANE-TA of an unrelated anchor the server sends", []*x509.Certificate{leaf, otherRoot}, []Record{{2, 0, 1, sum256(otherRoot.Raw)}}, names, ErrChain},
		{"PKIX-EE is unusable for SMTP", chain, []Record{{1, 1, 1, sum256(leaf.RawSubjectPublicKeyInfo)}}, names, ErrNoUsable},
		{"PKIX-TA is unusable for SMTP", chain, []Record{{0, 0, 1, sum256(root.Raw)}}, names, ErrNoUsable},
		{"unknown selector and matching type are unusable", chain, []Record{{3, 2, 1, sum256(leaf.Raw)}, {3, 1, 3, sum256(leaf.Raw)}}, names, ErrNoUsable},
		{"an unusable record beside a matching one", chain, []Record{{1, 1, 1, []byte{1}}, {3, 1, 1, sum256(leaf.RawSubjectPublicKeyInfo)}}, names, nil},
		{"no certificate", nil, []Record{{3, 1, 1, sum256(leaf.RawSubjectPublicKeyInfo)}}, names, ErrNoCertificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.chain, tt.records, tt.names, now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFromDNSAndString(t *testing.T) {
	rr, err := dns.NewRR("_25._tcp.mx.example.test. 300 IN TLSA 3 1 1 0A0b")
	if err != nil {
		t.Fatal(err)
	}
	bad := &dns.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Certificate: "zz"}
	got := FromDNS([]*dns.TLSA{rr.(*dns.TLSA), bad})
	if len(got) != 1 || got[0].String() != "3 1 1 0a0b" {
		t.Fatalf("FromDNS = %v, want the one valid record, 3 1 1 0a0b", got)
	}
}
