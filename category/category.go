// Package category names why a delivery failed or was deferred: a small,
// fixed set of bounce categories (bad-mailbox, quota, rate-limited, ...)
// that a sender acts on, carried beside the reply in the delivery log, the
// DSN, the metrics and `cuemta queue show`.
//
// Invariant: every failed or deferred outcome has exactly one category from
// All, and nothing else ever appears where a category is expected (metrics
// labels stay bounded by this list). A response rule may name the category
// (schema #Category, the `category` action); otherwise Of derives it from
// the reply's enhanced status code (RFC 3463) or, lacking one, its basic
// code, and local outcomes (a connection that failed, a message that
// expired) have categories of their own.
//
// The list follows the schema's #Category (schema/category.cue), where each
// is documented; TestSchemaAgrees keeps the two the same.
package category

import (
	"strconv"
	"strings"
)

// The categories. Their meanings are in schema/category.cue and
// docs/categories.md.
const (
	BadMailbox      = "bad-mailbox"
	BadDomain       = "bad-domain"
	InactiveMailbox = "inactive-mailbox"
	Quota           = "quota"
	MessageTooLarge = "message-too-large"
	Policy          = "policy"
	SpamContent     = "spam-content"
	Reputation      = "reputation"
	Authentication  = "authentication"
	RateLimited     = "rate-limited"
	Routing         = "routing"
	NoAnswer        = "no-answer"
	Protocol        = "protocol"
	Expired         = "expired"
	Other           = "other"
)

// All is every category, in the order the documentation lists them.
var All = []string{
	BadMailbox, BadDomain, InactiveMailbox, Quota, MessageTooLarge, Policy, SpamContent,
	Reputation, Authentication, RateLimited, Routing, NoAnswer, Protocol, Expired, Other,
}

var valid = func() map[string]bool {
	m := make(map[string]bool, len(All))
	for _, c := range All {
		m[c] = true
	}
	return m
}()

// Valid reports whether c is one of All.
func Valid(c string) bool { return valid[c] }

// Bounded is c when it is one of All and Other otherwise, for places (such
// as metrics labels) whose cardinality must stay that of the enum.
func Bounded(c string) string {
	if valid[c] {
		return c
	}
	return Other
}

// Of is the category of a reply that no rule categorised, from its
// enhanced status code (RFC 3463 subject and detail; the class only says
// whether to retry) or, when the reply has none, from its basic code
// (RFC 5321 §4.2.2). Code 0 is a connection that failed before any server
// answered: no-answer. A positive reply (2xx, 3xx) has no category: "".
//
// The delivery's own refusals are replies too, with the codes it gives
// them, so the same table covers them: a mail loop 5.4.6 is routing,
// 5.6.3/5.6.7 (a conversion the next hop cannot take) protocol, a
// nonexistent or null-MX domain 5.1.2/5.1.10 bad-domain, a temporary DNS
// failure 4.4.3 routing, a connection refused or timed out 4.4.1/4.4.2
// no-answer.
func Of(code int, enhanced string) string {
	if code == 0 {
		return NoAnswer
	}
	if code >= 200 && code < 400 {
		return ""
	}
	if subject, detail, ok := parseEnhanced(enhanced); ok {
		return ofEnhanced(subject, detail)
	}
	return ofCode(code)
}

// ofEnhanced maps an RFC 3463 subject.detail (with the later registrations
// of the IANA "SMTP Enhanced Status Codes" registry: RFC 4954, 5248, 6531,
// 7293, 7372, 7505, 8617, 8689) to a category.
func ofEnhanced(subject, detail int) string {
	switch subject {
	case 1: // RFC 3463 §3.2 addressing status
		switch detail {
		case 0, 1, 3, 4: // other, bad destination mailbox, syntax, ambiguous
			return BadMailbox
		case 2, 10: // bad destination system (domain); null MX (RFC 7505 §4)
			return BadDomain
		case 6: // destination mailbox has moved
			return InactiveMailbox
		case 7, 8: // bad sender address syntax, bad sender's system address
			return Policy
		}
		return Other
	case 2: // §3.3 mailbox status
		switch detail {
		case 1: // mailbox disabled, not accepting messages
			return InactiveMailbox
		case 2: // mailbox full
			return Quota
		case 3: // message length exceeds administrative limit
			return MessageTooLarge
		case 4: // mailing list expansion problem
			return Routing
		}
		return Other
	case 3: // §3.4 mail system status
		switch detail {
		case 1: // mail system full
			return Quota
		case 2: // system not accepting network messages
			return NoAnswer
		case 3: // system not capable of selected features
			return Protocol
		case 4: // message too big for system
			return MessageTooLarge
		case 5: // system incorrectly configured
			return Routing
		}
		return Other
	case 4: // §3.5 network and routing status
		switch detail {
		case 1, 2: // no answer from host, bad connection
			return NoAnswer
		case 5: // mail system congestion
			return RateLimited
		case 7: // delivery time expired
			return Expired
		}
		return Routing // 0 other, 3 directory server, 4 unable to route, 6 loop
	case 5: // §3.6 mail delivery protocol status
		return Protocol
	case 6: // §3.7 message content or media status (5.6.7: RFC 6531 §3.2)
		return Protocol
	case 7: // §3.8 security or policy status
		switch detail {
		case 5, 6, 7: // cryptographic failure, algorithm unsupported, integrity
			return Authentication
		case 8, 9, 12: // RFC 4954 §6: credentials invalid, mechanism too weak, password transition
			return Authentication
		case 13, 17: // RFC 5248: user account disabled; RFC 7293 §3.1: mailbox owner changed
			return InactiveMailbox
		case 16: // RFC 6710: message too big for the specified priority
			return MessageTooLarge
		case 18: // RFC 7293 §3.1: domain owner has changed
			return BadDomain
		case 20, 21, 22, 23, 24, 25, 26, 29: // RFC 7372: DKIM, SPF, reverse DNS, multiple checks; RFC 8617: ARC
			return Authentication
		case 28: // IANA registry: mail flood detected
			return RateLimited
		case 3, 4, 10, 11, 30: // security conversion, features, encryption needed/required, RFC 8689 REQUIRETLS
			return Protocol
		}
		return Policy // 0 other, 1 not authorized, 2 list expansion prohibited, ...
	}
	return Other // 0 other or undefined status
}

// ofCode maps a basic reply code to a category (RFC 5321 §4.2.2-3), for
// a reply without an enhanced code.
func ofCode(code int) string {
	switch code {
	case 421: // service not available, closing transmission channel
		return NoAnswer
	case 500, 501, 502, 503, 504, 555: // syntax, sequence, parameters
		return Protocol
	case 530, 535: // RFC 4954 §6: authentication required / credentials invalid
		return Authentication
	case 551, 553: // user not local; mailbox name not allowed
		return BadMailbox
	case 452, 552: // insufficient system storage; exceeded storage allocation
		return Quota
	}
	return Other
}

// parseEnhanced splits "5.1.1" into subject 1 and detail 1.
func parseEnhanced(s string) (subject, detail int, ok bool) {
	class, rest, ok1 := strings.Cut(s, ".")
	sub, det, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || (class != "2" && class != "4" && class != "5") {
		return 0, 0, false
	}
	subject, err1 := strconv.Atoi(sub)
	detail, err2 := strconv.Atoi(det)
	if err1 != nil || err2 != nil || subject < 0 || detail < 0 {
		return 0, 0, false
	}
	return subject, detail, true
}
