package msgheader

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

func TestEnd(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		end  int
		sep  bool
	}{
		{"header and body", "A: 1\r\nB: 2\r\n\r\nbody\r\n", 12, true},
		{"folded field", "A: 1\r\n\t2\r\n\r\nb", 10, true},
		{"header only", "A: 1\r\n", 6, false},
		{"no final CRLF", "A: 1", 4, false},
		{"no header", "\r\nbody\r\n", 0, true},
		{"body without separator", "A: 1\r\nnot a field\r\nB: 2\r\n", 6, false},
		{"leading continuation", " A: 1\r\n\r\n", 0, false},
		{"obsolete space before colon", "A : 1\r\n\r\n", 7, true},
		{"empty", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if end, sep := End([]byte(tt.msg)); end != tt.end || sep != tt.sep {
				t.Errorf("End(%q) = %d, %v; want %d, %v", tt.msg, end, sep, tt.end, tt.sep)
			}
		})
	}
}

func TestEndWithin(t *testing.T) {
	big := strings.Repeat("X-Filler: "+strings.Repeat("x", 60)+"\r\n", 100) // 7,300 octets
	tests := []struct {
		name  string
		msg   string
		limit int
		ok    bool
	}{
		{"under", big + "\r\nbody", len(big), true},
		{"over", big + "\r\nbody", len(big) - 100, false},
		{"over, never ends", big + big, 1000, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			end, ok := EndWithin([]byte(tt.msg), tt.limit)
			if ok != tt.ok {
				t.Errorf("ok = %v, want %v (end %d)", ok, tt.ok, end)
			}
			if !ok && end > tt.limit+len("X-Filler: ")+62 {
				t.Errorf("read to %d for a limit of %d", end, tt.limit)
			}
		})
	}
}

// TestParseKeepsBytes: a parsed message written back is the same bytes,
// whatever its spacing, folding and spelling.
func TestParseKeepsBytes(t *testing.T) {
	for _, msg := range []string{
		"Received: from a\r\n\tby b; Thu, 02 Jan 2025 03:04:05 +0000\r\nsUbJeCt:no space\r\nX-Long: a\r\n  b\r\n\t c\r\nSubject :  obsolete  \r\n\r\nbody\r\n\r\n",
		"A: 1\r\nnot a field, so the body\r\n",
		"\r\nbody only\r\n",
		"A: 1\r\n",
		"",
	} {
		m, err := Parse([]byte(msg))
		if err != nil {
			t.Fatalf("Parse(%q): %v", msg, err)
		}
		if got := string(m.Bytes()); got != msg {
			t.Errorf("round trip\n got %q\nwant %q", got, msg)
		}
	}
}

