package main

import (
	"bytes"
	"errors"
	"net"
	"net/textproto"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/smtpclient"
)

func TestParseSendmailArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want sendmailOpts
		err  string
	}{
		{args: []string{"bob@example.com"}, want: sendmailOpts{recipients: []string{"bob@example.com"}}},
		{args: []string{"-t", "-i"}, want: sendmailOpts{extract: true, ignoreDots: true}},
		{args: []string{"-ti"}, want: sendmailOpts{extract: true, ignoreDots: true}},
		{args: []string{"-oi", "-t"}, want: sendmailOpts{extract: true, ignoreDots: true}},
		{args: []string{"-o", "i"}, want: sendmailOpts{ignoreDots: true}},
		{args: []string{"-odi", "-oem", "-bm", "-v", "-n", "-U", "-Am", "-oQ/var/spool", "a@x.example"}, want: sendmailOpts{verbose: true, recipients: []string{"a@x.example"}}},
		{args: []string{"-f", "me@example.com", "a@x.example"}, want: sendmailOpts{from: "me@example.com", fromSet: true, recipients: []string{"a@x.example"}}},
		{args: []string{"-fme@example.com"}, want: sendmailOpts{from: "me@example.com", fromSet: true}},
		{args: []string{"-r", "me@example.com"}, want: sendmailOpts{from: "me@example.com", fromSet: true}},
		{args: []string{"-f", "<>"}, want: sendmailOpts{from: "<>", fromSet: true}},
		{args: []string{"-F", "John Doe", "-FJane"}, want: sendmailOpts{fullName: "Jane"}},
		{args: []string{"-c", "/etc/cuemta", "-C/other"}, want: sendmailOpts{config: "/other"}},
		{args: []string{"-B", "8BITMIME", "-N", "never", "-R", "hdrs", "-V", "envid", "-h", "30", "a@x.example"}, want: sendmailOpts{recipients: []string{"a@x.example"}}},
		{args: []string{"-i", "--", "-weird@x.example", "b@x.example"}, want: sendmailOpts{ignoreDots: true, recipients: []string{"-weird@x.example", "b@x.example"}}},
		{args: []string{"-bp"}, want: sendmailOpts{mode: "mailq"}},
		{args: []string{"-bi"}, want: sendmailOpts{mode: "newaliases"}},
		{args: []string{"-q"}, want: sendmailOpts{mode: "flush"}},
		{args: []string{"-q1h"}, want: sendmailOpts{mode: "flush"}},
		{args: []string{"-d0.1", "-em", "-"}, want: sendmailOpts{recipients: []string{"-"}}},
		{args: []string{"-f"}, err: "-f needs a value"},
		{args: []string{"-bs"}, err: "-bs is not supported"},
		{args: []string{"-Z"}, err: "unknown flag -Z"},
		{args: []string{"-tZ"}, err: "unknown flag -Z"},
	} {
		got, err := parseSendmailArgs(c.args)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err = %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if !reflect.DeepEqual(*got, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.args, *got, c.want)
		}
	}
}

func TestReadSendmailInput(t *testing.T) {
	for _, c := range []struct {
		in         string
		ignoreDots bool
		want       string
	}{
		{"Subject: x\n\nbody\n.\nafter\n", false, "Subject: x\n\nbody\n"},
		{"Subject: x\r\n\r\nbody\r\n.\r\nafter\r\n", false, "Subject: x\r\n\r\nbody\r\n"},
		{"Subject: x\n\nbody\n.\nafter\n", true, "Subject: x\n\nbody\n.\nafter\n"},
		{"Subject: x\n\n..two dots\n. not alone\n", false, "Subject: x\n\n..two dots\n. not alone\n"},
		{"Subject: x\n\nbody\n.", false, "Subject: x\n\nbody\n"},
		{"no newline at the end", false, "no newline at the end"},
		{"", false, ""},
	} {
		got, err := readSendmailInput(strings.NewReader(c.in), c.ignoreDots, 1000)
		if err != nil || string(got) != c.want {
			t.Errorf("read(%q, -i=%v) = %q, %v; want %q", c.in, c.ignoreDots, got, err, c.want)
		}
	}
	if _, err := readSendmailInput(strings.NewReader(strings.Repeat("x", 101)), true, 100); !errors.Is(err, errTooLarge) {
		t.Errorf("101 bytes with a limit of 100: %v", err)
	}
	if got, err := readSendmailInput(strings.NewReader(strings.Repeat("x", 100)), true, 100); err != nil || len(got) != 100 {
		t.Errorf("100 bytes with a limit of 100: %d, %v", len(got), err)
	}
	// Whatever follows the dot is not read against the limit.
	if _, err := readSendmailInput(strings.NewReader("a\n.\n"+strings.Repeat("x", 50)), false, 10); err != nil {
		t.Errorf("text after the dot counted: %v", err)
	}
}

