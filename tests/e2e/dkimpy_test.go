package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// dkimpyVerify checks the DKIM signature of msg with Debian's python3-dkim
// (dkimpy), a verifier independent of the library that signs. The public
// key record is handed to it directly (its dnsfunc), so nothing reaches
// the system resolver.
const dkimpyVerify = `
import sys, dkim
msg = sys.stdin.buffer.read()
record = sys.argv[1].encode()
ok = dkim.verify(msg, dnsfunc=lambda name, timeout=5: record)
print("pass" if ok else "fail")
sys.exit(0 if ok else 1)
`

// TestDKIMVerifiedByDkimpy: mail signed with an RSA-2048 key and mail
// signed with an Ed25519 key (RFC 8463) both verify with dkimpy.
func TestDKIMVerifiedByDkimpy(t *testing.T) {
	python := "/usr/bin/python3" // Debian's, which has python3-dkim
	if err := exec.Command(python, "-c", "import dkim, nacl").Run(); err != nil {
		t.Skipf("python3-dkim (with python3-nacl) is not installed; `make deps` installs it: %v", err)
	}
	keyDir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	writeKey := func(name string, key any) string {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(keyDir, name+".pem")
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	records := map[string]string{
		"rsa.test": "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(rsaDER),
		"ed.test":  "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub),
	}
	s := startSim(t, map[string]*sim.Site{
		"inbox": {Domains: []string{"inbox.test"}, MX: []sim.MXHost{{Host: "mx.inbox.test", IP: "127.0.0.50"}}},
	})
	dir := mtaConfig(t, s, fmt.Sprintf(`
dkim: keys: {
	rsa: {domain: "rsa.test", selector: "s1", keyFile: %q}
	ed:  {domain: "ed.test", selector: "s2", keyFile: %q}
}
profiles: default: {messageRate: "1000/s", connectionRate: "100/s"}
`, writeKey("rsa", rsaKey), writeKey("ed", edKey)))
	srv := startServer(t, dir, "mx")
	for _, domain := range []string{"rsa.test", "ed.test"} {
		c, err := dialSMTP(srv.addrs["mx"])
		if err != nil {
			t.Fatal(err)
		}
		from := "news@" + domain
		body := fmt.Sprintf("From: News <%s>\nTo: <reader@inbox.test>\nSubject: signed by %s\nDate: Tue, 01 Dec 2026 12:00:00 +0000\nMessage-ID: <%s@mta.test>\n\nHello from %s.\n", from, domain, domain, domain)
		if code, msg, err := c.send(from, []string{"reader@inbox.test"}, body); err != nil {
			t.Fatalf("%s: %d %s %v", domain, code, msg, err)
		}
		c.close()
	}
	waitFor(t, 15*time.Second, "both messages at the ISP", func() bool { return len(messagesTo(s, "inbox")) >= 2 })
	for _, m := range messagesTo(s, "inbox") {
		domain := "rsa.test"
		if bytes.Contains(m.Body, []byte("d=ed.test")) {
			domain = "ed.test"
		}
		if !bytes.Contains(m.Body, []byte("DKIM-Signature:")) {
			t.Errorf("message from %s delivered unsigned:\n%s", m.From, m.Body)
			continue
		}
		cmd := exec.Command(python, "-c", dkimpyVerify, records[domain])
		cmd.Stdin = bytes.NewReader(m.Body)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "pass" {
			t.Errorf("dkimpy on the message signed for %s: %v\n%s\nmessage:\n%s", domain, err, out, m.Body)
		} else {
			t.Logf("dkimpy: %s signature (%s) passes", domain, map[string]string{"rsa.test": "rsa-sha256", "ed.test": "ed25519-sha256"}[domain])
		}
	}
}
