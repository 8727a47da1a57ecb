// Package testpki issues X.509 certificates for tests: server
// certificates, CAs and chains with the names and validity a test
// chooses, each with a fresh ECDSA P-256 key, and the PEM files a sim
// site or a listener reads. It is for tests only: keys are never
// protected, and a failure fails the test.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Spec is what a certificate says.
type Spec struct {
	CommonName string
	DNSNames   []string
	IPs        []net.IP
	// CA makes a certificate that can sign others. With DNSNames or IPs
	// as well it also serves TLS: a self-signed certificate that a
	// test's pool trusts as its own root.
	CA bool
	// NotBefore and NotAfter default to an hour before and after now.
	NotBefore, NotAfter time.Time
}

// Issued is a certificate and its private key.
type Issued struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Issue makes the certificate s describes, signed by parent, or
// self-signed when parent is nil.
func Issue(t testing.TB, s Spec, parent *Issued) *Issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	if s.NotBefore.IsZero() {
		s.NotBefore = time.Now().Add(-time.Hour)
	}
	if s.NotAfter.IsZero() {
		s.NotAfter = time.Now().Add(time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: s.CommonName},
		DNSNames: s.DNSNames, IPAddresses: s.IPs,
		NotBefore: s.NotBefore, NotAfter: s.NotAfter,
	}
	if !s.CA || len(s.DNSNames) > 0 || len(s.IPs) > 0 {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	if s.CA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Issued{Cert: c, Key: key}
}

// TLS is the certificate for a tls.Config, followed by chain (the
// intermediates a server sends).
func (i *Issued) TLS(chain ...*Issued) tls.Certificate {
	c := tls.Certificate{Certificate: [][]byte{i.Cert.Raw}, PrivateKey: i.Key, Leaf: i.Cert}
	for _, p := range chain {
		c.Certificate = append(c.Certificate, p.Cert.Raw)
	}
	return c
}

// Pool is a pool that trusts the certificate as a root.
func (i *Issued) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(i.Cert)
	return p
}

// PEM is the certificate, then the chain, and the key (PKCS #8) in PEM.
func (i *Issued) PEM(t testing.TB, chain ...*Issued) (certPEM, keyPEM []byte) {
	t.Helper()
	for _, c := range append([]*Issued{i}, chain...) {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})...)
	}
	der, err := x509.MarshalPKCS8PrivateKey(i.Key)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteFiles writes PEM as dir/name.crt and dir/name.key (0600) and
// returns their paths.
func (i *Issued) WriteFiles(t testing.TB, dir, name string, chain ...*Issued) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := i.PEM(t, chain...)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	for file, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}
