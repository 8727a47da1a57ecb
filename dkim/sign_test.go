package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/cuemta/cuemta/internal/golden"
)

// testKeySet is one key per algorithm and canonicalisation pair (eight),
// all for example.com, with the TXT records that publish them.
type testKeySet struct {
	keys []*Key
	txt  map[string]string
}

var (
	rsaOnce sync.Once
	rsaTest *rsa.PrivateKey
)

// testRSA is one RSA key for the whole test binary: generating 2048-bit
// keys is slow.
func testRSA(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		rsaTest = k
	})
	return rsaTest
}

// testEd25519 is a fixed Ed25519 key, so its signatures are reproducible.
func testEd25519() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
}

func newTestKeySet(t testing.TB, rsaKey *rsa.PrivateKey, headers []string) testKeySet {
	t.Helper()
	set := testKeySet{txt: map[string]string{}}
	rsaPub, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ed := testEd25519()
	for _, alg := range []struct {
		name   string
		signer crypto.Signer
		record string
	}{
		{"rsa", rsaKey, "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(rsaPub)},
		{"ed", ed, "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(ed.Public().(ed25519.PublicKey))},
	} {
		for _, hc := range []string{"relaxed", "simple"} {
			for _, bc := range []string{"relaxed", "simple"} {
				sel := alg.name + "-" + hc + "-" + bc
				k := &Key{Name: sel, Domain: "example.com", Selector: sel, signer: alg.signer, HeaderCanon: hc, BodyCanon: bc, HeaderKeys: headers}
				if err := k.prepare(); err != nil {
					t.Fatal(err)
				}
				set.keys = append(set.keys, k)
				set.txt[sel+"._domainkey.example.com"] = alg.record
			}
		}
	}
	return set
}

// verify checks signed with go-msgauth's verifier and returns one error
// (nil: pass) per signature, in header order. A message without a
// header/body separator gets one, as Sign's contract says it is read.
func (set testKeySet) verify(t testing.TB, signed []byte) []error {
	t.Helper()
	if _, body := parseHeader(signed, nil); body == len(signed) && !hasSeparator(signed) {
		if !bytes.HasSuffix(signed, []byte("\n")) {
			signed = append(signed, "\r\n"...)
		}
		signed = append(signed, "\r\n"...)
	}
	verifs, err := msgdkim.VerifyWithOptions(bytes.NewReader(signed), &msgdkim.VerifyOptions{
		LookupTXT: func(domain string) ([]string, error) {
			if r, ok := set.txt[domain]; ok {
				return []string{r}, nil
			}
			return nil, fmt.Errorf("no TXT record for %s", domain)
		},
	})
	if err != nil {
		t.Fatalf("verifier: %v\n%q", err, signed)
	}
	errs := make([]error, len(verifs))
	for i, v := range verifs {
		errs[i] = v.Err
	}
	return errs
}

// hasSeparator reports whether msg has an empty line ending its header,
// found independently of parseHeader: at the start or after a LF.
func hasSeparator(msg []byte) bool {
	for i := 0; i < len(msg); i++ {
		if i == 0 || msg[i-1] == '\n' {
			if msg[i] == '\n' || bytes.HasPrefix(msg[i:], []byte("\r\n")) {
				return true
			}
		}
	}
	return false
}

// genMessage makes a message with the features that trip signers: folded
// and repeated fields, odd whitespace, 8-bit bytes, bare LF line ends,
// trailing whitespace and empty lines, no body, no separator, bodies
// longer than a canonicalisation chunk.
func genMessage(r *mrand.Rand) []byte {
	nl := "\r\n"
	if r.IntN(8) == 0 {
		nl = "\n" // a message with bare LF line ends (as verifiers read them)
	}
	word := func() string {
		words := []string{"lorem", "ipsum", "caf\xc3\xa9", "\xff\xfe", "dolor", "a", "<x@example.com>", "=?utf-8?q?x?=", "sit"}
		return words[r.IntN(len(words))]
	}
	space := func() string {
		return []string{" ", " ", " ", "  ", "\t", " \t "}[r.IntN(6)]
	}
	var b strings.Builder
	field := func(name string) {
		b.WriteString(name)
		if r.IntN(6) == 0 {
			b.WriteString(space()) // whitespace before the colon
		}
		b.WriteString(":")
		n := r.IntN(30)
		if r.IntN(5) != 0 {
			b.WriteString(space())
		}
		col := len(name) + 2
		for i := 0; i < n; i++ {
			w := word()
			if col+len(w) > 70 && r.IntN(2) == 0 {
				b.WriteString(nl + []string{" ", "\t", "  "}[r.IntN(3)]) // fold
				col = 1
			} else if i > 0 {
				b.WriteString(space())
			}
			b.WriteString(w)
			col += len(w) + 1
		}
		if r.IntN(5) == 0 {
			b.WriteString(space()) // trailing whitespace
		}
		b.WriteString(nl)
	}
	names := []string{"Received", "From", "To", "Subject", "Date", "Message-ID", "X-Repeat", "X-Repeat", "X-Repeat", "cc", "SUBJECT", "X-Other"}
	for _, i := range r.Perm(len(names))[:4+r.IntN(len(names)-4)] {
		if names[i] == "From" && r.IntN(10) == 0 {
			continue // now and then no From: the null string is signed
		}
		field(names[i])
	}
	switch r.IntN(12) {
	case 0:
		return []byte(b.String()) // no separator, no body
	case 1:
		s := b.String()
		return []byte(strings.TrimSuffix(s, nl)) // no separator, last line without a line end
	}
	b.WriteString(nl)
	lines := r.IntN(40)
	if r.IntN(6) == 0 {
		lines = 300 + r.IntN(600) // longer than a chunk of the body scan
	}
	for i := 0; i < lines; i++ {
		switch r.IntN(10) {
		case 0:
			// an empty line
		case 1:
			b.WriteString(space()) // whitespace only
		default:
			if r.IntN(4) == 0 {
				b.WriteString(space()) // leading whitespace
			}
			for j := r.IntN(14); j >= 0; j-- {
				b.WriteString(word())
				if j > 0 {
					b.WriteString(space())
				}
			}
			if r.IntN(4) == 0 {
				b.WriteString(space()) // trailing whitespace
			}
		}
		b.WriteString(nl)
	}
	switch r.IntN(4) {
	case 0:
		b.WriteString(strings.Repeat(nl, 1+r.IntN(4))) // empty lines at the end
	case 1:
		b.WriteString("no final line end" + space())
	}
	return []byte(b.String())
}

// TestSignCrossCheck signs generated messages with RSA and Ed25519 keys in
// all four canonicalisation pairs at once and verifies every signature with
// go-msgauth's verifier, an implementation independent of ours.
func TestSignCrossCheck(t *testing.T) {
	headers := []string{"From", "To", "Subject", "Subject", "X-Repeat", "X-Repeat", "X-Repeat", "X-Repeat", "Date", "Message-ID", "Cc", "X-Absent"}
	set := newTestKeySet(t, testRSA(t), headers)
	r := mrand.New(mrand.NewPCG(1, 2))
	n := 300
	if testing.Short() {
		n = 40
	}
	for i := 0; i < n; i++ {
		msg := genMessage(r)
		signed, err := Sign(msg, set.keys)
		if err != nil {
			t.Fatalf("message %d: %v\n%q", i, err, msg)
		}
		if !bytes.HasSuffix(signed, msg) {
			t.Fatalf("message %d: signing changed the message", i)
		}
		errs := set.verify(t, signed)
		if len(errs) != len(set.keys) {
			t.Fatalf("message %d: %d signatures verified, want %d", i, len(errs), len(set.keys))
		}
		for j, err := range errs {
			if err != nil {
				t.Errorf("message %d, key %s: %v\nsigned:\n%q", i, set.keys[j].Name, err, signed)
			}
		}
		if t.Failed() {
			return
		}
	}
}

// TestSignTamper: the signatures cover what they claim: a changed body
// byte fails every body hash, a changed signed field every signature, a
// field added under a name listed more often than it occurs (the null
// string signed) every signature, and an unsigned field none.
func TestSignTamper(t *testing.T) {
	set := newTestKeySet(t, testRSA(t), []string{"From", "Subject", "Subject", "To"})
	msg := []byte("From: a@example.com\r\nSubject: hello  world\r\nTo: b@example.net\r\n\r\nThe body.\r\n")
	signed, err := Sign(msg, set.keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func([]byte) []byte
		fail   bool
	}{
		{"unchanged", func(b []byte) []byte { return b }, false},
		{"body byte", func(b []byte) []byte { return bytes.Replace(b, []byte("body"), []byte("bodY"), 1) }, true},
		{"signed field", func(b []byte) []byte { return bytes.Replace(b, []byte("hello"), []byte("hellO"), 1) }, true},
		{"second Subject added", func(b []byte) []byte {
			return bytes.Replace(b, []byte("To: b@"), []byte("Subject: x\r\nTo: b@"), 1)
		}, true},
		{"unsigned field added", func(b []byte) []byte {
			return bytes.Replace(b, []byte("To: b@"), []byte("X-New: x\r\nTo: b@"), 1)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := set.verify(t, tc.change(bytes.Clone(signed)))
			for i, err := range errs {
				if (err != nil) != tc.fail {
					t.Errorf("key %s: err = %v, want failure %v", set.keys[i].Name, err, tc.fail)
				}
			}
		})
	}
}

var tagRE = regexp.MustCompile(`(?:^|;)\s*([a-z]+)=`)

// TestSignatureField: the field has the tags v a c d s t h bh b in that
// order, no line over 78 columns, one bh= per body canonicalisation, and
// the exact text of the golden file for a fixed key and time.
func TestSignatureField(t *testing.T) {
	defer func(f func() time.Time) { now = f }(now)
	now = func() time.Time { return time.Unix(1796004000, 0) }
	long := []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post", "Reply-To", "In-Reply-To", "References"}
	set := newTestKeySet(t, testRSA(t), long)
	msg := strings.Replace(message, "Hello Bob.\r\n", "Hello  Bob. \r\n\r\n", 1)
	signed, err := Sign([]byte(msg), set.keys)
	if err != nil {
		t.Fatal(err)
	}
	sigs := strings.SplitAfter(strings.TrimSuffix(string(signed), msg), "\r\n")
	var fields []string
	for _, l := range sigs {
		if len(strings.TrimRight(l, "\r\n")) > foldAt {
			t.Errorf("line over %d columns: %q", foldAt, l)
		}
		if strings.HasPrefix(l, "DKIM-Signature:") {
			fields = append(fields, l)
		} else if l != "" {
			fields[len(fields)-1] += l
		}
	}
	if len(fields) != len(set.keys) {
		t.Fatalf("%d signature fields, want %d", len(fields), len(set.keys))
	}
	bh := map[string]string{}
	for i, f := range fields {
		var tags []string
		for _, m := range tagRE.FindAllStringSubmatch(strings.TrimPrefix(f, "DKIM-Signature:"), -1) {
			tags = append(tags, m[1])
		}
		if got := strings.Join(tags, " "); got != "v a c d s t h bh b" {
			t.Errorf("key %s: tags %q", set.keys[i].Name, got)
		}
		v := regexp.MustCompile(`bh=([^;]*);`).FindStringSubmatch(f)[1]
		if prev, ok := bh[set.keys[i].BodyCanon]; ok && prev != v {
			t.Errorf("body canonicalisation %s: two body hashes %s and %s", set.keys[i].BodyCanon, prev, v)
		}
		bh[set.keys[i].BodyCanon] = v
	}
	if bh["relaxed"] == bh["simple"] {
		t.Error("relaxed and simple body hashes are equal; the message should tell them apart")
	}
	for i, err := range set.verify(t, signed) {
		if err != nil {
			t.Errorf("key %s: %v", set.keys[i].Name, err)
		}
	}
	// The Ed25519 signatures are deterministic (RFC 8032): golden.
	var ed []string
	for i, f := range fields {
		if set.keys[i].Algorithm == "ed25519-sha256" {
			ed = append(ed, f)
		}
	}
	golden.Check(t, filepath.Join("testdata", "signature-ed25519.golden"), []byte(strings.Join(ed, "")))
}

func TestSignErrors(t *testing.T) {
	set := newTestKeySet(t, testRSA(t), []string{"From"})
	for _, tc := range []struct {
		name string
		msg  string
		keys []*Key
		want string
	}{
		{"unprepared key", message, []*Key{{Name: "x", Domain: "example.com", Selector: "s", HeaderKeys: []string{"From"}}}, "not loaded"},
		{"nil key", message, []*Key{nil}, "not loaded"},
		{"folded first line", " From: a@example.com\r\n\r\nbody", set.keys, "folded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Sign([]byte(tc.msg), tc.keys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		key  Key
		want string
	}{
		{"no From", Key{Domain: "example.com", Selector: "s", signer: testEd25519(), HeaderKeys: []string{"To"}}, "From"},
		{"bad canon", Key{Domain: "example.com", Selector: "s", signer: testEd25519(), HeaderKeys: []string{"From"}, BodyCanon: "nowsp"}, "canonicalization"},
		{"bad name", Key{Domain: "example.com", Selector: "s", signer: testEd25519(), HeaderKeys: []string{"From", "X:Y"}}, "field name"},
		{"no selector", Key{Domain: "example.com", signer: testEd25519(), HeaderKeys: []string{"From"}}, "selector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.key.prepare(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("prepare: err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestSignNoKeys returns the message as it is.
func TestSignNoKeys(t *testing.T) {
	got, err := Sign([]byte(message), nil)
	if err != nil || string(got) != message {
		t.Fatalf("Sign(msg, nil) = %q, %v", got, err)
	}
}

// dkimpyScript verifies every DKIM-Signature of each file named on the
// command line with dkimpy (Debian's python3-dkim), a second verifier
// independent of ours, and prints "file index pass|fail" lines. The TXT
// records come as JSON in argv[1], so nothing reaches DNS.
const dkimpyScript = `
import sys, json, dkim
records = json.loads(sys.argv[1])
def dns(name, timeout=5):
    return records.get(name.decode().rstrip(".").lower(), "").encode()
for path in sys.argv[2:]:
    msg = open(path, "rb").read()
    n = sum(1 for l in msg.split(b"\n") if l.lower().startswith(b"dkim-signature:"))
    for i in range(n):
        try:
            ok = dkim.DKIM(msg).verify(idx=i, dnsfunc=dns)
        except Exception as e:
            ok = False
            print(path, i, "error", repr(e))
        print(path, i, "pass" if ok else "fail")
`

// TestSignVerifiedByDkimpy: generated messages signed with all eight keys
// verify with dkimpy too. Left out are messages dkimpy reads differently
// from go-msgauth: a field name followed by whitespace before its colon
// (dkimpy refuses the message), and a body whose last line has trailing
// whitespace and no CRLF (dkimpy keeps one SP there in relaxed, go-msgauth
// and Sign drop it as whitespace at the end of a line, RFC 6376 §3.4.4;
// mail received over SMTP always ends in CRLF).
func TestSignVerifiedByDkimpy(t *testing.T) {
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import dkim, nacl").Run(); err != nil {
		t.Skipf("python3-dkim (with python3-nacl) is not installed; `make deps` installs it: %v", err)
	}
	set := newTestKeySet(t, testRSA(t), []string{"From", "To", "Subject", "Subject", "X-Repeat", "X-Repeat", "Date", "X-Absent"})
	dir := t.TempDir()
	r := mrand.New(mrand.NewPCG(5, 6))
	var files []string
	for len(files) < 60 {
		msg := genMessage(r)
		fields, _ := parseHeader(msg, nil)
		ok := len(msg) == 0 || !isWSP(msg[len(msg)-1])
		for _, f := range fields {
			ok = ok && f.nameEnd < len(msg) && msg[f.nameEnd] == ':'
		}
		if !ok {
			continue
		}
		signed, err := Sign(msg, set.keys)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, fmt.Sprintf("%02d.eml", len(files)))
		if err := os.WriteFile(name, signed, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, name)
	}
	records, _ := json.Marshal(set.txt)
	out, err := exec.Command(python, append([]string{"-c", dkimpyScript, string(records)}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy: %v\n%s", err, out)
	}
	pass := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasSuffix(line, " pass") {
			pass++
			continue
		}
		msg, _ := os.ReadFile(strings.Fields(line)[0])
		t.Errorf("dkimpy: %s\n%.3000q", line, msg)
	}
	if want := len(files) * len(set.keys); pass != want {
		t.Errorf("dkimpy passed %d signatures, want %d", pass, want)
	}
}

// TestSignConcurrent: sessions sign at once, sharing keys and the pool of
// scratch state; every signature still verifies (run with -race).
func TestSignConcurrent(t *testing.T) {
	set := newTestKeySet(t, testRSA(t), []string{"From", "To", "Subject"})
	keys := set.keys[4:] // the Ed25519 ones: fast
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(g), 7))
			for range 10 {
				msg := genMessage(r)
				signed, err := Sign(msg, keys)
				if err != nil {
					errs <- err
					return
				}
				for i, err := range (testKeySet{keys: keys, txt: set.txt}).verify(t, signed) {
					if err != nil {
						errs <- fmt.Errorf("key %s: %w", keys[i].Name, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