var testDefaults = messageDefaults{
	from: "alice@mta.example", fallback: "alice@mta.example", hostname: "mta.example",
	now: time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC), messageID: "<fixed@mta.example>",
}

func TestPrepareSendmailMessage(t *testing.T) {
	for _, c := range []struct {
		name    string
		in      string
		extract bool
		rcpts   []string
		has     []string // substrings of the result
		hasNot  []string
	}{
		{
			name:    "extract and remove Bcc",
			in:      "From: Alice <alice@example.com>\nTo: bob@example.com, \"Carol C\" <carol@example.com>\nCc: dave@example.com\nBcc: eve@example.com,\n  frank@example.com\nSubject: hi\n\nbody\n",
			extract: true,
			rcpts:   []string{"bob@example.com", "carol@example.com", "dave@example.com", "eve@example.com", "frank@example.com"},
			has:     []string{"From: Alice <alice@example.com>\r\n", "To: bob@example.com, \"Carol C\" <carol@example.com>\r\n", "Subject: hi\r\n", "\r\n\r\nbody\r\n"},
			hasNot:  []string{"Bcc", "eve@", "frank@"},
		},
		{
			name:   "Bcc removed without -t too",
			in:     "To: bob@example.com\nbcc: eve@example.com\n\nbody\n",
			hasNot: []string{"eve@"},
		},
		{
			name:    "bare local names are qualified",
			in:      "To: root, postmaster\nCc: undisclosed-recipients:;\n\nbody\n",
			extract: true,
			rcpts:   []string{"root@mta.example", "postmaster@mta.example"},
		},
		{
			name:    "group syntax",
			in:      "To: team: a@example.com, b@example.com;\n\nbody\n",
			extract: true,
			rcpts:   []string{"a@example.com", "b@example.com"},
		},
		{
			name:   "existing Date and Message-ID are kept",
			in:     "From: a@example.com\nDate: Mon, 02 Jan 2006 15:04:05 -0700\nMessage-Id: <orig@example.com>\n\nbody",
			has:    []string{"Date: Mon, 02 Jan 2006 15:04:05 -0700\r\n", "Message-Id: <orig@example.com>\r\n", "\r\n\r\nbody\r\n"},
			hasNot: []string{"<fixed@mta.example>", "Sat, 14 Mar"},
		},
		{
			name:   "no header section: all body",
			in:     "just a line of text: with a colon after spaces\nsecond line\n",
			has:    []string{"From: alice@mta.example\r\n", "Date: Sat, 14 Mar 2026 15:09:26 +0000\r\nMessage-ID: <fixed@mta.example>\r\n\r\njust a line"},
			hasNot: []string{"\n\n"},
		},
		{
			name:   "mbox From line dropped",
			in:     "From alice Sat Mar 14 15:09:26 2026\nSubject: x\n\nbody\n",
			has:    []string{"Subject: x\r\n"},
			hasNot: []string{"From alice"},
		},
		{
			name: "headers end without a blank line",
			in:   "Subject: x\nthis is the body\n",
			has:  []string{"Subject: x\r\nFrom: alice@mta.example\r\n", "\r\n\r\nthis is the body\r\n"},
		},
		{
			// RFC 5322 §4.5: white space before the colon is obsolete
			// syntax, still a field; the fields keep their bytes.
			name: "obsolete field syntax kept as a field",
			in:   "Subject : x\nX-Folded: a\n\tb\n\nbody\n",
			has:  []string{"Subject : x\r\nX-Folded: a\r\n\tb\r\nFrom: alice@mta.example\r\n", "\r\n\r\nbody\r\n"},
		},
		{
			name: "bare CR and CRLF become CRLF",
			in:   "Subject: x\r\n\r\na\rb\r\nc\n",
			has:  []string{"\r\n\r\na\r\nb\r\nc\r\n"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := testDefaults
			d.extract = c.extract
			msg, rcpts, err := prepareSendmailMessage([]byte(c.in), &d)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rcpts, c.rcpts) {
				t.Errorf("recipients %q, want %q", rcpts, c.rcpts)
			}
			s := string(msg)
			if strings.Contains(strings.ReplaceAll(s, "\r\n", ""), "\n") {
				t.Errorf("bare LF in %q", s)
			}
			for _, h := range c.has {
				if !strings.Contains(s, h) {
					t.Errorf("no %q in\n%s", h, s)
				}
			}
			for _, h := range c.hasNot {
				if strings.Contains(s, h) {
					t.Errorf("%q in\n%s", h, s)
				}
			}
		})
	}
}

