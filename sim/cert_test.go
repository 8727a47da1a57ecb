package sim

import (
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/smtpclient"
	"github.com/cuemta/cuemta/internal/testpki"
)

// TestSTARTTLSOwnCertificate: a site with tlsCert and tlsKey serves that
// certificate on STARTTLS; a site without them still serves the sim's.
func TestSTARTTLSOwnCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testpki.Issue(t, testpki.Spec{CommonName: "mx.own.test", DNSNames: []string{"mx.own.test"}}, nil).WriteFiles(t, dir, "own")
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
