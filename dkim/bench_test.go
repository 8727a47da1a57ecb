package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/cuemta/cuemta/config"
)

// BenchmarkSign signs 2 KB and 100 KB messages (relaxed/relaxed, five
// header fields) with RSA 2048, Ed25519 and both, with our signer
// ("ours") and, as the same-run baseline, the go-msgauth loop Sign used to
// be ("msgauth"). Compare ns/op and allocs/op of a pair as a ratio.
func BenchmarkSign(b *testing.B) {
	dir := b.TempDir()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	headers := []string{"From", "To", "Subject", "Date", "Message-ID"}
	cfg := &config.Config{DKIM: config.DKIM{Keys: map[string]*config.DKIMKey{
		"rsa2048": {Domain: "example.com", Selector: "r", KeyFile: writeKey(b, dir, "r.pem", x509.MarshalPKCS1PrivateKey(rsaKey), "RSA PRIVATE KEY"), Headers: headers, Canonicalization: "relaxed/relaxed"},
		"ed25519": {Domain: "example.com", Selector: "e", KeyFile: writeKey(b, dir, "e.pem", edDER, "PRIVATE KEY"), Headers: headers, Canonicalization: "relaxed/relaxed"},
	}}}
	keys, err := Load(cfg)
	if err != nil {
		b.Fatal(err)
	}
	sets := []struct {
		name string
		keys []*Key
	}{
		{"rsa2048", []*Key{keys["rsa2048"]}},
		{"ed25519", []*Key{keys["ed25519"]}},
		{"both", []*Key{keys["rsa2048"], keys["ed25519"]}},
	}
	for _, size := range []int{2 << 10, 100 << 10} {
		msg := benchMessage(size)
		for _, set := range sets {
			for _, impl := range []struct {
				name string
				sign func([]byte, []*Key) ([]byte, error)
			}{{"ours", Sign}, {"msgauth", signMsgauth}} {
				b.Run(fmt.Sprintf("%dKB/%s/%s", size>>10, set.name, impl.name), func(b *testing.B) {
					b.SetBytes(int64(len(msg)))
					b.ReportAllocs()
					for b.Loop() {
						if _, err := impl.sign(msg, set.keys); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

// benchMessage is a text message of about size bytes: lines of words,
// some with trailing whitespace, a double space or a tab, as mail has.
func benchMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: News <news@example.com>\r\nTo: reader@example.net\r\nSubject: the weekly\r\n  letter\r\nDate: Thu, 26 Nov 2026 04:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	lines := []string{
		"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod\r\n",
		"tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim  \r\n",
		"veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea\r\n",
		"\r\n",
		"commodo consequat.  Duis aute irure dolor in\treprehenderit in voluptate\r\n",
	}
	for i := 0; b.Len() < size; i++ {
		b.WriteString(lines[i%len(lines)])
	}
	return b.Bytes()
}

// signMsgauth is Sign as it was before our signer: go-msgauth's Signer
// once per key (a pipe, a goroutine and a body hash per key). Kept for
// benchmarks only.
func signMsgauth(msg []byte, keys []*Key) ([]byte, error) {
	sigs := make([]string, len(keys))
	for i, k := range keys {
		s, err := msgdkim.NewSigner(&msgdkim.SignOptions{
			Domain: k.Domain, Selector: k.Selector, Signer: k.signer, Hash: crypto.SHA256,
			HeaderCanonicalization: msgdkim.Canonicalization(k.HeaderCanon),
			BodyCanonicalization:   msgdkim.Canonicalization(k.BodyCanon),
			HeaderKeys:             k.HeaderKeys,
		})
		if err != nil {
			return nil, fmt.Errorf("dkim %s: %w", k.Name, err)
		}
		if _, err := s.Write(msg); err != nil {
			s.Close()
			return nil, fmt.Errorf("dkim %s: %w", k.Name, err)
		}
		if err := s.Close(); err != nil {
			return nil, fmt.Errorf("dkim %s: %w", k.Name, err)
		}
		sigs[i] = s.Signature()
	}
	var out bytes.Buffer
	n := len(msg)
	for _, s := range sigs {
		n += len(s)
	}
	out.Grow(n)
	for _, s := range sigs {
		out.WriteString(s)
	}
	out.Write(msg)
	return out.Bytes(), nil
}

// BenchmarkBodyHash is the body alone, 100 KB, one canonicalisation and
// both in one pass: what signing costs beyond the key operation.
func BenchmarkBodyHash(b *testing.B) {
	msg := benchMessage(100 << 10)
	_, body := parseHeader(msg, nil)
	ed := &Key{Domain: "example.com", Selector: "s", signer: testEd25519(), HeaderKeys: []string{"From"}}
	for _, tc := range []struct {
		name string
		bc   []string
	}{{"relaxed", []string{"relaxed"}}, {"simple", []string{"simple"}}, {"both", []string{"relaxed", "simple"}}} {
		var keys []*Key
		for _, bc := range tc.bc {
			k := *ed
			k.BodyCanon = bc
			if err := k.prepare(); err != nil {
				b.Fatal(err)
			}
			keys = append(keys, &k)
		}
		b.Run(tc.name, func(b *testing.B) {
			s := statePool.Get().(*state)
			b.SetBytes(int64(len(msg) - body))
			b.ReportAllocs()
			for b.Loop() {
				s.hashBody(msg[body:], keys)
			}
		})
	}
}
