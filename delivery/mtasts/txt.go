package mtasts

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoRecord: the domain publishes no usable _mta-sts TXT record, so it
// has no MTA-STS policy (unless one is cached).
var ErrNoRecord = errors.New("no MTA-STS TXT record")

// SelectRecord picks the policy id from the TXT records at
// _mta-sts.<domain> (RFC 8461 §3.1): records not starting with
// "v=STSv1;" are discarded; exactly one must remain and be valid.
func SelectRecord(records []string) (id string, err error) {
	var sts []string
	for _, r := range records {
		if strings.HasPrefix(r, "v=STSv1;") {
			sts = append(sts, r)
		}
	}
	switch len(sts) {
	case 0:
		return "", ErrNoRecord
	case 1:
		return ParseRecord(sts[0])
	}
	return "", fmt.Errorf("%w: %d records start with v=STSv1 (RFC 8461 §3.1 wants exactly one)", ErrNoRecord, len(sts))
}

// ParseRecord parses one TXT record (RFC 8461 §3.1):
//
//	sts-text-record = sts-version 1*(sts-sep sts-field) [sts-sep]
//	sts-version = %s"v=" %s"STSv1"
//	sts-sep     = *WSP %x3B *WSP
//	sts-id      = %s"id" *WSP "=" *WSP 1*32(ALPHA / DIGIT)
//
// Other fields (extensions) are allowed and ignored; id is required.
func ParseRecord(rec string) (id string, err error) {
	fields := strings.Split(rec, ";")
	if strings.TrimRight(fields[0], " \t") != "v=STSv1" {
		return "", fmt.Errorf("%w: %q does not start with v=STSv1", ErrNoRecord, rec)
	}
	if len(fields) == 1 {
		return "", fmt.Errorf("%w: %q has no id", ErrNoRecord, rec)
	}
	for i, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			if i == len(fields)-2 {
				continue // the optional trailing separator
			}
			return "", fmt.Errorf("%w: %q has an empty field", ErrNoRecord, rec)
		}
		name, value, ok := strings.Cut(f, "=")
		name, value = strings.TrimRight(name, " \t"), strings.TrimLeft(value, " \t")
		if !ok || !isFieldName(name) || value == "" {
			return "", fmt.Errorf("%w: %q: field %q is not name=value", ErrNoRecord, rec, f)
		}
		if name != "id" {
			continue // sts-ext: ignored
		}
		if id != "" {
			return "", fmt.Errorf("%w: %q has two ids", ErrNoRecord, rec)
		}
		if len(value) > 32 || !isAlnum(value) {
			return "", fmt.Errorf("%w: %q: id %q is not 1 to 32 letters and digits", ErrNoRecord, rec, value)
		}
		id = value
	}
	if id == "" {
		return "", fmt.Errorf("%w: %q has no id", ErrNoRecord, rec)
	}
	return id, nil
}

// isFieldName: sts-ext-name = (ALPHA / DIGIT) 0*31(ALPHA / DIGIT / "_" / "-" / ".")
func isFieldName(s string) bool {
	if s == "" || len(s) > 32 || !isAlnum(s[:1]) {
		return false
	}
	for _, c := range []byte(s) {
		if !isAlnumByte(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isAlnum(s string) bool {
	for _, c := range []byte(s) {
		if !isAlnumByte(c) {
			return false
		}
	}
	return s != ""
}

func isAlnumByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
