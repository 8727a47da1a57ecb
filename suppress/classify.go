package suppress

import "strings"

// CategoryOfEnhanced is the stand-in for the bounce categories of issue
// #14 part 2 until they are merged: it names the category of a permanent
// failure from its RFC 3463 enhanced status code alone, and only for the
// categories the suppression list adds by default. Everything else is
// "other". Replace its one caller with the delivery event's category
// when that exists.
func CategoryOfEnhanced(enhanced string) string {
	switch strings.TrimSpace(enhanced) {
	case "5.1.1", "5.1.10": // RFC 3463 §3.2 X.1.1 bad destination mailbox; X.1.10 (RFC 7505 §4.2) null MX, as the issue classes it
		return "bad-mailbox"
	case "5.1.2": // RFC 3463 §3.2 bad destination system address
		return "bad-domain"
	case "5.2.1": // RFC 3463 §3.3 mailbox disabled, not accepting messages
		return "inactive-mailbox"
	}
	return "other"
}
