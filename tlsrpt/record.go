package tlsrpt

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
)

// RecordName is where a policy domain publishes its reporting policy
// (RFC 8460 §3).
func RecordName(domain string) string { return "_smtp._tls." + strings.TrimSuffix(domain, ".") }

// ErrNoRecord: the domain publishes no usable TLSRPT record (none, or
// more than one: RFC 8460 §3 "If the number of resulting records is not
// one, senders MUST assume the recipient domain does not implement
// TLSRPT").
var ErrNoRecord = errors.New("no TLSRPT record")

// ParseRecords picks the TLSRPT record among a name's TXT records (each
// the concatenation of its strings) and returns its rua URIs.
func ParseRecords(txts []string) ([]*url.URL, error) {
	var recs []string
	for _, t := range txts {
		// RFC 8460 §3: records that do not begin with the version are
		// discarded.
		if v, _, _ := strings.Cut(t, ";"); strings.TrimSpace(v) == "v=TLSRPTv1" {
			recs = append(recs, t)
		}
	}
	if len(recs) != 1 {
		return nil, fmt.Errorf("%w (%d records begin with v=TLSRPTv1)", ErrNoRecord, len(recs))
	}
	return ParseRecord(recs[0])
}

// ParseRecord parses one TLSRPT record (RFC 8460 §3):
//
//	v=TLSRPTv1; rua=mailto:reports@example.com,https://reports.example.com/v1
//
// Fields are separated by ";" with optional white space; unknown fields
// (tlsrpt-extension) are ignored; rua is required. URIs of schemes other
// than mailto and https are skipped (§3: "other URI schemes"), and a
// record left without one is ErrNoRecord.
func ParseRecord(rec string) ([]*url.URL, error) {
	fields := strings.Split(rec, ";")
	if strings.TrimSpace(fields[0]) != "v=TLSRPTv1" {
		return nil, fmt.Errorf("%w: %q does not begin with v=TLSRPTv1", ErrNoRecord, rec)
	}
	var rua []*url.URL
	seen := false
	for _, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			continue // RFC 8460 §3 allows a trailing delimiter
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("%w: field %q is not name=value", ErrNoRecord, f)
		}
		if k != "rua" {
			continue
		}
		if seen {
			return nil, fmt.Errorf("%w: rua given twice", ErrNoRecord)
		}
		seen = true
		for _, u := range strings.Split(v, ",") {
			u = strings.Trim(u, " \t")
			pu, err := url.Parse(u)
			if err != nil {
				return nil, fmt.Errorf("%w: rua %q: %v", ErrNoRecord, u, err)
			}
			switch strings.ToLower(pu.Scheme) {
			case "mailto":
				if _, err := mail.ParseAddress(pu.Opaque); err != nil {
					return nil, fmt.Errorf("%w: rua %q: %v", ErrNoRecord, u, err)
				}
			case "https":
				if pu.Host == "" {
					return nil, fmt.Errorf("%w: rua %q has no host", ErrNoRecord, u)
				}
			default:
				continue
			}
			rua = append(rua, pu)
		}
	}
	if !seen {
		return nil, fmt.Errorf("%w: the record has no rua", ErrNoRecord)
	}
	if len(rua) == 0 {
		return nil, fmt.Errorf("%w: no mailto: or https: rua", ErrNoRecord)
	}
	return rua, nil
}
