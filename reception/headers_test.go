package reception

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestReceivedHeader(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		in   traceInfo
		want string
	}{
		{"plain, one recipient",
			traceInfo{helo: "c.test", ip: netip.MustParseAddr("192.0.2.1"), hostname: "mx.test", id: "abc", rcpts: []string{"b@x.test"}, at: at},
			"Received: from c.test ([192.0.2.1])\r\n\tby mx.test (cuemta) with ESMTP id abc\r\n\tfor <b@x.test>;\r\n\tThu, 02 Jan 2025 03:04:05 +0000\r\n"},
		{"tls, auth, two recipients, IPv6",
			traceInfo{helo: "c.test", ip: netip.MustParseAddr("2001:db8::1"), hostname: "mx.test", tls: true, auth: true, id: "abc", rcpts: []string{"a@x", "b@x"}, at: at},
			"Received: from c.test ([IPv6:2001:db8::1])\r\n\tby mx.test (cuemta) with ESMTPSA id abc;\r\n\tThu, 02 Jan 2025 03:04:05 +0000\r\n"},
		{"SMTPUTF8 over TLS, hostile HELO",
			traceInfo{helo: "evil;(x)\"", ip: netip.MustParseAddr("192.0.2.1"), hostname: "mx.test", tls: true, utf8: true, id: "abc", at: at},
			"Received: from evil__x__ ([192.0.2.1])\r\n\tby mx.test (cuemta) with UTF8SMTPS id abc;\r\n\tThu, 02 Jan 2025 03:04:05 +0000\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := receivedHeader(tt.in); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestBuildMessage(t *testing.T) {
	const rcv = "Received: x\r\n"
	extra := []string{"Message-ID: <id@h>\r\n"}
	tests := []struct {
		name  string
		msg   string
		extra []string
		want  string
	}{
		{"header and body", "A: 1\r\n\r\nbody\r\n", extra, rcv + "A: 1\r\nMessage-ID: <id@h>\r\n\r\nbody\r\n"},
		{"folded field", "A: 1\r\n 2\r\n\r\nb\r\n", extra, rcv + "A: 1\r\n 2\r\nMessage-ID: <id@h>\r\n\r\nb\r\n"},
		{"header only", "A: 1\r\n", extra, rcv + "A: 1\r\nMessage-ID: <id@h>\r\n"},
		{"no header", "\r\nbody\r\n", extra, rcv + "Message-ID: <id@h>\r\n\r\nbody\r\n"},
		{"body without separator", "not a header\r\n", extra, rcv + "Message-ID: <id@h>\r\n\r\nnot a header\r\n"},
		{"no final CRLF", "A: 1\r\n\r\nb", nil, rcv + "A: 1\r\n\r\nb\r\n"},
		{"empty", "", extra, rcv + "Message-ID: <id@h>\r\n"},
		// A first line that is a continuation would continue Received:
		// the message has no header section, and its lines stay apart.
		{"leading continuation", " not ours\r\nSubject: x\r\n\r\nb\r\n", nil, rcv + "\r\n not ours\r\nSubject: x\r\n\r\nb\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(buildMessage(rcv, []byte(tt.msg), tt.extra)); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestSubmissionFields(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	got := submissionFields([]byte("Subject: x\r\n\r\nMessage-ID: in the body\r\n"), "h.test", now)
	if len(got) != 2 || !strings.HasPrefix(got[0], "Message-ID: <") || !strings.HasSuffix(got[0], "@h.test>\r\n") ||
		got[1] != "Date: Thu, 02 Jan 2025 03:04:05 +0000\r\n" {
		t.Errorf("got %q", got)
	}
	if len(got) == 2 && !regexp.MustCompile(`^Message-ID: <[a-z2-7]{26}@h\.test>\r\n$`).MatchString(got[0]) {
		t.Errorf("Message-ID field %q is not msgheader.MessageID's", got[0])
	}
	if got := submissionFields([]byte("Message-Id: <a@b>\r\ndate: x\r\n\r\n"), "h.test", now); len(got) != 0 {
		t.Errorf("added %q to a message that has both", got)
	}
}

func TestHasBareCRorLF(t *testing.T) {
	for in, want := range map[string]bool{
		"":                false,
		"a\r\nb\r\n":      false,
		"\r\n\r\n":        false,
		"\n":              true,
		"a\nb":            true,
		"\r":              true,
		"a\r\r\n":         true,
		"a\r\n\n":         true,
		"a\rb\r\n":        true,
		"x\r\n.\r\r\n":    true,
		"line\r\n.\n\r\n": true,
	} {
		if got := hasBareCRorLF([]byte(in)); got != want {
			t.Errorf("hasBareCRorLF(%q) = %v, want %v", in, got, want)
		}
	}
}
