package smtpclient

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/smtpreply"
)

// FuzzReadReply feeds arbitrary bytes to the reply reader. Invariants: it
// never panics; it returns a reply or an error wrapping ErrMalformedReply
// or the read error (a *NetError either way); a reply has a code in
// 200..599, 1..MaxReplyLines lines of at most MaxLineLen bytes, an
// Enhanced code of the code's class or none, and a Text that is one line
// (no CR or LF) without leading or trailing blanks.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"250 2.1.5 Ok\r\n",
		"250\r\n",
		"550-5.7.1 First line\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n",
		"421-4.7.0 [TSS04] Messages temporarily deferred\r\n421 see https://help.test\r\n",
		"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n",
		"452 4.5.3 Too many recipients\n",
		"250 5.1.1 is a version\r\n",
		"250-a\r\n251 b\r\n",
		"25\r\n",
		"199 nope\r\n",
		"250 \t x \t\r\n",
		"250-" + strings.Repeat("x", MaxLineLen) + "\r\n",
		strings.Repeat("250-x\r\n", MaxReplyLines+1),
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := net.Pipe()
		defer b.Close()
		c := &Conn{w: &wire{nc: a}, br: bufio.NewReaderSize(bytes.NewReader(in), MaxLineLen)}
		r, err := c.readReply(StageRcpt)
		if err != nil {
			var ne *NetError
			if !errors.As(err, &ne) || ne.Stage != StageRcpt {
				t.Fatalf("error %v (%T) is not a *NetError of the stage", err, err)
			}
			if r != nil {
				t.Fatalf("both a reply and an error")
			}
			return
		}
		if r.Code < 200 || r.Code > 599 {
			t.Fatalf("code %d out of range for %q", r.Code, in)
		}
		if len(r.Lines) < 1 || len(r.Lines) > MaxReplyLines {
			t.Fatalf("%d lines", len(r.Lines))
		}
		for _, l := range r.Lines {
			if len(l) > MaxLineLen || strings.ContainsAny(l, "\n") {
				t.Fatalf("line %q too long or with LF", l)
			}
		}
		if strings.ContainsAny(r.Text, "\r\n") {
			t.Fatalf("Text %q (from %q) is not one line", r.Text, in)
		}
		// smtpreply.FromLines trims spaces and tabs around each line and joins the
		// lines with one space.
		if strings.Trim(r.Text, " \t") != r.Text {
			t.Fatalf("Text %q has leading or trailing blanks", r.Text)
		}
		if r.Enhanced != "" {
			if !smtpreply.ValidEnhanced(r.Enhanced) || r.Enhanced[0] != byte('0'+r.Code/100) {
				t.Fatalf("Enhanced %q for code %d", r.Enhanced, r.Code)
			}
		}
		if s := r.String(); strings.ContainsAny(s, "\r\n") {
			t.Fatalf("String() %q is not one line", s)
		}
	})
}
