package dkim

import (
	"fmt"
	"strings"
)

// Applied is one signature put on a message at reception, as the
// envelope keeps it: which key, its d=, s= and a=, and how d= aligned
// with the From: domain then. It is recorded at reception because a
// reload may remove or change the key before the message is delivered.
type Applied struct {
	Key, Domain, Selector, Algorithm, Aligned string
}

// Apply returns the loaded keys of names, in order, and the record of
// the signatures they make on a message whose From: domain is
// fromDomain. A name with no loaded key is an error: the config check
// refuses such a name, so it means the policy and its keys disagree.
func (ks Keys) Apply(names []string, fromDomain string) ([]*Key, []Applied, error) {
	keys := make([]*Key, 0, len(names))
	applied := make([]Applied, 0, len(names))
	for _, n := range names {
		k, ok := ks[n]
		if !ok {
			return nil, nil, fmt.Errorf("dkim: no key named %q is loaded", n)
		}
		keys = append(keys, k)
		applied = append(applied, Applied{Key: k.Name, Domain: k.Domain, Selector: k.Selector,
			Algorithm: k.Algorithm, Aligned: Alignment(k.Domain, fromDomain)})
	}
	return keys, applied, nil
}

// EncodeApplied is the envelope's DKIM field for the signatures applied:
// one "key:domain:selector:algorithm:aligned" entry per signature, joined
// by commas, "" for none. It stays a string in the spool record's
// existing field, so the record's version need not change: a spool
// written before several signatures existed holds one bare key name,
// which DecodeApplied reads as an entry with only Key set, and no part
// can contain ':' or ',' (key names are #Name, domains LDH, selectors
// [A-Za-z0-9._-]).
func EncodeApplied(as []Applied) string {
	var b strings.Builder
	for i, a := range as {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a.Key)
		if a.Domain != "" {
			fmt.Fprintf(&b, ":%s:%s:%s:%s", a.Domain, a.Selector, a.Algorithm, a.Aligned)
		}
	}
	return b.String()
}

// DecodeApplied reads an envelope's DKIM field (EncodeApplied).
func DecodeApplied(s string) []Applied {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	out := make([]Applied, 0, len(parts))
	for _, p := range parts {
		f := strings.Split(p, ":")
		a := Applied{Key: f[0]}
		if len(f) == 5 {
			a.Domain, a.Selector, a.Algorithm, a.Aligned = f[1], f[2], f[3], f[4]
		}
		out = append(out, a)
	}
	return out
}

// Names are the keys of the signatures applied, in order.
func Names(as []Applied) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Key
	}
	return out
}
