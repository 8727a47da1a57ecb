package inauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/dkim"
	"github.com/cuemta/cuemta/internal/arctest"
)

// arcRig signs with two sealers, lists.example (selector s1) and
// fwd.example (s2), with one RSA 2048 key, and serves their records.
type arcRig struct {
	t               *testing.T
	rsaFile         string
	records         map[string]string // name -> TXT value
	resolverRecords []string          // the same, as zone lines
}

func newARCRig(t *testing.T) *arcRig {
	arctest.Require(t)
	dir := t.TempDir()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	r := &arcRig{t: t, rsaFile: filepath.Join(dir, "rsa.pem"), records: map[string]string{}}
	os.WriteFile(r.rsaFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), 0o600)
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	p := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	r.add("s1._domainkey.lists.example", p)
	r.add("s2._domainkey.fwd.example", p)
	return r
}

func (r *arcRig) add(name, value string) {
	r.records[name] = value
	var chunks []string
	for v := value; v != ""; {
		n := min(len(v), 250)
		chunks = append(chunks, `"`+v[:n]+`"`)
		v = v[n:]
	}
	r.resolverRecords = append(r.resolverRecords, name+". 300 IN TXT "+strings.Join(chunks, " "))
}

// seal runs one dkimpy hop: lists.example (selector s1, the first, so
// cv none) or fwd.example (s2, after it: cv pass).
func (r *arcRig) seal(msg []byte, sealer string) []byte {
	r.t.Helper()
	if sealer == "lists.example" {
		return arctest.Seal(r.t, msg, "s1", sealer, r.rsaFile, "spf=pass smtp.mailfrom=origin.example", 1796180000)
	}
	return arctest.Seal(r.t, msg, "s2", sealer, r.rsaFile, "arc=pass", 1796180000)
}

// dkimpy is dkimpy's verdict on msg.
func (r *arcRig) dkimpy(msg []byte) string { return arctest.Verify(r.t, msg, r.records) }

// replaceOnce replaces the first old in msg, failing the test without one.
func replaceOnce(t *testing.T, msg []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(msg, []byte(old)) {
		t.Fatalf("no %q in\n%s", old, msg)
	}
	return bytes.Replace(msg, []byte(old), []byte(new), 1)
}

// TestARCChains: chains sealed by dkimpy (one RSA hop, then an Ed25519
// hop) are validated as RFC 8617 §5.2 says, and as dkimpy's own verifier
// judges them: a hop may change the message before it seals (that is
// what ARC is for), but nothing may change after the newest seal, and no
// seal or set may be altered, dropped or given a wrong cv.
func TestARCChains(t *testing.T) {
	r := newARCRig(t)
	orig := message("Ann <ann@origin.example>")
	one := r.seal(orig, "lists.example")
	// The list tags the subject (breaking any DKIM signature of the
	// author's), then the forwarder seals.
	listed := replaceOnce(t, one, "Subject: quarterly report", "Subject: [team] quarterly report")
	two := r.seal(r.seal(orig, "lists.example"), "fwd.example")
	twoAfterChange := r.seal(listed, "fwd.example")

	for _, tc := range []struct {
		name    string
		msg     []byte
		want    string
		sealers []string
		reason  string // in the Reason of a failure
		dkimpy  string // dkimpy's verdict when it is not want's
	}{
		{name: "no ARC fields", msg: orig, want: ResultNone},
		{name: "one hop", msg: one, want: ResultPass, sealers: []string{"lists.example"}},
		{name: "two hops", msg: two, want: ResultPass, sealers: []string{"lists.example", "fwd.example"}},
		{name: "changed between the hops: the newest seal covers it", msg: twoAfterChange, want: ResultPass, sealers: []string{"lists.example", "fwd.example"}},
		{name: "a seal with an algorithm ARC does not define", msg: replaceOnce(t, two, "i=2; cv=pass; a=rsa-sha256", "i=2; cv=pass; a=ed25519-sha256"),
			want: ResultFail, reason: `ARC-Seal i=2: algorithm "ed25519-sha256" is not supported`},
		{name: "body changed after the newest seal", msg: replaceOnce(t, two, "The figures are attached.", "The figures are gone."),
			want: ResultFail, reason: "ARC-Message-Signature i=2: body hash does not match"},
		{name: "signed field changed after the newest seal", msg: replaceOnce(t, two, "To: bob@receiver.test", "To: eve@receiver.test"),
			want: ResultFail, reason: "ARC-Message-Signature i=2: signature does not verify"},
		{name: "whitespace added to the first seal: relaxed, the same seal", msg: replaceOnce(t, two, "ARC-Seal: i=1; cv=none; a=rsa-sha256; d=lists.example", "ARC-Seal: i=1; cv=none; a=rsa-sha256;  d=lists.example"),
			want: ResultPass, sealers: []string{"lists.example", "fwd.example"}},
		{name: "newest seal altered", msg: replaceOnce(t, two, "t=1796180000", "t=1796180001"), // the top field's
			want: ResultFail, reason: "ARC-Seal i=2: signature does not verify"},
		{name: "first set's results altered", msg: replaceOnce(t, two, "ARC-Authentication-Results: i=1; lists.example; spf=pass", "ARC-Authentication-Results: i=1; lists.example; spf=fail"),
			want: ResultFail, reason: "ARC-Seal i=2: signature does not verify"},
		{name: "first set's results dropped", msg: dropField(t, two, "ARC-Authentication-Results: i=1"),
			want: ResultFail, reason: "ARC set i=1 is incomplete"},
		{name: "newest seal claims cv=fail", msg: replaceOnce(t, two, "i=2; cv=pass", "i=2; cv=fail"),
			want: ResultFail, reason: "ARC-Seal i=2 says cv=fail", dkimpy: "terminated"},
		{name: "first seal claims cv=pass", msg: replaceOnce(t, one, "i=1; cv=none", "i=1; cv=pass"),
			want: ResultFail, reason: "ARC-Seal i=1 has cv=pass, want none"},
		{name: "a sealer's key is not published", msg: replaceOnce(t, one, "s=s1;", "s=gone;"),
			want: ResultFail, reason: "key gone._domainkey.lists.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := verifyARC(context.Background(), newBudgeted(newDNS(t, r.resolverRecords...), 40), tc.msg)
			if got.Result != tc.want || !slices.Equal(got.Sealers, tc.sealers) || !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("verifyARC = %+v; want %s, sealers %v, reason with %q\n%s", got, tc.want, tc.sealers, tc.reason, tc.msg)
			}
			wantDkimpy := tc.want
			if tc.dkimpy != "" {
				wantDkimpy = tc.dkimpy
			}
			if v := r.dkimpy(tc.msg); v != wantDkimpy {
				t.Errorf("dkimpy says %s, want %s", v, wantDkimpy)
			}
		})
	}
}

