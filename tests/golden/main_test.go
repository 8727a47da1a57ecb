package golden

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// cuemta is the path of the binary built from cmd/cuemta for these tests:
// the golden files record what the real command prints and the exit status
// it really returns, not a status the test works out for itself.
var cuemta string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cuemta-golden-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cuemta = filepath.Join(dir, "cuemta")
	build := exec.Command(goTool(), "build", "-o", cuemta, "github.com/cuemta/cuemta/cmd/cuemta")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building cuemta: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// goTool is the go command that runs these tests.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// run runs `cuemta args...` in this directory (so paths in its output are
// relative to it) and returns its output as the golden files hold it:
// stdout, then stderr after a "--- stderr" line if there is any, then
// "exit N" with the process's exit status.
func run(t *testing.T, args ...string) (out []byte, code int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(cuemta, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		code = ee.ExitCode()
	default:
		t.Fatalf("cuemta %v: %v", args, err)
	}
	b := stdout.Bytes()
	if stderr.Len() > 0 {
		b = append(b, "--- stderr\n"...)
		b = append(b, stderr.Bytes()...)
	}
	return fmt.Appendf(b, "exit %d\n", code), code
}
