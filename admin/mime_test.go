package admin

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"

	"github.com/cuemta/cuemta/internal/msgheader"
)

// decodedPart is what a mail client sees of one MIME leaf.
type decodedPart struct {
	Path, Type  string
	Params      map[string]string // boundary left out
	Disposition string
	DispParams  map[string]string
	ContentID   string
	Body        string // transfer encoding decoded
}

// decodedMessage is what a mail client sees of a message: its fields
// decoded (addresses parsed, encoded words decoded) and its leaves.
type decodedMessage struct {
	Fields map[string]string
	Parts  []decodedPart
}

// decodeMessage reads a message with go-message as a mail client would.
func decodeMessage(t *testing.T, raw []byte) decodedMessage {
	t.Helper()
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read message: %v", err)
	}
	h := mail.Header{Header: e.Header}
	d := decodedMessage{Fields: map[string]string{}}
	fs := h.Fields()
	for fs.Next() {
		k := fs.Key()
		if strings.HasPrefix(k, "Content-") {
			continue // compared with the part
		}
		v, err := fs.Text()
		if err != nil {
			t.Fatalf("field %s: %v", k, err)
		}
		if containsFold(addressHeaders, k) {
			list, err := h.AddressList(k)
			if err != nil {
				t.Fatalf("field %s: %v", k, err)
			}
			v = fmt.Sprint(list) // name and address, whatever the quoting
		}
		d.Fields[k] = v
	}
	walkParts(t, e, "1", &d.Parts)
	return d
}

func walkParts(t *testing.T, e *message.Entity, path string, out *[]decodedPart) {
	t.Helper()
	if mr := e.MultipartReader(); mr != nil {
		for i := 1; ; i++ {
			p, err := mr.NextPart()
			if err == io.EOF {
				return
			}
			if err != nil {
				t.Fatalf("part %s.%d: %v", path, i, err)
			}
			walkParts(t, p, fmt.Sprintf("%s.%d", path, i), out)
		}
	}
	mt, params, _ := e.Header.ContentType()
	delete(params, "boundary")
	disp, dparams, _ := e.Header.ContentDisposition()
	body, err := io.ReadAll(e.Body)
	if err != nil {
		t.Fatalf("part %s: decode: %v", path, err)
	}
	*out = append(*out, decodedPart{Path: path, Type: mt, Params: params, Disposition: disp, DispParams: dparams,
		ContentID: e.Header.Get("Content-Id"), Body: string(body)})
}

// TestInjectGoldensDecodeAsBefore: every injection golden, now written
// by go-message, decodes to the same fields and the same parts (types,
// parameters, dispositions, content IDs, decoded bodies) as the golden
// the hand-written builder made (kept in testdata/inject-before-go-message):
// only boundaries, encodings and quoting changed.
func TestInjectGoldensDecodeAsBefore(t *testing.T) {
	old, err := filepath.Glob("testdata/inject-before-go-message/*.eml")
	if err != nil || len(old) == 0 {
		t.Fatalf("no goldens from before: %v", err)
	}
	for _, path := range old {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			read := func(p string) []byte {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				return msgheader.CRLF(b) // the goldens show CRLF as LF
			}
			before := decodeMessage(t, read(path))
			now := decodeMessage(t, read(filepath.Join(goldenDir, name)))
			if len(before.Parts) == 0 {
				t.Fatal("no parts decoded from the old golden")
			}
			if !reflect.DeepEqual(before.Fields, now.Fields) {
				t.Errorf("fields differ:\nbefore %s\nnow    %s", sortedMap(before.Fields), sortedMap(now.Fields))
			}
			if !reflect.DeepEqual(before.Parts, now.Parts) {
				t.Errorf("parts differ:\nbefore %+v\nnow    %+v", before.Parts, now.Parts)
			}
		})
	}
}

func sortedMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q ", k, m[k])
	}
	return b.String()
}
