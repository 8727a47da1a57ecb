package milter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/reception"
)

// seen is what the in-process milter was told, in order.
type seen struct {
	mu     sync.Mutex
	events []string
	macros map[string]string
	body   []byte
}

func (s *seen) add(e string) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

// testMilter is a milter built with the same library: it records each
// event and answers with the hooks a test case sets.
type testMilter struct {
	gomilter.NoOpMilter
	seen *seen
	// at is the stage to answer with resp at ("connect", "mail", "rcpt",
	// "eom"); every other stage continues.
	at   string
	resp *gomilter.Response
	// eom makes the changes at the end of the message.
	eom   func(m gomilter.Modifier) error
	delay time.Duration // before answering at
}

func (t *testMilter) answer(stage string) (*gomilter.Response, error) {
	if stage != t.at {
		return gomilter.RespContinue, nil
	}
	time.Sleep(t.delay) // a slow scanner; the test waits on the client's timeout
	return t.resp, nil
}

func (t *testMilter) Connect(host, family string, port uint16, addr string, m gomilter.Modifier) (*gomilter.Response, error) {
	t.seen.add("connect " + host + " " + family + " " + addr)
	t.seen.mu.Lock()
	t.seen.macros = map[string]string{"j": m.Get("j"), "{daemon_name}": m.Get("{daemon_name}"), "{client_addr}": m.Get("{client_addr}")}
	t.seen.mu.Unlock()
	return t.answer("connect")
}

func (t *testMilter) Helo(name string, m gomilter.Modifier) (*gomilter.Response, error) {
	t.seen.add("helo " + name)
	return t.answer("helo")
}

func (t *testMilter) MailFrom(from, args string, m gomilter.Modifier) (*gomilter.Response, error) {
	t.seen.add("mail <" + from + "> " + args + " i=" + m.Get(gomilter.MacroQueueId) + " auth=" + m.Get(gomilter.MacroAuthAuthen))
	return t.answer("mail")
}

func (t *testMilter) RcptTo(rcpt, args string, m gomilter.Modifier) (*gomilter.Response, error) {
	t.seen.add("rcpt <" + rcpt + "> " + m.Get(gomilter.MacroRcptAddr))
	return t.answer("rcpt")
}

func (t *testMilter) Header(name, value string, m gomilter.Modifier) (*gomilter.Response, error) {
	t.seen.add("header " + name + ": " + value)
	return gomilter.RespContinue, nil
}

func (t *testMilter) BodyChunk(chunk []byte, m gomilter.Modifier) (*gomilter.Response, error) {
	t.seen.mu.Lock()
	t.seen.body = append(t.seen.body, chunk...)
	t.seen.mu.Unlock()
	return gomilter.RespContinue, nil
}

func (t *testMilter) EndOfMessage(m gomilter.Modifier) (*gomilter.Response, error) {
	t.seen.add("eom")
	if t.eom != nil {
		if err := t.eom(m); err != nil {
			return nil, err
		}
	}
	if t.at == "eom" {
		return t.answer("eom")
	}
	return gomilter.RespAccept, nil
}

// startMilter serves tm on a loopback port (or a unix socket) and
// returns its address in config form.
func startMilter(t *testing.T, tm *testMilter, unix bool, opts ...gomilter.Option) string {
	t.Helper()
	var ln net.Listener
	var err error
	addr := ""
	if unix {
		dir, derr := os.MkdirTemp("", "milter") // short: a socket path has at most 107 bytes
		if derr != nil {
			t.Fatal(derr)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		p := filepath.Join(dir, "m.sock")
		ln, err = net.Listen("unix", p)
		addr = "unix:" + p
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			addr = "inet:" + ln.Addr().String()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]gomilter.Option{
		gomilter.WithMilter(func() gomilter.Milter { return tm }),
		gomilter.WithAction(gomilter.OptAddHeader | gomilter.OptChangeHeader | gomilter.OptChangeBody | gomilter.OptQuarantine),
	}, opts...)
	srv := gomilter.NewServer(opts...)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return addr
}

// nextSink records the message it is given.
type nextSink struct {
	mu  sync.Mutex
	got []*reception.Submission
}

func (n *nextSink) Accept(_ context.Context, s *reception.Submission) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, s)
	return "q1", nil
}

// counts records the metrics.
type counts struct {
	mu               sync.Mutex
	outcomes, errors []string
}

func (c *counts) MilterOutcome(l, m, o string) {
	c.mu.Lock()
	c.outcomes = append(c.outcomes, l+"/"+m+"/"+o)
	c.mu.Unlock()
}

