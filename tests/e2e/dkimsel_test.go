package e2e

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/publicsuffix"

	"github.com/cuemta/cuemta/sim"
)

// dkimpyEach verifies every DKIM-Signature of a message on stdin, top
// first, with dkimpy: one JSON line per signature with its d=, s=, a= and
// result. argv[1] is a JSON object of the TXT records by name
// ("s1._domainkey.example.com"), handed to dkimpy as its dnsfunc.
const dkimpyEach = `
import sys, json, dkim
msg = sys.stdin.buffer.read()
records = json.loads(sys.argv[1])
def dns(name, timeout=5):
    r = records.get(name.decode().rstrip("."))
    return r.encode() if r else None
d = dkim.DKIM(msg)
n = len([1 for k, v in d.headers if k.lower() == b"dkim-signature"])
for i in range(n):
    try:
        ok = d.verify(idx=i, dnsfunc=dns)
    except dkim.DKIMException as e:
        ok = False
    f = d.signature_fields
    print(json.dumps({"d": f[b"d"].decode(), "s": f[b"s"].decode(), "a": f[b"a"].decode(), "pass": bool(ok)}))
`

type dkimpyResult struct {
	D    string `json:"d"`
	S    string `json:"s"`
	A    string `json:"a"`
	Pass bool   `json:"pass"`
}