// dropField removes the field that starts with prefix, with its
// continuation lines.
func dropField(t *testing.T, msg []byte, prefix string) []byte {
	t.Helper()
	fields, body := dkim.HeaderFields(msg)
	var out []byte
	dropped := false
	for _, f := range fields {
		if !dropped && bytes.HasPrefix(f.Raw, []byte(prefix)) {
			dropped = true
			continue
		}
		out = append(out, f.Raw...)
	}
	if !dropped {
		t.Fatalf("no field %q", prefix)
	}
	return append(append(out, "\r\n"...), msg[body:]...)
}

// TestARCStructure: chains refused before any signature is checked, and
// one whose structure holds, refused only at its signature.
func TestARCStructure(t *testing.T) {
	set := func(i int) string {
		return fmt.Sprintf("ARC-Seal: i=%d; cv=none; a=rsa-sha256; d=x.example; s=s; b=AA==\r\n"+
			"ARC-Message-Signature: i=%d; a=rsa-sha256; d=x.example; s=s; h=from; bh=AA==; b=AA==\r\n"+
			"ARC-Authentication-Results: i=%d; x.example; spf=pass\r\n", i, i, i)
	}
	for _, tc := range []struct {
		name, header, reason string
	}{
		{"a gap in the instances", set(1) + set(3), "ARC set i=2 is incomplete"},
		{"two seals of one instance", set(1) + "ARC-Seal: i=1; cv=none; a=rsa-sha256; d=y.example; s=s; b=AA==\r\n", "two ARC-Seal fields with i=1"},
		{"instance over 50", strings.Replace(set(1), "ARC-Seal: i=1", "ARC-Seal: i=51", 1), "instance \"51\" is not a number from 1 to 50"},
		{"results without their instance first", strings.Replace(set(1), "ARC-Authentication-Results: i=1; x.example", "ARC-Authentication-Results: x.example; i=1", 1), "ARC-Authentication-Results: no i= tag first"},
		{"a seal with i= after other tags is read", strings.Replace(set(1), "ARC-Seal: i=1; cv=none", "ARC-Seal: cv=none; i=1", 1), "ARC-Message-Signature i=1: body hash does not match"},
		{"a seal without an instance", strings.Replace(set(1), "ARC-Seal: i=1; cv=none", "ARC-Seal: cv=none", 1), "ARC-Seal: no i= tag"},
		{"a tag twice", strings.Replace(set(1), "cv=none;", "cv=none; cv=none;", 1), "tag cv given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := []byte(tc.header + "From: a@b.example\r\n\r\nx\r\n")
			got := verifyARC(context.Background(), newBudgeted(newDNS(t), 40), msg)
			if got.Result != ResultFail || !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("verifyARC = %+v; want fail with %q", got, tc.reason)
			}
		})
	}
}

