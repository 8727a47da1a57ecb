// Command dkimkey generates a DKIM signing key for the benchmarks: it
// writes an RSA (-type rsa, -bits) or Ed25519 (-type ed25519, RFC 8463)
// private key (PKCS#8 PEM) to -out and prints the matching DNS TXT record
// value ("v=DKIM1; k=rsa; p=...") on stdout, ready for smtpsink -dkim-txt.
package main

import (
	"crypto/ed25519"
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
	typ := flag.String("type", "rsa", "key type: rsa or ed25519")
	flag.Parse()
	if err := run(*out, *typ, *bits); err != nil {
		fmt.Fprintln(os.Stderr, "dkimkey:", err)
		os.Exit(1)
	}
}

func run(out, typ string, bits int) error {
	var key any
	var record string
	switch typ {
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return err
		}
		pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			return err
		}
		key, record = k, "v=DKIM1; k=rsa; p="+base64.StdEncoding.EncodeToString(pub)
	case "ed25519":
		// RFC 8463 §4.2: p= is the raw 32-byte public key.
		pub, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		key, record = k, "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub)
	default:
		return fmt.Errorf("unknown -type %q (want rsa or ed25519)", typ)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return err
	}
	fmt.Println(record)
	return nil
}
