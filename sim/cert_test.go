package sim

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/smtpclient"
)

// TestSTARTTLSOwnCertificate: a site with tlsCert and tlsKey serves that
// certificate on STARTTLS; a site without them still serves the sim's.
func TestSTARTTLSOwnCertificate(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mx.own.test"}, DNSNames: []string{"mx.own.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	s := start(t, fmt.Sprintf(`
sites: own: {
	domains: ["own.test"]
	mx: [{host: "mx.own.test", ip: "127.0.46.2"}]
	starttls: true
	tlsCert: %q
	tlsKey: %q
}
sites: other: {
	domains: ["other.test"]
	mx: [{host: "mx.other.test", ip: "127.0.46.3"}]
	starttls: true
}
`, certFile, keyFile), nil)
	for _, tt := range []struct{ host, wantCN string }{{"mx.own.test", "mx.own.test"}, {"mx.other.test", "sim.invalid"}} {
		conn, err := smtpclient.Dial(bg, smtpclient.Options{Addr: s.MXAddrs()[tt.host], ServerName: tt.host, EHLO: "client.test",
			TLS: smtpclient.TLSRequired, TLSConfig: &tls.Config{InsecureSkipVerify: true}, CommandTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if cn := conn.TLSState().PeerCertificates[0].Subject.CommonName; cn != tt.wantCN {
			t.Errorf("%s served a certificate for %q, want %q", tt.host, cn, tt.wantCN)
		}
		conn.Close()
	}
}
