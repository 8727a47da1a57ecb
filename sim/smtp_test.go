package sim

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/smtpclient"
)

var bg = context.Background()

func TestDeliverAndRecord(t *testing.T) {
	c := newClock()
	s := start(t, `
sites: b: {
	domains: ["b.test"]
	mx: [{host: "mx.b.test", ip: "127.0.40.1"}]
	unknownUsers: ["nobody", "Gone@B.test"]
}
`, c)
	conn := mustDial(t, s, "b.test", "")
	if ext := conn.Extensions(); !ext.Has("PIPELINING") || !ext.Has("SMTPUTF8") || ext.Size() != 10485760 || ext.Has("STARTTLS") {
		t.Errorf("EHLO extensions %v", ext)
	}
	body := "Subject: hi\r\n\r\n.leading dot\r\nbody\r\n"
	res, err := conn.Send(bg, "a@a.test", []string{"bob@b.test", "nobody@b.test", "gone@b.test", "x@elsewhere.test"}, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	wantCodes := []string{"250 2.1.5", "550 5.1.1", "550 5.1.1", "550 5.7.1"}
	for i, r := range res.Rcpt {
		if got := r.String()[:9]; got != wantCodes[i] {
			t.Errorf("rcpt %d: %v, want %s", i, r, wantCodes[i])
		}
	}
	if res.Data.Code != 250 || !slices.Equal(res.Accepted, []int{0}) {
		t.Fatalf("result %+v", res)
	}
	if err := conn.Quit(); err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if m.Site != "b" || m.MXHost != "mx.b.test" || m.ClientIP != netip.MustParseAddr("127.0.0.1") || m.Helo != "client.test" ||
		m.From != "a@a.test" || !slices.Equal(m.Rcpts, []string{"bob@b.test"}) || string(m.Body) != body || !m.Time.Equal(c.Now()) {
		t.Errorf("message %+v", m)
	}
	st := s.Stats().Sites["b"]
	if st.Connections != 1 || st.Messages != 1 || st.Recipients != 1 || st.Rejected["550"] != 3 || st.PerIP["127.0.0.1"].Messages != 1 {
		t.Errorf("stats %+v", st)
	}
	if _, err := json.Marshal(s.Stats()); err != nil {
		t.Error(err)
	}
}

func TestConnectionCap(t *testing.T) {
	s := start(t, `
sites: b: {
	domains: ["b.test"]
	mx: [{host: "mx1.b.test", ip: "127.0.41.1"}, {host: "mx2.b.test", ip: "127.0.41.2"}]
	maxConnections: 2
}
`, nil)
	c1 := mustDial(t, s, "b.test", "")
	mustDial(t, s, "b.test", "")
	_, err := dialDomain(t, s, "b.test", "")
	var r *smtpclient.Reply
	if !errors.As(err, &r) || r.Code != 421 || r.Enhanced != "4.7.0" || r.Stage != smtpclient.StageGreeting {
		t.Fatalf("third connection: %v", err)
	}
	waitActive(t, s, "b", 2)
	// The cap is across the site's MX hosts: mx2 refuses too.
	o := smtpclient.Options{Addr: s.MXAddrs()["mx2.b.test"], TLS: smtpclient.TLSNone, CommandTimeout: 2 * time.Second}
	if _, err := smtpclient.Dial(bg, o); !errors.As(err, &r) || r.Code != 421 {
		t.Fatalf("mx2 over the cap: %v", err)
	}
	st := s.Stats().Sites["b"]
	if st.MaxConcurrent != 3 || st.Connections != 4 || st.Rejected["421"] != 2 {
		t.Errorf("stats %+v", st)
	}

	c1.Quit()
	waitActive(t, s, "b", 1)
	mustDial(t, s, "b.test", "")

	// Lifting the cap at run time.
	if err := s.SetMaxConnections("b", 0); err != nil {
		t.Fatal(err)
	}
	mustDial(t, s, "b.test", "")
	if err := s.SetMaxConnections("nope", 1); err == nil {
		t.Error("unknown site accepted")
	}
}

func TestConnectionCapPerIP(t *testing.T) {
	s := start(t, `
sites: b: {
	domains: ["b.test"]
	mx: [{host: "mx.b.test", ip: "127.0.42.1"}]
	maxConnectionsPerIP: 1
}
`, nil)
	mustDial(t, s, "b.test", "127.0.42.101")
	mustDial(t, s, "b.test", "127.0.42.102")
	_, err := dialDomain(t, s, "b.test", "127.0.42.101")
	var r *smtpclient.Reply
	if !errors.As(err, &r) || r.Code != 421 {
		t.Fatalf("second connection from one address: %v", err)
	}
	st := s.Stats().Sites["b"]
	if st.MaxConcurrent != 3 || st.PerIP["127.0.42.101"].MaxConcurrent != 2 || st.PerIP["127.0.42.102"].MaxConcurrent != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestRateLimit(t *testing.T) {
	c := newClock()
	s := start(t, `
sites: b: {
	domains: ["b.test"]
	mx: [{host: "mx.b.test", ip: "127.0.43.1"}]
	rateLimit: {messages: 2, per: "1m"}
}
`, c)
	send := func(conn *smtpclient.Conn) (*smtpclient.Result, error) {
		return conn.Send(bg, "a@a.test", []string{"bob@b.test"}, []byte("x\r\n"))
	}
	conn := mustDial(t, s, "b.test", "127.0.43.101")
	for i := range 2 {
		if res, err := send(conn); err != nil || res.Data.Code != 250 {
			t.Fatalf("message %d: %+v, %v", i, res, err)
		}
		c.Advance(10 * time.Second)
	}
	// The third within the minute: 421 at MAIL, and the server hangs up
	// (RFC 5321 §3.8); the pipelined RCPT and DATA get no reply.
	res, err := send(conn)
	var ne *smtpclient.NetError
	if !errors.As(err, &ne) || res.Mail.Code != 421 || res.Mail.Enhanced != "4.7.28" {
		t.Fatalf("third message: %+v, %v", res, err)
	}
	if r, ok := res.Outcome(0); !ok || r.Code != 421 {
		t.Errorf("Outcome = %v, %v", r, ok)
	}

	// Another client address has its own budget.
	if res, err := send(mustDial(t, s, "b.test", "127.0.43.102")); err != nil || res.Data.Code != 250 {
		t.Fatalf("other address: %+v, %v", res, err)
	}

	// A minute after the first message, one slot is free again.
	c.Advance(41 * time.Second)
	conn = mustDial(t, s, "b.test", "127.0.43.101")
	if res, err := send(conn); err != nil || res.Data.Code != 250 {
		t.Fatalf("after the window: %+v, %v", res, err)
	}
	if res, _ := send(conn); res.Mail.Code != 421 {
		t.Fatalf("window full again: %+v", res)
	}

	st := s.Stats().Sites["b"]
	if ip := st.PerIP["127.0.43.101"]; ip.Messages != 3 || ip.MaxPerWindow != 2 {
		t.Errorf("per-IP stats %+v", ip)
	}
	if st.Rejected["421"] != 2 || st.Messages != 4 {
		t.Errorf("stats %+v", st)
	}

	// Changed at run time.
	s.SetRateLimit("b", nil)
	conn = mustDial(t, s, "b.test", "127.0.43.101")
	if res, err := send(conn); err != nil || res.Data.Code != 250 {
		t.Fatalf("limit lifted: %+v, %v", res, err)
	}
}

func TestGreylist(t *testing.T) {
	c := newClock()
	s := start(t, `
sites: b: {
	domains: ["b.test"]
	mx: [{host: "mx.b.test", ip: "127.0.44.1"}]
	greylist: delay: "5m"
	unknownUsers: ["nobody"]
}
`, c)
	rcpt := func(src, from, to string) smtpclient.Reply {
		t.Helper()
		conn := mustDial(t, s, "b.test", src)
		defer conn.Quit()
		res, err := conn.Send(bg, from, []string{to}, []byte("x\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		return res.Rcpt[0]
	}
	steps := []struct {
		advance  time.Duration
		src      string
		from, to string
		want     int
	}{
		{0, "127.0.44.101", "a@a.test", "bob@b.test", 451},           // new triplet
		{time.Minute, "127.0.44.101", "a@a.test", "bob@b.test", 451}, // too early
		{0, "127.0.44.102", "a@a.test", "bob@b.test", 451},           // other client address: new triplet
		{0, "127.0.44.101", "a@a.test", "nobody@b.test", 550},        // unknown users are refused first
		{4 * time.Minute, "127.0.44.101", "A@a.test", "Bob@b.test", 250},
		{0, "127.0.44.101", "a@a.test", "bob@b.test", 250},               // passed stays passed
		{0, "127.0.44.101", "other@a.test", "bob@b.test", 451},           // other sender: new triplet
		{4 * time.Minute, "127.0.44.102", "a@a.test", "bob@b.test", 250}, // first seen 5m ago
	}
	for i, st := range steps {
		c.Advance(st.advance)
		got := rcpt(st.src, st.from, st.to)
		if got.Code != st.want {
			t.Errorf("step %d (%s %s→%s): %v, want %d", i, st.src, st.from, st.to, got, st.want)
		}
		if got.Code == 451 && (got.Enhanced != "4.7.1" || got.Stage != smtpclient.StageRcpt) {
			t.Errorf("step %d: %+v", i, got)
		}
	}
	if st := s.Stats().Sites["b"]; st.Rejected["451"] != 4 || st.Messages != 3 {
		t.Errorf("stats %+v", st)
	}
}

func TestForcedRepliesAndLatency(t *testing.T) {
	s := start(t, `
sites: {
	blocked: {
		domains: ["blocked.test"]
		mx: [{host: "mx.blocked.test", ip: "127.0.45.1"}]
		replies: connect: "554 5.7.1 Service unavailable; client host blocked"
	}
	busy: {
		domains: ["busy.test"]
		mx: [{host: "mx.busy.test", ip: "127.0.45.2"}]
		replies: data: "451 4.3.0 Try again later"
	}
}
`, nil)
	_, err := dialDomain(t, s, "blocked.test", "")
	var r *smtpclient.Reply
	if !errors.As(err, &r) || r.Code != 554 || r.Stage != smtpclient.StageGreeting {
		t.Fatalf("blocked: %v", err)
	}
	conn := mustDial(t, s, "busy.test", "")
	res, err := conn.Send(bg, "a@a.test", []string{"x@busy.test"}, []byte("x"))
	if err != nil || res.Data.Code != 451 || res.Data.Stage != smtpclient.StageEOD {
		t.Fatalf("busy: %+v, %v", res, err)
	}
	if len(s.Messages()) != 0 {
		t.Error("refused message recorded")
	}

	if err := s.SetReplies("busy", Replies{Rcpt: "452 4.2.2 Mailbox full"}); err != nil {
		t.Fatal(err)
	}
	res, err = conn.Send(bg, "a@a.test", []string{"x@busy.test"}, []byte("x"))
	if err != nil || res.Rcpt[0].Code != 452 {
		t.Fatalf("forced RCPT reply: %+v, %v", res, err)
	}

	// Latency is real time: greeting + EHLO + NOOP-like RSET = 3 replies.
	s.SetLatency("busy", 40*time.Millisecond)
	start := time.Now()
	conn = mustDial(t, s, "busy.test", "")
	conn.Reset(bg)
	if el := time.Since(start); el < 120*time.Millisecond {
		t.Errorf("3 replies with 40ms latency took %v", el)
	}
}

func TestSTARTTLS(t *testing.T) {
	s := start(t, `
sites: b: {
	domains: ["b.test"]
	mx: [{host: "mx.b.test", ip: "127.0.46.1"}]
	starttls: true
}
`, nil)
	o := smtpclient.Options{
		Addr: s.MXAddrs()["mx.b.test"], ServerName: "mx.b.test", EHLO: "client.test",
		TLS: smtpclient.TLSRequired, TLSConfig: &tls.Config{RootCAs: s.CertPool()}, CommandTimeout: 2 * time.Second,
	}
	conn, err := smtpclient.Dial(bg, o)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !conn.TLS() || conn.Extensions().Has("STARTTLS") {
		t.Fatalf("TLS %v, extensions %v", conn.TLS(), conn.Extensions())
	}
	if _, err := conn.Send(bg, "a@a.test", []string{"x@b.test"}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if m := s.Messages(); len(m) != 1 || !m[0].TLS {
		t.Errorf("messages %+v", m)
	}
}

// rawSession talks to an MX host line by line, for what the client
// package would not send.
func rawSession(t *testing.T, addr string) (net.Conn, *bufio.Reader, func(string) string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	read := func() string {
		var lines []string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return strings.Join(append(lines, "ERR "+err.Error()), "|")
			}
			lines = append(lines, strings.TrimRight(l, "\r\n"))
			if len(l) < 4 || l[3] == ' ' {
				return strings.Join(lines, "|")
			}
		}
	}
	read() // greeting
	cmd := func(line string) string {
		c.Write([]byte(line + "\r\n"))
		return read()
	}
	return c, r, cmd
}

func TestProtocol(t *testing.T) {
	s := start(t, `
sites: b: {
	domains: ["b.test"]
	mx: [{host: "mx.b.test", ip: "127.0.47.1"}]
	maxMessageSize: 100
}
`, nil)
	addr := s.MXAddrs()["mx.b.test"]
	c, _, cmd := rawSession(t, addr)
	steps := []struct{ send, want string }{
		{"MAIL FROM:<a@a.test>", "503 5.5.1"},
		{"EHLO client.test", "250-mx.b.test greets client.test"},
		{"RCPT TO:<x@b.test>", "503 5.5.1"},
		{"MAIL FROM:<a@a.test> SIZE=1000", "552 5.3.4"},
		{"MAIL FROM:a@a.test", "501 5.5.4"},
		{"MAIL FROM: <a@a.test>", "250 2.1.0"},
		{"MAIL FROM:<a@a.test>", "503 5.5.1"},
		{"DATA", "554 5.5.1"},
		{"RCPT TO:<x@b.test>", "250 2.1.5"},
		{"VRFY x", "252"},
		{"BDAT 10", "500 5.5.2"},
		{"RSET", "250 2.0.0"},
		{"DATA", "503 5.5.1"},
	}
	for _, st := range steps {
		if got := cmd(st.send); !strings.HasPrefix(got, st.want) {
			t.Errorf("%s: %q, want %q", st.send, got, st.want)
		}
	}
	// Dot-unstuffing and smuggling: only CRLF.CRLF ends the data.
	cmd("MAIL FROM:<a@a.test>")
	cmd("RCPT TO:<x@b.test>")
	cmd("DATA")
	if got := cmd("..dot\r\nx\n.\nMAIL FROM:<e@x>\r\n."); !strings.HasPrefix(got, "250 2.0.0") {
		t.Fatalf("data: %q", got)
	}
	if m := s.Messages(); len(m) != 1 || string(m[0].Body) != ".dot\r\nx\n.\nMAIL FROM:<e@x>\r\n" {
		t.Errorf("body %q", m[0].Body)
	}
	// Too big without a SIZE parameter: read to the end, then 552.
	cmd("MAIL FROM:<a@a.test>")
	cmd("RCPT TO:<x@b.test>")
	cmd("DATA")
	if got := cmd(strings.Repeat("0123456789\r\n", 20) + "."); !strings.HasPrefix(got, "552 5.3.4") {
		t.Errorf("too big: %q", got)
	}
	if got := cmd("QUIT"); !strings.HasPrefix(got, "221") {
		t.Errorf("QUIT: %q", got)
	}
	c.Close()
}

// RFC 2920: replies to pipelined commands come back together, in order.
func TestPipelinedReplies(t *testing.T) {
	s := start(t, `sites: b: {domains: ["b.test"], mx: [{host: "mx.b.test", ip: "127.0.48.1"}]}`, nil)
	c, r, cmd := rawSession(t, s.MXAddrs()["mx.b.test"])
	cmd("EHLO client.test")
	c.Write([]byte("MAIL FROM:<a@a.test>\r\nRCPT TO:<x@b.test>\r\nRCPT TO:<y@c.test>\r\nDATA\r\n"))
	var got []string
	for range 4 {
		l, _ := r.ReadString('\n')
		got = append(got, l[:3])
	}
	if !slices.Equal(got, []string{"250", "250", "550", "354"}) {
		t.Errorf("replies %v", got)
	}
}

func TestClose(t *testing.T) {
	s := start(t, `sites: b: {domains: ["b.test"], mx: [{host: "mx.b.test", ip: "127.0.49.1"}]}`, nil)
	conn := mustDial(t, s, "b.test", "")
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs with an open connection")
	}
	if err := conn.Reset(bg); err == nil {
		t.Error("connection survived Close")
	}
	if _, err := net.Dial("tcp", s.MXAddrs()["mx.b.test"]); err == nil {
		t.Error("listener survived Close")
	}
	s.Close() // idempotent
}

// TestWithheldExtensions: a site may withhold 8BITMIME and SMTPUTF8 (a
// server a client must downgrade for); their MAIL parameters are then
// refused, and every message records MAIL's parameters and its bytes.
func TestWithheldExtensions(t *testing.T) {
	s := start(t, `
sites: {
	old: {domains: ["old.test"], mx: [{host: "mx.old.test", ip: "127.0.48.1"}], withhold: ["8BITMIME", "SMTPUTF8"]}
	half: {domains: ["half.test"], mx: [{host: "mx.half.test", ip: "127.0.48.2"}], withhold: ["SMTPUTF8"]}
	new: {domains: ["new.test"], mx: [{host: "mx.new.test", ip: "127.0.48.3"}]}
}
`, nil)
	for _, tc := range []struct {
		host            string
		ehlo8, ehloUTF8 bool
		mail8, mailUTF8 string // replies to MAIL with BODY=8BITMIME and with SMTPUTF8
	}{
		{"mx.old.test", false, false, "555 5.5.4", "555 5.5.4"},
		{"mx.half.test", true, false, "250 2.1.0", "555 5.5.4"},
		{"mx.new.test", true, true, "250 2.1.0", "250 2.1.0"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			_, _, cmd := rawSession(t, s.MXAddrs()[tc.host])
			ehlo := cmd("EHLO client.test")
			if got := strings.Contains(ehlo, "|250-8BITMIME|"); got != tc.ehlo8 {
				t.Errorf("8BITMIME offered %v, want %v: %q", got, tc.ehlo8, ehlo)
			}
			if got := strings.Contains(ehlo, "SMTPUTF8"); got != tc.ehloUTF8 {
				t.Errorf("SMTPUTF8 offered %v, want %v: %q", got, tc.ehloUTF8, ehlo)
			}
			if got := cmd("MAIL FROM:<a@a.test> BODY=8BITMIME"); !strings.HasPrefix(got, tc.mail8) {
				t.Errorf("MAIL BODY=8BITMIME: %q, want %s", got, tc.mail8)
			}
			cmd("RSET")
			if got := cmd("MAIL FROM:<a@a.test> SMTPUTF8"); !strings.HasPrefix(got, tc.mailUTF8) {
				t.Errorf("MAIL SMTPUTF8: %q, want %s", got, tc.mailUTF8)
			}
			cmd("RSET")
		})
	}
	_, _, cmd := rawSession(t, s.MXAddrs()["mx.new.test"])
	cmd("EHLO client.test")
	cmd("MAIL FROM:<a@a.test> SIZE=20 BODY=8BITMIME SMTPUTF8")
	cmd("RCPT TO:<b@new.test>")
	cmd("DATA")
	if got := cmd("Subject: x\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n."); !strings.HasPrefix(got, "250") {
		t.Fatalf("data: %q", got)
	}
	m := s.Messages()
	if len(m) != 1 || !slices.Equal(m[0].MailParams, []string{"SIZE=20", "BODY=8BITMIME", "SMTPUTF8"}) || string(m[0].Body) != "Subject: x\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n" {
		t.Errorf("recorded %+v", m)
	}
	if _, err := loadSrc(t, `sites: x: {domains: ["x.test"], mx: [{host: "mx.x.test", ip: "127.0.48.9"}], withhold: ["PIPELINING"]}`); err == nil {
		t.Error("withhold: [\"PIPELINING\"] was accepted")
	}
}
