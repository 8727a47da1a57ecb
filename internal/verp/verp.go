// Package verp builds and reads VERP return paths, bounce+<queue id>@domain:
// delivery sends with one (feedback.verp), and the feedback intake reads
// the queue id back from the bounce addressed to it.
package verp

import "strings"

// Prefix starts the local part of a VERP return path.
const Prefix = "bounce+"

// Address is the return path of the message id under VERP:
// bounce+<id>@domain. The queue id is lower-case letters and digits, a
// valid dot-atom local part (RFC 5321 §4.1.2) with the prefix.
func Address(id, domain string) string {
	return Prefix + id + "@" + domain
}

// ID returns the queue id of a VERP address at domain. Local parts
// compare case-insensitively, as some receivers fold them.
func ID(addr, domain string) (string, bool) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || domain == "" || !strings.EqualFold(addr[at+1:], domain) {
		return "", false
	}
	local := strings.ToLower(addr[:at])
	if !strings.HasPrefix(local, Prefix) {
		return "", false
	}
	id := local[len(Prefix):]
	if id == "" || len(id) > 64 {
		return "", false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return "", false
		}
	}
	return id, true
}
