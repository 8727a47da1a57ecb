// Package dane authenticates an SMTP server's certificate chain against
// the TLSA records of its MX host, as RFC 7672 (SMTP security via
// opportunistic DANE TLS) applies RFC 6698 and RFC 7671.
//
// Invariants: only DANE-EE(3) and DANE-TA(2) records are usable for SMTP
// (PKIX-TA(0) and PKIX-EE(1) are not, RFC 7672 §3.1.3), with selectors
// Cert(0) and SPKI(1) and matching types Full(0), SHA2-256(1) and
// SHA2-512(2); a record with anything else is ignored. A DANE-EE match of
// the server's own certificate is enough: its names and dates are not
// checked (RFC 7672 §3.1.1). A DANE-TA match needs a chain from the
// server's certificate to the matched trust anchor, valid now, and the
// server's certificate must name one of the reference identifiers
// (RFC 7672 §3.1.2, §3.2.2). Verify never consults the system's roots.
package dane

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Certificate usages, selectors and matching types (RFC 6698 §2.1, with
// the names of RFC 7218).
const (
	UsagePKIXTA = 0
	UsagePKIXEE = 1
	UsageDANETA = 2
	UsageDANEEE = 3

	SelectorCert = 0
	SelectorSPKI = 1

	MatchFull   = 0
	MatchSHA256 = 1
	MatchSHA512 = 2
)

// Record is one TLSA record (RFC 6698 §2.1).
type Record struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte // the certificate association data
}

// String is the record in presentation form ("3 1 1 <hex>"), as TLS-RPT
// reports quote the policy.
func (r Record) String() string {
	return fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, hex.EncodeToString(r.Data))
}

// FromDNS converts DNS TLSA records; one whose data is not hex is
// dropped (it could match nothing).
func FromDNS(rrs []*dns.TLSA) []Record {
	out := make([]Record, 0, len(rrs))
	for _, rr := range rrs {
		data, err := hex.DecodeString(rr.Certificate)
		if err != nil {
			continue
		}
		out = append(out, Record{Usage: rr.Usage, Selector: rr.Selector, MatchingType: rr.MatchingType, Data: data})
	}
	return out
}

// Usable returns the records SMTP can use (RFC 7672 §3.1.3 and §2.2: the
// others are as if not published).
func Usable(rs []Record) []Record {
	var out []Record
	for _, r := range rs {
		if (r.Usage == UsageDANEEE || r.Usage == UsageDANETA) &&
			(r.Selector == SelectorCert || r.Selector == SelectorSPKI) &&
			(r.MatchingType == MatchFull || r.MatchingType == MatchSHA256 || r.MatchingType == MatchSHA512) &&
			len(r.Data) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// Why Verify fails; errors.Is works on its error.
var (
	// ErrNoCertificate: the server sent no certificate.
	ErrNoCertificate = errors.New("the server presented no certificate")
	// ErrNoUsable: none of the records is usable for SMTP.
	ErrNoUsable = errors.New("no usable TLSA record")
	// ErrNoMatch: no usable record matches the server's chain.
	ErrNoMatch = errors.New("no TLSA record matches the server's certificate chain")
	// ErrNameMismatch: a DANE-TA chain matched, but the server's
	// certificate names none of the reference identifiers.
	ErrNameMismatch = errors.New("the certificate does not name the MX host")
	// ErrExpired: a DANE-TA chain matched, but a certificate in it is
	// outside its validity period.
	ErrExpired = errors.New("a certificate of the DANE-TA chain has expired or is not yet valid")
	// ErrChain: a DANE-TA record matched a certificate the server's own
	// does not chain to.
	ErrChain = errors.New("the server's certificate does not chain to the DANE-TA trust anchor")
)

// Verify authenticates chain (the server's certificate first, as sent in
// the handshake) with records. names are the reference identifiers for
// DANE-TA: the MX host name, and possibly the recipient domain (RFC 7672
// §3.2.2); matching follows RFC 6125 as crypto/x509 does, a wildcard
// standing for one whole left-most label. now is the
// time DANE-TA chains must be valid at.
func Verify(chain []*x509.Certificate, records []Record, names []string, now time.Time) error {
	if len(chain) == 0 {
		return ErrNoCertificate
	}
	usable := Usable(records)
	if len(usable) == 0 {
		return ErrNoUsable
	}
	for _, r := range usable {
		if r.Usage == UsageDANEEE && r.matches(chain[0]) {
			return nil // RFC 7672 §3.1.1: no name or date checks
		}
	}
	var taErr error
	for _, r := range usable {
		if r.Usage != UsageDANETA {
			continue
		}
		for _, ta := range anchors(r, chain) {
			err := verifyFromAnchor(chain, ta, names, now)
			if err == nil {
				return nil
			}
			if taErr == nil || errors.Is(taErr, ErrChain) {
				taErr = err // prefer the more telling failure
			}
		}
	}
	if taErr != nil {
		return taErr
	}
	return ErrNoMatch
}

// anchors are the trust anchors a DANE-TA record names: the issuer
// certificates in the chain it matches (RFC 7671 §5.2.2 has the server
// send them), or the certificate itself when the record holds it whole.
func anchors(r Record, chain []*x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range chain[1:] {
		if r.matches(c) {
			out = append(out, c)
		}
	}
	if len(out) == 0 && r.Selector == SelectorCert && r.MatchingType == MatchFull {
		if c, err := x509.ParseCertificate(r.Data); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// verifyFromAnchor validates chain[0] up to ta (RFC 5280 path
// validation, dates included) and checks its names.
func verifyFromAnchor(chain []*x509.Certificate, ta *x509.Certificate, names []string, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ta)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		if !c.Equal(ta) {
			inter.AddCert(c)
		}
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return fmt.Errorf("%w: %v", ErrExpired, err)
		}
		return fmt.Errorf("%w: %v", ErrChain, err)
	}
	for _, n := range names {
		if n != "" && chain[0].VerifyHostname(strings.TrimSuffix(n, ".")) == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: it names %s, wanted %s", ErrNameMismatch, certNames(chain[0]), strings.Join(names, " or "))
}

func certNames(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return strings.Join(c.DNSNames, ", ")
	}
	if c.Subject.CommonName != "" {
		return "CN=" + c.Subject.CommonName
	}
	return "no DNS name"
}

// matches compares the selected part of c with the record's data.
func (r Record) matches(c *x509.Certificate) bool {
	var sel []byte
	switch r.Selector {
	case SelectorCert:
		sel = c.Raw
	case SelectorSPKI:
		sel = c.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch r.MatchingType {
	case MatchFull:
		return bytes.Equal(sel, r.Data)
	case MatchSHA256:
		h := sha256.Sum256(sel)
		return bytes.Equal(h[:], r.Data)
	case MatchSHA512:
		h := sha512.Sum512(sel)
		return bytes.Equal(h[:], r.Data)
	}
	return false
}
