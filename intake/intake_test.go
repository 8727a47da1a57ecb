package intake_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cuemta/cuemta/intake"
	"github.com/cuemta/cuemta/internal/mime7bit"
	"github.com/cuemta/cuemta/server"
)

// TestPrepareKeepsFlagsAndSignsSevenBit: the envelope carries SMTPUTF8 and
// 8BITMIME as received; a message that is signed is made 7-bit first (RFC
// 6376 §5.3) unless it is SMTPUTF8, and then no longer claims 8BITMIME;
// an unsigned one is stored as it came.
func TestPrepareKeepsFlagsAndSignsSevenBit(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "k.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "c.cue")
	src := fmt.Sprintf("spool: dir: %q\ndkim: keys: k: {domain: \"signed.test\", selector: \"s\", keyFile: %q}\n", filepath.Join(dir, "spool"), keyFile)
	if err := os.WriteFile(cfgFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := server.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("From: <a@x.test>\r\nSubject: s\r\n\r\nGrüße aus Köln, the rest of this line is ASCII.\r\n")
	for _, tc := range []struct {
		name                      string
		from                      string
		utf8, eight               bool
		wantSigned, want7         bool
		wantUTF8Flag, wantEightFl bool
	}{
		{"unsigned 8-bit is stored as it came", "a@plain.test", false, true, false, false, false, true},
		{"unsigned SMTPUTF8 keeps both flags", "a@plain.test", true, true, false, false, true, true},
		{"signed 8-bit is converted first", "a@signed.test", false, true, true, true, false, false},
		{"signed SMTPUTF8 is signed as it is", "a@signed.test", true, true, true, false, true, true},
		{"8-bit without BODY=8BITMIME is still converted for signing", "a@signed.test", false, false, true, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, out, _, err := intake.Prepare(&snap.Policy, &intake.Message{From: tc.from, Recipients: []string{"u@example.net"}, Body: body,
				SMTPUTF8: tc.utf8, EightBitMIME: tc.eight})
			if err != nil {
				t.Fatal(err)
			}
			if signed := bytes.HasPrefix(out, []byte("DKIM-Signature:")); signed != tc.wantSigned {
				t.Errorf("signed %v, want %v", signed, tc.wantSigned)
			}
			if seven := !mime7bit.BodyHas8bit(out); seven != tc.want7 {
				t.Errorf("7-bit body %v, want %v:\n%s", seven, tc.want7, out)
			}
			if env.SMTPUTF8 != tc.wantUTF8Flag || env.EightBitMIME != tc.wantEightFl {
				t.Errorf("flags SMTPUTF8 %v 8BITMIME %v, want %v %v", env.SMTPUTF8, env.EightBitMIME, tc.wantUTF8Flag, tc.wantEightFl)
			}
		})
	}
}

// TestInjectedFlags: an injection declares nothing, so its content sets
// the flags: a non-ASCII address needs SMTPUTF8.
func TestInjectedFlags(t *testing.T) {
	for _, tc := range []struct {
		from  string
		rcpts []string
		want  bool
	}{
		{"a@x.test", []string{"b@y.test"}, false},
		{"jörg@x.test", []string{"b@y.test"}, true},
		{"a@x.test", []string{"b@y.test", "anna@bücher.test"}, true},
		{"", []string{"b@y.test"}, false},
	} {
		if got := intake.InjectedUTF8(tc.from, tc.rcpts); got != tc.want {
			t.Errorf("InjectedUTF8(%q, %q) = %v, want %v", tc.from, tc.rcpts, got, tc.want)
		}
	}
}