func TestPrepareSendmailMessageGolden(t *testing.T) {
	d := testDefaults
	d.extract = true
	d.fullName = "Alice Liddell"
	msg, _, err := prepareSendmailMessage([]byte("To: bob@example.com\nBcc: secret@example.com\nSubject: cron output\n\nline 1\nline 2\n"), &d)
	if err != nil {
		t.Fatal(err)
	}
	wantText(t, string(bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))), `To: bob@example.com
Subject: cron output
From: "Alice Liddell" <alice@mta.example>
Date: Sat, 14 Mar 2026 15:09:26 +0000
Message-ID: <fixed@mta.example>

line 1
line 2
`)
}

func TestPrepareSendmailMessageBadHeader(t *testing.T) {
	d := testDefaults
	d.extract = true
	if _, _, err := prepareSendmailMessage([]byte("To: a@@b\n\nx"), &d); err == nil || !strings.Contains(err.Error(), "header To") {
		t.Errorf("err = %v", err)
	}
}

func TestPickListener(t *testing.T) {
	l := func(name string, auth bool) *config.Listener {
		return &config.Listener{Name: name, Addr: "127.0.0.1:25", Auth: config.ListenerAuth{Enabled: auth}}
	}
	for _, c := range []struct {
		listeners []*config.Listener
		want      string
	}{
		{[]*config.Listener{l("mx", false), l("submission", false)}, "submission"},
		{[]*config.Listener{l("mx", false), l("submission", true)}, "mx"},
		{[]*config.Listener{l("b", false), l("a", false)}, "a"},
		{[]*config.Listener{l("a", true), l("b", false)}, "b"},
		{[]*config.Listener{l("a", true)}, ""},
		{nil, ""},
	} {
		cfg := &config.Config{Listeners: map[string]*config.Listener{}}
		for _, x := range c.listeners {
			cfg.Listeners[x.Name] = x
		}
		got, err := pickListener(cfg)
		if c.want == "" {
			if err == nil {
				t.Errorf("%v: picked %s, want an error", c.listeners, got.Name)
			}
			continue
		}
		if err != nil || got.Name != c.want {
			t.Errorf("picked %v (%v), want %s", got, err, c.want)
		}
	}
}

// submission records what sendmail handed to submit.
type submission struct {
	addr, helo, from string
	rcpts            []string
	msg              string
}

func sendmailTestEnv(stdin string, submitErr error) (*sendmailEnv, *submission, *bytes.Buffer) {
	var sub submission
	var stderr bytes.Buffer
	cfg := &config.Config{Hostname: "mta.example", Listeners: map[string]*config.Listener{
		"mx": {Name: "mx", Addr: "0.0.0.0:2525", Limits: config.ListenerLimits{MaxMessageSize: 2048}},
	}}
	env := &sendmailEnv{
		stdin: strings.NewReader(stdin), stdout: &bytes.Buffer{}, stderr: &stderr,
		now:  func() time.Time { return testDefaults.now },
		user: "alice",
		loadConfig: func(path string) (*config.Config, error) {
			if path == "broken" {
				return nil, errors.New("main.cue:1:1: oops")
			}
			return cfg, nil
		},
		submit: func(addr, helo, from string, rcpts []string, msg []byte) (string, error) {
			sub = submission{addr, helo, from, rcpts, string(msg)}
			return "250 ok", submitErr
		},
	}
	return env, &sub, &stderr
}

