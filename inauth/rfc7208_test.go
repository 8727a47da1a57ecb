package inauth

import (
	"context"
	"net/netip"
	"testing"
)

// TestRFC7208Examples runs the policies of RFC 7208 Appendix A.1 against
// its example zone (A.1's 192.0.2.0/24 and 10.0.0.10 moved into
// 127.0.0.0/8, as 127.0.2.0/24 and 127.10.0.10), served by the sim's DNS,
// each policy published at example.com in turn.
func TestRFC7208Examples(t *testing.T) {
	zone := []string{
		`example.com. 300 IN MX 10 mail-a.example.com.`,
		`example.com. 300 IN MX 20 mail-b.example.com.`,
		`example.com. 300 IN A 127.0.2.10`,
		`example.com. 300 IN A 127.0.2.11`,
		`amy.example.com. 300 IN A 127.0.2.65`,
		`bob.example.com. 300 IN A 127.0.2.66`,
		`mail-a.example.com. 300 IN A 127.0.2.129`,
		`mail-b.example.com. 300 IN A 127.0.2.130`,
		`www.example.com. 300 IN CNAME example.com.`,
		`example.org. 300 IN MX 10 mail-c.example.org.`,
		`mail-c.example.org. 300 IN A 127.0.2.140`,
		`10.2.0.127.in-addr.arpa. 300 IN PTR example.com.`,
		`11.2.0.127.in-addr.arpa. 300 IN PTR example.com.`,
		`65.2.0.127.in-addr.arpa. 300 IN PTR amy.example.com.`,
		`66.2.0.127.in-addr.arpa. 300 IN PTR bob.example.com.`,
		`129.2.0.127.in-addr.arpa. 300 IN PTR mail-a.example.com.`,
		`130.2.0.127.in-addr.arpa. 300 IN PTR mail-b.example.com.`,
		`140.2.0.127.in-addr.arpa. 300 IN PTR mail-c.example.org.`,
		`10.0.10.127.in-addr.arpa. 300 IN PTR bob.example.com.`,
	}
	hosts := []string{"127.0.2.10", "127.0.2.11", "127.0.2.65", "127.0.2.66", "127.0.2.129", "127.0.2.130", "127.0.2.140", "127.10.0.10"}
	for _, tc := range []struct {
		policy string
		pass   []string // the hosts that pass; the others fail
	}{
		{"v=spf1 +all", hosts},
		{"v=spf1 a -all", []string{"127.0.2.10", "127.0.2.11"}},
		{"v=spf1 a:example.org -all", nil},
		{"v=spf1 mx -all", []string{"127.0.2.129", "127.0.2.130"}},
		{"v=spf1 mx:example.org -all", []string{"127.0.2.140"}},
		{"v=spf1 mx mx:example.org -all", []string{"127.0.2.129", "127.0.2.130", "127.0.2.140"}},
		{"v=spf1 mx/30 mx:example.org/30 -all", []string{"127.0.2.129", "127.0.2.130", "127.0.2.140"}},
		{"v=spf1 ptr -all", []string{"127.0.2.10", "127.0.2.11", "127.0.2.65", "127.0.2.66", "127.0.2.129", "127.0.2.130"}},
		{"v=spf1 ip4:127.0.2.128/28 -all", []string{"127.0.2.129", "127.0.2.130", "127.0.2.140"}},
	} {
		r := newDNS(t, append(zone, `example.com. 300 IN TXT "`+tc.policy+`"`)...)
		pass := map[string]bool{}
		for _, h := range tc.pass {
			pass[h] = true
		}
		for _, h := range hosts {
			want := ResultFail
			if pass[h] {
				want = ResultPass
			}
			got := checkSPF(context.Background(), newBudgeted(r, 40), netip.MustParseAddr(h), "helo.test", "user@example.com")
			if got.Result != want {
				t.Errorf("%q from %s: %s (%s), want %s", tc.policy, h, got.Result, got.Reason, want)
			}
		}
	}
}
