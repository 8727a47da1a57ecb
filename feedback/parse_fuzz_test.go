package feedback

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes Parse panic, and what it returns always has a
// kind.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(crlf(b))
		}
	}
	f.Add([]byte("Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\nContent-Type: message/delivery-status\r\n\r\n\r\n\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		rep, _ := Parse(msg)
		if rep == nil || rep.Kind == "" {
			t.Fatalf("Parse returned %+v", rep)
		}
	})
}
