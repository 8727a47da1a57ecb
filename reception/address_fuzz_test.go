package reception

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/internal/msgheader"
)

// FuzzCheckMailbox checks the MAIL/RCPT path checks. Invariants: an
// accepted address has a normalised domain that normalises to itself and
// that checkMailbox accepts again in place of the original one (with the
// same local part); the domain is lower-case LDH ASCII of at most 253
// octets or an address literal; an address accepted without SMTPUTF8 is
// accepted with it; every refusal is one of the three sentinel errors.
func FuzzCheckMailbox(f *testing.F) {
	for _, s := range []string{
		"user@example.com", "User.Name+tag@Sub.Example.COM", "a@b", "@example.com", "user@",
		"\"a b\"@example.com", "user@evil\"@local", "ü@bücher.example", "user@xn--bcher-kva.example",
		"a@[127.0.0.1]", "a@[IPv6:2001:db8::1]", "a@[IPv6:::ffff:1.2.3.4]", "a@[1.2.3]", "a@[IPv6:fe80::1%eth0]",
		"a@-x.com", "a@x-.com", "a@" + strings.Repeat("a", 64) + ".com", "a@..com", ".a.@x.com", "a@b@c.com",
		"a@ex\x00ample.com", "a@EXAMPLE.com.", "a@ＥＸＡＭＰＬＥ.com",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, addr string, utf8 bool) {
		domain, err := checkMailbox(addr, utf8)
		if err != nil {
			if !errors.Is(err, errAddrSyntax) && !errors.Is(err, errAddrQuoted) && !errors.Is(err, errAddrNonASCII) {
				t.Fatalf("checkMailbox(%q) = unexpected error %v", addr, err)
			}
			if domain != "" {
				t.Fatalf("checkMailbox(%q) failed but returned domain %q", addr, domain)
			}
			return
		}
		if !utf8 {
			if d2, err := checkMailbox(addr, true); err != nil || d2 != domain {
				t.Fatalf("%q accepted without SMTPUTF8 (%q) but not with it: %q, %v", addr, domain, d2, err)
			}
		}
		if !isASCII(domain) {
			t.Fatalf("checkMailbox(%q): domain %q is not ASCII", addr, domain)
		}
		if strings.HasPrefix(domain, "[") {
			inner := strings.TrimSuffix(strings.TrimPrefix(domain, "["), "]")
			inner = strings.TrimPrefix(inner, "IPv6:")
			if _, err := netip.ParseAddr(inner); err != nil {
				t.Fatalf("checkMailbox(%q): literal %q does not parse: %v", addr, domain, err)
			}
		} else if len(domain) > 253 || domain != strings.ToLower(domain) {
			t.Fatalf("checkMailbox(%q): domain %q not lower case or too long", addr, domain)
		}
		if d2, err := normalizeDomain(domain); err != nil || d2 != domain {
			t.Fatalf("normalizeDomain(%q) = %q, %v; want it unchanged", domain, d2, err)
		}
		local := addr[:strings.LastIndexByte(addr, '@')]
		again := local + "@" + domain
		if d2, err := checkMailbox(again, true); err != nil || d2 != domain {
			t.Fatalf("normalised address %q (from %q) re-checks as %q, %v", again, addr, d2, err)
		}
	})
}

// FuzzBuildMessage checks how a received message is stored: the Received
// header is prepended, extra fields go at the end of the client's header
// section, and the body is unchanged. Invariants, for a message that
// passed the bare CR/LF check (as every stored message has): the output
// is received + header + extra [+ CRLF] + body, its header section ends
// after the extra fields, it ends in CRLF and has no bare CR or LF.
func FuzzBuildMessage(f *testing.F) {
	for _, s := range []string{
		"Subject: hi\r\n\r\nbody\r\n",
		"Subject: hi\r\n",
		"",
		"\r\nbody only\r\n",
		"Subject: folded\r\n\tcontinued\r\nFrom: a@b\r\n\r\n\r\n",
		" leading continuation\r\nSubject: x\r\n\r\nb",
		"Not a header line\r\nSubject: x\r\n\r\n",
		"Message-ID: <x@y>\r\nDate: Tue, 4 Mar 2025 05:06:07 +0100\r\n\r\nb\r\n",
		"Subject : obsolete space\r\n\r\nb\r\n",
	} {
		f.Add([]byte(s), "client.test", true)
		f.Add([]byte(s), "c (x) <y>;\"", false)
	}
	f.Fuzz(func(t *testing.T, msg []byte, helo string, submission bool) {
		if hasBareCRorLF(msg) {
			return // refused before buildMessage (readMessage)
		}
		orig := bytes.Clone(msg)
		received := receivedHeader(traceInfo{helo: helo, ip: netip.MustParseAddr("192.0.2.1"),
			hostname: "mx.test", id: "abc", rcpts: []string{"b@example.com"}, at: testNow})
		if hasBareCRorLF([]byte(received)) || !bytes.HasSuffix([]byte(received), []byte("\r\n")) {
			t.Fatalf("Received header has a bare CR/LF or no CRLF: %q", received)
		}
		if end, sep := msgheader.End([]byte(received)); end != len(received) || sep {
			t.Fatalf("Received header %q is not a header section on its own (end %d, sep %v)", received, end, sep)
		}
		var extra []string
		if submission {
			extra = submissionFields(msg, "mx.test", testNow)
		}
		out := buildMessage(received, msg, extra)
		if !bytes.Equal(msg, orig) {
			t.Fatalf("buildMessage changed its input")
		}

		norm := msg
		if len(norm) > 0 && !bytes.HasSuffix(norm, []byte("\r\n")) {
			norm = append(bytes.Clone(norm), '\r', '\n')
		}
		end, sep := msgheader.End(norm)
		want := received + string(norm[:end]) + strings.Join(extra, "")
		if !bytes.HasPrefix(out, []byte(want)) {
			t.Fatalf("output does not start with received+header+extra:\n got %q\nwant %q...", out, want)
		}
		rest := out[len(want):]
		// A body that would continue the Received field (a first line
		// that is a continuation: no header section) is kept apart too.
		if !sep && end < len(norm) && (len(extra) > 0 || norm[0] == ' ' || norm[0] == '\t') {
			if !bytes.HasPrefix(rest, []byte("\r\n")) {
				t.Fatalf("no empty line inserted before a body that lacked one: %q", out)
			}
			rest = rest[2:]
		}
		if !bytes.Equal(rest, norm[end:]) {
			t.Fatalf("body changed:\n got %q\nwant %q", rest, norm[end:])
		}
		if len(out) > 0 && (hasBareCRorLF(out) || !bytes.HasSuffix(out, []byte("\r\n"))) {
			t.Fatalf("stored message has a bare CR/LF or no final CRLF: %q", out)
		}
		if oe, _ := msgheader.End(out); oe < len(want) {
			t.Fatalf("header section of the output ends at %d, before the added fields end at %d: %q", oe, len(want), out)
		}
		if submission {
			hdr, _ := msgheader.ParseHeader(out[:len(want)])
			if !hdr.Has("Message-ID") || !hdr.Has("Date") {
				t.Fatalf("submission output lacks Message-ID or Date in its header: %q", out)
			}
		}
	})
}
