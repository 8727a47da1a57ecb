// Package packaging tests the deployment files beside it: the systemd unit
// (with systemd-analyze verify), the Dockerfile at the repository root,
// the Kubernetes manifests and the configs they ship. Each config is loaded
// and vetted with the secrets it names replaced by generated files, and
// each file is checked against the others: the spool one of them names is
// where another keeps its volume, a probe's port is where the config puts
// the admin API.
package packaging

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
	_ "github.com/cuemta/cuemta/internal/golden" // defines -update, which go test ./... -update passes to every package
	"github.com/cuemta/cuemta/internal/testpki"
)

// root is the repository root, relative to this package.
const root = ".."

// binary is cuemta built by the Dockerfile's own build command (see
// TestMain), used to vet configs and as the unit's ExecStart.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cuemta-packaging-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "cuemta")
	if err := buildLikeDockerfile(binary); err != nil {
		fmt.Fprintln(os.Stderr, "building cuemta with the Dockerfile's command:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildLikeDockerfile runs the `go build` of the Dockerfile's build stage,
// with its output redirected to out and VERSION set to "packaging-test",
// so that the flags the image is built with are the ones tested here.
func buildLikeDockerfile(out string) error {
	df, err := parseDockerfile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return err
	}
	var cmd string
	for _, in := range df.stages[0].instructions {
		if in.keyword != "RUN" || !strings.Contains(in.args, "go build") {
			continue
		}
		cmd, _, _ = strings.Cut(in.args, "&&")
		break
	}
	if cmd == "" {
		return fmt.Errorf("no RUN ... go build in the Dockerfile's first stage")
	}
	target := "/out/usr/local/bin/cuemta"
	if !strings.Contains(cmd, "-o "+target) {
		return fmt.Errorf("the build does not write %s: %s", target, cmd)
	}
	cmd = strings.ReplaceAll(cmd, "-o "+target, "-o "+out)
	sh := exec.Command("sh", "-c", cmd)
	sh.Dir = root
	sh.Env = append(os.Environ(), "VERSION=packaging-test")
	sh.Stdout, sh.Stderr = os.Stderr, os.Stderr
	return sh.Run()
}

// secret says what a config's file reference must hold for the config to
// load: a certificate, its key, or a DKIM key.
type secret int

const (
	tlsCert secret = iota
	tlsKey
	dkimKey
)

// loadWithSecrets writes the CUE text src as cuemta.cue in a new directory,
// with each path of files replaced by a generated file of its kind, vets it
// with the binary and loads it. Every path of files must appear in src:
// a config that stops naming one fails here rather than going untested.
func loadWithSecrets(t *testing.T, name, src string, files map[string]secret) *config.Config {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	for path, kind := range files {
		if !strings.Contains(src, `"`+path+`"`) {
			t.Fatalf("%s no longer names %s; update the test's list of its files", name, path)
		}
		local := filepath.Join(dir, "secrets", strings.ReplaceAll(strings.TrimPrefix(path, "/"), "/", "_"))
		var data []byte
		switch kind {
		case tlsCert:
			data = certPEM
		case tlsKey:
			data = keyPEM
		case dkimKey:
			data = ed25519Key(t)
		}
		if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(local, data, 0o600); err != nil {
			t.Fatal(err)
		}
		src = strings.ReplaceAll(src, `"`+path+`"`, `"`+local+`"`)
	}
	file := filepath.Join(dir, "cuemta.cue")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	vet := exec.Command(binary, "vet", file)
	if out, err := vet.CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("cuemta vet %s (%v):\n%s", name, err, out)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	return cfg
}

// selfSigned returns a certificate for mta1.example.com and its key, PEM.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	return testpki.Issue(t, testpki.Spec{CommonName: "mta1.example.com", DNSNames: []string{"mta1.example.com"}, NotAfter: time.Now().Add(24 * time.Hour)}, nil).PEM(t)
}

// ed25519Key returns a DKIM signing key, PKCS#8 PEM.
func ed25519Key(t *testing.T) []byte {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