func (c *counts) MilterError(l, m, k string) {
	c.mu.Lock()
	c.errors = append(c.errors, l+"/"+m+"/"+k)
	c.mu.Unlock()
}

const testBody = "Received: from client.example ([192.0.2.7])\r\n\tby mx.test; Mon, 1 Dec 2026 10:00:00 +0000\r\n" +
	"From: alice@example.com\r\nSubject: hello\r\nX-Spam-Flag: YES\r\n\r\nline one\r\nline two\r\n"

func submission() *reception.Submission {
	return &reception.Submission{From: "alice@example.com", Recipients: []string{"bob@example.net", "carol@example.net"},
		Body: []byte(testBody), Listener: "mx", ClientIP: "192.0.2.7", Helo: "client.example", User: "alice",
		TraceID: "t123", EightBitMIME: true}
}

func TestSinkActions(t *testing.T) {
	cases := []struct {
		name string
		tm   testMilter
		// want: the reply code and enhanced code, "discard", or "" for a
		// message handed on with body wantBody.
		want     string
		wantText string
		wantBody string
		outcome  string
	}{
		{name: "continue with added headers", tm: testMilter{eom: func(m gomilter.Modifier) error {
			if err := m.AddHeader("X-Spam-Status", "No, score=0.1 required=5.0\n\ttests=NONE"); err != nil {
				return err
			}
			return m.AddHeader("X-Spam-Checker-Version", "SpamAssassin 4.0.1")
		}}, outcome: "accept",
			wantBody: strings.Replace(testBody, "\r\n\r\n", "\r\nX-Spam-Status: No, score=0.1 required=5.0\r\n\ttests=NONE\r\nX-Spam-Checker-Version: SpamAssassin 4.0.1\r\n\r\n", 1)},
		{name: "change, delete and insert headers", tm: testMilter{eom: func(m gomilter.Modifier) error {
			if err := m.ChangeHeader(1, "Subject", "[SPAM] hello"); err != nil {
				return err
			}
			if err := m.ChangeHeader(1, "X-Spam-Flag", ""); err != nil {
				return err
			}
			return m.InsertHeader(0, "X-Top", "first")
		}}, outcome: "accept",
			wantBody: "X-Top: first\r\n" + strings.NewReplacer("Subject: hello", "Subject: [SPAM] hello", "X-Spam-Flag: YES\r\n", "").Replace(testBody)},
		{name: "replace body with bare LF lines", tm: testMilter{eom: func(m gomilter.Modifier) error {
			return m.ReplaceBody(strings.NewReader("cleaned\nbody\n"))
		}}, outcome: "accept",
			wantBody: strings.Replace(testBody, "line one\r\nline two\r\n", "cleaned\r\nbody\r\n", 1)},
		{name: "reject at end", tm: testMilter{at: "eom", resp: gomilter.RespReject}, outcome: "reject",
			want: "550 5.7.1", wantText: "Message rejected by content filter"},
		{name: "reply code at rcpt", tm: testMilter{at: "rcpt", resp: mustReply(t, 554, "5.7.0 Not for carol")}, outcome: "reject",
			want: "554 5.7.0", wantText: "Not for carol"},
		{name: "multi-line reply code", tm: testMilter{at: "eom", resp: mustReply(t, 550, "5.7.1 Spam detected\nscore 1000")}, outcome: "reject",
			want: "550 5.7.1", wantText: "Spam detected score 1000"},
		{name: "tempfail at mail", tm: testMilter{at: "mail", resp: gomilter.RespTempFail}, outcome: "tempfail",
			want: "451 4.7.1", wantText: "Message temporarily refused by content filter, try again later"},
		{name: "discard at data end", tm: testMilter{at: "eom", resp: gomilter.RespDiscard}, outcome: "discard", want: "discard"},
		{name: "accept at connect", tm: testMilter{at: "connect", resp: gomilter.RespAccept}, outcome: "accept", wantBody: testBody},
		{name: "continue at end", tm: testMilter{at: "eom", resp: gomilter.RespContinue}, outcome: "accept", wantBody: testBody},
		{name: "quarantine", tm: testMilter{eom: func(m gomilter.Modifier) error { return m.Quarantine("virus") }},
			outcome: "quarantine", wantBody: testBody},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tm := tc.tm
			tm.seen = &seen{}
			addr := startMilter(t, &tm, false)
			next, rec := &nextSink{}, &counts{}
			sink, err := Wrap(&config.Listener{Name: "mx", Milters: []config.Milter{{Name: "scan", Addr: addr}}}, "mx.test", next, nil, rec)
			if err != nil {
				t.Fatal(err)
			}
			id, err := sink.Accept(context.Background(), submission())
			var reply *reception.Reply
			var discarded *reception.Discarded
			switch {
			case tc.want == "discard":
				if !errors.As(err, &discarded) || len(next.got) != 0 {
					t.Fatalf("got id %q err %v, handed on %d; want a discard", id, err, len(next.got))
				}
			case tc.want != "":
				if !errors.As(err, &reply) {
					t.Fatalf("got id %q err %v; want %s", id, err, tc.want)
				}
				if got := fmt.Sprintf("%d %s", reply.Code, reply.Enhanced); got != tc.want || reply.Text != tc.wantText {
					t.Errorf("reply %q %q, want %s %q", got, reply.Text, tc.want, tc.wantText)
				}
				if len(next.got) != 0 {
					t.Error("a refused message was handed on")
				}
			default:
				if err != nil || id != "q1" || len(next.got) != 1 {
					t.Fatalf("got id %q err %v, handed on %d", id, err, len(next.got))
				}
				if got := string(next.got[0].Body); got != tc.wantBody {
					t.Errorf("body:\n%q\nwant\n%q", got, tc.wantBody)
				}
			}
			if want := []string{"mx/scan/" + tc.outcome}; strings.Join(rec.outcomes, ",") != want[0] || len(rec.errors) != 0 {
				t.Errorf("counted %v errors %v, want %v", rec.outcomes, rec.errors, want)
			}
		})
	}
}

