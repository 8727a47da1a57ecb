// Package arctest runs dkimpy (Debian's python3-dkim, with
// python3-authres) as the independent ARC implementation of the tests:
// its signer seals messages one hop at a time, and its verifier judges
// chains on the test's key records, never on DNS. Without the modules
// the test is skipped (`make deps` installs them).
package arctest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// python is Debian's, which has python3-dkim; the one on PATH may not be.
const python = "/usr/bin/python3"

// Require skips the test when dkimpy's ARC support cannot be imported.
func Require(t testing.TB) {
	t.Helper()
	if err := exec.Command(python, "-c", "import dkim, authres").Run(); err != nil {
		t.Skipf("python3-dkim with python3-authres is not installed; `make deps` installs them: %v", err)
	}
}

// sealScript adds the hop's Authentication-Results (authserv-id its
// domain) and seals the message read on stdin.
const sealScript = `
import dkim, sys
sel, dom, keyfile, results, t = sys.argv[1:6]
msg = b"Authentication-Results: " + dom.encode() + b"; " + results.encode() + b"\r\n" + sys.stdin.buffer.read()
sig = dkim.arc_sign(msg, sel.encode(), dom.encode(), open(keyfile, "rb").read(), dom.encode(),
                    timestamp=int(t) if t != "0" else None)
if not sig:
    sys.exit("dkimpy made no ARC set")
sys.stdout.buffer.write(b"".join(sig) + msg)
`

// Seal is one hop of dkimpy's: it puts "Authentication-Results: domain;
// results" on top of msg (dkimpy seals what its host wrote, and takes the
// seal's cv from an arc= result there: "arc=pass" from the second hop
// on) and seals with the RSA key in keyFile (PEM) as selector and domain,
// at Unix time t (0: now). dkimpy seals with RSA only.
func Seal(t testing.TB, msg []byte, selector, domain, keyFile, results string, at int64) []byte {
	t.Helper()
	cmd := exec.Command(python, "-c", sealScript, selector, domain, keyFile, results, strconv.FormatInt(at, 10))
	cmd.Stdin = bytes.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dkimpy arc_sign (%s): %v\n%s", domain, err, stderr.Bytes())
	}
	return out
}

const verifyScript = `
import dkim, json, sys
recs = json.loads(sys.argv[1])
def txt(name, timeout=5):
    v = recs.get(name.decode().rstrip(".").lower())
    return v.encode() if v else None
cv, _, _ = dkim.arc_verify(sys.stdin.buffer.read(), dnsfunc=txt)
print(cv.decode() if cv is not None else "terminated")  # None: a hop reported cv=fail
`

// Verify is dkimpy's verdict on msg's chain with the key records given
// (owner name without the root dot, lower case, to TXT value): "pass",
// "fail", "none", or "terminated" when the newest seal says cv=fail.
func Verify(t testing.TB, msg []byte, records map[string]string) string {
	t.Helper()
	recs, _ := json.Marshal(records)
	cmd := exec.Command(python, "-c", verifyScript, string(recs))
	cmd.Stdin = bytes.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dkimpy arc_verify: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}
