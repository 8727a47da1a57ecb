package e2e

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/internal/testpki"
	"github.com/cuemta/cuemta/sim"
)

func sha256Hex(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// TestDANE delivers to sites that publish TLSA records, with dns.dnssec
// "trusted" and the sim's DNS as the validating resolver:
//
//   - ee: DANE-EE 3 1 1 of the server's key, a signed zone: delivered,
//     tls_verified "dane", although the certificate is self-signed,
//     expired and names another host (RFC 7672 §3.1.1);
//   - ta: DANE-TA 2 0 1 of a CA the test makes, the server sending its
//     chain: delivered, "dane";
//   - two: two MX hosts, the first one's TLSA record matching another
//     key: the second is used, "dane";
//   - bad: a TLSA record of another key: deferred 451 4.7.5, nothing
//     sent (not even in clear);
//   - plain: a matching TLSA record, but no STARTTLS offered: deferred,
//     nothing sent;
//   - unsigned: a mismatching TLSA record in a zone that is not signed
//     (no AD bit): DANE does not apply, delivered as before ("none");
//   - off: a mismatching TLSA record in a signed zone, the domain's
//     profile setting dane: false: delivered, "none".
func TestDANE(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ee := testpki.Issue(t, testpki.Spec{CommonName: "unrelated.invalid", DNSNames: []string{"unrelated.invalid"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}, nil)
	other := testpki.Issue(t, testpki.Spec{CommonName: "other", DNSNames: []string{"other.invalid"}}, nil)
	ca := testpki.Issue(t, testpki.Spec{CommonName: "cuemta test CA", CA: true, NotAfter: now.Add(24 * time.Hour)}, nil)
	taLeaf := testpki.Issue(t, testpki.Spec{CommonName: "mx.ta.test", DNSNames: []string{"mx.ta.test"}, NotAfter: now.Add(24 * time.Hour)}, ca)
	eeCert, eeKeyFile := ee.WriteFiles(t, dir, "ee")
	taCert, taKeyFile := taLeaf.WriteFiles(t, dir, "ta", ca)

	match := "3 1 1 " + sha256Hex(ee.Cert.RawSubjectPublicKeyInfo)
	mismatch := "3 1 1 " + sha256Hex(other.Cert.RawSubjectPublicKeyInfo)
	site := func(domain, ip string, starttls bool, cert, key string, hosts ...string) *sim.Site {
		st := &sim.Site{Domains: []string{domain}, STARTTLS: starttls, TLSCert: cert, TLSKey: key}
		for i, h := range hosts {
			st.MX = append(st.MX, sim.MXHost{Host: h, IP: ip + string(rune('1'+i))})
		}
		return st
	}
	s := startSim(t, map[string]*sim.Site{
		"ee":       site("ee.test", "127.0.77.1", true, eeCert, eeKeyFile, "mx.ee.test"),
		"ta":       site("ta.test", "127.0.77.2", true, taCert, taKeyFile, "mx.ta.test"),
		"two":      site("two.test", "127.0.77.3", true, eeCert, eeKeyFile, "mx1.two.test", "mx2.two.test"),
		"bad":      site("bad.test", "127.0.77.4", true, eeCert, eeKeyFile, "mx.bad.test"),
		"plain":    site("plain.test", "127.0.77.5", false, "", "", "mx.plain.test"),
		"unsigned": site("unsigned.test", "127.0.77.6", true, eeCert, eeKeyFile, "mx.unsigned.test"),
		"off":      site("off.test", "127.0.77.7", true, eeCert, eeKeyFile, "mx.off.test"),
	}, func(c *sim.Config) {
		c.DNS.DNSSEC = []string{"ee.test", "ta.test", "two.test", "bad.test", "plain.test", "off.test"}
	})
	// The TLSA owner names the port delivery connects to (RFC 6698 §3):
	// the sim's, known once it is bound.
	tlsa := func(host, rdata string) string {
		return "_" + strconv.Itoa(s.Port()) + "._tcp." + host + ". 300 IN TLSA " + rdata
	}
	if err := s.AddRecords(
		tlsa("mx.ee.test", match),
		tlsa("mx.ta.test", "2 0 1 "+sha256Hex(ca.Cert.Raw)),
		tlsa("mx1.two.test", mismatch),
		tlsa("mx2.two.test", match),
		tlsa("mx.bad.test", mismatch),
		tlsa("mx.plain.test", match),
		tlsa("mx.unsigned.test", mismatch),
		tlsa("mx.off.test", mismatch),
	); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "delivery.log")
	srv := startServer(t, mtaConfig(t, s, `dns: dnssec: "trusted"
profiles: default: tls: "opportunistic"
profiles: off: {match: domains: ["off.test"], dane: false}
log: file: "`+logFile+`"`), "mx")
	rcpts := []string{"a@ee.test", "b@ta.test", "c@two.test", "d@bad.test", "e@plain.test", "f@unsigned.test", "g@off.test"}
	inject(t, srv.addrs["mx"], 1, 1, "alice@origin.test", func(int) []string { return rcpts })

	type rec struct{ Type, MX, Reply, TLSVerified, line string }
	got := map[string]rec{}
	waitFor(t, 30*time.Second, "an outcome for every recipient in the delivery log", func() bool {
		sc := bufio.NewScanner(strings.NewReader(mustRead(t, logFile)))
		for sc.Scan() {
			var ev struct {
				Type        string `json:"type"`
				Rcpt        string `json:"rcpt"`
				MX          string `json:"mx"`
				Reply       string `json:"reply"`
				TLSVerified string `json:"tls_verified"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("delivery log line %q: %v", sc.Text(), err)
			}
			if ev.Rcpt != "" {
				got[ev.Rcpt] = rec{ev.Type, ev.MX, ev.Reply, ev.TLSVerified, sc.Text()}
			}
		}
		return len(got) == len(rcpts)
	})
	for _, r := range rcpts {
		t.Logf("%s", got[r].line)
	}

	want := []struct {
		rcpt, typ, mx, verified, replyPrefix string
	}{
		{"a@ee.test", "delivery", "mx.ee.test", "dane", "250"},
		{"b@ta.test", "delivery", "mx.ta.test", "dane", "250"},
		{"c@two.test", "delivery", "mx2.two.test", "dane", "250"},
		{"d@bad.test", "transient", "", "", "451 4.7.5"},
		{"e@plain.test", "transient", "", "", "451 4.7.5"},
		{"f@unsigned.test", "delivery", "mx.unsigned.test", "none", "250"},
		{"g@off.test", "delivery", "mx.off.test", "none", "250"},
	}
	for _, w := range want {
		g := got[w.rcpt]
		if g.Type != w.typ || (w.mx != "" && g.MX != w.mx) || g.TLSVerified != w.verified || !strings.HasPrefix(g.Reply, w.replyPrefix) {
			t.Errorf("%s: logged %s; want type %s, mx %q, tls_verified %q, reply %s...", w.rcpt, g.line, w.typ, w.mx, w.verified, w.replyPrefix)
		}
	}
	if m, want := metricsText(t, srv), `cuemta_recipients_delivered_tls_total{verified="dane",version="TLS 1.3"} 3`; !strings.Contains(m, want) {
		t.Errorf("metrics lack %s", want)
	}
	for _, m := range s.Messages() {
		for _, r := range m.Rcpts {
			if r == "d@bad.test" || r == "e@plain.test" {
				t.Errorf("%s reached the sim (TLS %v) although DANE forbade it", r, m.TLS)
			}
		}
	}
}
