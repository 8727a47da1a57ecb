package golden

import (
	"path/filepath"
	"testing"

	"github.com/cuemta/cuemta/internal/golden"
)

// TestExplain: what `cuemta explain` prints for replies and a message,
// with its exit status, against the embedded default config (the
// built-in profiles). Golden files in explain/; -update rewrites them.
func TestExplain(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{"gmail-rate-limit", []string{"--reply", "421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address.",
			"--domain", "gmail.com", "--mx", "gmail-smtp-in.l.google.com", "--stage", "eod"}},
		{"gmail-rate-limit-threshold-reached", []string{"--reply", "421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP address.",
			"--domain", "gmail.com", "--mx", "gmail-smtp-in.l.google.com", "--stage", "eod", "--previous", "1"}},
		{"outlook-connection-limit", []string{"--reply", "451 4.7.652 The mail server [192.0.2.251] has exceeded the maximum number of connections.",
			"--domain", "outlook.com", "--mx", "outlook-com.olc.protection.outlook.com", "--stage", "mail"}},
		{"unknown-user", []string{"--reply", "550 5.1.1 The email account that you tried to reach does not exist.",
			"--domain", "example.net", "--stage", "rcpt"}},
		{"bad-reply", []string{"--reply", "not a reply", "--domain", "example.net"}},
		{"message", []string{"--message", "explain/message.eml", "--to", "bob@example.net"}},
		// The signing keys chosen: the From: domain's parent's two keys,
		// relaxed-aligned (the config of test/dkim-signing).
		{"message-signed", []string{"-c", "test/dkim-signing", "--message", "explain/message-signed.eml", "--from", "bounce@esp.example", "--to", "bob@example.net"}},
		// Stage rules (test/stage-rules), DNS answers given on the command line.
		{"stage-connect-listed", []string{"-c", "test/stage-rules", "--at", "connect", "--client-ip", "198.51.100.7", "--dnsbl", "zen.spamhaus.org=127.0.0.4"}},
		{"stage-helo", []string{"-c", "test/stage-rules", "--at", "helo", "--client-ip", "198.51.100.7", "--helo", "localhost"}},
		{"stage-mail-rhsbl", []string{"-c", "test/stage-rules", "--at", "mail", "--from", "news@bad.example", "--rhsbl", "dbl.spamhaus.org:bad.example=127.0.1.2"}},
		{"stage-rcpt-greylist", []string{"-c", "test/stage-rules", "--at", "rcpt", "--client-ip", "198.51.100.7", "--tags", "pbl", "--from", "a@example.org", "--to", "bob@example.net"}},
		{"stage-bad", []string{"-c", "test/stage-rules", "--at", "data"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, _ := run(t, append([]string{"explain"}, tc.args...)...)
			golden.Check(t, filepath.Join("explain", tc.name+".txt"), out)
		})
	}
}