func TestHeaderLookups(t *testing.T) {
	m, err := Parse([]byte("Received: one\r\nSubject: hi\r\n there\r\nreceived: two\r\nRECEIVED : three\r\nX-Weird(Name): w\r\n\r\nReceived: in the body\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := &m.Header
	if n := h.Count("Received"); n != 3 {
		t.Errorf("Count(Received) = %d, want 3", n)
	}
	if v := h.Get("SUBJECT"); v != "hi there" {
		t.Errorf("Get(SUBJECT) = %q, want the unfolded value", v)
	}
	if got := strings.Join(h.Values("received"), ","); got != "one,two,three" {
		t.Errorf("Values(received) = %q", got)
	}
	// A name that is not an HTTP token is still compared without case.
	if !h.Has("x-weird(name)") || h.Has("Date") {
		t.Errorf("Has: x-weird(name) %v, Date %v", h.Has("x-weird(name)"), h.Has("Date"))
	}
	var names []string
	for n := range h.Fields() {
		names = append(names, n)
	}
	if got := strings.Join(names, ","); got != "Received,Subject,received,RECEIVED,X-Weird(Name)" {
		t.Errorf("Fields names %q: want them in order, as spelt", got)
	}
}

func TestEdits(t *testing.T) {
	const msg = "Received: from a\r\n by b\r\nX-Tenant: free\r\nSubject: hi\r\nx-tenant: again\r\n\r\nbody X-Tenant: stays\r\n"
	tests := []struct {
		name string
		edit func(h *Header) error
		want string
	}{
		{"add at the top, spelling kept", func(h *Header) error { return h.Add("Message-ID", "<a@b>") },
			"Message-ID: <a@b>\r\n" + msg},
		{"raw trace field at the top", func(h *Header) error { return h.AddRaw([]byte("Received: from c\r\n\tby d\r\n")) },
			"Received: from c\r\n\tby d\r\n" + msg},
		{"append at the bottom", func(h *Header) error { return h.Append("Date", "Thu, 02 Jan 2025 03:04:05 +0000") },
			"Received: from a\r\n by b\r\nX-Tenant: free\r\nSubject: hi\r\nx-tenant: again\r\nDate: Thu, 02 Jan 2025 03:04:05 +0000\r\n\r\nbody X-Tenant: stays\r\n"},
		{"delete every occurrence, any case", func(h *Header) error {
			if n := h.Del("X-TENANT"); n != 2 {
				t.Errorf("Del deleted %d fields, want 2", n)
			}
			return nil
		}, "Received: from a\r\n by b\r\nSubject: hi\r\n\r\nbody X-Tenant: stays\r\n"},
		{"delete a folded field", func(h *Header) error { h.Del("received"); return nil },
			"X-Tenant: free\r\nSubject: hi\r\nx-tenant: again\r\n\r\nbody X-Tenant: stays\r\n"},
		{"set replaces the first in place, deletes the rest", func(h *Header) error { return h.Set("X-Tenant", "paid") },
			"Received: from a\r\n by b\r\nX-Tenant: paid\r\nSubject: hi\r\n\r\nbody X-Tenant: stays\r\n"},
		{"set without one appends", func(h *Header) error { return h.Set("X-Pool", "warm") },
			"Received: from a\r\n by b\r\nX-Tenant: free\r\nSubject: hi\r\nx-tenant: again\r\nX-Pool: warm\r\n\r\nbody X-Tenant: stays\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(msg))
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.edit(&m.Header); err != nil {
				t.Fatal(err)
			}
			if got := string(m.Bytes()); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestCloneIsIndependent(t *testing.T) {
	m, _ := Parse([]byte("Subject: s\r\n\r\nb\r\n"))
	c := m.Header.Clone()
	if err := c.Add("Date", "now"); err != nil {
		t.Fatal(err)
	}
	if m.Header.Has("Date") || !c.Has("Date") || c.Get("Subject") != "s" {
		t.Errorf("clone shares fields with its original: %q / %q", m.Header.Bytes(), c.Bytes())
	}
}

func TestFormat(t *testing.T) {
	long := strings.Repeat("word ", 40)
	tests := []struct {
		name, field, value string
		want               string // "" to check folding instead
		err                string
	}{
		{"short", "X-Pool", "warm", "X-Pool: warm\r\n", ""},
		{"spelling kept", "message-ID", "<a@b>", "message-ID: <a@b>\r\n", ""},
		{"empty value", "X-Empty", "", "X-Empty: \r\n", ""},
		{"long value folded", "Subject", long, "", ""},
		// RFC 2047 §2: a line with encoded words is at most 76 octets.
		{"two long encoded words", "Subject", strings.Repeat("=?utf-8?q?"+strings.Repeat("x", 63)+"?= ", 2) + "end",
			"Subject: =?utf-8?q?" + strings.Repeat("x", 63) + "?=\r\n =?utf-8?q?" + strings.Repeat("x", 63) + "?=\r\n end\r\n", ""},
		{"one long word stays under 998", "X-Token", strings.Repeat("t", 3000), "", ""},
		{"CRLF in value", "X-A", "1\r\nBcc: evil@example.com", "", "contains \\r\\n"},
		{"LF in value", "X-A", "1\nBcc: evil@example.com", "", "contains \\r\\n"},
		{"space in name", "X A", "1", "", "not allowed"},
		{"colon in name", "X:A", "1", "", "not allowed"},
		{"non-ASCII name", "X-Ü", "1", "", "not allowed"},
		{"no name", "", "1", "", "no name"},
		{"long name: value on a continuation line", "X-" + strings.Repeat("n", 80), "a b", "X-" + strings.Repeat("n", 80) + ":\r\n a b\r\n", ""},
		{"long name, long value", "X-" + strings.Repeat("n", 900), long, "", ""},
		{"long name, empty value", "X-" + strings.Repeat("n", 74), "", "X-" + strings.Repeat("n", 74) + ": \r\n", ""},
		{"name longer than a line", strings.Repeat("n", 997), "1", "", "at most 996"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Format(tt.field, tt.value)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Format(%q, %q) = %q, %v; want an error with %q", tt.field, tt.value, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			lines := strings.Split(strings.TrimSuffix(string(got), "\r\n"), "\r\n")
			for i, l := range lines {
				if i == 0 && len(tt.field) > 74 {
					continue // "Name:" alone
				}
				// Past 76 octets only where no white space allows a break.
				breakable := strings.ContainsAny(l[1:], " \t")
				if i == 0 {
					_, rest, _ := strings.Cut(l, ": ")
					breakable = strings.ContainsAny(rest, " \t")
				}
				if len(l) > 998 || (len(l) > 76 && breakable) {
					t.Errorf("line of %d octets: %q", len(l), l)
				}
			}
			if end, sep := End(got); end != len(got) || sep {
				t.Errorf("%q is not one header field", got)
			}
			if strings.Contains(tt.value, " ") {
				// Folding only inserts CRLF before white space (RFC 5322 §2.2.3).
				unfolded := strings.ReplaceAll(strings.ReplaceAll(string(got), ":\r\n ", ": "), "\r\n ", " ")
				if unfolded != tt.field+": "+tt.value+"\r\n" {
					t.Errorf("unfolds to %q", unfolded)
				}
			}
		})
	}
}

func TestAddRawRefusesWhatIsNotOneField(t *testing.T) {
	for _, raw := range []string{
		"", "Received: x", "Received: x\n", "Received: x\r\nSubject: y\r\n", " continuation\r\n",
		"not a field\r\n", "Received: x\r\n\r\n", "Received: a\rb\r\n",
	} {
		var h Header
		if err := h.AddRaw([]byte(raw)); err == nil {
			t.Errorf("AddRaw(%q) accepted", raw)
		}
		if err := h.AppendRaw([]byte(raw)); err == nil {
			t.Errorf("AppendRaw(%q) accepted", raw)
		}
		if h.Len() != 0 {
			t.Errorf("AddRaw(%q) added a field after refusing it", raw)
		}
	}
}

func TestBytesCopiesTheBodyOnce(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	in := append([]byte("Subject: s\r\n\r\n"), body...)
	m, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	if &m.Body[0] != &in[len(in)-len(body)] {
		t.Fatal("Parse copied the body")
	}
	m.Header.Add("Date", "now")
	allocs := testing.AllocsPerRun(10, func() { m.Bytes() })
	if allocs > 2 {
		t.Errorf("%v allocations to write a message, want the one buffer", allocs)
	}
}

var messageIDForm = regexp.MustCompile(`^<[a-z2-7]{26}@mta\.example>$`)

func TestMessageID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := MessageID("mta.example")
		if !messageIDForm.MatchString(id) {
			t.Fatalf("MessageID = %q, want <26 base32 characters@mta.example>", id)
		}
		if seen[id] {
			t.Fatalf("MessageID repeated %q", id)
		}
		seen[id] = true
	}
	if id := MessageID(""); !strings.HasSuffix(id, "@localhost>") {
		t.Errorf("MessageID(\"\") = %q", id)
	}
}

func TestCRLF(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"a\r\nb\r\n":            "a\r\nb\r\n",
		"a\nb\n":                "a\r\nb\r\n",
		"a\rb\r":                "a\r\nb\r\n",
		"a\r\r\nb\n\r\nc\r\n\r": "a\r\n\r\nb\r\n\r\nc\r\n\r\n",
		"no line break at all":  "no line break at all",
	} {
		if got := string(CRLF([]byte(in))); got != want {
			t.Errorf("CRLF(%q) = %q, want %q", in, got, want)
		}
	}
	clean := []byte("A: 1\r\n\r\nbody\r\n")
	if got := CRLF(clean); &got[0] != &clean[0] {
		t.Error("CRLF copied a message that has CRLF line endings only")
	}
}