// TestDKIMSigningSelection: the keys chosen for each kind of message
// (the From: domain's key, strict and relaxed; the envelope sender's
// domain; the service's default key; a rule's list of two keys; a domain
// signed with RSA and Ed25519) all sign, each signature verifies with
// dkimpy, and the delivery log records for each its d=, s=, a= and an
// alignment that agrees with a DMARC relaxed-alignment check done here
// on the From: header and the verified signatures (RFC 7489 §3.1.1).
func TestDKIMSigningSelection(t *testing.T) {
	python := "/usr/bin/python3" // Debian's, which has python3-dkim
	if err := exec.Command(python, "-c", "import dkim, nacl").Run(); err != nil {
		t.Skipf("python3-dkim (with python3-nacl) is not installed; `make deps` installs it: %v", err)
	}
	keyDir := t.TempDir()
	records := map[string]string{}
	type keyDef struct{ name, domain, selector, kind string }
	defs := []keyDef{
		{"shop", "shop.example", "s2026", "rsa"},
		{"bounces", "mta.bulk.example", "b1", "ed"},
		{"esp", "esp.example", "esp1", "ed"},
		{"acme", "acme.example", "a1", "rsa"},
		{"cust-rsa", "customer.example", "rsa2026", "rsa"},
		{"cust-ed", "customer.example", "ed2026", "ed"},
	}
	var keys strings.Builder
	for _, k := range defs {
		var priv crypto.Signer
		var txt string
		if k.kind == "rsa" {
			rk, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
			priv, txt = rk, "v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(der)
		} else {
			pub, ek, _ := ed25519.GenerateKey(rand.Reader)
			priv, txt = ek, "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(keyDir, k.name+".pem")
		if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&keys, "\t\t%q: {domain: %q, selector: %q, keyFile: %q}\n", k.name, k.domain, k.selector, file)
		records[k.selector+"._domainkey."+k.domain] = txt
	}
	recordsJSON, _ := json.Marshal(records)

	s := startSim(t, map[string]*sim.Site{
		"inbox": {Domains: []string{"inbox.test"}, MX: []sim.MXHost{{Host: "mx.inbox.test", IP: "127.0.0.51"}}},
	})
	logFile := filepath.Join(t.TempDir(), "delivery.log")
	dir := mtaConfig(t, s, fmt.Sprintf(`
dkim: {
	keys: {
%s	}
	// RSA-2048 then Ed25519 (RFC 8463) for this customer.
	domains: "customer.example": keys: ["cust-rsa", "cust-ed"]
	// The service's own domain signs what no customer key covers.
	default: ["esp"]
}
rules: message: [{
	name: "acme-and-esp"
	when: "tenant == \"acme\""
	dkim: ["acme", "esp"]
}]
log: file: %q
profiles: default: {messageRate: "1000/s", connectionRate: "100/s"}
`, keys.String(), logFile))
	srv := startServer(t, dir, "mx")

	type signature struct{ domain, selector, algorithm, aligned string }
	cases := []struct {
		name, from, sender, extra string
		want                      []signature // top first
		dmarcAligned              bool
	}{
		{"From: domain's key (strict)", "orders@shop.example", "bounce@esp.example", "",
			[]signature{{"shop.example", "s2026", "rsa-sha256", "strict"}}, true},
		{"From: subdomain, its parent's key (relaxed)", "news@letters.shop.example", "bounce@esp.example", "",
			[]signature{{"shop.example", "s2026", "rsa-sha256", "relaxed"}}, true},
		{"envelope sender's domain when From: has no key", "news@news.bulk.example", "bounce@mta.bulk.example", "",
			[]signature{{"mta.bulk.example", "b1", "ed25519-sha256", "relaxed"}}, true},
		{"the service's default key", "hello@unsigned.example", "hello@unsigned.example", "",
			[]signature{{"esp.example", "esp1", "ed25519-sha256", "none"}}, false},
		{"a rule's list of two keys", "news@acme.example", "bounce@esp.example", "X-Tenant: acme\n",
			[]signature{{"acme.example", "a1", "rsa-sha256", "strict"}, {"esp.example", "esp1", "ed25519-sha256", "none"}}, true},
		{"RSA and Ed25519 for one domain", "billing@customer.example", "bounce@esp.example", "",
			[]signature{{"customer.example", "rsa2026", "rsa-sha256", "strict"}, {"customer.example", "ed2026", "ed25519-sha256", "strict"}}, true},
	}
	rcptOf := func(i int) string { return fmt.Sprintf("reader%d@inbox.test", i) }
	for i, tc := range cases {
		c, err := dialSMTP(srv.addrs["mx"])
		if err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("From: Sender <%s>\nTo: <%s>\n%sSubject: %s\nDate: Tue, 01 Dec 2026 12:00:00 +0000\nMessage-ID: <%d@mta.test>\n\nCase %d.\n",
			tc.from, rcptOf(i), tc.extra, tc.name, i, i)
		if code, msg, err := c.send(tc.sender, []string{rcptOf(i)}, body); err != nil {
			t.Fatalf("%s: %d %s %v", tc.name, code, msg, err)
		}
		c.close()
	}
	waitFor(t, 20*time.Second, "every message at the ISP", func() bool { return len(messagesTo(s, "inbox")) >= len(cases) })

	logged := map[string][]signature{} // by recipient, from the delivery events
	lines := map[string]string{}
	waitFor(t, 10*time.Second, "every delivery in the log", func() bool {
		sc := bufio.NewScanner(strings.NewReader(mustRead(t, logFile)))
		for sc.Scan() {
			var ev struct {
				Type string `json:"type"`
				Rcpt string `json:"rcpt"`
				DKIM []struct {
					Domain, Selector, Algorithm, Aligned string
				} `json:"dkim"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("delivery log line %q: %v", sc.Text(), err)
			}
			if ev.Type != "delivery" {
				continue
			}
			var sigs []signature
			for _, d := range ev.DKIM {
				sigs = append(sigs, signature{d.Domain, d.Selector, d.Algorithm, d.Aligned})
			}
			logged[ev.Rcpt] = sigs
			lines[ev.Rcpt] = sc.Text()
		}
		return len(logged) == len(cases)
	})
	for i := range cases {
		t.Logf("delivery log: %s", lines[rcptOf(i)])
	}

	byRcpt := map[string]sim.Message{}
	for _, m := range messagesTo(s, "inbox") {
		byRcpt[m.Rcpts[0]] = m
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := byRcpt[rcptOf(i)]
			if !ok {
				t.Fatalf("no message for %s", rcptOf(i))
			}
			cmd := exec.Command(python, "-c", dkimpyEach, string(recordsJSON))
			cmd.Stdin = bytes.NewReader(m.Body)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("dkimpy: %v\nmessage:\n%s", err, m.Body)
			}
			var verified []dkimpyResult
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				var r dkimpyResult
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatalf("dkimpy printed %q: %v", line, err)
				}
				verified = append(verified, r)
			}
			var got []signature
			for _, r := range verified {
				if !r.Pass {
					t.Errorf("signature d=%s s=%s does not verify with dkimpy:\n%s", r.D, r.S, m.Body)
				}
				got = append(got, signature{r.D, r.S, r.A, ""})
			}
			// The signatures on the message: the keys chosen, in order.
			var want []signature
			for _, w := range tc.want {
				want = append(want, signature{w.domain, w.selector, w.algorithm, ""})
			}
			if !slices.Equal(got, want) {
				t.Errorf("signatures on the message %v, want %v", got, want)
			}
			// The delivery log's record, alignment included.
			if l := logged[rcptOf(i)]; !slices.Equal(l, tc.want) {
				t.Errorf("delivery log dkim %v, want %v", l, tc.want)
			}
			// DMARC relaxed alignment, checked here with the Public
			// Suffix List and the From: header as delivered: a passing
			// signature whose d= has the From: domain's organisational
			// domain.
			fromDomain := headerFromDomain(t, m.Body)
			aligned := false
			for _, r := range verified {
				if r.Pass && orgDomain(r.D) == orgDomain(fromDomain) {
					aligned = true
				}
			}
			if aligned != tc.dmarcAligned {
				t.Errorf("DMARC relaxed alignment with From: %s is %v, want %v", fromDomain, aligned, tc.dmarcAligned)
			}
			// The results as a receiver would write them (RFC 8601),
			// for the documentation.
			ar := "Authentication-Results: inbox.test"
			for _, r := range verified {
				ar += fmt.Sprintf(";\n\tdkim=%s header.d=%s header.s=%s header.a=%s", map[bool]string{true: "pass", false: "fail"}[r.Pass], r.D, r.S, r.A)
			}
			ar += fmt.Sprintf(";\n\tdmarc=%s (DKIM, relaxed alignment; no policy record looked up) header.from=%s", map[bool]string{true: "pass", false: "fail"}[aligned], fromDomain)
			t.Logf("MAIL FROM:<%s>\n%s", tc.sender, ar)
			for _, l := range logged[rcptOf(i)] {
				if (l.aligned != "none") != (orgDomain(l.domain) == orgDomain(fromDomain)) {
					t.Errorf("logged aligned %q for d=%s and From: %s", l.aligned, l.domain, fromDomain)
				}
			}
		})
	}
}

func headerFromDomain(t *testing.T, body []byte) string {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	a, err := mail.ParseAddress(msg.Header.Get("From"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToLower(a.Address[strings.LastIndexByte(a.Address, '@')+1:])
}

func orgDomain(d string) string {
	if org, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return org
	}
	return d
}
