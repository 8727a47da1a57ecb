package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"maps"
	"math/big"
	"net"
	"slices"
	"time"
)

// selfSigned makes a certificate for every MX host name and address, and
// a pool trusting it, for STARTTLS sites.
func selfSigned(cfg *Config) (*tls.Config, *x509.CertPool, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cfg.Hostname, Organization: []string{"cuemta sim"}},
		DNSNames:              []string{cfg.Hostname},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Sites)) {
		site := cfg.Sites[name]
		for _, mx := range site.MX {
			if mx.BadCert {
				continue // its certificate names the others, not it
			}
			tmpl.DNSNames = append(tmpl.DNSNames, mx.Host)
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(mx.IP))
		}
		if site.MTASTS != nil {
			for _, d := range site.Domains {
				tmpl.DNSNames = append(tmpl.DNSNames, "mta-sts."+d)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}, pool, pemData, nil
}
