package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// daneCert makes a certificate for names, signed by parent (self-signed
// when nil), valid from notBefore to notAfter.
func daneCert(t *testing.T, cn string, ca bool, notBefore, notAfter time.Time, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, names ...string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sn, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: cn}, DNSNames: names,
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage, tmpl.ExtKeyUsage = true, true, x509.KeyUsageCertSign, nil
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// writeChain writes a PEM chain and key for a sim site.
func writeChain(t *testing.T, dir, name string, key *ecdsa.PrivateKey, chain ...*x509.Certificate) (certFile, keyFile string) {
	t.Helper()
	var certs []byte
	for _, c := range chain {
		certs = append(certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, certs, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

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
	ee, eeKey := daneCert(t, "unrelated.invalid", false, now.Add(-48*time.Hour), now.Add(-24*time.Hour), nil, nil, "unrelated.invalid")
	other, _ := daneCert(t, "other", false, now.Add(-time.Hour), now.Add(time.Hour), nil, nil, "other.invalid")
	ca, caKey := daneCert(t, "cuemta test CA", true, now.Add(-time.Hour), now.Add(24*time.Hour), nil, nil)
	taLeaf, taKey := daneCert(t, "mx.ta.test", false, now.Add(-time.Hour), now.Add(24*time.Hour), ca, caKey, "mx.ta.test")
	eeCert, eeKeyFile := writeChain(t, dir, "ee", eeKey, ee)
	taCert, taKeyFile := writeChain(t, dir, "ta", taKey, taLeaf, ca)

	match := "3 1 1 " + sha256Hex(ee.RawSubjectPublicKeyInfo)
	mismatch := "3 1 1 " + sha256Hex(other.RawSubjectPublicKeyInfo)
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
		tlsa("mx.ta.test", "2 0 1 "+sha256Hex(ca.Raw)),
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
