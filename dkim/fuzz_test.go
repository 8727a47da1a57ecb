package dkim

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	mrand "math/rand/v2"
	"testing"
)

// FuzzSign: whatever the message, a signature Sign makes verifies with
// go-msgauth's verifier, for RSA and Ed25519 keys in all four
// canonicalisation pairs at once. Inputs on which that verifier departs
// from RFC 6376 are left out (see fuzzComparable); Sign must still not
// fail on them.
func FuzzSign(f *testing.F) {
	// A 1024-bit key keeps each input fast; the key size does not change
	// what is hashed.
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	set := newTestKeySet(f, rsaKey, []string{"From", "To", "Subject", "Subject", "X-Absent", "Date"})
	for _, s := range []string{
		message,
		"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n",
		"From: a\nSubject: b\n\nbody \n\n",
		"From: a\r\nSubject: one\r\nSubject:  two\r\n",
		"From: a",
		"\r\n",
		"",
		"From: caf\xc3\xa9\r\n\r\n\xff\xfe \t\r\n",
	} {
		f.Add([]byte(s))
	}
	r := mrand.New(mrand.NewPCG(3, 4))
	for range 4 {
		f.Add(genMessage(r))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		signed, err := Sign(msg, set.keys)
		if len(msg) > 0 && isWSP(msg[0]) {
			if err == nil {
				t.Fatal("a message beginning with a folded line was signed")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(signed, msg) {
			t.Fatal("signing changed the message")
		}
		if !fuzzComparable(msg) {
			return
		}
		errs := set.verify(t, signed)
		if len(errs) != len(set.keys) {
			t.Fatalf("%d signatures verified, want %d", len(errs), len(set.keys))
		}
		for i, err := range errs {
			if err != nil {
				t.Errorf("key %s: %v\nsigned: %q", set.keys[i].Name, err, signed)
			}
		}
	})
}

// fuzzComparable reports whether go-msgauth's verifier reads msg as RFC
// 6376 (and so Sign) does. It does not for a bare CR (its relaxed
// algorithms take CR for a line end or whitespace, where the RFC has it
// as data), for field names with control or 8-bit bytes (it trims
// Unicode space and lower-cases with strings.ToLower, which rewrites
// invalid UTF-8), and for messages that already carry a DKIM-Signature
// (it verifies those too). Reception refuses bare CR (RFC 5321 §2.3.8),
// and field names are printable ASCII (RFC 5322 §2.2).
func fuzzComparable(msg []byte) bool {
	for i, b := range msg {
		if b == '\r' && (i+1 == len(msg) || msg[i+1] != '\n') {
			return false
		}
	}
	fields, _ := parseHeader(msg, nil)
	for _, f := range fields {
		name := msg[f.nameStart:f.nameEnd]
		for _, b := range name {
			if b < 0x20 && b != '\t' || b >= 0x7f {
				return false
			}
		}
		if asciiEqualFold(name, "DKIM-Signature") {
			return false
		}
	}
	return true
}
