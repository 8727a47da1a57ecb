package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is a policy's mode (RFC 8461 §5).
type Mode string

const (
	// Enforce: deliver only to a matching MX host over TLS with a valid
	// certificate.
	Enforce Mode = "enforce"
	// Testing: deliver as without a policy, but report failures.
	Testing Mode = "testing"
	// None: the domain has withdrawn its policy.
	None Mode = "none"
)

// MaxMaxAge is the largest max_age a policy may give: about one year
// (RFC 8461 §3.2: "max_age: ... up to 31557600").
const MaxMaxAge = 31557600 * time.Second

// ErrInvalid: the policy body is not a valid STSv1 policy (TLS-RPT
// "sts-policy-invalid", RFC 8460 §4.3.2.2).
var ErrInvalid = errors.New("invalid MTA-STS policy")

// Policy is one domain's parsed policy.
type Policy struct {
	Domain string        `json:"domain"`
	ID     string        `json:"id"` // the TXT record's id when it was fetched
	Mode   Mode          `json:"mode"`
	MX     []string      `json:"mx"` // patterns, lower case
	MaxAge time.Duration `json:"maxAge"`
	// Text is the policy body as served, for TLS-RPT's policy-string.
	Text    string    `json:"text"`
	Fetched time.Time `json:"fetched"`
}

// Expires is when the policy stops applying.
func (p *Policy) Expires() time.Time { return p.Fetched.Add(p.MaxAge) }

// Lines are the policy's lines, as TLS-RPT reports them (RFC 8460 §4.4:
// policy-string).
func (p *Policy) Lines() []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(p.Text, "\r\n", "\n"), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// ParsePolicy parses a policy body (RFC 8461 §3.2): "key: value" lines
// separated by LF or CRLF. version, mode and max_age are required, mx at
// least once unless the mode is none; unknown keys are ignored (they are
// extensions). A repeated version, mode or max_age makes the policy
// invalid: which one was meant cannot be known.
func ParsePolicy(body string) (*Policy, error) {
	p := &Policy{Text: body}
	seen := map[string]bool{}
	for n, line := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: line %d %q is not key: value", ErrInvalid, n+1, line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key != "mx" && seen[key] {
			return nil, fmt.Errorf("%w: line %d: %s given twice", ErrInvalid, n+1, key)
		}
		seen[key] = true
		switch key {
		case "version":
			if value != "STSv1" {
				return nil, fmt.Errorf("%w: version %q, want STSv1", ErrInvalid, value)
			}
		case "mode":
			switch m := Mode(value); m {
			case Enforce, Testing, None:
				p.Mode = m
			default:
				return nil, fmt.Errorf("%w: mode %q, want enforce, testing or none", ErrInvalid, value)
			}
		case "max_age":
			// max_age-value = 1*10(DIGIT)
			secs, err := strconv.ParseUint(value, 10, 64)
			if err != nil || len(value) > 10 || time.Duration(secs)*time.Second > MaxMaxAge {
				return nil, fmt.Errorf("%w: max_age %q is not a number of seconds up to %d", ErrInvalid, value, int(MaxMaxAge/time.Second))
			}
			p.MaxAge = time.Duration(secs) * time.Second
		case "mx":
			pat := strings.ToLower(strings.TrimSuffix(value, "."))
			if !validPattern(pat) {
				return nil, fmt.Errorf("%w: mx %q is not a host name or *.domain pattern", ErrInvalid, value)
			}
			p.MX = append(p.MX, pat)
		}
	}
	for _, k := range []string{"version", "mode", "max_age"} {
		if !seen[k] {
			return nil, fmt.Errorf("%w: no %s", ErrInvalid, k)
		}
	}
	if p.Mode != None && len(p.MX) == 0 {
		return nil, fmt.Errorf("%w: mode %s without mx", ErrInvalid, p.Mode)
	}
	return p, nil
}

// validPattern: a host name, or "*." and a domain (RFC 8461 §3.2, §4.1).
func validPattern(p string) bool {
	p = strings.TrimPrefix(p, "*.")
	if p == "" || len(p) > 253 {
		return false
	}
	for _, label := range strings.Split(p, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !isAlnumByte(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// MatchMX reports whether an MX host name matches one pattern (RFC 8461
// §4.1): literally, case-insensitively, or "*.example.com" for exactly
// one more label ("mx.example.com", not "example.com" nor
// "a.b.example.com").
func MatchMX(pattern, host string) bool {
	pattern = strings.ToLower(strings.TrimSuffix(pattern, "."))
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		label, parent, ok := strings.Cut(host, ".")
		return ok && label != "" && parent == rest
	}
	return pattern == host
}

// MatchesMX reports whether host matches one of the policy's patterns.
func (p *Policy) MatchesMX(host string) bool {
	for _, pat := range p.MX {
		if MatchMX(pat, host) {
			return true
		}
	}
	return false
}
