package dmarcreport

import (
	"errors"
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"strconv"
	"strings"

	"github.com/cuemta/cuemta/inauth"
)

// MaxRua bounds the mailto: destinations one report goes to; further
// ones are refused. RFC 7489 §6.2 lets a receiver limit them (it must
// take at least two); the bound also bounds the §7.1 lookups a record
// can cause.
const MaxRua = 5

// ErrNotMailto: the rua is not a mailto: URI, the only scheme RFC 7489
// §6.2 defines a transport for.
var ErrNotMailto = errors.New("not mailto")

// Destination is a usable rua: a mailbox and the largest report it
// takes.
type Destination struct {
	// URI is the rua as written, white space trimmed.
	URI string
	// Address is the mailbox (percent-decoded, RFC 6068), its domain in
	// lower case; Domain is that domain.
	Address, Domain string
	// Limit is the largest report mail in bytes; 0 is no limit.
	Limit int64
}

// ParseRua parses one rua URI of a DMARC record (RFC 7489 §6.2):
//
//	mailto:agg@example.com!10m
//
// The optional "!" size suffix is a count of bytes, or of k, m, g or t
// (2^10, 2^20, 2^30, 2^40); a "!" inside the URI itself must be
// percent-encoded, so the last one starts the suffix. Header fields of
// the mailto: URI (after "?") are ignored: the report mail is ours.
func ParseRua(uri string) (Destination, error) {
	d := Destination{URI: strings.TrimSpace(uri)}
	u := d.URI
	if i := strings.LastIndexByte(u, '!'); i >= 0 {
		lim, err := ParseSizeLimit(u[i+1:])
		if err != nil {
			return d, err
		}
		d.Limit, u = lim, u[:i]
	}
	pu, err := url.Parse(u)
	if err != nil {
		return d, fmt.Errorf("not a URI: %w", err)
	}
	if !strings.EqualFold(pu.Scheme, "mailto") {
		return d, ErrNotMailto
	}
	if pu.Opaque == "" {
		return d, errors.New("mailto: without an address")
	}
	addr, err := url.PathUnescape(pu.Opaque)
	if err != nil {
		return d, fmt.Errorf("mailto: address: %w", err)
	}
	// ParseAddress refuses lists and display names ("a@x, b@y" decoded
	// from %2C): a report goes to one mailbox per URI.
	pa, err := mail.ParseAddress(addr)
	if err != nil || pa.Name != "" || pa.Address != addr {
		return d, fmt.Errorf("mailto: %q is not one address", addr)
	}
	at := strings.LastIndexByte(pa.Address, '@')
	d.Domain = strings.ToLower(strings.TrimSuffix(pa.Address[at+1:], "."))
	if !validDomain(d.Domain) {
		return d, fmt.Errorf("mailto: %q is no domain name", pa.Address[at+1:])
	}
	d.Address = pa.Address[:at] + "@" + d.Domain
	return d, nil
}

// ParseSizeLimit parses a size limit of RFC 7489 §6.2: 1*DIGIT with an
// optional unit k, m, g or t (ABNF strings: either case), powers of two.
// A limit too large for int64 is as good as none and comes back as
// math.MaxInt64.
func ParseSizeLimit(s string) (int64, error) {
	shift := 0
	if s != "" {
		switch s[len(s)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		case 't', 'T':
			shift = 40
		}
	}
	num := s
	if shift > 0 {
		num = s[:len(s)-1]
	}
	if num == "" || strings.Trim(num, "0123456789") != "" {
		return 0, fmt.Errorf("size limit %q is not digits and an optional k, m, g or t", s)
	}
	n, err := strconv.ParseUint(num, 10, 63)
	if err != nil || n > math.MaxInt64>>shift {
		return math.MaxInt64, nil // only overflow gets here: the digits were checked
	}
	return int64(n) << shift, nil
}

// NeedsVerification reports whether a report about policyDomain may go
// to a mailbox at destDomain only once destDomain agrees (RFC 7489 §7.1):
// their organisational domains differ.
func NeedsVerification(policyDomain, destDomain string) bool {
	return inauth.OrgDomain(policyDomain) != inauth.OrgDomain(destDomain)
}

// VerificationName is where destDomain agrees to take policyDomain's
// reports (RFC 7489 §7.1): <policy domain>._report._dmarc.<destination>.
func VerificationName(policyDomain, destDomain string) string {
	return strings.TrimSuffix(policyDomain, ".") + "._report._dmarc." + strings.TrimSuffix(destDomain, ".")
}

// Verified reports whether the TXT records at VerificationName agree:
// one of them begins with the DMARC version tag (RFC 7489 §7.1). The tag
// is as §6.4 writes it: "v" (either case, an ABNF string), optional
// white space, "=", optional white space, and DMARC1 exactly (given in
// hex, so case-sensitive), ending there or at ";" or white space.
//
// A rua in the verification record (§7.1 lets it override the report
// destination) is not followed: the destination stays the one the
// policy domain named.
func Verified(txts []string) bool {
	for _, t := range txts {
		if isDMARC1(t) {
			return true
		}
	}
	return false
}

func isDMARC1(t string) bool {
	if t == "" || (t[0] != 'v' && t[0] != 'V') {
		return false
	}
	t = strings.TrimLeft(t[1:], " \t")
	t, ok := strings.CutPrefix(t, "=")
	if !ok {
		return false
	}
	t, ok = strings.CutPrefix(strings.TrimLeft(t, " \t"), "DMARC1")
	return ok && (t == "" || t[0] == ';' || t[0] == ' ' || t[0] == '\t')
}
