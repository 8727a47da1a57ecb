package smtpreply

import (
	"errors"
	"testing"
)

// TestFromLines: the join on its own, as delivery reads a reply off the
// wire and policy tests write one as lines.
func TestFromLines(t *testing.T) {
	tests := []struct {
		code           int
		lines          []string
		enhanced, text string
	}{
		{421, nil, "", ""},
		{421, []string{"4.7.28 Our system has detected an unusual rate of", "4.7.28 unsolicited mail."}, "4.7.28", "Our system has detected an unusual rate of unsolicited mail."},
		// The first line decides the code; an empty line adds no space.
		{550, []string{"no code here", "", "5.7.1 still text"}, "", "no code here 5.7.1 still text"},
		// The class must match the code's (RFC 3463 §2).
		{250, []string{"5.1.1 looks like a code"}, "", "5.1.1 looks like a code"},
		{250, []string{"2.0.0"}, "2.0.0", ""},
		{550, []string{"5.1.1   spaced\t"}, "5.1.1", "spaced"},
	}
	for _, tt := range tests {
		r := FromLines(tt.code, tt.lines)
		if r.Enhanced != tt.enhanced || r.Text != tt.text || r.Code != tt.code || len(r.Lines) != len(tt.lines) {
			t.Errorf("FromLines(%d, %q) = %+v; want %q, %q", tt.code, tt.lines, r, tt.enhanced, tt.text)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Reply
		err  bool
	}{
		{"421 4.7.28 rate limited", Reply{Code: 421, Enhanced: "4.7.28", Text: "rate limited"}, false},
		{"421-4.7.28 rate limited", Reply{Code: 421, Enhanced: "4.7.28", Text: "rate limited"}, false},
		{"  550 no such user  ", Reply{Code: 550, Text: "no such user"}, false},
		{"250", Reply{Code: 250}, false},
		{"250 5.1.1 not a code of this class", Reply{Code: 250, Text: "5.1.1 not a code of this class"}, false},
		{"55", Reply{}, true},
		{"abc text", Reply{}, true},
		{"199 too low", Reply{}, true},
		{"600 too high", Reply{}, true},
		{"5500 four digits", Reply{}, true},
		{"+50 sign", Reply{}, true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err != nil) != tt.err {
			t.Errorf("Parse(%q) error %v, want error %v", tt.in, err, tt.err)
			continue
		}
		if got.Code != tt.want.Code || got.Enhanced != tt.want.Enhanced || got.Text != tt.want.Text || got.Lines != nil {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if err == nil {
			// String and Parse round-trip.
			if back, err := Parse(got.String()); err != nil || back.String() != got.String() {
				t.Errorf("Parse(%q).String() = %q reads back as %+v, %v", tt.in, got.String(), back, err)
			}
		}
	}
}

func TestReplyHelpers(t *testing.T) {
	cause := errors.New("disk full")
	tests := []struct {
		r               Reply
		class           int
		temp, perm, pos bool
		err, status     string
	}{
		{Reply{Code: 250, Enhanced: "2.0.0", Text: "Ok", Stage: "eod"}, 2, false, false, true, "smtp eod: 250 2.0.0 Ok", "2.0.0"},
		{Reply{Code: 354, Text: "Go ahead", Stage: "data"}, 3, false, false, false, "smtp data: 354 Go ahead", ""},
		{Reply{Code: 451, Enhanced: "4.7.1", Text: "Greylisted\nretry", Stage: "rcpt"}, 4, true, false, false, "smtp rcpt: 451 4.7.1 Greylisted retry", "4.7.1"},
		{Reply{Code: 550, Text: "No such user", Stage: "rcpt"}, 5, false, true, false, "smtp rcpt: 550 No such user", "5.0.0"},
		{Reply{Code: 451, Enhanced: "4.3.0", Text: "storage error", Cause: cause}, 4, true, false, false, "451 4.3.0 storage error: disk full", "4.3.0"},
	}
	for _, tt := range tests {
		r := tt.r
		if r.Class() != tt.class || r.Temporary() != tt.temp || r.Permanent() != tt.perm || r.Positive() != tt.pos ||
			r.Error() != tt.err || r.Status() != tt.status {
			t.Errorf("%+v: class %d temp %v perm %v pos %v err %q status %q", r, r.Class(), r.Temporary(), r.Permanent(), r.Positive(), r.Error(), r.Status())
		}
	}
	r := New(451, "4.3.0", "x")
	r.Cause = cause
	if !errors.Is(&r, cause) {
		t.Error("a reply does not unwrap to its cause")
	}
}

func TestValidEnhanced(t *testing.T) {
	for s, want := range map[string]bool{"5.1.1": true, "4.7.28": true, "2.0.0": true, "3.0.0": false, "5.1": false, "5.1.1 x": false, "5.1000.1": false, "": false} {
		if ValidEnhanced(s) != want {
			t.Errorf("ValidEnhanced(%q) = %v", s, !want)
		}
	}
}
