// Command dkimkey generates a DKIM signing key for the benchmarks: it
// writes an RSA private key (PKCS#8 PEM) to -out and prints the matching
// DNS TXT record value ("v=DKIM1; k=rsa; p=...") on stdout, ready for
// smtpsink -dkim-txt.
package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
)

func main() {
	out := flag.String("out", "dkim.pem", "private key `file` to write")
	bits := flag.Int("bits", 2048, "RSA key size")
	flag.Parse()
	if err := run(*out, *bits); err != nil {
		fmt.Fprintln(os.Stderr, "dkimkey:", err)
		os.Exit(1)
	}
}

func run(out string, bits int) error {
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	fmt.Printf("v=DKIM1; k=rsa; p=%s\n", base64.StdEncoding.EncodeToString(pub))
	return nil
}
