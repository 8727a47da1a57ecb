package dkim

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/cuemta/cuemta/config"
	_ "github.com/cuemta/cuemta/internal/golden"
)

const message = "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: hello\r\nDate: Thu, 26 Nov 2026 04:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nHello Bob.\r\n"

func writeKey(t testing.TB, dir, name string, der []byte, typ string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSignVerifies(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	txt := map[string]string{
		"rsa._domainkey.example.com": "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(rsaPubDER),
		"ed._domainkey.example.com":  "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(edPub),
	}
	cfg := &config.Config{DKIM: config.DKIM{Keys: map[string]*config.DKIMKey{
		"rsa": {Domain: "example.com", Selector: "rsa", KeyFile: writeKey(t, dir, "rsa.pem", x509.MarshalPKCS1PrivateKey(rsaKey), "RSA PRIVATE KEY"), Headers: []string{"From", "To", "Subject"}, Canonicalization: "relaxed/relaxed"},
		"ed":  {Domain: "example.com", Selector: "ed", KeyFile: writeKey(t, dir, "ed.pem", edDER, "PRIVATE KEY"), Headers: []string{"Subject"}, Canonicalization: "simple/simple"},
	}}}
	keys, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rsa", "ed"} {
		t.Run(name, func(t *testing.T) {
			signed, err := keys[name].Sign([]byte(message))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(signed, []byte(message)) {
				t.Fatal("signing changed the message")
			}
			verifs, err := msgdkim.VerifyWithOptions(bytes.NewReader(signed), &msgdkim.VerifyOptions{
				LookupTXT: func(domain string) ([]string, error) { return []string{txt[domain]}, nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "example.com" {
				t.Fatalf("verification = %+v", verifs)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	for _, tc := range []struct{ name, file, want string }{
		{"missing", filepath.Join(dir, "nope.pem"), "cannot read key file"},
		{"not pem", bad, "no PEM block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{DKIM: config.DKIM{Keys: map[string]*config.DKIMKey{"k": {Domain: "example.com", Selector: "s", KeyFile: tc.file}}}}
			_, err := Load(cfg)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestLoadRefusesEd25519ARCSeal: a listener's verify.arcSeal must name an
// RSA key (ARC signs rsa-sha256 only); an RSA key loads.
func TestLoadRefusesEd25519ARCSeal(t *testing.T) {
	dir := t.TempDir()
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	cfg := &config.Config{
		DKIM: config.DKIM{Keys: map[string]*config.DKIMKey{
			"ed":  {Domain: "example.com", Selector: "e", KeyFile: writeKey(t, dir, "e.pem", edDER, "PRIVATE KEY")},
			"rsa": {Domain: "example.com", Selector: "r", KeyFile: writeKey(t, dir, "r.pem", x509.MarshalPKCS1PrivateKey(testRSA(t)), "RSA PRIVATE KEY")},
		}},
		Listeners: map[string]*config.Listener{"mx": {Verify: config.ListenerVerify{ARC: true, ARCSeal: "ed"}}},
	}
	if _, err := Load(cfg); err == nil || !strings.Contains(err.Error(), `listener "mx": verify.arcSeal: dkim key "ed" is ed25519-sha256; ARC seals with RSA keys only`) {
		t.Fatalf("err = %v", err)
	}
	cfg.Listeners["mx"].Verify.ARCSeal = "rsa"
	if _, err := Load(cfg); err != nil {
		t.Fatal(err)
	}
}
