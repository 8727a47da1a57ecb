package mime7bit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-message"

	"github.com/cuemta/cuemta/internal/golden"
)

// crlf turns a test file's LF line endings into the CRLF of mail on the
// wire; lf undoes it for the golden output (the files stay readable and
// diffable). lf refuses a bare LF, which would not survive the trip.
func crlf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) }

func lf(t *testing.T, b []byte) []byte {
	t.Helper()
	if n := bytes.Count(b, []byte("\n")); n != bytes.Count(b, []byte("\r\n")) {
		t.Fatalf("output has a bare LF:\n%q", b)
	}
	return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
}

// leaf is one decoded body part, as an independent MIME reader (go-message)
// sees it.
type leaf struct {
	mediaType string
	body      string
}

// leaves decodes every leaf part of msg with go-message, recursing into
// multiparts and message/rfc822, so that a test compares what a mail
// reader would show rather than bytes.
func leaves(t *testing.T, msg []byte) []leaf {
	t.Helper()
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil && !message.IsUnknownCharset(err) {
		t.Fatalf("go-message cannot read the message: %v", err)
	}
	var out []leaf
	var walk func(e *message.Entity, defType string)
	walk = func(e *message.Entity, defType string) {
		mt, _, _ := e.Header.ContentType()
		if !e.Header.Has("Content-Type") {
			mt = defType
		}
		if mr := e.MultipartReader(); mr != nil {
			def := "text/plain"
			if mt == "multipart/digest" {
				def = "message/rfc822"
			}
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					return
				}
				if err != nil && !message.IsUnknownCharset(err) {
					t.Fatalf("next part: %v", err)
				}
				walk(p, def)
			}
		}
		if mt == "message/rfc822" {
			inner, err := message.Read(e.Body)
			if err != nil && !message.IsUnknownCharset(err) {
				t.Fatalf("embedded message: %v", err)
			}
			walk(inner, "text/plain")
			return
		}
		b, err := io.ReadAll(e.Body)
		if err != nil {
			t.Fatalf("decoding a %s part: %v", mt, err)
		}
		out = append(out, leaf{mt, string(b)})
	}
	walk(e, "text/plain")
	return out
}

// checkConverted asserts the invariants of a conversion of in to out:
// no 8-bit byte left in any body, the same parts with the same decoded
// content, and converting again changes nothing.
func checkConverted(t *testing.T, in, out []byte) {
	t.Helper()
	if BodyHas8bit(out) {
		// Header fields may keep 8-bit data (SMTPUTF8's business); bodies
		// of every level must not.
		for _, l := range bytes.Split(out, []byte("\r\n")) {
			if Has8bit(l) && !bytes.Contains(l, []byte(": ")) {
				t.Fatalf("8-bit line left in the output: %q", l)
			}
		}
	}
	if got, want := leaves(t, out), leaves(t, in); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("decoded parts differ after conversion:\n got %q\nwant %q", got, want)
	}
	again, err := Convert(out)
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("converting the output again changed it (err %v):\n%s", err, again)
	}
}

