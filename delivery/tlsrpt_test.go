package delivery

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/internal/testpki"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/tlsrpt"
)

// selfSigned is a server certificate for host that no system root
// trusts.
func selfSigned(t *testing.T, host string) tls.Certificate {
	t.Helper()
	return testpki.Issue(t, testpki.Spec{CommonName: host, DNSNames: []string{host}}, nil).TLS()
}

// TestTLSResultsNoPolicy: every STARTTLS attempt of an MX delivery is
// told to Options.TLSResults as a no-policy-found result, once per
// connection and recipient domain, with the right RFC 8460 §4.3 result
// type; nothing when no STARTTLS was tried (tls "none") and nothing for
// report mail (tlsrpt.ReportListener).
func TestTLSResultsNoPolicy(t *testing.T) {
	type res struct {
		domain  string
		failure tlsrpt.ResultType
	}
	cert := selfSigned(t, "mx.x.test")
	for _, tc := range []struct {
		name      string
		tls       string      // the profile's tls
		server    *tls.Config // nil: no STARTTLS offered
		listener  string
		delivered bool
		want      []res
	}{
		{name: "TLS succeeds (opportunistic)", tls: "opportunistic", server: &tls.Config{Certificates: []tls.Certificate{cert}},
			delivered: true, want: []res{{"x.test", ""}, {"y.test", ""}}},
		{name: "STARTTLS not offered (opportunistic)", tls: "opportunistic", delivered: true,
			want: []res{{"x.test", tlsrpt.StartTLSNotSupported}, {"y.test", tlsrpt.StartTLSNotSupported}}},
		{name: "handshake fails: one failure, not also the clear text redial", tls: "opportunistic", server: &tls.Config{},
			delivered: true, want: []res{{"x.test", tlsrpt.ValidationFailure}, {"y.test", tlsrpt.ValidationFailure}}},
		// Each job's dial fails on its own: one attempt, one result each.
		{name: "STARTTLS required, not offered", tls: "required",
			want: []res{{"x.test", tlsrpt.StartTLSNotSupported}, {"y.test", tlsrpt.StartTLSNotSupported}}},
		{name: "required, certificate of no trusted root", tls: "required", server: &tls.Config{Certificates: []tls.Certificate{cert}},
			want: []res{{"x.test", tlsrpt.CertificateNotTrusted}, {"y.test", tlsrpt.CertificateNotTrusted}}},
		{name: "tls none: no STARTTLS tried, nothing recorded", tls: "none", delivered: true},
		{name: "report mail is never counted", tls: "opportunistic", listener: tlsrpt.ReportListener, delivered: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startScriptedMX(t, mxScript{exts: []string{"8BITMIME"}, tls: tc.server})
			dns := fakeDNS{mx: map[string][]string{"x.test": {"mx.x.test"}, "y.test": {"mx.x.test"}}, hosts: map[string]string{"mx.x.test": "192.0.2.1"}}
			// One connection at a time, so that both jobs ride the first
			// one (a second connection dialled after a failed handshake
			// goes in clear text without trying STARTTLS: it records the
			// same failure, TestTLSResultsClearTextHour).
			r := newSchedulerRig(t, `hostname: "mta.example"
profiles: default: {tls: "`+tc.tls+`", maxConnections: 1, connectionRate: "1000/s", retry: {schedule: ["1m"], jitter: 0}}
`, dns, map[string]*fakeMX{"192.0.2.1": f})
			id := r.send(queue.Envelope{Recipients: rcpts("a@x.test", "b@y.test"), Listener: tc.listener})
			r.waitAttempted(1, id)
			if tc.delivered {
				r.waitFor("both recipients delivered", func() bool { return f.delivered() == 2 })
			}
			var got []res
			for _, x := range r.tlsResults() {
				if x.PolicyDomain == "example.org" {
					continue // the rig's sink for DSNs
				}
				got = append(got, res{x.PolicyDomain, x.Failure})
				if x.PolicyType != tlsrpt.PolicyNoPolicyFound {
					t.Errorf("policy type %q, want no-policy-found", x.PolicyType)
				}
				if x.Failure != "" && (x.ReceivingMX != "mx.x.test" || x.ReceivingIP != "192.0.2.1" || x.Reason == "") {
					t.Errorf("failure %+v, want receiving MX mx.x.test at 192.0.2.1 and a reason", x)
				}
				if x.Failure == tlsrpt.ValidationFailure && !strings.Contains(x.Reason, "handshake") {
					t.Errorf("validation failure reason %q does not say what failed", x.Reason)
				}
			}
			slices.SortFunc(got, func(a, b res) int { return strings.Compare(a.domain, b.domain) })
			if !slices.Equal(got, tc.want) {
				t.Errorf("results %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTLSResultsClearTextHour: after a failed opportunistic handshake the
// lane sends in clear text for an hour without trying STARTTLS; each of
// those sessions counts as the failure that caused it, so a report says
// how much mail went unencrypted, not only that one handshake failed.
func TestTLSResultsClearTextHour(t *testing.T) {
	f := startScriptedMX(t, mxScript{exts: []string{"8BITMIME"}, tls: &tls.Config{}}) // STARTTLS offered, every handshake fails
	dns := fakeDNS{mx: map[string][]string{"x.test": {"mx.x.test"}}, hosts: map[string]string{"mx.x.test": "192.0.2.1"}}
	r := newSchedulerRig(t, `hostname: "mta.example"
profiles: default: {tls: "opportunistic", maxConnections: 1, maxMessagesPerConnection: 1, connectionRate: "1000/s", retry: {schedule: ["1m"], jitter: 0}}
`, dns, map[string]*fakeMX{"192.0.2.1": f})
	r.send(queue.Envelope{Recipients: rcpts("a@x.test")})
	r.waitFor("the first message delivered", func() bool { return f.delivered() == 1 })
	r.send(queue.Envelope{Recipients: rcpts("b@x.test")})
	r.waitFor("the second message delivered", func() bool { return f.delivered() == 2 })
	var reasons []string
	for _, x := range r.tlsResults() {
		if x.PolicyDomain != "x.test" {
			continue
		}
		if x.Failure != tlsrpt.ValidationFailure || x.ReceivingMX != "mx.x.test" || x.ReceivingIP != "192.0.2.1" {
			t.Errorf("result %+v, want a validation failure at mx.x.test 192.0.2.1", x)
		}
		reasons = append(reasons, x.Reason)
	}
	if len(reasons) != 2 || strings.Contains(reasons[0], "not tried") || !strings.HasPrefix(reasons[1], "STARTTLS not tried within an hour of a failed handshake: ") {
		t.Errorf("reasons %q, want the handshake's failure, then the clear text session's", reasons)
	}
	// The failed handshake, its clear text redial, and the second
	// session, which does not try STARTTLS (a try would fail and redial).
	if conns, _, _ := f.connStats(); conns != 3 {
		t.Errorf("%d connections, want 3", conns)
	}
}
