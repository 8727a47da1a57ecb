package inauth

import (
	"strconv"
	"strings"

	"github.com/cuemta/cuemta/internal/msgheader"
)

// HeaderName is the field verification writes (RFC 8601 §2).
const HeaderName = "Authentication-Results"

// Field returns the Authentication-Results field for res, as written at
// the top of the message: folded, one result per line, ending in CRLF.
// RFC 8601 §2.2: authserv-id, then "method=result" with the properties
// that identify what was checked; "none" when no method ran.
func (r *Results) Field(authservID string) []byte {
	var parts []string
	if r.Checks.SPF {
		p := "spf=" + r.SPF.Result
		if r.SPF.Scope == "helo" {
			p += " smtp.helo=" + pvalue(r.SPF.Domain)
		} else if r.SPF.Domain != "" {
			// RFC 8601 §2.7.2 and RFC 7208 §9.1: the domain checked.
			p += " smtp.mailfrom=" + pvalue(r.SPF.Domain)
		}
		parts = append(parts, p)
	}
	if r.Checks.DKIM {
		if len(r.DKIM) == 0 {
			parts = append(parts, "dkim=none")
		}
		for _, d := range r.DKIM {
			p := "dkim=" + d.Result
			if d.Domain != "" {
				p += " header.d=" + pvalue(d.Domain)
			}
			if d.Selector != "" {
				p += " header.s=" + pvalue(d.Selector) // RFC 8601 §2.7.1, header.s (RFC 6008)
			}
			parts = append(parts, p)
		}
	}
	if r.Checks.DMARC {
		p := "dmarc=" + r.DMARC.Result
		if r.DMARC.Policy != "" {
			p += " (p=" + r.DMARC.Policy + " dis=" + r.DMARC.Disposition + ")"
		}
		if r.DMARC.Domain != "" {
			p += " header.from=" + pvalue(r.DMARC.Domain) // RFC 7489 §11.2
		}
		parts = append(parts, p)
	}
	if r.Checks.ARC {
		// RFC 8617 §4.4 and §7.2: the chain validation status; the
		// comment says how long the chain is and who sealed it last.
		p := "arc=" + r.ARC.Result
		switch {
		case r.ARC.Result == ResultPass && isHostname(r.ARC.Sealer()):
			p += " (i=" + strconv.Itoa(r.ARC.Instances) + " d=" + r.ARC.Sealer() + ")"
		case r.ARC.Instances > 0:
			p += " (i=" + strconv.Itoa(r.ARC.Instances) + ")"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		parts = []string{"none"} // RFC 8601 §2.2: no-result
	}
	var b strings.Builder
	b.WriteString(HeaderName + ": " + pvalue(authservID) + ";")
	for i, p := range parts {
		b.WriteString("\r\n\t" + p)
		if i < len(parts)-1 {
			b.WriteByte(';')
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// pvalue writes a property value or authserv-id (RFC 8601 §2.2: a
// token, a domain name, or a quoted-string) so that no value from the
// message or the DNS can end the field or add a result.
func pvalue(v string) string {
	plain := v != ""
	for i := 0; i < len(v) && plain; i++ {
		c := v[i]
		plain = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-._@+!#$%&'*^`{|}~", c) >= 0
	}
	if plain {
		return v
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			// No control characters (RFC 5322 §3.2.4 qtext).
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// isHostname reports whether v is letters, digits, hyphens and dots
// only, so that it can stand in a comment (RFC 5322 §3.2.2) as it is.
func isHostname(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return v != ""
}

// RemoveForged deletes the Authentication-Results fields that claim to
// come from authservID, and returns how many: RFC 8601 §5 has a border
// MTA remove such fields, since only it writes them.
func RemoveForged(h *msgheader.Header, authservID string) int {
	return h.DelFunc(HeaderName, func(v string) bool {
		return strings.EqualFold(authservIDOf(v), authservID)
	})
}

// authservIDOf returns the authserv-id of an Authentication-Results value
// (RFC 8601 §2.2), past any leading comment, unquoted.
func authservIDOf(v string) string {
	v = skipCFWS(v)
	if strings.HasPrefix(v, `"`) {
		if end := strings.IndexByte(v[1:], '"'); end >= 0 {
			return strings.ReplaceAll(v[1:1+end], `\`, "")
		}
		return ""
	}
	end := strings.IndexAny(v, "; \t(")
	if end < 0 {
		return v
	}
	return v[:end]
}

// skipCFWS drops leading white space and comments (RFC 5322 §3.2.2),
// nested ones included.
func skipCFWS(v string) string {
	for {
		v = strings.TrimLeft(v, " \t")
		if !strings.HasPrefix(v, "(") {
			return v
		}
		depth := 0
		i := 0
	comment:
		for ; i < len(v); i++ {
			switch v[i] {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					break comment
				}
			}
		}
		if i >= len(v) {
			return ""
		}
		v = v[i+1:]
	}
}