// TestConvertGolden converts each testdata/NAME.in.eml and compares with
// NAME.out.eml (go test -update rewrites them), then checks the
// invariants on the pair.
func TestConvertGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/*.in.eml")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, path := range ins {
		name := strings.TrimSuffix(filepath.Base(path), ".in.eml")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			in := crlf(raw)
			out, err := Convert(in)
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			golden.Check(t, filepath.Join("testdata", name+".out.eml"), lf(t, out))
			checkConverted(t, in, out)
		})
	}
}

// TestConvertChoices: table cases for each decision the converter makes,
// with the header or body detail that shows it.
func TestConvertChoices(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string // substrings of the output
		not  []string // substrings that must not be there
		same bool     // the output is the input, untouched
		// unread: go-message cannot read the input, so checkConverted's
		// comparison of decoded parts is left out.
		unread bool
	}{
		{name: "7-bit message is returned as is", in: "Subject: x\r\n\r\nhello\r\n", same: true},
		{name: "8-bit header alone is left for SMTPUTF8", in: "Subject: Grüße\r\n\r\nhello\r\n", same: true},
		{name: "no MIME header: utf-8 text becomes QP with MIME fields at the end",
			in:   "Received: x\r\nSubject: s\r\n\r\nGrüße from Cologne, mostly ASCII\r\n",
			want: []string{"Received: x\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe from Cologne, mostly ASCII\r\n"}},
		{name: "no MIME header: invalid UTF-8 is unknown-8bit (RFC 1428)",
			in: "Subject: s\r\n\r\nCaf\xe9 au lait\r\n", want: []string{"charset=unknown-8bit", "Caf=E9 au lait"}},
		{name: "MIME-Version present is not added twice",
			in: "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße, the rest is ASCII\r\n", want: []string{"Content-Transfer-Encoding: quoted-printable"},
			not: []string{"MIME-Version: 1.0\r\nMIME-Version"}},
		{name: "label replaced where it stood",
			in:   "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nX-Next: y\r\n\r\nGrüße, the rest is ASCII\r\n",
			want: []string{"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\nX-Next: y\r\nMIME-Version: 1.0\r\n\r\n"}},
		{name: "mostly 8-bit text is base64", in: "Content-Type: text/plain; charset=utf-8\r\n\r\nΚαλημέρα\r\n",
			want: []string{"Content-Transfer-Encoding: base64\r\n\r\nzprOsc67zrfOvM6tz4HOsQ0K\r\n"}},
		{name: "binary text is base64", in: "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: binary\r\n\r\nGrüße, the rest is ASCII\r\n",
			want: []string{"Content-Transfer-Encoding: base64"}},
		{name: "non-text is base64", in: "Content-Type: application/octet-stream\r\n\r\n\xff\xfe ascii ascii ascii ascii\r\n",
			want: []string{"Content-Transfer-Encoding: base64"}},
		{name: "message/global is encoded as a whole (RFC 6532 §3.5)", in: "Content-Type: message/global\r\n\r\nSubject: Grüße\r\n\r\nx\r\n",
			want: []string{"Content-Transfer-Encoding: base64"}},
		{name: "multipart label 8bit becomes 7bit",
			in:   "Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: 8bit\r\n\r\n--b\r\n\r\nGrüße, the rest is ASCII\r\n--b--\r\n",
			want: []string{"Content-Transfer-Encoding: 7bit\r\n", "--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe, the rest is ASCII\r\n--b--\r\n"}},
		{name: "8-bit preamble and epilogue become ?",
			in:   "Content-Type: multipart/mixed; boundary=b\r\n\r\nprä\r\n--b\r\n\r\nGrüße, the rest is ASCII\r\n--b--\r\nepi\xc3\xa4\r\n",
			want: []string{"\r\n\r\npr??\r\n--b\r\n", "--b--\r\nepi??\r\n"}},
		{name: "unclosed multipart: the last part runs to the end",
			in:     "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nGrüße, the rest is ASCII\r\n",
			want:   []string{"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe"},
			unread: true},
		{name: "boundary with transport padding is a delimiter",
			in:   "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b  \r\n\r\nGrüße, the rest is ASCII\r\n--b--\r\n",
			want: []string{"--b  \r\nContent-Type: text/plain"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Convert([]byte(tc.in))
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			if tc.same && !bytes.Equal(out, []byte(tc.in)) {
				t.Fatalf("output changed:\n%q", out)
			}
			for _, w := range tc.want {
				if !bytes.Contains(out, []byte(w)) {
					t.Errorf("output lacks %q:\n%q", w, out)
				}
			}
			for _, n := range tc.not {
				if bytes.Contains(out, []byte(n)) {
					t.Errorf("output has %q:\n%q", n, out)
				}
			}
			if tc.unread {
				if BodyHas8bit(out) {
					t.Fatalf("8-bit body left: %q", out)
				}
				return
			}
			checkConverted(t, []byte(tc.in), out)
		})
	}
}

// TestConvertRefuses: structures that cannot be made 7-bit without a
// guess are errors wrapping ErrUnconvertible, never a damaged message.
func TestConvertRefuses(t *testing.T) {
	deep := strings.Repeat("Content-Type: message/rfc822\r\n\r\n", maxDepth+2) + "\r\nGrüße\r\n"
	for _, tc := range []struct{ name, in, want string }{
		{"multipart without boundary", "Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nGrüße\r\n", "without a boundary"},
		{"multipart whose boundary is absent", "Content-Type: multipart/mixed; boundary=b\r\n\r\nGrüße\r\n", "not found"},
		{"8-bit in a base64 part", "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nGrüße\r\n", `labelled "base64"`},
		{"8-bit in a quoted-printable part", "Content-Transfer-Encoding: quoted-printable\r\n\r\nGrüße\r\n", `labelled "quoted-printable"`},
		{"unparsable multipart type", "Content-Type: multipart/mixed; boundary\r\n\r\nGrüße\r\n", "Content-Type"},
		{"nesting too deep", deep, "nested deeper"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Convert([]byte(tc.in))
			if !errors.Is(err, ErrUnconvertible) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Convert = %q, %v; want an ErrUnconvertible saying %q", out, err, tc.want)
			}
		})
	}
}
