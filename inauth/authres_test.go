package inauth

import (
	"strings"
	"testing"

	"github.com/cuemta/cuemta/internal/msgheader"
)

// TestFieldQuoting: a HELO name or selector with characters outside a
// token is quoted, so it can neither end the field nor add a result.
func TestFieldQuoting(t *testing.T) {
	r := &Results{Checks: Checks{SPF: true, DKIM: true},
		SPF:  SPFResult{Result: "none", Scope: "helo", Domain: "evil; dkim=pass"},
		DKIM: []DKIMResult{{Result: "fail", Domain: "d.test", Selector: "s\"\r\nX-Injected: 1"}}}
	got := string(r.Field("mx.test"))
	want := "Authentication-Results: mx.test;\r\n\tspf=none smtp.helo=\"evil; dkim=pass\";\r\n" +
		"\tdkim=fail header.d=d.test header.s=\"s\\\"X-Injected: 1\"\r\n"
	if got != want {
		t.Errorf("field:\n%q\nwant\n%q", got, want)
	}
	if got := string((&Results{}).Field("mx.test")); got != "Authentication-Results: mx.test;\r\n\tnone\r\n" {
		t.Errorf("no checks: %q", got)
	}
}

// TestRemoveForged: RFC 8601 §5, by authserv-id only, whatever the case,
// a leading comment or a quoted id.
func TestRemoveForged(t *testing.T) {
	for _, tc := range []struct {
		value  string
		forged bool
	}{
		{"mx.test; spf=pass", true},
		{"MX.Test; dkim=pass", true},
		{"(a comment (nested)) mx.test; spf=pass", true},
		{"\"mx.test\"; spf=pass", true},
		{"mx.test 1; spf=pass", true}, // with an authres-version
		{"mx.test", true},
		{"mx.test.evil; spf=pass", false},
		{"other.test; spf=pass mx.test", false},
		{"(mx.test) other.test; spf=pass", false},
	} {
		m, err := msgheader.Parse([]byte("Authentication-Results: " + tc.value + "\r\nSubject: s\r\n\r\nbody\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		n := RemoveForged(&m.Header, "mx.test")
		if (n == 1) != tc.forged {
			t.Errorf("%q: removed %d, want forged=%v", tc.value, n, tc.forged)
		}
		if !strings.Contains(string(m.Bytes()), "Subject: s\r\n") {
			t.Errorf("%q: other fields lost", tc.value)
		}
	}
}
