package feedback

import (
	"regexp"
	"strings"
)

// Plain-text bounces (before RFC 3464, or from software that still does
// not send it: qmail, old Exim, Gmail-style and Postfix-style notices)
// share a shape: a line naming the failed recipient, the remote server's
// reply near it, and then the original message or its headers, quoted
// after a marker line. The patterns below are table tested in
// textbounce_test.go; each was taken from a real-shaped sample there.
var (
	// "<alice@example.net>:" opening a qmail or Postfix recipient block,
	// possibly followed on the same line by the reason.
	reAngleRcpt = regexp.MustCompile(`^\s*<([^<>\s]+@[^<>\s]+)>:?\s*(.*)$`)
	// A line that introduces a list of failed addresses (Exim, Gmail,
	// Exchange): the addresses follow, indented, on the next lines.
	reListIntro = regexp.MustCompile(`(?i)(following (address(es|\(es\))?|recipients?(\(s\))?)( failed| could not be reached)?|delivery to the following recipients? failed|could not be delivered to).*:?\s*$`)
	reBareAddr  = regexp.MustCompile(`^\s+<?([^<>\s:]+@[^<>\s:]+?)>?:?\s*$`)
	// An enhanced status code (RFC 3463 §2) or a basic reply code.
	reStatus = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)
	reCode   = regexp.MustCompile(`\b([45])\d\d\b`)
	// The marker before the quoted original message.
	reMarker = regexp.MustCompile(`(?i)(copy of (the|your) message|original message|below this line|returned message|message headers follow|original headers|undelivered message|text of the message)`)
	// Header lines of the quoted original, possibly indented or '>'-quoted.
	reQuotedMsgID = regexp.MustCompile(`(?im)^[ \t>]*Message-ID:[ \t]*(<[^<>\s]+>)`)
	reQuotedRP    = regexp.MustCompile(`(?im)^[ \t>]*Return-Path:[ \t]*<([^<>\s]*)>`)
	// Words that mark a delay notice rather than a failure.
	reDelay = regexp.MustCompile(`(?i)(will (keep|continue) (trying|to try)|still trying|delivery (has been|is) delayed|not yet been delivered|will retry)`)
)

// parseTextBounce finds the failed recipients and the quoted original in
// a plain-text bounce; false when it finds no recipient.
func parseTextBounce(rep *Report, text []byte) bool {
	lines := strings.Split(strings.ReplaceAll(string(text), "\r\n", "\n"), "\n")
	// Only the part before the quoted original describes the failure:
	// the original's own headers hold addresses too.
	end := len(lines)
	for i, l := range lines {
		if reMarker.MatchString(l) && strings.Contains(l, "--") || reMarker.MatchString(l) && i > 0 && isRule(lines[i-1]) {
			end = i
			break
		}
	}
	action := "failed"
	if reDelay.MatchString(strings.Join(lines[:end], "\n")) {
		action = "delayed"
	}
	var rcpts []Recipient
	seen := map[string]bool{}
	add := func(addr string, from int) {
		addr = strings.TrimSpace(addr)
		if addr == "" || seen[strings.ToLower(addr)] {
			return
		}
		seen[strings.ToLower(addr)] = true
		diag := diagnosticAfter(lines[:end], from)
		rcpts = append(rcpts, Recipient{Addr: addr, Action: action, Status: statusOf(diag, action), Diagnostic: diag})
	}
	inList := false
	for i := 0; i < end; i++ {
		l := lines[i]
		if m := reAngleRcpt.FindStringSubmatch(l); m != nil {
			add(m[1], i)
			inList = false
			continue
		}
		if reListIntro.MatchString(l) {
			inList = true
			continue
		}
		if inList {
			if m := reBareAddr.FindStringSubmatch(l); m != nil {
				add(m[1], i)
				continue
			}
			// Indented lines are the reason of the address above; the
			// list ends at the first line back at the margin.
			if strings.TrimSpace(l) != "" && l[0] != ' ' && l[0] != '\t' {
				inList = false
			}
		}
	}
	if len(rcpts) == 0 {
		return false
	}
	rep.Recipients = rcpts
	quoted := strings.Join(lines[end:], "\n")
	if m := reQuotedMsgID.FindStringSubmatch(quoted); m != nil {
		rep.Original.MessageID = m[1]
	}
	if m := reQuotedRP.FindStringSubmatch(quoted); m != nil {
		rep.Original.ReturnPath = m[1]
	}
	return true
}

func isRule(l string) bool {
	l = strings.TrimSpace(l)
	return len(l) >= 3 && strings.Trim(l, "-=_*") == ""
}

// diagnosticAfter is the reason text of the recipient named on line i:
// the rest of that line and the indented or following lines, up to a
// blank line, the next recipient or a few lines.
func diagnosticAfter(lines []string, i int) string {
	var parts []string
	if m := reAngleRcpt.FindStringSubmatch(lines[i]); m != nil && m[2] != "" {
		parts = append(parts, m[2])
	}
	blank := 0
	for j := i + 1; j < len(lines) && j <= i+6; j++ {
		l := strings.TrimSpace(lines[j])
		if l == "" {
			if len(parts) > 0 || blank > 0 {
				break
			}
			blank++
			continue
		}
		if reAngleRcpt.MatchString(lines[j]) || reBareAddr.MatchString(lines[j]) {
			break
		}
		parts = append(parts, l)
	}
	return oneLine(strings.Join(parts, " "))
}

// statusOf is the RFC 3463 status in a diagnostic, or a class-only code
// from its reply code, or from the action.
func statusOf(diag, action string) string {
	if s := firstStatus(diag); s != "" {
		return s
	}
	if m := reCode.FindStringSubmatch(diag); m != nil {
		return m[1] + ".0.0"
	}
	if action == "delayed" {
		return "4.0.0"
	}
	return "5.0.0"
}

// firstStatus is the first RFC 3463 code in v, "" if none.
func firstStatus(v string) string {
	if m := reStatus.FindStringSubmatch(v); m != nil {
		return m[1] + "." + m[2] + "." + m[3]
	}
	return ""
}
