package inauth

import (
	"context"
	"net"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"
)

// SPF results (RFC 7208 §2.6), as Authentication-Results writes them.
const (
	ResultNone      = "none"
	ResultNeutral   = "neutral"
	ResultPass      = "pass"
	ResultFail      = "fail"
	ResultSoftFail  = "softfail"
	ResultTempError = "temperror"
	ResultPermError = "permerror"
	ResultPolicy    = "policy" // RFC 8601 §2.7.1: a signature ignored by local policy
)

// SPFResult is the outcome of check_host() (RFC 7208 §4) for one identity.
type SPFResult struct {
	Result string
	// Domain is the domain checked: the MAIL FROM domain, or the HELO
	// name for the null sender (RFC 7208 §2.4).
	Domain string
	// Scope is the identity checked: "mailfrom" or "helo".
	Scope string
	// Sender is the identity as checked: the MAIL FROM address, or
	// postmaster@ the HELO name.
	Sender string
	// Reason says why, for the log (not stable text).
	Reason string
}

// checkSPF evaluates the MAIL FROM identity, or HELO's for the null
// sender, with chasquid's evaluator on our resolver. It keeps RFC 7208
// §4.6.4's limits: 10 mechanisms or modifiers that query DNS, 2 void
// lookups; the ptr mechanism (which §5.5 says not to use) is evaluated
// as the library does, within those limits.
func checkSPF(ctx context.Context, r *budgeted, ip netip.Addr, helo, from string) SPFResult {
	res := SPFResult{Scope: "mailfrom", Sender: from}
	if at := strings.LastIndexByte(from, '@'); at >= 0 {
		res.Domain = strings.ToLower(from[at+1:])
	}
	if from == "" {
		// RFC 7208 §2.4: for the null sender, the HELO identity as
		// postmaster@helo.
		res.Scope, res.Domain = "helo", strings.ToLower(helo)
		res.Sender = "postmaster@" + res.Domain
	}
	if res.Domain == "" || !isDomainName(res.Domain) {
		// RFC 7208 §4.3: a domain that is not a valid name gives none.
		res.Result, res.Reason = ResultNone, "no domain to check"
		return res
	}
	result, err := spf.CheckHostWithSender(net.IP(ip.Unmap().AsSlice()), helo, res.Sender,
		spf.WithContext(ctx), spf.WithResolver(r))
	res.Result = string(result)
	if err != nil {
		res.Reason = err.Error()
	}
	return res
}

// isDomainName reports a name made of LDH labels with at least one dot
// (RFC 7208 §4.3: not an address literal, not a single label).
func isDomainName(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if len(d) == 0 || len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