func TestSendmail(t *testing.T) {
	env, sub, stderr := sendmailTestEnv("Subject: hi\n\nhello\n", nil)
	if code := sendmail([]string{"-oi", "bob@example.com,carol@example.com", "root"}, env); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := submission{addr: "127.0.0.1:2525", helo: "mta.example", from: "alice@mta.example",
		rcpts: []string{"bob@example.com", "carol@example.com", "root@mta.example"}}
	msg := sub.msg
	sub.msg = ""
	if !reflect.DeepEqual(*sub, want) {
		t.Errorf("submitted %+v, want %+v", *sub, want)
	}
	if !strings.HasPrefix(msg, "Subject: hi\r\nFrom: alice@mta.example\r\nDate: ") || !strings.HasSuffix(msg, "\r\n\r\nhello\r\n") {
		t.Errorf("message %q", msg)
	}

	env, sub, _ = sendmailTestEnv("To: bob@example.com\n\nx\n", nil)
	if code := sendmail([]string{"-t", "-f", "<>"}, env); code != 0 || sub.from != "" || !reflect.DeepEqual(sub.rcpts, []string{"bob@example.com"}) {
		t.Errorf("-t -f <>: exit %d, submitted %+v", code, *sub)
	}
}

func TestSendmailExitCodes(t *testing.T) {
	for _, c := range []struct {
		name  string
		args  []string
		stdin string
		err   error
		code  int
		says  string
	}{
		{"no recipients", nil, "Subject: x\n\ny", nil, exUsage, "no recipients"},
		{"-t without To", []string{"-t"}, "Subject: x\n\ny", nil, exUsage, "no recipients"},
		{"bad flag", []string{"-bs"}, "", nil, exUsage, "-bs"},
		{"bad recipient", []string{"a b@x"}, "x", nil, exUsage, "not an address"},
		{"bad sender", []string{"-f", "a@@b", "c@x.example"}, "x", nil, exUsage, "-f"},
		{"too large", []string{"a@x.example"}, strings.Repeat("x", 3000), nil, exDataErr, "larger than 2048 bytes"},
		{"bad To with -t", []string{"-t"}, "To: a@@b\n\nx", nil, exDataErr, "header To"},
		{"config", []string{"-c", "broken", "a@x.example"}, "x", nil, exConfig, "main.cue:1:1"},
		{"permanent", []string{"a@x.example"}, "x", &smtpclient.Reply{Code: 550, Enhanced: "5.7.1", Text: "relaying denied", Stage: smtpclient.StageRcpt}, exUnavailable, "relaying denied"},
		{"temporary", []string{"a@x.example"}, "x", &smtpclient.Reply{Code: 451, Enhanced: "4.3.0", Text: "try later", Stage: smtpclient.StageEOD}, exTempFail, "try later"},
		{"unreachable", []string{"a@x.example"}, "x", errors.New("cannot connect to the local MTA: connection refused"), exTempFail, "connection refused"},
	} {
		env, _, stderr := sendmailTestEnv(c.stdin, c.err)
		if code := sendmail(c.args, env); code != c.code || !strings.Contains(stderr.String(), c.says) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", c.name, code, stderr, c.code, c.says)
		}
	}
}

func TestSendmailMainModes(t *testing.T) {
	var stderr bytes.Buffer
	if code := sendmailMain([]string{"/usr/bin/newaliases"}, strings.NewReader(""), &bytes.Buffer{}, &stderr); code != 0 || !strings.Contains(stderr.String(), "aliases") {
		t.Errorf("newaliases: %d %q", code, stderr.String())
	}
	if code := sendmailMain([]string{"sendmail", "-q"}, strings.NewReader(""), &bytes.Buffer{}, &stderr); code != 0 {
		t.Errorf("sendmail -q: %d", code)
	}
}

