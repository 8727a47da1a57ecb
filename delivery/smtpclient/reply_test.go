package smtpclient

import (
	"bufio"
	"strings"
	"testing"
)

func TestReplyParsing(t *testing.T) {
	tests := []struct {
		in   string
		want Reply
	}{
		{"250 2.1.5 Ok\r\n", Reply{250, "2.1.5", "Ok", "rcpt"}},
		{"550 5.1.1\r\n", Reply{550, "5.1.1", "", "rcpt"}},
		{"250 Ok\r\n", Reply{250, "", "Ok", "rcpt"}},
		{"250\r\n", Reply{250, "", "", "rcpt"}},
		// Class mismatch: the text merely looks like a code.
		{"250 5.1.1 is a version\r\n", Reply{250, "", "5.1.1 is a version", "rcpt"}},
		{"550-5.7.1 First line\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n", Reply{550, "5.7.1", "First line\nsecond\nthird", "rcpt"}},
		{"421-4.7.0 [TSS04] Messages temporarily deferred\r\n421 see https://help.test\r\n", Reply{421, "4.7.0", "[TSS04] Messages temporarily deferred\nsee https://help.test", "rcpt"}},
		{"452 4.5.3 Too many recipients\n", Reply{452, "4.5.3", "Too many recipients", "rcpt"}},
	}
	for _, tt := range tests {
		c := &Conn{br: bufio.NewReader(strings.NewReader(tt.in))}
		got, err := c.readReply("rcpt")
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if *got != tt.want {
			t.Errorf("%q: got %+v, want %+v", tt.in, *got, tt.want)
		}
	}
}

func TestReplyHelpers(t *testing.T) {
	tests := []struct {
		r               Reply
		class           int
		temp, perm, pos bool
		err             string
	}{
		{Reply{250, "2.0.0", "Ok", StageEOD}, 2, false, false, true, "smtp eod: 250 2.0.0 Ok"},
		{Reply{354, "", "Go ahead", StageData}, 3, false, false, false, "smtp data: 354 Go ahead"},
		{Reply{451, "4.7.1", "Greylisted\nretry", StageRcpt}, 4, true, false, false, "smtp rcpt: 451 4.7.1 Greylisted retry"},
		{Reply{550, "5.1.1", "No such user", StageRcpt}, 5, false, true, false, "smtp rcpt: 550 5.1.1 No such user"},
	}
	for _, tt := range tests {
		r := tt.r
		if r.Class() != tt.class || r.Temporary() != tt.temp || r.Permanent() != tt.perm || r.Positive() != tt.pos || r.Error() != tt.err {
			t.Errorf("%+v: class %d temp %v perm %v pos %v err %q", r, r.Class(), r.Temporary(), r.Permanent(), r.Positive(), r.Error())
		}
	}
}