func mustReply(t *testing.T, code uint16, text string) *gomilter.Response {
	r, err := gomilter.RejectWithCodeAndReason(code, text)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestSinkReplaysTransaction checks what the milter is told: the
// client, HELO, envelope with its parameters, the macros, every header
// field and the body, as Sendmail would send them.
func TestSinkReplaysTransaction(t *testing.T) {
	tm := &testMilter{seen: &seen{}}
	addr := startMilter(t, tm, true)
	next := &nextSink{}
	sink, err := Wrap(&config.Listener{Name: "mx", Milters: []config.Milter{{Name: "scan", Addr: addr}}}, "mx.test", next, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Accept(context.Background(), submission()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"connect [192.0.2.7] tcp4 192.0.2.7",
		"helo client.example",
		"mail <alice@example.com> BODY=8BITMIME i=t123 auth=alice",
		"rcpt <bob@example.net> bob@example.net",
		"rcpt <carol@example.net> carol@example.net",
		"header Received: from client.example ([192.0.2.7])\n\tby mx.test; Mon, 1 Dec 2026 10:00:00 +0000",
		"header From: alice@example.com",
		"header Subject: hello",
		"header X-Spam-Flag: YES",
		"eom",
	}
	if got := strings.Join(tm.seen.events, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("milter saw:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if got := string(tm.seen.body); got != "line one\r\nline two\r\n" {
		t.Errorf("body %q", got)
	}
	if m := tm.seen.macros; m["j"] != "mx.test" || m["{daemon_name}"] != "mx" || m["{client_addr}"] != "192.0.2.7" {
		t.Errorf("connect macros %v", m)
	}
}

// TestSinkChain: the second filter sees the first one's changes, and a
// refusal by the second keeps the message from the next sink.
func TestSinkChain(t *testing.T) {
	first := &testMilter{seen: &seen{}, eom: func(m gomilter.Modifier) error { return m.AddHeader("X-First", "1") }}
	second := &testMilter{seen: &seen{}}
	a1, a2 := startMilter(t, first, false), startMilter(t, second, false)
	next := &nextSink{}
	sink, err := Wrap(&config.Listener{Name: "mx", Milters: []config.Milter{{Name: "one", Addr: a1}, {Name: "two", Addr: a2}}}, "mx.test", next, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Accept(context.Background(), submission()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(second.seen.events, "\n"), "header X-First: 1") {
		t.Errorf("the second filter did not see the first one's header: %v", second.seen.events)
	}
	if len(next.got) != 1 || !strings.Contains(string(next.got[0].Body), "X-First: 1\r\n\r\n") {
		t.Errorf("handed on %v", next.got)
	}
}

// TestSinkErrors: an unreachable, slow or demanding filter is handled by
// its onError, and counted by kind.
func TestSinkErrors(t *testing.T) {
	// A port nobody listens on: listen, note the port, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "inet:" + ln.Addr().String()
	ln.Close()
	slow := startMilter(t, &testMilter{seen: &seen{}, at: "eom", resp: gomilter.RespAccept, delay: 2 * time.Second}, false)
	greedy := startMilter(t, &testMilter{seen: &seen{}}, false, gomilter.WithAction(gomilter.OptAddRcpt))
	short := config.MilterTimeouts{Data: config.Duration(300 * time.Millisecond)}
	cases := []struct {
		name     string
		m        config.Milter
		want     string // reply status, or "" for handed on
		kind     string
		maxTaken time.Duration
	}{
		{name: "unreachable fails closed", m: config.Milter{Addr: dead}, want: "451 4.7.1", kind: "unreachable"},
		{name: "unreachable fails open", m: config.Milter{Addr: dead, OnError: "accept"}, kind: "unreachable"},
		{name: "unreachable rejects", m: config.Milter{Addr: dead, OnError: "reject"}, want: "550 5.7.1", kind: "unreachable"},
		{name: "no socket", m: config.Milter{Addr: "unix:/nonexistent/m.sock"}, want: "451 4.7.1", kind: "unreachable"},
		{name: "slow filter hits the data timeout", m: config.Milter{Addr: slow, Timeouts: short}, want: "451 4.7.1", kind: "timeout", maxTaken: 1500 * time.Millisecond},
		{name: "slow filter hits the total timeout", m: config.Milter{Addr: slow, OnError: "accept",
			Timeouts: config.MilterTimeouts{Total: config.Duration(300 * time.Millisecond)}}, kind: "timeout", maxTaken: 1500 * time.Millisecond},
		{name: "filter wants envelope changes", m: config.Milter{Addr: greedy}, want: "451 4.7.1", kind: "protocol"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.m.Name = "scan"
			next, rec := &nextSink{}, &counts{}
			sink, err := Wrap(&config.Listener{Name: "mx", Milters: []config.Milter{tc.m}}, "mx.test", next, nil, rec)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = sink.Accept(context.Background(), submission())
			took := time.Since(start)
			var reply *reception.Reply
			if tc.want == "" {
				if err != nil || len(next.got) != 1 || string(next.got[0].Body) != testBody {
					t.Fatalf("err %v, handed on %d; want the message unchanged", err, len(next.got))
				}
			} else if !errors.As(err, &reply) || fmt.Sprintf("%d %s", reply.Code, reply.Enhanced) != tc.want || len(next.got) != 0 {
				t.Fatalf("err %v, handed on %d; want %s", err, len(next.got), tc.want)
			}
			if got := strings.Join(rec.errors, ","); got != "mx/scan/"+tc.kind {
				t.Errorf("errors counted %q, want kind %s", got, tc.kind)
			}
			if tc.maxTaken > 0 && took > tc.maxTaken {
				t.Errorf("took %v: the timeout did not stop the wait", took)
			}
		})
	}
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct{ in, network, address string }{
		{"unix:/run/spamass.sock", "unix", "/run/spamass.sock"},
		{"inet:127.0.0.1:8891", "tcp", "127.0.0.1:8891"},
		{"inet:[::1]:8891", "tcp", "[::1]:8891"},
		{"inet:8891", "", ""},
		{"local:/x", "", ""},
	} {
		n, a, err := ParseAddr(tc.in)
		if n != tc.network || a != tc.address || (err != nil) != (tc.network == "") {
			t.Errorf("ParseAddr(%q) = %q %q %v", tc.in, n, a, err)
		}
	}
}

func TestFormatField(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"X-Spam-Status", "No, score=0.1\n\ttests=NONE", "X-Spam-Status: No, score=0.1\r\n\ttests=NONE\r\n"},
		// A line without leading white space would start a field of its
		// own; an empty one would end the header section.
		{"X-A", "one\nInjected: yes\n\ntwo", "X-A: one\r\n\tInjected: yes\r\n\ttwo\r\n"},
		{"X-B", "crlf\r\n folded", "X-B: crlf\r\n folded\r\n"},
	} {
		got, err := formatField(tc.name, tc.value, false)
		if err != nil || string(got) != tc.want {
			t.Errorf("formatField(%q, %q) = %q, %v; want %q", tc.name, tc.value, got, err, tc.want)
		}
	}
	if _, err := formatField("Bad Name", "v", false); err == nil {
		t.Error("a name with a space was accepted")
	}
}
