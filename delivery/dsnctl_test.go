package delivery

import (
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/smtpreply"
)

// dsnCase runs one attempt of a one-recipient message through
// job.complete with the given outcome and returns the DSNs queued.
type dsnCase struct {
	name    string
	cfg     string // extra config
	rcpt    queue.Recipient
	env     func(*queue.Envelope)
	class   rules.Class
	hopDSN  bool
	age     time.Duration // since reception
	want    []string      // one entry per DSN: substrings it must hold
	notWant []string      // substrings no DSN may hold
}

func runDSNCase(t *testing.T, tc dsnCase) (*memStore, queue.Envelope) {
	t.Helper()
	extra := tc.cfg
	if !strings.Contains(extra, "delayWarning") {
		extra += "delivery: delayWarning: \"1h\"\n"
	}
	cfg := loadTestConfig(t, "hostname: \"mta.example\"\nlisteners: {mx: addr: \"127.0.0.1:2525\", quiet: {addr: \"127.0.0.1:2526\", dsn: \"none\"}}\n"+extra)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	age := tc.age
	if age == 0 {
		age = time.Minute
	}
	rc := tc.rcpt
	rc.Addr = "bob@example.net"
	env := queue.Envelope{ID: "m1", From: "sender@example.org", Received: now.Add(-age), Listener: "mx",
		Recipients: []queue.Recipient{rc}}
	if tc.env != nil {
		tc.env(&env)
	}
	st := newMemStore(env)
	e := New(Options{Store: st, Now: func() time.Time { return now }, Policy: func() *Policy { return &Policy{Config: cfg, Generation: 1} }})
	att := &attempt{sched: e, env: env, policy: e.opts.Policy(), started: now, jobs: 1}
	j := &job{att: att, domain: "example.net", rcpts: []string{rc.Addr}}
	var reply smtpreply.Reply
	switch tc.class {
	case rules.Delivered:
		reply = smtpreply.New(250, "2.0.0", "Ok: queued as X1")
	case rules.Permanent:
		reply = smtpreply.New(550, "5.1.1", "no such user")
	default:
		reply = smtpreply.New(451, "4.7.1", "greylisted, try later")
	}
	j.complete([]outcome{{rcpt: rc.Addr, class: tc.class, reply: reply, remoteMTA: "mx.example.net", hopDSN: tc.hopDSN}})
	e.wg.Wait() // finish runs beside the lane
	if len(st.dsnBodies) != len(tc.want) {
		t.Fatalf("%d DSNs queued, want %d", len(st.dsnBodies), len(tc.want))
	}
	for i, w := range tc.want {
		for _, sub := range strings.Split(w, "|") {
			if !strings.Contains(string(st.dsnBodies[i]), sub) {
				t.Errorf("DSN %d lacks %q:\n%s", i, sub, st.dsnBodies[i])
			}
		}
		if st.dsns[i].From != "" || st.dsns[i].Recipients[0].Addr != "sender@example.org" {
			t.Errorf("DSN %d envelope %+v", i, st.dsns[i])
		}
	}
	for _, b := range st.dsnBodies {
		for _, sub := range tc.notWant {
			if strings.Contains(string(b), sub) {
				t.Errorf("DSN holds %q:\n%s", sub, b)
			}
		}
	}
	got, _ := st.Get("m1")
	return st, got
}