// fakeSMTP is a minimal SMTP server: it refuses recipients starting with
// "bad" (550) or "later" (450) and records accepted messages.
type fakeSMTP struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []string
	log  []string
}

func startFakeSMTP(t *testing.T) *fakeSMTP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSMTP{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(conn)
		}
	}()
	return f
}

func (f *fakeSMTP) serve(conn net.Conn) {
	defer conn.Close()
	tp := textproto.NewConn(conn)
	tp.PrintfLine("220 fake ESMTP")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.log = append(f.log, line)
		f.mu.Unlock()
		cmd := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch {
		case cmd == "EHLO":
			tp.PrintfLine("250-fake\r\n250 8BITMIME")
		case cmd == "MAIL", cmd == "RSET":
			tp.PrintfLine("250 ok")
		case cmd == "RCPT" && strings.Contains(line, "<bad"):
			tp.PrintfLine("550 5.1.1 no such user")
		case cmd == "RCPT" && strings.Contains(line, "<later"):
			tp.PrintfLine("450 4.2.1 mailbox busy")
		case cmd == "RCPT":
			tp.PrintfLine("250 ok")
		case cmd == "DATA":
			tp.PrintfLine("354 go on")
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.msgs = append(f.msgs, string(data))
			f.mu.Unlock()
			tp.PrintfLine("250 2.0.0 queued as 42")
		case cmd == "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("502 unknown")
		}
	}
}

func TestSubmitSMTP(t *testing.T) {
	f := startFakeSMTP(t)
	msg := []byte("Subject: x\r\n\r\n.leading dot\r\nbody caf\xc3\xa9\r\n") // 8-bit: BODY=8BITMIME
	reply, err := submitSMTP(f.ln.Addr().String(), "mta.example", "a@example.com", []string{"b@example.com", "c@example.com"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if reply != "250 2.0.0 queued as 42" {
		t.Errorf("reply %q, want the server's own", reply)
	}
	f.mu.Lock()
	got := append([]string(nil), f.msgs...)
	log := strings.Join(f.log, "\n")
	f.mu.Unlock()
	// ReadDotBytes undoes dot-stuffing and gives LF line ends.
	if len(got) != 1 || got[0] != "Subject: x\n\n.leading dot\nbody caf\xc3\xa9\n" {
		t.Errorf("received %q", got)
	}
	for _, want := range []string{"EHLO mta.example", "MAIL FROM:<a@example.com> BODY=8BITMIME", "RCPT TO:<b@example.com>", "RCPT TO:<c@example.com>"} {
		if !strings.Contains(log, want) {
			t.Errorf("no %q in the dialogue:\n%s", want, log)
		}
	}
}

func TestSubmitSMTPAllOrNothing(t *testing.T) {
	f := startFakeSMTP(t)
	for _, c := range []struct {
		rcpts []string
		code  int
	}{
		{[]string{"ok@example.com", "bad@example.com"}, exUnavailable},
		{[]string{"ok@example.com", "later@example.com"}, exTempFail},
		{[]string{"later@example.com", "bad@example.com"}, exUnavailable},
	} {
		_, err := submitSMTP(f.ln.Addr().String(), "h", "a@example.com", c.rcpts, []byte("Subject: x\r\n\r\ny\r\n"))
		if err == nil || smtpExitCode(err) != c.code {
			t.Errorf("%v: err %v (exit %d), want exit %d", c.rcpts, err, smtpExitCode(err), c.code)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.msgs) != 0 {
		t.Errorf("messages sent despite refused recipients: %q", f.msgs)
	}
}

func TestSubmitSMTPUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	_, err := submitSMTP(addr, "h", "a@example.com", []string{"b@example.com"}, []byte("x\r\n"))
	if err == nil || smtpExitCode(err) != exTempFail || !strings.Contains(err.Error(), "cuemta serve") {
		t.Errorf("err = %v", err)
	}
}
