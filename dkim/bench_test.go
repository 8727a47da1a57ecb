package dkim

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"testing"

	"github.com/cuemta/cuemta/config"
)

// BenchmarkSign100KB signs a 100 KB message (relaxed/relaxed, default
// header list) with each key type, the cost DKIM adds per message.
func BenchmarkSign100KB(b *testing.B) {
	dir := b.TempDir()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	var line = bytes.Repeat([]byte("lorem ipsum dolor sit amet, consectetur adipiscing elit sed do  \r\n"), 1)
	msg := append([]byte("From: a@example.com\r\nTo: b@example.net\r\nSubject: s\r\nDate: Thu, 26 Nov 2026 04:00:00 +0000\r\n\r\n"), bytes.Repeat(line, 102400/len(line))...)
	cfg := &config.Config{DKIM: config.DKIM{Keys: map[string]*config.DKIMKey{
		"rsa2048": {Domain: "example.com", Selector: "r", KeyFile: writeKey(b, dir, "r.pem", x509.MarshalPKCS1PrivateKey(rsaKey), "RSA PRIVATE KEY"), Headers: []string{"From", "To", "Subject", "Date"}, Canonicalization: "relaxed/relaxed"},
		"ed25519": {Domain: "example.com", Selector: "e", KeyFile: writeKey(b, dir, "e.pem", edDER, "PRIVATE KEY"), Headers: []string{"From", "To", "Subject", "Date"}, Canonicalization: "relaxed/relaxed"},
	}}}
	keys, err := Load(cfg)
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"rsa2048", "ed25519"} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if _, err := keys[name].Sign(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
