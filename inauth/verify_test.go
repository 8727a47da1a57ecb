package inauth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/internal/golden"
	"github.com/cuemta/cuemta/sim/simtest"
)

// key is the DKIM key of every test domain: fixed, so the records are.
var key = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func dkimRecord(name string) string {
	return fmt.Sprintf(`%s 300 IN TXT "v=DKIM1; k=ed25519; p=%s"`, name, base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey)))
}

func newDNS(t *testing.T, records ...string) *mx.Resolver { return simtest.DNS(t, records...) }

// message is a real-shaped message from the given From: field, with the
// Received field our reception writes on top.
func message(from string) []byte {
	return []byte("Received: from mail.sender.test (mail.sender.test [127.0.10.1])\r\n" +
		"\tby mx.receiver.test with ESMTPS id 1abc; Wed, 02 Dec 2026 05:00:00 +0000\r\n" +
		"From: " + from + "\r\n" +
		"To: bob@receiver.test\r\n" +
		"Subject: quarterly report\r\n" +
		"Date: Wed, 02 Dec 2026 04:59:58 +0000\r\n" +
		"Message-ID: <20261202045958.1@sender.test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"The figures are attached.\r\n")
}

// sign prepends a DKIM-Signature of domain/selector (relaxed/relaxed).
func sign(t *testing.T, msg []byte, domain, selector string) []byte {
	t.Helper()
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{Domain: domain, Selector: selector, Signer: key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

var records = []string{
	// sender.test: SPF for 127.0.10.1, a key, p=reject (relaxed).
	`sender.test. 300 IN TXT "v=spf1 ip4:127.0.10.1 -all"`,
	`news.sender.test. 300 IN TXT "v=spf1 include:_spf.sender.test ~all"`,
	`_spf.sender.test. 300 IN TXT "v=spf1 ip4:127.0.10.0/29 -all"`,
	dkimRecord("s1._domainkey.sender.test."),
	`_dmarc.sender.test. 300 IN TXT "v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@sender.test"`,
	// strict.test: strict alignment.
	`strict.test. 300 IN TXT "v=spf1 ip4:127.0.10.1 -all"`,
	`bounces.strict.test. 300 IN TXT "v=spf1 ip4:127.0.10.1 -all"`,
	dkimRecord("s1._domainkey.strict.test."),
	`_dmarc.strict.test. 300 IN TXT "v=DMARC1; p=quarantine; adkim=s; aspf=s"`,
	// sampled.test: p=reject for 0 percent: quarantine (RFC 7489 §6.6.4).
	`sampled.test. 300 IN TXT "v=spf1 -all"`,
	`_dmarc.sampled.test. 300 IN TXT "v=DMARC1; p=reject; pct=0"`,
	// nopolicy.test: SPF but no DMARC; nospf.test: nothing.
	`nopolicy.test. 300 IN TXT "v=spf1 ?all"`,
	`nospf.test. 300 IN A 127.0.0.9`,
	// twopolicies.test: two DMARC records are as none (§6.6.3).
	`twopolicies.test. 300 IN TXT "v=spf1 +all"`,
	`_dmarc.twopolicies.test. 300 IN TXT "v=DMARC1; p=reject"`,
	`_dmarc.twopolicies.test. 300 IN TXT "v=DMARC1; p=none"`,
	// RFC 7208 §4.6.4's limits.
	`loop.test. 300 IN TXT "v=spf1 include:loop.test -all"`,
	`void.test. 300 IN TXT "v=spf1 a:nx1.void.test a:nx2.void.test a:nx3.void.test -all"`,
	`twospf.test. 300 IN TXT "v=spf1 -all"`,
	`twospf.test. 300 IN TXT "v=spf1 +all"`,
	`bad.test. 300 IN TXT "v=spf1 ip4:127.0.10.300 -all"`,
	// Macros (RFC 7208 §7): %{ir}, %{l}, %{d}, %{h}, %{s}.
	`macro.test. 300 IN TXT "v=spf1 exists:%{ir}.%{l}.u.%{d} exists:%{h}.h.macro.test -all"`,
	`1.10.0.127.alice.u.macro.test. 300 IN A 127.0.0.2`,
	`helo.example.h.macro.test. 300 IN A 127.0.0.2`,
	`redir.test. 300 IN TXT "v=spf1 redirect=sender.test"`,
	`helo.sender.test. 300 IN TXT "v=spf1 a -all"`,
	`helo.sender.test. 300 IN A 127.0.10.1`,
}

func TestVerify(t *testing.T) {
	r := newDNS(t, records...)
	all := Checks{SPF: true, DKIM: true, DMARC: true}
	tests := []struct {
		name       string
		ip         string
		helo, from string
		msg        func(t *testing.T) []byte
		checks     Checks
		spf, dkim  string
		dmarc      string
		dis        string
		pub        string // the record found (publishedString)
	}{
		{name: "aligned-signed", ip: "127.0.10.1", from: "alice@sender.test",
			msg: func(t *testing.T) []byte { return sign(t, message("Alice <alice@sender.test>"), "sender.test", "s1") },
			spf: "pass", dkim: "pass", dmarc: "pass", dis: "none", pub: "sender.test p=reject sp=quarantine adkim=r aspf=r pct=100 rua=[mailto:d@sender.test]"},
		{name: "unsigned-spf-aligned", ip: "127.0.10.1", from: "alice@sender.test",
			msg: func(*testing.T) []byte { return message("alice@sender.test") },
			spf: "pass", dkim: "none", dmarc: "pass", dis: "none", pub: "sender.test p=reject sp=quarantine adkim=r aspf=r pct=100 rua=[mailto:d@sender.test]"},
		{name: "forged-from", ip: "127.0.20.1", from: "mallory@attacker.test",
			msg: func(*testing.T) []byte { return message("CEO <ceo@sender.test>") },
			spf: "temperror", dkim: "none", dmarc: "fail", dis: "reject", pub: "sender.test p=reject sp=quarantine adkim=r aspf=r pct=100 rua=[mailto:d@sender.test]"},
		{name: "spf-fail-dkim-pass", ip: "127.0.20.1", from: "alice@sender.test",
			msg: func(t *testing.T) []byte { return sign(t, message("alice@sender.test"), "sender.test", "s1") },
			spf: "fail", dkim: "pass", dmarc: "pass", dis: "none", pub: "sender.test p=reject sp=quarantine adkim=r aspf=r pct=100 rua=[mailto:d@sender.test]"},
		{name: "body-altered", ip: "127.0.20.1", from: "alice@sender.test",
			msg: func(t *testing.T) []byte {
				return bytes.Replace(sign(t, message("alice@sender.test"), "sender.test", "s1"), []byte("figures"), []byte("numbers"), 1)
			},
			spf: "fail", dkim: "fail", dmarc: "fail", dis: "reject", pub: "sender.test p=reject sp=quarantine adkim=r aspf=r pct=100 rua=[mailto:d@sender.test]"},
		{name: "subdomain-relaxed-sp", ip: "127.0.10.5", from: "list@news.sender.test",
			msg: func(*testing.T) []byte { return message("list@news.sender.test") },
			spf: "pass", dkim: "none", dmarc: "pass", dis: "none", pub: "sender.test p=reject sp=quarantine adkim=r aspf=r pct=100 rua=[mailto:d@sender.test]"},
		{name: "subdomain-fail-sp", ip: "127.0.20.1", from: "list@news.sender.test",
			msg: func(*testing.T) []byte { return message("list@news.sender.test") },
			spf: "softfail", dkim: "none", dmarc: "fail", dis: "quarantine", pub: "sender.test p=reject sp=quarantine adkim=r aspf=r pct=100 rua=[mailto:d@sender.test]"},
		{name: "strict-misaligned", ip: "127.0.10.1", from: "b@bounces.strict.test",
			msg: func(t *testing.T) []byte { return sign(t, message("info@www.strict.test"), "strict.test", "s1") },
			spf: "pass", dkim: "pass", dmarc: "fail", dis: "quarantine", pub: "strict.test p=quarantine sp= adkim=s aspf=s pct=100 rua=[]"},
		{name: "strict-aligned", ip: "127.0.10.1", from: "b@bounces.strict.test",
			msg: func(t *testing.T) []byte { return sign(t, message("info@strict.test"), "strict.test", "s1") },
			spf: "pass", dkim: "pass", dmarc: "pass", dis: "none", pub: "strict.test p=quarantine sp= adkim=s aspf=s pct=100 rua=[]"},
		{name: "pct-zero", ip: "127.0.10.1", from: "x@sampled.test",
			msg: func(*testing.T) []byte { return message("x@sampled.test") },
			spf: "fail", dkim: "none", dmarc: "fail", dis: "quarantine", pub: "sampled.test p=reject sp= adkim=r aspf=r pct=0 rua=[]"},
		{name: "no-dmarc-record", ip: "127.0.10.1", from: "x@nopolicy.test",
			msg: func(*testing.T) []byte { return message("x@nopolicy.test") },
			spf: "neutral", dkim: "none", dmarc: "none"},
		{name: "no-spf-record", ip: "127.0.10.1", from: "x@nospf.test",
			msg: func(*testing.T) []byte { return message("x@nospf.test") },
			spf: "none", dkim: "none", dmarc: "none"},
		{name: "two-dmarc-records", ip: "127.0.10.1", from: "x@twopolicies.test",
			msg: func(*testing.T) []byte { return message("x@twopolicies.test") },
			spf: "pass", dkim: "none", dmarc: "none"},
		{name: "two-from-domains", ip: "127.0.10.1", from: "alice@sender.test",
			msg: func(*testing.T) []byte { return message("alice@sender.test, bob@strict.test") },
			spf: "pass", dkim: "none", dmarc: "permerror"},
		{name: "unknown-key", ip: "127.0.10.1", from: "alice@sender.test",
			msg: func(t *testing.T) []byte { return sign(t, message("alice@sender.test"), "sender.test", "gone") },
			spf: "pass", dkim: "permerror", dmarc: "pass", dis: "none", pub: "sender.test p=reject sp=quarantine adkim=r aspf=r pct=100 rua=[mailto:d@sender.test]"},
		{name: "lookup-limit", ip: "127.0.10.1", from: "x@loop.test",
			msg: func(*testing.T) []byte { return message("x@loop.test") },
			spf: "permerror", dkim: "none", dmarc: "none"},
		{name: "void-lookup-limit", ip: "127.0.10.1", from: "x@void.test",
			msg: func(*testing.T) []byte { return message("x@void.test") },
			spf: "permerror", dkim: "none", dmarc: "none"},
		{name: "two-spf-records", ip: "127.0.10.1", from: "x@twospf.test",
			msg: func(*testing.T) []byte { return message("x@twospf.test") },
			spf: "permerror", dkim: "none", dmarc: "none"},
		{name: "bad-spf-record", ip: "127.0.10.1", from: "x@bad.test",
			msg: func(*testing.T) []byte { return message("x@bad.test") },
			spf: "permerror", dkim: "none", dmarc: "none"},
		{name: "macros", ip: "127.0.10.1", helo: "helo.example", from: "alice@macro.test",
			msg: func(*testing.T) []byte { return message("alice@macro.test") },
			spf: "pass", dkim: "none", dmarc: "none"},
		{name: "macro-h", ip: "127.0.20.1", helo: "helo.example", from: "bob@macro.test",
			msg: func(*testing.T) []byte { return message("bob@macro.test") },
			spf: "pass", dkim: "none", dmarc: "none"},
		{name: "macro-no-match", ip: "127.0.20.1", helo: "other.example", from: "bob@macro.test",
			msg: func(*testing.T) []byte { return message("bob@macro.test") },
			spf: "fail", dkim: "none", dmarc: "none"},
		{name: "redirect", ip: "127.0.10.1", from: "x@redir.test",
			msg: func(*testing.T) []byte { return message("x@redir.test") },
			spf: "pass", dkim: "none", dmarc: "none"},
		{name: "null-sender-helo", ip: "127.0.10.1", helo: "helo.sender.test", from: "",
			msg: func(*testing.T) []byte { return message("MAILER-DAEMON@helo.sender.test") },
			spf: "pass", dkim: "none", dmarc: "pass", dis: "none", pub: "sender.test p=reject sp=quarantine adkim=r aspf=r pct=100 rua=[mailto:d@sender.test]"},
		{name: "unreachable-dns", ip: "127.0.10.1", from: "x@nowhere.invalid",
			msg: func(*testing.T) []byte { return message("x@nowhere.invalid") },
			spf: "temperror", dkim: "none", dmarc: "temperror"},
		{name: "spf-only", ip: "127.0.10.1", from: "alice@sender.test", checks: Checks{SPF: true},
			msg: func(t *testing.T) []byte { return sign(t, message("alice@sender.test"), "sender.test", "s1") },
			spf: "pass"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checks := tc.checks
			if checks == (Checks{}) {
				checks = all
			}
			helo := tc.helo
			if helo == "" {
				helo = "mail.client.test"
			}
			res := Verify(context.Background(), r, Options{Checks: checks, Sample: func(int) bool { return false }},
				Input{ClientIP: netip.MustParseAddr(tc.ip), Helo: helo, From: tc.from, Message: tc.msg(t)})
			if res.SPF.Result != tc.spf || res.DKIMSummary() != tc.dkim || res.DMARC.Result != tc.dmarc || res.DMARC.Disposition != tc.dis {
				t.Errorf("spf=%s (%s) dkim=%s %+v dmarc=%s dis=%s (%s), want spf=%s dkim=%s dmarc=%s dis=%s",
					res.SPF.Result, res.SPF.Reason, res.DKIMSummary(), res.DKIM, res.DMARC.Result, res.DMARC.Disposition, res.DMARC.Reason,
					tc.spf, tc.dkim, tc.dmarc, tc.dis)
			}
			if sampled := tc.name == "pct-zero"; res.DMARC.SampledOut != sampled {
				t.Errorf("SampledOut %v, want %v", res.DMARC.SampledOut, sampled)
			}
			if got := publishedString(res.DMARC.Published); got != tc.pub {
				t.Errorf("published record %q, want %q", got, tc.pub)
			}
			golden.Check(t, filepath.Join("testdata", tc.name+".golden"), res.Field("mx.receiver.test"))
		})
	}
}

// publishedString is r in one line for the table: "" for nil.
func publishedString(r *DMARCRecord) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("%s p=%s sp=%s adkim=%s aspf=%s pct=%d rua=%v", r.Domain, r.P, r.SP, r.ADKIM, r.ASPF, r.Pct, r.Rua)
}

// TestDNSBudget: a message's verification stops at its query budget with
// temperror, whatever the records would allow.
func TestDNSBudget(t *testing.T) {
	r := newDNS(t, records...)
	msg := sign(t, message("list@news.sender.test"), "sender.test", "s1")
	in := Input{ClientIP: netip.MustParseAddr("127.0.10.5"), Helo: "mail.client.test", From: "list@news.sender.test", Message: msg}
	for _, tc := range []struct {
		queries          int
		spf, dkim, dmarc string
	}{
		// SPF: news.sender.test, then its include; DKIM: the key;
		// DMARC: _dmarc.news.sender.test, then _dmarc.sender.test.
		{1, "temperror", "temperror", "temperror"},
		{2, "pass", "temperror", "temperror"},
		{3, "pass", "pass", "temperror"},
		{4, "pass", "pass", "temperror"},
		{5, "pass", "pass", "pass"},
	} {
		res := Verify(context.Background(), r, Options{Checks: Checks{SPF: true, DKIM: true, DMARC: true}, MaxQueries: tc.queries}, in)
		if res.SPF.Result != tc.spf || res.DKIMSummary() != tc.dkim || res.DMARC.Result != tc.dmarc {
			t.Errorf("%d queries: spf=%s dkim=%s dmarc=%s, want %s %s %s", tc.queries, res.SPF.Result, res.DKIMSummary(), res.DMARC.Result,
				tc.spf, tc.dkim, tc.dmarc)
		}
	}
}

// TestMaxSignatures: signatures past the bound are reported, not checked.
func TestMaxSignatures(t *testing.T) {
	r := newDNS(t, records...)
	msg := message("alice@sender.test")
	for range 4 {
		msg = sign(t, msg, "sender.test", "s1")
	}
	res := Verify(context.Background(), r, Options{Checks: Checks{DKIM: true}, MaxSignatures: 2},
		Input{ClientIP: netip.MustParseAddr("127.0.10.1"), Helo: "h.test", From: "alice@sender.test", Message: msg})
	var got []string
	for _, d := range res.DKIM {
		got = append(got, d.Result)
	}
	if strings.Join(got, ",") != "pass,pass,policy,policy" {
		t.Errorf("results %v, want pass,pass,policy,policy", got)
	}
}
