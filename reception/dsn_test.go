package reception

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/internal/dsnparams"
)

// TestDSNParameters: RET, ENVID, NOTIFY and ORCPT (RFC 3461 §4) are
// accepted, decoded from xtext and handed to the sink beside each
// recipient; malformed ones are refused 501 5.5.4 and the transaction
// goes on without them.
func TestDSNParameters(t *testing.T) {
	tests := []struct {
		name  string
		mail  string
		rcpt  string
		want  string // reply prefix of the command with parameters
		dsn   dsnparams.Mail
		rcptD dsnparams.Rcpt
	}{
		{name: "none", want: "250", rcptD: dsnparams.Rcpt{}},
		{name: "ret full envid", mail: " RET=FULL ENVID=QQ314159", want: "250", dsn: dsnparams.Mail{Ret: "FULL", EnvID: "QQ314159"}},
		{name: "ret hdrs lower case", mail: " ret=hdrs", want: "250", dsn: dsnparams.Mail{Ret: "HDRS"}},
		{name: "envid xtext", mail: " ENVID=a+2Bb+3Dc", want: "250", dsn: dsnparams.Mail{EnvID: "a+b=c"}},
		{name: "notify never", rcpt: " NOTIFY=NEVER", want: "250", rcptD: dsnparams.Rcpt{Notify: []string{"NEVER"}}},
		{name: "notify set", rcpt: " NOTIFY=success,DELAY", want: "250", rcptD: dsnparams.Rcpt{Notify: []string{"SUCCESS", "DELAY"}}},
		{name: "orcpt", rcpt: " ORCPT=rfc822;Bob+2Bx@Example.COM", want: "250", rcptD: dsnparams.Rcpt{ORCPT: "rfc822;Bob+x@Example.COM"}},
		{name: "orcpt utf-8", rcpt: ` ORCPT=utf-8;j\x{FC}rgen@b.test`, want: "250", rcptD: dsnparams.Rcpt{ORCPT: "utf-8;jürgen@b.test"}},
		{name: "bad ret", mail: " RET=BODY", want: "501 5.5.4"},
		{name: "bad envid xtext", mail: " ENVID=a+4", want: "501 5.5.4"},
		{name: "envid control char", mail: " ENVID=a+0Ab", want: "501 5.5.4"},
		{name: "envid too long", mail: " ENVID=" + strings.Repeat("x", 101), want: "501 5.5.4"},
		{name: "notify never and more", rcpt: " NOTIFY=NEVER,SUCCESS", want: "501 5.5.4"},
		{name: "notify unknown", rcpt: " NOTIFY=ALWAYS", want: "501 5.5.4"},
		{name: "notify repeated", rcpt: " NOTIFY=DELAY,DELAY", want: "501 5.5.4"},
		{name: "orcpt no type", rcpt: " ORCPT=bob@b.test", want: "501 5.5.4"},
		{name: "orcpt unknown type", rcpt: " ORCPT=x400;bob", want: "501 5.5.4"},
		{name: "orcpt bad xtext", rcpt: " ORCPT=rfc822;bob+G1@b.test", want: "501 5.5.4"},
		{name: "orcpt too long", rcpt: " ORCPT=rfc822;" + strings.Repeat("b", 495) + "@b.test", want: "501 5.5.4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t).start()
			c := e.ehlo()
			mail, rcpt := tt.mail, tt.rcpt
			if got := c.cmd("MAIL FROM:<alice@client.test>" + mail); !strings.HasPrefix(got, pick(mail != "", tt.want, "250")) {
				t.Fatalf("MAIL: %q, want %q", got, tt.want)
			}
			if mail != "" && tt.want != "250" {
				// Refused: the client may try again without them.
				c.expect("MAIL FROM:<alice@client.test>", "250")
			}
			if got := c.cmd("RCPT TO:<bob@example.com>" + rcpt); !strings.HasPrefix(got, pick(rcpt != "", tt.want, "250")) {
				t.Fatalf("RCPT: %q, want %q", got, tt.want)
			}
			if rcpt != "" && tt.want != "250" {
				c.expect("RCPT TO:<bob@example.com>", "250")
			}
			c.expect("RCPT TO:<carol@example.com>", "250")
			c.expect("DATA", "354")
			c.expect("Subject: x\r\n\r\nx\r\n.", "250")
			subs := e.sink.got()
			if len(subs) != 1 {
				t.Fatalf("sink got %d messages", len(subs))
			}
			s := subs[0]
			wantRcpt := []dsnparams.Rcpt{{}, {}}
			wantMail := dsnparams.Mail{}
			if tt.want == "250" {
				wantRcpt[0], wantMail = tt.rcptD, tt.dsn
			}
			if s.DSN != wantMail || !reflect.DeepEqual(s.RcptDSN, wantRcpt) {
				t.Errorf("submission DSN %+v %+v, want %+v %+v", s.DSN, s.RcptDSN, wantMail, wantRcpt)
			}
		})
	}
}

func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}
