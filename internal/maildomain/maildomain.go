// Package maildomain holds the one normalised form of a mail domain that
// configuration, reception and routing compare: lower-case A-labels
// (RFC 5890 §2.3.2.1), no trailing dot. A domain written with U-labels
// ("bücher.example") and its A-label form ("xn--bcher-kva.example") are
// the same key everywhere.
package maildomain

import (
	"errors"
	"strings"

	"golang.org/x/net/idna"
)

// ErrSyntax is returned for a string that is not a domain name.
var ErrSyntax = errors.New("not a domain name")

// Normalize returns d as lower-case A-labels, or ErrSyntax. ASCII names
// must be LDH labels (RFC 5321 §4.1.2 sub-domain, RFC 1035 §2.3.4
// lengths); a name with U-labels is converted with the IDNA lookup profile
// (UTS #46 mapping, RFC 5891 §5 checks).
func Normalize(d string) (string, error) {
	if !isASCII(d) {
		a, err := idna.Lookup.ToASCII(d)
		if err != nil {
			return "", ErrSyntax
		}
		d = a
	}
	d = strings.ToLower(d)
	if len(d) == 0 || len(d) > 253 { // RFC 1035 §2.3.4, less the root's dot
		return "", ErrSyntax
	}
	for _, label := range strings.Split(d, ".") {
		if !ldhLabel(label) {
			return "", ErrSyntax
		}
	}
	return d, nil
}

// Address returns addr with its domain (after the last '@') normalised and
// the local part untouched; addr itself when the domain is not a name
// (an address literal, or bad syntax that the caller refuses elsewhere).
func Address(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	d, err := Normalize(addr[at+1:])
	if err != nil {
		return addr
	}
	return addr[:at+1] + d
}

// Of is the domain of addr (after its last '@'), lower-cased; "" when
// addr has none. Recipients are stored normalised (see Address), so for
// them this is the normalised domain.
func Of(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}

// ldhLabel reports whether l is Let-dig [Ldh-str], at most 63 octets.
func ldhLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
