package e2e

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/cuemta/cuemta/sim"
)

// TestInboundVerification: mail to an mx listener from outside
// relay.networks is verified against the sim's DNS (SPF TXT, DKIM key,
// _dmarc): signed and unsigned, aligned and misaligned. The delivered
// message carries our Authentication-Results on top, an incoming one
// claiming our authserv-id is gone and another host's is kept, and a
// message rule refuses what DMARC says to reject and tags what it says
// to quarantine.
func TestInboundVerification(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	pub := base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	s := startSim(t, map[string]*sim.Site{
		"corp": {Domains: []string{"corp.test"}, MX: []sim.MXHost{{Host: "mx.corp.test", IP: "127.0.0.41"}}},
	}, func(c *sim.Config) {
		c.DNS.Records = []string{
			`sender.test. 300 IN TXT "v=spf1 ip4:127.0.10.1 -all"`,
			`s1._domainkey.sender.test. 300 IN TXT "v=DKIM1; k=ed25519; p=` + pub + `"`,
			`_dmarc.sender.test. 300 IN TXT "v=DMARC1; p=reject"`,
			`lists.test. 300 IN TXT "v=spf1 ip4:127.0.10.2 -all"`,
			`_dmarc.lists.test. 300 IN TXT "v=DMARC1; p=quarantine"`,
			`esp.test. 300 IN TXT "v=spf1 ip4:127.0.10.2 -all"`,
			`k._domainkey.esp.test. 300 IN TXT "v=DKIM1; k=ed25519; p=` + pub + `"`,
		}
	})
	dir := mtaConfig(t, s, `
relay: networks: ["192.0.2.0/24"]
relay: domains: ["corp.test"]
rules: message: [
	{name: "dmarc-reject", when: "auth.dmarc == 'fail' && dmarc.disposition == 'reject'",
	 reject: {code: 550, enhanced: "5.7.1", text: "Unauthenticated mail from a domain that asks for rejection"}},
	{name: "dmarc-quarantine", when: "dmarc.disposition == 'quarantine'", addHeaders: {"X-Quarantine": "dmarc"}},
]
`)
	srv := startServer(t, dir, "mx")
	addr := srv.addrs["mx"]
	body := func(from, subject string) []byte {
		return []byte("From: " + from + "\r\nTo: <staff@corp.test>\r\nSubject: " + subject +
			"\r\nDate: Wed, 02 Dec 2026 05:00:00 +0000\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@e2e.test>\r\n" +
			"\r\nHello.\r\n")
	}
	sign := func(msg []byte, domain, selector string) []byte {
		var out bytes.Buffer
		if err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{Domain: domain, Selector: selector, Signer: key,
			HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed}); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	send := func(local, mailFrom string, msg []byte) string {
		return sendFrom(t, addr, local, "mail.client.test", mailFrom, "staff@corp.test", msg)
	}
	forged := "Authentication-Results: mta.test; dkim=pass header.d=sender.test\r\n" +
		"Authentication-Results: upstream.test; arc=none\r\n"
	tests := []struct {
		name, local, mailFrom string
		msg                   []byte
		reply                 string
		ar                    string // the delivered Authentication-Results, "" when refused
		quarantine            bool
	}{
		{"signed aligned", "127.0.10.1", "alice@sender.test",
			sign(body("Alice <alice@sender.test>", "signed aligned"), "sender.test", "s1"), "250 ",
			"Authentication-Results: mta.test;\r\n\tspf=pass smtp.mailfrom=sender.test;\r\n\tdkim=pass header.d=sender.test header.s=s1;\r\n" +
				"\tdmarc=pass (p=reject dis=none) header.from=sender.test;\r\n\tarc=none\r\n", false},
		{"unsigned, SPF aligned", "127.0.10.1", "alice@sender.test",
			append([]byte(forged), body("alice@sender.test", "unsigned aligned")...), "250 ",
			"Authentication-Results: mta.test;\r\n\tspf=pass smtp.mailfrom=sender.test;\r\n\tdkim=none;\r\n" +
				"\tdmarc=pass (p=reject dis=none) header.from=sender.test;\r\n\tarc=none\r\n", false},
		{"unsigned, from an unlisted address", "127.0.20.1", "ceo@sender.test",
			body("CEO <ceo@sender.test>", "spoofed"), "550 5.7.1", "", false},
		{"signed by another domain, misaligned", "127.0.10.2", "bounce@esp.test",
			sign(body("news@lists.test", "misaligned"), "esp.test", "k"), "250 ",
			"Authentication-Results: mta.test;\r\n\tspf=pass smtp.mailfrom=esp.test;\r\n\tdkim=pass header.d=esp.test header.s=k;\r\n" +
				"\tdmarc=fail (p=quarantine dis=quarantine) header.from=lists.test;\r\n\tarc=none\r\n", true},
	}
	delivered := 0
	for _, tc := range tests {
		got := send(tc.local, tc.mailFrom, tc.msg)
		if !strings.HasPrefix(got, tc.reply) {
			t.Errorf("%s: reply %q, want %q", tc.name, got, tc.reply)
		}
		if tc.ar != "" {
			delivered++
		}
	}
	waitFor(t, 30*time.Second, "the accepted messages at the sim", func() bool { return len(messagesTo(s, "corp")) >= delivered })
	msgs := messagesTo(s, "corp")
	for _, tc := range tests {
		if tc.ar == "" {
			continue
		}
		var m *sim.Message
		for i := range msgs {
			if bytes.Contains(msgs[i].Body, []byte("Subject: "+subjectOf(tc.msg)+"\r\n")) {
				m = &msgs[i]
			}
		}
		if m == nil {
			t.Errorf("%s: not delivered", tc.name)
			continue
		}
		head, _, _ := bytes.Cut(m.Body, []byte("\r\n\r\n"))
		h := string(head) + "\r\n"
		// Ours is on top (above our Received), the quarantine tag above it.
		top := tc.ar
		if tc.quarantine {
			top = "X-Quarantine: dmarc\r\n" + tc.ar
		}
		if !strings.HasPrefix(h, top+"Received: ") {
			t.Errorf("%s: delivered header starts\n%s\nwant\n%sReceived: ...", tc.name, h, top)
		}
		if strings.Count(h, "Authentication-Results: mta.test;") != 1 {
			t.Errorf("%s: an incoming field claiming mta.test is left:\n%s", tc.name, h)
		}
		if bytes.Contains(tc.msg, []byte("upstream.test")) && !strings.Contains(h, "Authentication-Results: upstream.test; arc=none\r\n") {
			t.Errorf("%s: another host's Authentication-Results was removed:\n%s", tc.name, h)
		}
	}
	if !srv.waitLog("rejected by rule dmarc-reject", 5*time.Second) {
		t.Errorf("the refusal by rule dmarc-reject is not logged")
	}
	// Every verification is counted, the refused message's too.
	for metric, want := range map[string]float64{
		`cuemta_inbound_verifications_total{check="dmarc",listener="mx",result="pass"}`: 2,
		`cuemta_inbound_verifications_total{check="dmarc",listener="mx",result="fail"}`: 2,
		`cuemta_inbound_verifications_total{check="spf",listener="mx",result="fail"}`:   1,
		`cuemta_inbound_verifications_total{check="dkim",listener="mx",result="pass"}`:  2,
		`cuemta_inbound_verifications_total{check="arc",listener="mx",result="none"}`:   4,
	} {
		if got := metricValue(t, srv.admin, metric); got != want {
			t.Errorf("%s = %v, want %v", metric, got, want)
		}
	}
}

func subjectOf(msg []byte) string {
	_, rest, _ := bytes.Cut(msg, []byte("Subject: "))
	s, _, _ := bytes.Cut(rest, []byte("\r\n"))
	return string(s)
}
