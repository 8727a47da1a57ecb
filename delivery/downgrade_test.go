package delivery

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/smtpclient"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/rules"
)

// bodyStore is a memStore whose messages have a given body.
type bodyStore struct {
	*memStore
	body []byte
}

func (b *bodyStore) Body(string) ([]byte, error) { return b.body, nil }

// TestDowngradeAndLoopClassification runs the scheduler against real SMTP
// servers on loopback, reached through an injected dialer that maps the
// fake DNS's documentation addresses to them: what is sent to a hop that
// lacks 8BITMIME or SMTPUTF8, what is bounced at once (5.6.7, 5.6.3,
// 5.4.6) and what is retried.
func TestDowngradeAndLoopClassification(t *testing.T) {
	const (
		utf8Rcpt = "jörg@example.net"
		body8    = "Subject: hi\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße aus Köln, the rest of this line is ASCII.\r\n"
	)
	plain := startFakeMX(t, "8BITMIME", "SMTPUTF8", "PIPELINING")
	seven := startFakeMX(t, "PIPELINING") // neither 8BITMIME nor SMTPUTF8
	eightOnly := startFakeMX(t, "8BITMIME")
	// natSelf is this server behind NAT: an address that is not ours,
	// greeting with our hostname (the config's "mta.example").
	natSelf := startScriptedMX(t, mxScript{reply: func(_ *mxSession, verb, _ string) string {
		if verb == "CONNECT" {
			return "220 MTA.example. ESMTP"
		}
		return ""
	}})
	servers := map[string]*fakeMX{"192.0.2.1": plain, "192.0.2.2": seven, "192.0.2.3": eightOnly, "192.0.2.4": natSelf}

	type want struct {
		delivered string // the fake that must have the message ("" none)
		mail      string // its MAIL line
		bodyIs7   bool   // the body arrived 7-bit
		bounce    string // the DSN's Status, "" no DSN
		diag      string // in the DSN
		retried   bool   // the recipient is still pending, no DSN
	}
	for _, tc := range []struct {
		name      string
		mxs       []string // MX hosts of example.net in preference order
		rcpt      string
		body      string
		smtputf8  bool
		listeners []string
		ifaces    []string
		want      want
	}{
		{name: "UTF-8 recipient, the only MX lacks SMTPUTF8: 5.6.7 at once",
			mxs: []string{"seven.example.net"}, rcpt: utf8Rcpt, body: "Subject: x\r\n\r\nx\r\n", smtputf8: true,
			want: want{bounce: "5.6.7", diag: "553 5.6.7 SMTPUTF8 is required (non-ASCII recipient <jörg@example.net>), but was not offered by seven.example.net"}},
		{name: "UTF-8 recipient, first MX lacks SMTPUTF8: the next MX takes it",
			mxs: []string{"seven.example.net", "plain.example.net"}, rcpt: utf8Rcpt, body: "Subject: x\r\n\r\nx\r\n", smtputf8: true,
			want: want{delivered: "192.0.2.1", mail: "MAIL FROM:<sender@example.org> SMTPUTF8"}},
		{name: "UTF-8 recipient, every MX lacks SMTPUTF8: 5.6.7 naming them all",
			mxs: []string{"seven.example.net", "eight.example.net"}, rcpt: utf8Rcpt, body: "Subject: x\r\n\r\nx\r\n", smtputf8: true,
			want: want{bounce: "5.6.7", diag: "not offered by seven.example.net, eight.example.net"}},
		{name: "UTF-8 recipient, the other MX is unreachable: retried, not bounced",
			mxs: []string{"seven.example.net", "down.example.net"}, rcpt: utf8Rcpt, body: "Subject: x\r\n\r\nx\r\n", smtputf8: true,
			want: want{retried: true}},
		{name: "SMTPUTF8 mail with a UTF-8 header to a hop without it: 5.6.7",
			mxs: []string{"eight.example.net"}, rcpt: "u@example.net", body: "Subject: Grüße\r\n\r\nx\r\n", smtputf8: true,
			want: want{bounce: "5.6.7", diag: "(UTF-8 header fields)"}},
		{name: "SMTPUTF8 mail that is all ASCII goes without the parameter",
			mxs: []string{"eight.example.net"}, rcpt: "u@example.net", body: "Subject: x\r\n\r\nx\r\n", smtputf8: true,
			want: want{delivered: "192.0.2.3", mail: "MAIL FROM:<sender@example.org>"}},
		{name: "SMTPUTF8 flag is kept where offered, addresses ASCII",
			mxs: []string{"plain.example.net"}, rcpt: "u@example.net", body: "Subject: x\r\n\r\nx\r\n", smtputf8: true,
			want: want{delivered: "192.0.2.1", mail: "MAIL FROM:<sender@example.org> SMTPUTF8"}},
		{name: "8-bit body to a hop with 8BITMIME: as it is, declared",
			mxs: []string{"plain.example.net"}, rcpt: "u@example.net", body: body8,
			want: want{delivered: "192.0.2.1", mail: "MAIL FROM:<sender@example.org> BODY=8BITMIME"}},
		{name: "8-bit body to a hop without 8BITMIME: converted, not declared",
			mxs: []string{"seven.example.net"}, rcpt: "u@example.net", body: body8,
			want: want{delivered: "192.0.2.2", mail: "MAIL FROM:<sender@example.org>", bodyIs7: true}},
		{name: "unconvertible 8-bit body to a hop without 8BITMIME: 5.6.3",
			mxs: []string{"seven.example.net"}, rcpt: "u@example.net", body: "Content-Transfer-Encoding: base64\r\n\r\nGrüße\r\n",
			want: want{bounce: "5.6.3", diag: "seven.example.net does not offer 8BITMIME"}},
		{name: "the only MX is our own listener: 5.4.6, never dialled",
			mxs: []string{"self.example.net"}, rcpt: "u@example.net", body: "Subject: x\r\n\r\nx\r\n", listeners: []string{"127.0.0.1:25"},
			want: want{bounce: "5.4.6", diag: "554 5.4.6 mail loop: MX for example.net points back to this server: self.example.net (127.0.0.1:25) is this server's own listener"}},
		{name: "our own MX is skipped for the next one",
			mxs: []string{"self.example.net", "plain.example.net"}, rcpt: "u@example.net", body: "Subject: x\r\n\r\nx\r\n", listeners: []string{"127.0.0.1:25"},
			want: want{delivered: "192.0.2.1", mail: "MAIL FROM:<sender@example.org>"}},
		{name: "a listener on 0.0.0.0 is reached at an interface address",
			mxs: []string{"lan.example.net"}, rcpt: "u@example.net", body: "Subject: x\r\n\r\nx\r\n", listeners: []string{"0.0.0.0:25"}, ifaces: []string{"192.0.2.77"},
			want: want{bounce: "5.4.6", diag: "lan.example.net (192.0.2.77:25)"}},
		{name: "an MX behind NAT greeting with our hostname: 5.4.6",
			mxs: []string{"nat.example.net"}, rcpt: "u@example.net", body: "Subject: x\r\n\r\nx\r\n",
			want: want{bounce: "5.4.6", diag: "554 5.4.6 mail loop: MX for example.net points back to this server: nat.example.net (192.0.2.4:25) greeted with this server's own hostname mta.example"}},
		{name: "an MX greeting with our hostname is skipped for the next one",
			mxs: []string{"nat.example.net", "plain.example.net"}, rcpt: "u@example.net", body: "Subject: x\r\n\r\nx\r\n",
			want: want{delivered: "192.0.2.1", mail: "MAIL FROM:<sender@example.org>"}},
		{name: "a listener on another port is not us",
			mxs: []string{"self.example.net"}, rcpt: "u@example.net", body: "Subject: x\r\n\r\nx\r\n", listeners: []string{"127.0.0.1:2525"},
			want: want{retried: true}}, // dialled: nothing answers at the mapped address
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadTestConfig(t, "hostname: \"mta.example\"\nprofiles: default: tls: \"none\"\n")
			set, err := rules.Compile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			env := queue.Envelope{ID: "m1", From: "sender@example.org", Received: time.Now(), SMTPUTF8: tc.smtputf8,
				Recipients: []queue.Recipient{{Addr: tc.rcpt}}}
			st := &bodyStore{memStore: newMemStore(env), body: []byte(tc.body)}
			before := map[*fakeMX]int{}
			for _, f := range servers {
				_, d := f.received()
				before[f] = len(d)
			}
			dns := fakeDNS{mx: map[string][]string{"example.net": tc.mxs}, hosts: map[string]string{
				"plain.example.net": "192.0.2.1", "seven.example.net": "192.0.2.2", "eight.example.net": "192.0.2.3",
				"down.example.net": "192.0.2.9", "nat.example.net": "192.0.2.4", "self.example.net": "127.0.0.1", "lan.example.net": "192.0.2.77",
			}}
			var mu sync.Mutex
			var dialled []string
			e := New(Options{
				Store: st, Resolver: dns, PollInterval: 10 * time.Millisecond, IdleTimeout: 50 * time.Millisecond,
				Policy: func() *Policy { return &Policy{Config: cfg, Rules: set, Generation: 1} },
				Dial: func(ctx context.Context, o smtpclient.Options) (*smtpclient.Conn, error) {
					mu.Lock()
					dialled = append(dialled, o.Addr)
					mu.Unlock()
					host, _, _ := net.SplitHostPort(o.Addr)
					f, ok := servers[host]
					if !ok {
						return nil, &smtpclient.NetError{Stage: smtpclient.StageConnect, Err: errors.New("connection refused")}
					}
					o.Addr = f.addr
					return smtpclient.Dial(ctx, o)
				},
				Listeners: func() []netip.AddrPort {
					var out []netip.AddrPort
					for _, l := range tc.listeners {
						out = append(out, netip.MustParseAddrPort(l))
					}
					return out
				},
				InterfaceAddrs: func() ([]netip.Addr, error) {
					var out []netip.Addr
					for _, a := range tc.ifaces {
						out = append(out, netip.MustParseAddr(a))
					}
					return out, nil
				},
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); e.Run(ctx) }()
			defer func() { cancel(); <-done }()

			// Wait for the attempt's outcome: completed, or recorded pending.
			deadline := time.Now().Add(10 * time.Second)
			for {
				st.mu.Lock()
				finished := len(st.completes) > 0 || len(st.attempts) > 0
				st.mu.Unlock()
				if finished {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no outcome within 10 s")
				}
				time.Sleep(5 * time.Millisecond)
			}
			st.mu.Lock()
			defer st.mu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			for _, a := range dialled {
				if host, _, _ := net.SplitHostPort(a); host == "127.0.0.1" && len(tc.listeners) > 0 && tc.listeners[0] == "127.0.0.1:25" || host == "192.0.2.77" {
					t.Errorf("dialled %s, this server's own listener", a)
				}
			}
			w := tc.want
			switch {
			case w.retried:
				if len(st.completes) != 0 || len(st.dsns) != 0 {
					t.Fatalf("completed %v with %d DSNs; want the recipient retried", st.completes, len(st.dsns))
				}
				if r := st.attempts[0].results; len(r) != 1 || r[0].Status != queue.RcptPending {
					t.Fatalf("results %+v, want pending", r)
				}
			case w.bounce != "":
				if len(st.dsns) != 1 || len(st.completes) != 1 {
					t.Fatalf("%d DSNs, completes %v; want one DSN and the message done (attempts %+v)", len(st.dsns), st.completes, st.attempts)
				}
				// Unfold the DSN's lines (its fields and text are folded).
				dsn := strings.NewReplacer("\r\n\t", " ", "\r\n    ", " ").Replace(string(st.dsnBodies[0]))
				if !strings.Contains(dsn, "Status: "+w.bounce) || !strings.Contains(dsn, w.diag) {
					t.Errorf("DSN lacks Status: %s or %q:\n%s", w.bounce, w.diag, dsn)
				}
			default:
				if len(st.completes) != 1 || len(st.dsns) != 0 {
					t.Fatalf("completes %v, %d DSNs (attempts %+v); want delivered", st.completes, len(st.dsns), st.attempts)
				}
				f := servers[w.delivered]
				mails, data := f.received()
				if len(data) != before[f]+1 {
					t.Fatalf("%s has %d messages, want %d", w.delivered, len(data), before[f]+1)
				}
				if got := mails[len(mails)-1]; got != w.mail {
					t.Errorf("MAIL = %q, want %q", got, w.mail)
				}
				got := data[len(data)-1]
				if w.bodyIs7 {
					if bytes.ContainsFunc(got, func(r rune) bool { return r >= 0x80 }) {
						t.Errorf("body arrived with 8-bit data:\n%s", got)
					}
					if !bytes.Contains(got, []byte("Content-Transfer-Encoding: quoted-printable")) {
						t.Errorf("body not quoted-printable:\n%s", got)
					}
				} else if string(got) != tc.body {
					t.Errorf("body changed on the way:\n%q\nwant\n%q", got, tc.body)
				}
			}
		})
	}
}
