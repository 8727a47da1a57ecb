package intake_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/cuemta/cuemta/intake"
	"github.com/cuemta/cuemta/server"
)

// TestPrepareSignsWithEachChosenKey: Prepare signs with every key the
// selection chooses, in order (the first on top), records each signature
// with its alignment in the envelope, and every signature verifies.
func TestPrepareSignsWithEachChosenKey(t *testing.T) {
	dir := t.TempDir()
	txt := map[string]string{}
	var keys string
	for _, k := range []struct{ name, domain string }{
		{"cust-a", "customer.example"}, {"cust-b", "customer.example"}, {"esp", "esp.example"}, {"other", "other.example"},
	} {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		file := filepath.Join(dir, k.name+".pem")
		if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		keys += fmt.Sprintf("\t%q: {domain: %q, selector: %q, keyFile: %q}\n", k.name, k.domain, k.name, file)
		txt[k.name+"._domainkey."+k.domain] = "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	}
	src := fmt.Sprintf(`spool: dir: %q
dkim: {
	keys: {
%s	}
	domains: "customer.example": keys: ["cust-b", "cust-a"]
	default: ["esp"]
}
rules: message: [
	{name: "two", when: "header(\"X-Two\") != \"\"", dkim: ["other", "esp"]},
	{name: "none", when: "header(\"X-None\") != \"\"", dkim: "none"},
	{name: "rewrite", when: "header(\"X-Rewrite\") != \"\"", removeHeaders: ["From"], addHeaders: From: "<news@customer.example>"},
]
`, filepath.Join(dir, "spool"), keys)
	cfgFile := filepath.Join(dir, "c.cue")
	if err := os.WriteFile(cfgFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := server.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, sender, header string
		wantDomains          []string // d= of the signatures, top first
		wantRecord           string
	}{
		{"From: domain's list, in its order", "bounce@esp.example", "From: <news@customer.example>\r\n", []string{"customer.example", "customer.example"},
			"cust-b:customer.example:cust-b:ed25519-sha256:strict,cust-a:customer.example:cust-a:ed25519-sha256:strict"},
		{"subdomain of From: is relaxed", "bounce@esp.example", "From: <news@mail.customer.example>\r\n", []string{"customer.example", "customer.example"},
			"cust-b:customer.example:cust-b:ed25519-sha256:relaxed,cust-a:customer.example:cust-a:ed25519-sha256:relaxed"},
		{"envelope sender, not aligned", "a@other.example", "From: <a@nokey.example>\r\n", []string{"other.example"},
			"other:other.example:other:ed25519-sha256:none"},
		{"default", "a@nokey.example", "From: <a@nokey.example>\r\n", []string{"esp.example"},
			"esp:esp.example:esp:ed25519-sha256:none"},
		{"a rule's list", "a@customer.example", "From: <a@customer.example>\r\nX-Two: y\r\n", []string{"other.example", "esp.example"},
			"other:other.example:other:ed25519-sha256:none,esp:esp.example:esp:ed25519-sha256:none"},
		{"the From: a rule wrote decides", "a@nokey.example", "From: <a@nokey.example>\r\nX-Rewrite: y\r\n", []string{"customer.example", "customer.example"},
			"cust-b:customer.example:cust-b:ed25519-sha256:strict,cust-a:customer.example:cust-a:ed25519-sha256:strict"},
		{"a rule's none", "a@customer.example", "From: <a@customer.example>\r\nX-None: y\r\n", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.header + "Subject: s\r\n\r\nHello.\r\n")
			env, out, _, err := intake.Prepare(&snap.Policy, &intake.Message{From: tc.sender, Recipients: []string{"u@example.net"}, Body: body})
			if err != nil {
				t.Fatal(err)
			}
			if env.DKIM != tc.wantRecord {
				t.Errorf("envelope DKIM %q, want %q", env.DKIM, tc.wantRecord)
			}
			vs, err := msgdkim.VerifyWithOptions(bytes.NewReader(out), &msgdkim.VerifyOptions{
				LookupTXT: func(name string) ([]string, error) { return []string{txt[name]}, nil },
			})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range vs {
				if v.Err != nil {
					t.Errorf("signature d=%s: %v", v.Domain, v.Err)
				}
				got = append(got, v.Domain)
			}
			if !slices.Equal(got, tc.wantDomains) {
				t.Errorf("signatures d= %v, want %v:\n%s", got, tc.wantDomains, out)
			}
		})
	}
}
