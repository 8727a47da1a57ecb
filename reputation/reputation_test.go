package reputation

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/delivery/mx"
	_ "github.com/cuemta/cuemta/internal/golden"
	"github.com/cuemta/cuemta/sim/simtest"
)

// TestNames: RFC 5782 §2.1's and §2.2's query names.
func TestNames(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.99", "99.2.0.192.bl.example"},
		{"::ffff:192.0.2.99", "99.2.0.192.bl.example"},
		{"2001:db8:1:2:3:4:567:89ab", "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example"},
	} {
		if got := Name(netip.MustParseAddr(tc.addr), "bl.example."); got != tc.want {
			t.Errorf("Name(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
	if got := DomainName("Mail.Example.COM.", "dbl.example"); got != "mail.example.com.dbl.example" {
		t.Errorf("DomainName = %s", got)
	}
}

func newDNS(t *testing.T, records ...string) *mx.Resolver { return simtest.DNS(t, records...) }

// TestCheck: listed (with the TXT reason), not listed (NXDOMAIN), a
// refusal code, and a list that does not answer, against the sim's DNS.
func TestCheck(t *testing.T) {
	r := newDNS(t,
		`bl.test. 300 IN TXT "test DNSBL"`, // the zone's apex: other names are NXDOMAIN
		`1.0.0.127.bl.test. 300 IN A 127.0.0.2`,
		`1.0.0.127.bl.test. 300 IN A 127.0.0.4`,
		`1.0.0.127.bl.test. 300 IN TXT "listed: see https://bl.test/127.0.0.1"`,
		`3.0.0.127.bl.test. 300 IN A 127.255.255.254`,
		`4.0.0.127.bl.test. 300 IN A 192.0.2.1`,
		`dbl.test. 300 IN TXT "test domain list"`,
		`spammy.example.dbl.test. 300 IN A 127.0.1.2`,
	)
	ctx := context.Background()
	src := func(ip string) Target { return Target{Source: "ip", Addr: netip.MustParseAddr(ip)} }
	for _, tc := range []struct {
		name   string
		t      Target
		zone   string
		listed bool
		codes  string
		reason string
		err    string
	}{
		{"listed", src("127.0.0.1"), "bl.test", true, "127.0.0.2,127.0.0.4", "listed: see https://bl.test/127.0.0.1", ""},
		{"not listed", src("127.0.0.2"), "bl.test", false, "", "", ""},
		{"refused query", src("127.0.0.3"), "bl.test", false, "", "", "refused the query"},
		{"answer outside 127/8", src("127.0.0.4"), "bl.test", false, "", "", ""},
		{"list unreachable", src("127.0.0.1"), "gone.invalid", false, "", "", "temporary DNS failure"},
		{"domain listed", Target{Domain: "spammy.example"}, "dbl.test", true, "127.0.1.2", "", ""},
		{"domain not listed", Target{Domain: "clean.example"}, "dbl.test", false, "", "", ""},
	} {
		got := Check(ctx, r, tc.t, tc.zone)
		errText := ""
		if got.Err != nil {
			errText = got.Err.Error()
		}
		if got.Listed != tc.listed || strings.Join(got.Codes, ",") != tc.codes || got.Reason != tc.reason ||
			(tc.err == "") != (errText == "") || !strings.Contains(errText, tc.err) {
			t.Errorf("%s: listed=%v codes=%v reason=%q err=%v, want %v %s %q %q", tc.name, got.Listed, got.Codes, got.Reason, got.Err,
				tc.listed, tc.codes, tc.reason, tc.err)
		}
	}
}

// TestStateUpdate: only changes are reported; a failed lookup changes
// nothing; a target no longer watched is delisted.
func TestStateUpdate(t *testing.T) {
	a := Target{Source: "ip1", Addr: netip.MustParseAddr("127.0.0.1")}
	b := Target{Domain: "example.com"}
	s := NewState()
	type step struct {
		in   []Result
		want string // the changes, as target/list/listed
	}
	r := func(t Target, list string, listed bool, err error) Result {
		return Result{Target: t, List: list, Listed: listed, Err: err}
	}
	steps := []step{
		{[]Result{r(a, "bl", true, nil), r(b, "dbl", false, nil)}, "ip1 (127.0.0.1)/bl/true"},
		{[]Result{r(a, "bl", true, nil), r(b, "dbl", false, nil)}, ""},
		{[]Result{r(a, "bl", false, context.DeadlineExceeded), r(b, "dbl", true, nil)}, "example.com/dbl/true"},
		{[]Result{r(a, "bl", false, nil), r(b, "dbl", true, nil)}, "ip1 (127.0.0.1)/bl/false"},
		{nil, "example.com/dbl/false"},
	}
	for i, st := range steps {
		var got []string
		for _, c := range s.Update(st.in) {
			got = append(got, c.Target.String()+"/"+c.List+"/"+map[bool]string{true: "true", false: "false"}[c.Listed])
		}
		if strings.Join(got, " ") != st.want {
			t.Errorf("step %d: changes %q, want %q", i, got, st.want)
		}
		if i == 0 && !s.Listed("ip1") {
			t.Errorf("step 0: ip1 not listed")
		}
	}
	if s.Listed("ip1") {
		t.Errorf("ip1 still listed at the end")
	}
}
