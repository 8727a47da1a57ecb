package reception

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/cuemta/cuemta/internal/maildomain"
)

// Address checks go-smtp leaves to the backend. go-smtp has already parsed
// the path (RFC 5321 §4.1.2) and unquoted the local part; it accepts any
// bytes as the domain.

var (
	errAddrSyntax   = errors.New("bad address syntax")
	errAddrQuoted   = errors.New("local part needs quoting")
	errAddrNonASCII = errors.New("non-ASCII address")
)

// checkMailbox validates a mailbox from MAIL or RCPT and returns its domain
// in normalised form (see normalizeDomain). utf8 tells whether the
// transaction declared SMTPUTF8 (RFC 6531).
func checkMailbox(addr string, utf8 bool) (domain string, err error) {
	// The domain follows the last '@': a quoted local part may hold '@'.
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", errAddrSyntax
	}
	local, dom := addr[:at], addr[at+1:]
	domain, err = normalizeDomain(dom)
	if err != nil {
		return "", errAddrSyntax
	}
	if !dotString(local) {
		// A local part that only survives quoted ("a b"@x, "a@b"@x) would
		// be re-sent unquoted by whoever relays Submission.Recipients, and
		// "user@evil"@local is the classic relay-check bypass. Refuse it.
		return "", errAddrQuoted
	}
	if !utf8 && !isASCII(addr) {
		return "", errAddrNonASCII
	}
	return domain, nil
}

// dotString reports whether s can be sent unquoted: atext and dots
// (RFC 5321 §4.1.2 Dot-string), plus UTF-8 (RFC 6531 §3.3). Leading,
// trailing and doubled dots are tolerated: real senders use them.
func dotString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80, c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// normalizeDomain validates a domain or address literal (RFC 5321 §4.1.2,
// §4.1.3) and returns it lower-cased, with U-labels converted to A-labels
// (RFC 5890) so policy compares like with like: the form of
// internal/maildomain, which config uses for relay.domains and routes.
func normalizeDomain(d string) (string, error) {
	if strings.HasPrefix(d, "[") {
		return normalizeLiteral(d)
	}
	n, err := maildomain.Normalize(d)
	if err != nil {
		return "", errAddrSyntax
	}
	return n, nil
}

// NormalizeRecipient is an accepted recipient as stored and routed: the
// local part untouched, the domain in normalised form (see
// normalizeDomain).
func NormalizeRecipient(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	d, err := normalizeDomain(addr[at+1:])
	if err != nil {
		return addr
	}
	return addr[:at+1] + d
}

// normalizeLiteral accepts "[IPv4]" and "[IPv6:addr]" (RFC 5321 §4.1.3).
func normalizeLiteral(d string) (string, error) {
	if !strings.HasSuffix(d, "]") {
		return "", errAddrSyntax
	}
	inner := d[1 : len(d)-1]
	if v6, ok := cutPrefixFold(inner, "IPv6:"); ok {
		a, err := netip.ParseAddr(v6)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", errAddrSyntax
		}
		return "[IPv6:" + a.String() + "]", nil
	}
	a, err := netip.ParseAddr(inner)
	if err != nil || !a.Is4() {
		return "", errAddrSyntax
	}
	return "[" + a.String() + "]", nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