// TestNotify: each NOTIFY case (RFC 3461 §4.1), RET (§4.3), ENVID and
// ORCPT echoed (RFC 3464 §2.2.1, §2.3.1), and dsn: "none" by listener,
// tenant and route.
func TestNotify(t *testing.T) {
	const failed = "Action: failed|Status: 5.1.1"
	tests := []dsnCase{
		{name: "no NOTIFY, failure", class: rules.Permanent, want: []string{failed}},
		{name: "NEVER, failure", rcpt: queue.Recipient{Notify: queue.NotifyNever}, class: rules.Permanent},
		{name: "SUCCESS only, failure", rcpt: queue.Recipient{Notify: queue.NotifySuccess}, class: rules.Permanent},
		{name: "FAILURE, failure", rcpt: queue.Recipient{Notify: queue.NotifyFailure}, class: rules.Permanent, want: []string{failed}},
		{name: "no NOTIFY, success", class: rules.Delivered},
		{name: "SUCCESS, hop without DSN", rcpt: queue.Recipient{Notify: queue.NotifySuccess}, class: rules.Delivered,
			want: []string{"Action: relayed|Status: 2.0.0|Remote-MTA: dns; mx.example.net|Subject: Successful Mail Delivery Report"}},
		{name: "SUCCESS, hop with DSN reports itself", rcpt: queue.Recipient{Notify: queue.NotifySuccess}, class: rules.Delivered, hopDSN: true},
		{name: "FAILURE, success", rcpt: queue.Recipient{Notify: queue.NotifyFailure}, class: rules.Delivered},
		{name: "no NOTIFY, deferred early", class: rules.Transient},
		{name: "no NOTIFY, deferred past delayWarning", class: rules.Transient, age: 2 * time.Hour,
			want: []string{"Action: delayed|Status: 4.7.1|Will-Retry-Until: |Subject: Delayed Mail"}},
		{name: "DELAY, deferred past delayWarning", rcpt: queue.Recipient{Notify: queue.NotifyDelay}, class: rules.Transient, age: 2 * time.Hour,
			want: []string{"Action: delayed"}},
		{name: "FAILURE only, deferred", rcpt: queue.Recipient{Notify: queue.NotifyFailure}, class: rules.Transient, age: 2 * time.Hour},
		{name: "NEVER, deferred", rcpt: queue.Recipient{Notify: queue.NotifyNever}, class: rules.Transient, age: 2 * time.Hour},
		{name: "already warned", rcpt: queue.Recipient{DelayNotified: true}, class: rules.Transient, age: 2 * time.Hour},
		{name: "delayWarning 0s", cfg: "delivery: delayWarning: \"0s\"\n", class: rules.Transient, age: 48 * time.Hour},
		{name: "RET=HDRS", env: func(e *queue.Envelope) { e.Ret = queue.RetHdrs }, class: rules.Permanent,
			want: []string{failed + "|text/rfc822-headers|Subject: t"}, notWant: []string{"hello"}},
		{name: "no RET returns headers", class: rules.Permanent, want: []string{"text/rfc822-headers"}, notWant: []string{"hello"}},
		{name: "RET=FULL", env: func(e *queue.Envelope) { e.Ret = queue.RetFull }, class: rules.Permanent,
			want: []string{"message/rfc822|Subject: t\r\n\r\nhello"}},
		{name: "ENVID and ORCPT echoed", env: func(e *queue.Envelope) { e.EnvID = "QQ314159" }, rcpt: queue.Recipient{ORCPT: "rfc822;Bob@Example.NET"},
			class: rules.Permanent, want: []string{"Original-Envelope-Id: QQ314159|Original-Recipient: rfc822; Bob@Example.NET"}},
		{name: "listener dsn none", env: func(e *queue.Envelope) { e.Listener = "quiet" }, class: rules.Permanent},
		{name: "tenant dsn none", cfg: "delivery: dsn: tenants: platform: \"none\"\n", env: func(e *queue.Envelope) { e.Tenant = "platform" }, class: rules.Permanent},
		{name: "route dsn none", cfg: "delivery: dsn: routes: \"example.net\": \"none\"\n", class: rules.Transient, age: 2 * time.Hour},
		{name: "route mail over listener none", cfg: "delivery: dsn: routes: \"example.net\": \"mail\"\n",
			env: func(e *queue.Envelope) { e.Listener = "quiet" }, class: rules.Permanent, want: []string{failed}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runDSNCase(t, tc) })
	}
}

// TestDelayWarningOnce: the recipient is marked in the spool when its
// warning is queued (and when NOTIFY or the config leave it unsent), so a
// later attempt sends no second one.
func TestDelayWarningOnce(t *testing.T) {
	for _, tc := range []dsnCase{
		{name: "sent", class: rules.Transient, age: 2 * time.Hour, want: []string{"Action: delayed"}},
		{name: "NOTIFY without DELAY", rcpt: queue.Recipient{Notify: queue.NotifyFailure}, class: rules.Transient, age: 2 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, env := runDSNCase(t, tc)
			if len(st.attempts) != 1 || !st.attempts[0].results[0].DelayNotified || !env.Recipients[0].DelayNotified {
				t.Fatalf("delay warning not recorded: attempts %+v, envelope %+v", st.attempts, env.Recipients)
			}
		})
	}
}
