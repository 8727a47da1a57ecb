package smtpclient

import (
	"strconv"
	"strings"
)

// Extensions are the EHLO keywords the server advertised (RFC 5321
// §4.1.1.1), upper-cased, mapped to their parameters.
type Extensions map[string]string

// Has reports whether the server offered the extension.
func (e Extensions) Has(keyword string) bool {
	_, ok := e[strings.ToUpper(keyword)]
	return ok
}

// Size is the SIZE limit (RFC 1870 §4); 0 when none was given.
func (e Extensions) Size() int64 {
	n, _ := strconv.ParseInt(e["SIZE"], 10, 64)
	return n
}

// AuthMechanisms lists the AUTH mechanisms offered (RFC 4954 §3).
func (e Extensions) AuthMechanisms() []string {
	p, ok := e["AUTH"]
	if !ok {
		return nil
	}
	return strings.Fields(strings.ToUpper(p))
}

// parseEHLO reads the keywords from the lines after the first of an EHLO
// reply.
func parseEHLO(r *Reply) Extensions {
	ext := Extensions{}
	if len(r.Lines) == 0 {
		return ext
	}
	for _, l := range r.Lines[1:] {
		kw, params, _ := strings.Cut(strings.TrimSpace(l), " ")
		if kw == "" {
			continue
		}
		ext[strings.ToUpper(kw)] = strings.TrimSpace(params)
	}
	return ext
}
