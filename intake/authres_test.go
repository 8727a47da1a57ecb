package intake_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/cuemta/cuemta/inauth"
	"github.com/cuemta/cuemta/intake"
	"github.com/cuemta/cuemta/internal/arctest"
	"github.com/cuemta/cuemta/reception"
	"github.com/cuemta/cuemta/server"
)

// TestVerificationApplied: Prepare puts the Authentication-Results field
// on top, removes incoming ones that claim our authserv-id (RFC 8601 §5)
// and keeps the others; the message rules see the results, and an
// unverified message gives every variable "" rather than a rule error.
func TestVerificationApplied(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "c.cue")
	src := `spool: dir: "` + filepath.Join(dir, "spool") + `"
hostname: "mx.receiver.test"
rules: message: [
	{name: "dmarc-reject", when: "auth.dmarc == 'fail' && dmarc.disposition == 'reject' && !(arc.result == 'pass' && arc.sealer == 'lists.example')", reject: {code: 550, enhanced: "5.7.1", text: "DMARC policy of the From: domain"}},
	{name: "tag", when: "spf.result == 'pass' && dkim.exists(s, s.result == 'pass' && s.domain == 'sender.test')", addHeaders: {"X-Verified": "sender.test"}},
	{name: "unverified", when: "auth.spf == '' && auth.dkim == '' && dmarc.result == '' && size(dkim) == 0 && auth.arc == '' && arc.sealer == ''", addHeaders: {"X-Unverified": "yes"}},
]
`
	if err := os.WriteFile(cfgFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := server.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("Received: from client.test by mx.receiver.test; Wed, 02 Dec 2026 05:00:00 +0000\r\n" +
		"Authentication-Results: MX.receiver.test; dkim=pass header.d=bank.test\r\n" +
		"Authentication-Results: (forged)\r\n mx.receiver.test; spf=pass\r\n" +
		"Authentication-Results: upstream.test; spf=fail\r\n" +
		"From: alice@sender.test\r\nSubject: s\r\n\r\nbody\r\n")
	pass := &inauth.Results{Checks: inauth.Checks{SPF: true, DKIM: true, DMARC: true},
		SPF:   inauth.SPFResult{Result: "pass", Domain: "sender.test", Scope: "mailfrom"},
		DKIM:  []inauth.DKIMResult{{Result: "pass", Domain: "sender.test", Selector: "s1"}},
		DMARC: inauth.DMARCResult{Result: "pass", Policy: "reject", Disposition: "none", Domain: "sender.test"}}
	fail := &inauth.Results{Checks: inauth.Checks{SPF: true, DKIM: true, DMARC: true},
		SPF:   inauth.SPFResult{Result: "fail", Domain: "attacker.test", Scope: "mailfrom"},
		DMARC: inauth.DMARCResult{Result: "fail", Policy: "reject", Disposition: "reject", Domain: "sender.test"}}

	t.Run("pass", func(t *testing.T) {
		_, out, matched, err := intake.Prepare(&snap.Policy, &intake.Message{From: "a@sender.test", Recipients: []string{"u@receiver.test"},
			Body: body, Verification: &intake.Verification{Results: pass, AuthservID: "mx.receiver.test"}})
		if err != nil {
			t.Fatal(err)
		}
		want := "X-Verified: sender.test\r\n" +
			"Authentication-Results: mx.receiver.test;\r\n\tspf=pass smtp.mailfrom=sender.test;\r\n" +
			"\tdkim=pass header.d=sender.test header.s=s1;\r\n\tdmarc=pass (p=reject dis=none) header.from=sender.test\r\n" +
			"Received: from client.test by mx.receiver.test; Wed, 02 Dec 2026 05:00:00 +0000\r\n" +
			"Authentication-Results: upstream.test; spf=fail\r\n" +
			"From: alice@sender.test\r\nSubject: s\r\n\r\nbody\r\n"
		if string(out) != want {
			t.Errorf("stored message:\n%s\nwant:\n%s", out, want)
		}
		if strings.Join(matched, ",") != "tag" {
			t.Errorf("matched %v, want [tag]", matched)
		}
	})
	t.Run("dmarc fail rejected by rule", func(t *testing.T) {
		_, _, _, err := intake.Prepare(&snap.Policy, &intake.Message{From: "m@attacker.test", Recipients: []string{"u@receiver.test"},
			Body: body, Verification: &intake.Verification{Results: fail, AuthservID: "mx.receiver.test"}})
		var reply *reception.Reply
		if !errors.As(err, &reply) || reply.Code != 550 || reply.Enhanced != "5.7.1" {
			t.Fatalf("err %v, want the rule's 550 5.7.1", err)
		}
	})
	// A mailing list broke the author's DKIM, so DMARC fails; its ARC
	// seal vouches for what it received. The rule trusts lists.example
	// only.
	for _, tc := range []struct {
		sealer   string
		rejected bool
	}{{"lists.example", false}, {"elsewhere.example", true}} {
		t.Run("dmarc fail, ARC pass sealed by "+tc.sealer, func(t *testing.T) {
			listed := *fail
			listed.Checks.ARC = true
			listed.ARC = inauth.ARCResult{Result: "pass", Instances: 1, Sealers: []string{tc.sealer}}
			_, out, _, err := intake.Prepare(&snap.Policy, &intake.Message{From: "list-bounces@lists.example", Recipients: []string{"u@receiver.test"},
				Body: body, Verification: &intake.Verification{Results: &listed, AuthservID: "mx.receiver.test"}})
			if tc.rejected {
				var reply *reception.Reply
				if !errors.As(err, &reply) || reply.Code != 550 {
					t.Fatalf("err %v, want the rule's 550", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if want := "\tarc=pass (i=1 d=lists.example)\r\n"; !strings.Contains(string(out), want) {
				t.Errorf("stored message lacks %q:\n%s", want, out)
			}
		})
	}
	t.Run("unverified", func(t *testing.T) {
		_, out, matched, err := intake.Prepare(&snap.Policy, &intake.Message{From: "a@sender.test", Recipients: []string{"u@receiver.test"}, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(matched, ",") != "unverified" {
			t.Errorf("matched %v, want [unverified]", matched)
		}
		// Nothing verified: the incoming fields stay as they came.
		if want := "X-Unverified: yes\r\n" + string(body); string(out) != want {
			t.Errorf("stored message:\n%s\nwant:\n%s", out, want)
		}
	})
}

// TestARCSealOnlyVerifiedMail: a listener with verify.arcSeal seals the
// mail it verified, on top of everything (its Authentication-Results
// included); mail it did not verify (a relay network's, an authenticated
// user's) goes unsealed, with nothing to vouch for.
func TestARCSealOnlyVerifiedMail(t *testing.T) {
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "gw.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	cfgFile := filepath.Join(dir, "c.cue")
	src := `spool: dir: "` + filepath.Join(dir, "spool") + `"
hostname: "mx.receiver.test"
listeners: mx: {addr: "127.0.0.1:2525", verify: arcSeal: "gw"}
dkim: keys: gw: {domain: "receiver.test", selector: "arc", keyFile: "` + keyFile + `"}
`
	if err := os.WriteFile(cfgFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := server.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("From: alice@sender.test\r\nTo: u@receiver.test\r\nSubject: s\r\n\r\nbody\r\n")
	res := &inauth.Results{Checks: inauth.Checks{SPF: true, ARC: true},
		SPF: inauth.SPFResult{Result: "pass", Domain: "sender.test", Scope: "mailfrom"}, ARC: inauth.ARCResult{Result: "none"}}
	_, out, _, err := intake.Prepare(&snap.Policy, &intake.Message{From: "a@sender.test", Recipients: []string{"u@receiver.test"}, Listener: "mx",
		Body: body, Verification: &intake.Verification{Results: res, AuthservID: "mx.receiver.test"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "ARC-Seal: i=1; a=rsa-sha256; t="
	aar := "ARC-Authentication-Results: i=1; mx.receiver.test;\r\n\tspf=pass smtp.mailfrom=sender.test;\r\n\tarc=none\r\n" +
		"Authentication-Results: mx.receiver.test;\r\n\tspf=pass smtp.mailfrom=sender.test;\r\n\tarc=none\r\nFrom: "
	if !strings.HasPrefix(string(out), want) || !strings.Contains(string(out), "d=receiver.test; s=arc;") || !strings.Contains(string(out), aar) {
		t.Errorf("verified mail, stored:\n%s\nwant it sealed (%q), the results copied above ours", out, want)
	}
	_, out, _, err = intake.Prepare(&snap.Policy, &intake.Message{From: "a@sender.test", Recipients: []string{"u@receiver.test"}, Listener: "mx", Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(body) {
		t.Errorf("unverified mail, stored:\n%s\nwant it as it came", out)
	}
}

// TestEightBitSignedAndSealed: an 8-bit message ARC-sealed, alone or
// after DKIM signing, is made 7-bit once, before both, and is stored so:
// the DKIM signature (go-msgauth) and the ARC chain (dkimpy) verify over
// what is stored.
func TestEightBitSignedAndSealed(t *testing.T) {
	for _, signed := range []bool{true, false} {
		t.Run(fmt.Sprintf("signed=%v", signed), func(t *testing.T) { eightBitSealed(t, signed) })
	}
}

func eightBitSealed(t *testing.T, signed bool) {
	arctest.Require(t)
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "gw.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	record := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub)
	cfgFile := filepath.Join(dir, "c.cue")
	src := `spool: dir: "` + filepath.Join(dir, "spool") + `"
hostname: "mx.receiver.test"
listeners: mx: {addr: "127.0.0.1:2525", verify: arcSeal: "gw"}
dkim: keys: gw: {domain: "receiver.test", selector: "arc", keyFile: "` + keyFile + `"}
`
	if signed {
		src += `dkim: default: ["gw"]` + "\n"
	}
	if err := os.WriteFile(cfgFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := server.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("From: alice@sender.test\r\nTo: u@receiver.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCaf\xc3\xa9 cr\xc3\xa8me\r\n")
	res := &inauth.Results{Checks: inauth.Checks{SPF: true, ARC: true},
		SPF: inauth.SPFResult{Result: "pass", Domain: "sender.test", Scope: "mailfrom"}, ARC: inauth.ARCResult{Result: "none"}}
	env, out, _, err := intake.Prepare(&snap.Policy, &intake.Message{From: "a@sender.test", Recipients: []string{"u@receiver.test"}, Listener: "mx",
		Body: body, EightBitMIME: true, Verification: &intake.Verification{Results: res, AuthservID: "mx.receiver.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.IndexFunc(out, func(r rune) bool { return r >= 0x80 }); i >= 0 || env.EightBitMIME {
		t.Fatalf("stored with 8-bit data at %d (8BITMIME %v):\n%s", i, env.EightBitMIME, out)
	}
	if !bytes.HasPrefix(out, []byte("ARC-Seal: ")) || bytes.Contains(out, []byte("\r\nDKIM-Signature: ")) != signed {
		t.Fatalf("sealed, and signed %v? stored:\n%s", signed, out)
	}
	lookup := func(name string) ([]string, error) {
		if name == "arc._domainkey.receiver.test" {
			return []string{record}, nil
		}
		return nil, errors.New("no such record: " + name)
	}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(out), &dkim.VerifyOptions{LookupTXT: lookup})
	if n := map[bool]int{true: 1, false: 0}[signed]; err != nil || len(vs) != n || (n == 1 && vs[0].Err != nil) {
		t.Errorf("DKIM over the stored message: %v %+v", err, vs)
	}
	if got := arctest.Verify(t, out, map[string]string{"arc._domainkey.receiver.test": record}); got != "pass" {
		t.Errorf("dkimpy's ARC verdict on the stored message: %s, want pass", got)
	}
}
