package feedback

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/internal/golden"
)

// crlf gives a test file the line endings reception hands a Sink.
func crlf(b []byte) []byte {
	return bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
}

// TestParseGolden parses each real-shaped report in testdata and compares
// what it found with testdata/NAME.golden (go test -update rewrites them).
func TestParseGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".eml")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rep, perr := Parse(crlf(raw))
			if perr != nil && !errors.Is(perr, ErrNotReport) {
				t.Fatalf("Parse: %v", perr)
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				t.Fatal(err)
			}
			out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
			if perr != nil {
				out = append(out, []byte("\nerror: "+perr.Error())...)
			}
			golden.Check(t, filepath.Join("testdata", name+".golden"), append(out, '\n'))
		})
	}
}