// TestVerifyReportsARC: with the ARC check on, Verify carries the chain's
// result and the Authentication-Results field says it (RFC 8617 §7.2),
// with the length of the chain and its newest sealer.
func TestVerifyReportsARC(t *testing.T) {
	r := newARCRig(t)
	two := r.seal(r.seal(message("Ann <ann@origin.example>"), "lists.example"), "fwd.example")
	dns := newDNS(t, r.resolverRecords...)
	for _, tc := range []struct {
		name  string
		msg   []byte
		field string
	}{
		{"two hops", two, "\tarc=pass (i=2 d=fwd.example)\r\n"},
		{"broken after the last hop", replaceOnce(t, two, "The figures", "No figures"), "\tarc=fail (i=2)\r\n"},
		{"no chain", message("Ann <ann@origin.example>"), "\tarc=none\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Verify(context.Background(), dns, Options{Checks: Checks{ARC: true}},
				Input{ClientIP: netip.MustParseAddr("127.0.10.1"), From: "ann@origin.example", Message: tc.msg})
			if f := string(res.Field("mx.receiver.test")); !strings.HasSuffix(f, tc.field) {
				t.Errorf("field %q, want it to end in %q", f, tc.field)
			}
		})
	}
}

// TestSealVerifies: the ARC set Seal adds to a message verifies, with
// this package and with dkimpy: on a message without a chain (i=1,
// cv=none) and on one a list sealed (i=2, cv=pass). On a chain that
// failed here it seals cv=fail, which ends the chain for every later hop.
func TestSealVerifies(t *testing.T) {
	r := newARCRig(t)
	cfg := &config.Config{DKIM: config.DKIM{Keys: map[string]*config.DKIMKey{"gw": {Domain: "gw.example", Selector: "s3",
		KeyFile: r.rsaFile, Headers: []string{"From", "To", "Subject", "Date", "Message-ID"}, Canonicalization: "relaxed/relaxed"}}}}
	keys, err := dkim.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.add("s3._domainkey.gw.example", r.records["s1._domainkey.lists.example"]) // the same key
	dns := newDNS(t, r.resolverRecords...)
	orig := message("Ann <ann@origin.example>")
	listed := r.seal(orig, "lists.example")
	for _, tc := range []struct {
		name    string
		msg     []byte
		set     string // the start of the seal
		want    string // the chain's result after the seal, ours and dkimpy's
		sealers []string
	}{
		{"no chain before", orig, "ARC-Seal: i=1; a=rsa-sha256; t=1796180000; cv=none;\r\n\td=gw.example; s=s3;\r\n\tb=", ResultPass, []string{"gw.example"}},
		{"after a list's seal", listed, "ARC-Seal: i=2; a=rsa-sha256; t=1796180000; cv=pass;", ResultPass, []string{"lists.example", "gw.example"}},
		{"after a chain broken on the way", replaceOnce(t, listed, "The figures", "No figures"), "ARC-Seal: i=2; a=rsa-sha256; t=1796180000; cv=fail;", ResultFail, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Verify(context.Background(), dns, Options{Checks: Checks{DKIM: true, ARC: true}},
				Input{ClientIP: netip.MustParseAddr("127.0.10.1"), From: "ann@origin.example", Message: tc.msg})
			out := append(res.Field("mx.receiver.test"), tc.msg...)
			set, err := res.Seal(out, "mx.receiver.test", keys["gw"], time.Unix(1796180000, 0))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(set), tc.set) {
				t.Errorf("set starts\n%s\nwant\n%s", set, tc.set)
			}
			sealed := append(set, out...)
			got := verifyARC(context.Background(), newBudgeted(dns, 40), sealed)
			if got.Result != tc.want || !slices.Equal(got.Sealers, tc.sealers) {
				t.Errorf("after the seal: %+v, want %s by %v\n%s", got, tc.want, tc.sealers, sealed)
			}
			want := tc.want
			if want == ResultFail {
				want = "terminated" // dkimpy's word for a chain whose newest seal says cv=fail
			}
			if v := r.dkimpy(sealed); v != want {
				t.Errorf("dkimpy says %s, want %s\n%s", v, want, sealed)
			}
		})
	}
}
