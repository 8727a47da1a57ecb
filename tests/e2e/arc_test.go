package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/internal/arctest"
	"github.com/cuemta/cuemta/sim"
)

// TestInboundARCTrustedList: a mailing list relays the mail of a domain
// that publishes p=reject from its own address, so DMARC fails (SPF
// passes for the list's domain only, and the list's footer broke the
// author's DKIM). With the list's ARC seal (made by dkimpy) and a rule
// that trusts that sealer, cuemta accepts it and says arc=pass in its
// Authentication-Results; the same message sealed by a domain the rule
// does not trust, or not sealed at all, is rejected as DMARC asks. cuemta
// seals what it accepted (verify.arcSeal), and dkimpy validates the
// two-set chain at the next hop.
func TestInboundARCTrustedList(t *testing.T) {
	arctest.Require(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "arc.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	p := base64.StdEncoding.EncodeToString(der)
	record := func(name string) string { // the key, in TXT strings of at most 255 octets
		return name + ` 300 IN TXT "v=DKIM1; k=rsa; p=` + p[:200] + `" "` + p[200:] + `"`
	}
	s := startSim(t, map[string]*sim.Site{
		"corp": {Domains: []string{"corp.test"}, MX: []sim.MXHost{{Host: "mx.corp.test", IP: "127.0.0.41"}}},
	}, func(c *sim.Config) {
		c.DNS.Records = []string{
			`_dmarc.origin.test. 300 IN TXT "v=DMARC1; p=reject"`,
			`lists.test. 300 IN TXT "v=spf1 ip4:127.0.10.2 -all"`,
			record("arc._domainkey.lists.test."),
			record("arc._domainkey.other.test."),
			record("gw._domainkey.mta.test."),
		}
	})
	dir := mtaConfig(t, s, `
relay: networks: ["192.0.2.0/24"]
relay: domains: ["corp.test"]
listeners: mx: verify: arcSeal: "gw"
dkim: keys: gw: {domain: "mta.test", selector: "gw", keyFile: "`+keyFile+`"}
rules: message: [
	{name: "dmarc-reject", when: "auth.dmarc == 'fail' && dmarc.disposition == 'reject' && !(arc.result == 'pass' && arc.sealer == 'lists.test')",
	 reject: {code: 550, enhanced: "5.7.1", text: "Unauthenticated mail from a domain that asks for rejection"}},
]
`)
	srv := startServer(t, dir, "mx")
	seal := func(msg []byte, sealer string) []byte {
		return arctest.Seal(t, msg, "arc", sealer, keyFile, "spf=pass smtp.mailfrom=origin.test", 0)
	}
	post := func(subject string) []byte {
		return []byte("From: Ann <ann@origin.test>\r\nTo: <team@corp.test>\r\nSubject: [team] " + subject +
			"\r\nDate: Wed, 02 Dec 2026 05:00:00 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@origin.test>\r\n" +
			"List-Id: <team.lists.test>\r\n\r\nThe minutes.\r\n--\r\nteam mailing list\r\n")
	}
	send := func(msg []byte) string {
		return sendFrom(t, srv.addrs["mx"], "127.0.10.2", "lists.test", "team-bounces@lists.test", "team@corp.test", msg)
	}

	if got := send(seal(post("sealed by the list"), "lists.test")); !strings.HasPrefix(got, "250 ") {
		t.Errorf("sealed by the trusted list: %q, want 250", got)
	}
	if got := send(seal(post("sealed elsewhere"), "other.test")); !strings.HasPrefix(got, "550 5.7.1") {
		t.Errorf("sealed by another domain: %q, want 550 5.7.1", got)
	}
	if got := send(post("not sealed")); !strings.HasPrefix(got, "550 5.7.1") {
		t.Errorf("not sealed: %q, want 550 5.7.1", got)
	}
	waitFor(t, 30*time.Second, "the list's message at the sim", func() bool { return len(messagesTo(s, "corp")) >= 1 })
	m := messagesTo(s, "corp")[0]
	_, afterSeal, _ := bytes.Cut(m.Body, []byte("\r\nAuthentication-Results: mta.test;"))
	m.Body = append([]byte("Authentication-Results: mta.test;"), afterSeal...)
	want := "Authentication-Results: mta.test;\r\n\tspf=pass smtp.mailfrom=lists.test;\r\n\tdkim=none;\r\n" +
		"\tdmarc=fail (p=reject dis=reject) header.from=origin.test;\r\n\tarc=pass (i=1 d=lists.test)\r\nReceived: "
	if !bytes.HasPrefix(m.Body, []byte(want)) {
		head, _, _ := bytes.Cut(m.Body, []byte("\r\n\r\n"))
		t.Errorf("delivered header starts\n%s\nwant\n%s", head, want)
	}
	if n := len(messagesTo(s, "corp")); n != 1 {
		t.Errorf("%d messages delivered, want the trusted list's only", n)
	}

	// cuemta sealed what it verified (verify.arcSeal), after its own
	// Authentication-Results: the chain is two sets long and dkimpy
	// validates it.
	delivered := messagesTo(s, "corp")[0].Body
	if !bytes.HasPrefix(delivered, []byte("ARC-Seal: i=2; a=rsa-sha256; t=")) || !bytes.Contains(delivered, []byte("cv=pass;\r\n\td=mta.test; s=gw;")) {
		head, _, _ := bytes.Cut(delivered, []byte("\r\n\r\n"))
		t.Errorf("no ARC set of cuemta's on top:\n%s", head)
	}
	recs := map[string]string{"arc._domainkey.lists.test": "v=DKIM1; k=rsa; p=" + p, "gw._domainkey.mta.test": "v=DKIM1; k=rsa; p=" + p}
	if v := arctest.Verify(t, delivered, recs); v != "pass" {
		t.Errorf("dkimpy arc_verify of the delivered message: %s", v)
	}
}
