package reception

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
)

// One server per fuzz process: starting one per input would dominate the
// run. Inputs run one after the other in a process, so the sink's count
// before and after an input tells what that input queued.
var (
	fuzzSrvOnce sync.Once
	fuzzSrvAddr string
	fuzzSrvSink *fakeSink
	fuzzSrvErr  error
)

func fuzzServer(tb testing.TB) (string, *fakeSink) {
	tb.Helper()
	fuzzSrvOnce.Do(func() {
		l := &config.Listener{
			Name: "fuzz",
			Addr: "127.0.0.1:0",
			Mode: "mx",
			Limits: config.ListenerLimits{
				MaxMessageSize:      8 << 10,
				MaxRecipients:       5,
				MaxConnections:      50,
				MaxConnectionsPerIP: 50,
				CommandTimeout:      config.Duration(5 * time.Second),
				DataTimeout:         config.Duration(5 * time.Second),
			},
		}
		p := Policy{
			Hostname: "mx.test",
			Relay: RelayPolicy{
				Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
				Domains:  []string{"example.com"},
			},
			Now: func() time.Time { return testNow },
		}
		fuzzSrvSink = &fakeSink{}
		srv, err := New(l, p, fuzzSrvSink, slog.New(slog.DiscardHandler))
		if err != nil {
			fuzzSrvErr = err
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fuzzSrvErr = err
			return
		}
		fuzzSrvAddr = ln.Addr().String()
		go srv.Serve(ln) // lives as long as the test process
	})
	if fuzzSrvErr != nil {
		tb.Fatalf("start server: %v", fuzzSrvErr)
	}
	return fuzzSrvAddr, fuzzSrvSink
}

// replyLine is one line of an SMTP reply (RFC 5321 §4.2): three digits,
// then space (last line) or dash (more follow), then text without CR or
// LF; the CRLF is checked separately.
var replyLine = regexp.MustCompile(`^([2-5][0-9][0-9])([ -])([^\r\n]*)$`)

var queuedAs = regexp.MustCompile(`^250 2\.0\.0 Ok: queued as (\S+)$`)

// fuzzDeadline bounds one input's whole session: well under the server's
// 5 s timeouts, since the client half-closes after its last byte and the
// server must then answer what it has and close.
const fuzzDeadline = 3 * time.Second

// FuzzSession sends one client transcript (commands and DATA/BDAT content,
// written at once, pipelined, then half-closed) to a real listener.
// Invariants:
//   - every line the server sends is an SMTP reply line ending in CRLF, the
//     lines of a multi-line reply share its code, and nothing follows the
//     last CRLF;
//   - the server finishes within fuzzDeadline of the client's last byte;
//   - every "250 ... queued as ID" names a message the sink stored during
//     this input, and (when the connection ended cleanly, so no reply was
//     lost to a reset) every stored message was acknowledged that way;
//   - a stored message has CRLF line endings only and ends with CRLF.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"HELO client.test\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster@example.com>\r\nDATA\r\nFrom: x\r\n\r\n..dot\r\n.\r\n",
		"EHLO c\r\nMAIL FROM:<a@example.org> BODY=8BITMIME SIZE=100\r\nRCPT TO:<b@example.com>\r\nBDAT 9 LAST\r\nX: y\r\n\r\nb\r\n",
		"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nBDAT 4\r\nX: yBDAT 0 LAST\r\n",
		"EHLO c\r\nMAIL FROM:<a@example.org> SMTPUTF8\r\nRCPT TO:<ü@bücher.example>\r\nRCPT TO:<\"q q\"@example.com>\r\nDATA\r\n\r\n.\r\n",
		// Smuggling attempts: bare LF and CR, and the \r\r\n go-smtp state.
		"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nA: b\r\n\r\nx\n.\nMAIL FROM:<evil@x>\r\n.\r\n",
		"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nA: b\r\n\r\nx\r\r\n.\r\n",
		"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nA: b\r\n\r\nx\r\n.\rX\r\n.\r\n",
		"EHLO c\r\nMAIL FROM:<a@example.org>\r\nMAIL FROM:<a@example.org>\r\nRSET\r\nNOOP\r\nVRFY x\r\nSTARTTLS\r\nAUTH PLAIN AGFAYg==\r\nHELP\r\nQUIT\r\n",
		"EHLO c\r\nRCPT TO:<b@example.com>\r\nDATA\r\nMAIL FROM:<@relay:a@example.org>\r\nRCPT TO:<b@[127.0.0.1]>\r\nRCPT TO:<c@[IPv6:::1]>\r\n",
		"GARBAGE\r\n\r\n" + strings.Repeat("A", 3000) + "\r\nQUIT\r\n",
		"EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n" + strings.Repeat("line\r\n", 2000) + ".\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		addr, sink := fuzzServer(t)
		before := len(sink.got())

		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(fuzzDeadline))
		// Write everything (the server may stop reading: ignore write
		// errors), then half-close so the server sees the end.
		go func() {
			conn.Write(script)
			conn.(*net.TCPConn).CloseWrite()
		}()
		out, rerr := io.ReadAll(conn)
		clean := true
		var ne net.Error
		switch {
		case rerr == nil:
		case errors.As(rerr, &ne) && ne.Timeout():
			t.Fatalf("server still talking or silent %v after the client's last byte; got so far:\n%q", fuzzDeadline, out)
		case errors.Is(rerr, syscall.ECONNRESET):
			clean = false // the kernel may have dropped unread replies
		default:
			t.Fatalf("read: %v", rerr)
		}

		if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
			if clean {
				t.Fatalf("output does not end in CRLF: %q", out)
			}
			out = out[:bytes.LastIndex(out, []byte("\r\n"))+2]
		}
		var acked []string
		pending := "" // code of an unfinished multi-line reply
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<20)
		sc.Split(splitCRLF)
		for sc.Scan() {
			line := sc.Text()
			m := replyLine.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("malformed reply line %q in\n%q", line, out)
			}
			if pending != "" && m[1] != pending {
				t.Fatalf("code changed inside a multi-line reply at %q in\n%q", line, out)
			}
			pending = ""
			if m[2] == "-" {
				pending = m[1]
			}
			if q := queuedAs.FindStringSubmatch(line); q != nil {
				acked = append(acked, q[1])
			}
		}
		if pending != "" && clean {
			t.Fatalf("unfinished multi-line reply at the end of\n%q", out)
		}

		subs := sink.got()[before:]
		stored := map[string]bool{}
		for i, s := range subs {
			stored["Q"+strconv.Itoa(before+i+1)] = true
			if hasBareCRorLF(s.Body) || !bytes.HasSuffix(s.Body, []byte("\r\n")) {
				t.Errorf("stored message with bare CR/LF or no final CRLF: %q", s.Body)
			}
		}
		for _, id := range acked {
			if !stored[id] {
				t.Errorf("server said queued as %s, but the sink stored only %v", id, keys(stored))
			}
			delete(stored, id)
		}
		if clean && len(stored) > 0 {
			t.Errorf("messages %v stored without a 250 reply; server said\n%q", keys(stored), out)
		}
	})
}

// splitCRLF splits at CRLF only; a bare LF or CR stays inside a line, where
// replyLine refuses it.
func splitCRLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.Index(data, []byte("\r\n")); i >= 0 {
		return i + 2, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
