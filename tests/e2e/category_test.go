package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// TestBounceCategories: the fake ISP's "550 5.1.1 ... User unknown", a
// domain that does not exist and a full mailbox's 452 4.2.2 carry their
// categories (bad-mailbox, bad-domain, quota) into the delivery log, the
// DSN's per-recipient X-Cuemta-Category, the metrics' category label and
// `cuemta queue show` of the recipient still queued: decided by the
// built-in generic rules (cuemta.dev/isp's default profile) when the config
// uses them, derived from the enhanced codes when it does not.
func TestBounceCategories(t *testing.T) {
	for _, tc := range []struct {
		name        string
		builtin     bool
		mailboxRule string
		quotaRule   string
	}{
		{"built-in rules", true, "default-bad-mailbox", "default-quota"},
		{"no rules, from the codes", false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) { testBounceCategories(t, tc.builtin, tc.mailboxRule, tc.quotaRule) })
	}
}

func testBounceCategories(t *testing.T, builtin bool, mailboxRule, quotaRule string) {
	s := startSim(t, map[string]*sim.Site{
		"dest": {
			Domains:      []string{"dest.test"},
			MX:           []sim.MXHost{{Host: "mx.dest.test", IP: "127.0.0.6"}},
			UnknownUsers: []string{"nobody"},
		},
		"full": {
			Domains: []string{"full.test"},
			MX:      []sim.MXHost{{Host: "mx.full.test", IP: "127.0.0.8"}},
			Replies: sim.Replies{Rcpt: "452 4.2.2 The recipient's inbox is out of storage space."},
		},
		"home": {
			Domains: []string{"home.test"},
			MX:      []sim.MXHost{{Host: "mx.home.test", IP: "127.0.0.7"}},
		},
	})
	logFile := filepath.Join(t.TempDir(), "delivery.log")
	extra := `profiles: default: {messageRate: "1000/s", connectionRate: "100/s"}
log: file: "` + logFile + `"`
	dir := mtaConfig(t, s, extra)
	if builtin {
		dir = writeConfig(t, fmt.Sprintf(`import "cuemta.dev/isp"
hostname: "mta.test"
listeners: mx: addr: "127.0.0.1:0"
admin: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: [%q]
delivery: port: %d
profiles: isp.profiles
%s
`, t.TempDir()+"/spool", s.DNSAddr(), s.Port(), extra))
	}
	srv := startServer(t, dir, "mx")
	inject(t, srv.addrs["mx"], 1, 1, "alice@home.test", func(int) []string {
		return []string{"nobody@dest.test", "x@missing.dest.test", "u@full.test"}
	})

	type event struct {
		Type, MessageID, Rcpt, Reply, Rule, Category string
	}
	byRcpt := map[string]event{}
	var id string
	waitFor(t, 20*time.Second, "the bounces, the deferral and the DSN", func() bool {
		byRcpt = map[string]event{}
		sc := bufio.NewScanner(strings.NewReader(mustRead(t, logFile)))
		for sc.Scan() {
			var ev struct {
				Type      string `json:"type"`
				MessageID string `json:"message_id"`
				Rcpt      string `json:"rcpt"`
				Reply     string `json:"reply"`
				Rule      string `json:"rule"`
				Category  string `json:"category"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("delivery log line %q: %v", sc.Text(), err)
			}
			if ev.Type == "reception" && id == "" {
				id = ev.MessageID
			}
			// A bounce may add its recipient to the suppression list:
			// that event follows, and is not the outcome.
			if ev.Rcpt != "" && ev.MessageID == id && ev.Type != "suppression" {
				byRcpt[ev.Rcpt] = event{ev.Type, ev.MessageID, ev.Rcpt, ev.Reply, ev.Rule, ev.Category}
			}
		}
		return len(byRcpt) == 3 && len(messagesTo(s, "home")) == 1
	})
	for rcpt, want := range map[string]event{
		"nobody@dest.test":    {Type: "bounce", Rule: mailboxRule, Category: "bad-mailbox"},
		"x@missing.dest.test": {Type: "bounce", Category: "bad-domain"},
		"u@full.test":         {Type: "transient", Rule: quotaRule, Category: "quota"},
	} {
		got := byRcpt[rcpt]
		if got.Type != want.Type || got.Rule != want.Rule || got.Category != want.Category {
			t.Errorf("%s: logged %s rule %q category %q (reply %q); want %s rule %q category %q",
				rcpt, got.Type, got.Rule, got.Category, got.Reply, want.Type, want.Rule, want.Category)
		}
	}
	if r := byRcpt["nobody@dest.test"].Reply; !strings.HasPrefix(r, "550 5.1.1 ") {
		t.Errorf("nobody@dest.test: reply %q, want the fake ISP's 550 5.1.1", r)
	}

	// The DSN: each failed recipient's part names its category.
	body := strings.ReplaceAll(string(messagesTo(s, "home")[0].Body), "\r\n", "\n")
	for _, want := range []string{
		"Final-Recipient: rfc822; nobody@dest.test\nAction: failed\nStatus: 5.1.1\n",
		"X-Cuemta-Category: bad-mailbox\n",
		"Final-Recipient: rfc822; x@missing.dest.test\nAction: failed\nStatus: 5.1.2\n",
		"X-Cuemta-Category: bad-domain\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("DSN lacks %q:\n%s", want, body)
		}
	}
	if parts := strings.Split(body, "Final-Recipient: rfc822; nobody@dest.test"); len(parts) != 2 ||
		!strings.Contains(strings.SplitN(parts[1], "\n\n", 2)[0], "X-Cuemta-Category: bad-mailbox") {
		t.Errorf("X-Cuemta-Category: bad-mailbox is not in nobody@dest.test's part:\n%s", body)
	}

	// Metrics: the category label.
	m := metricsText(t, srv)
	for _, want := range []string{
		`cuemta_recipients_bounced_total{category="bad-mailbox",class="permanent"`,
		`cuemta_recipients_bounced_total{category="bad-domain",class="permanent"`,
		`cuemta_recipients_transient_failures_total{category="quota",class="transient"`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// cuemta queue show: the recipient still queued, with its category.
	out, err := cli(t, "", "queue", "show", id, "--admin", srv.admin)
	if err != nil {
		t.Fatalf("queue show: %v\n%s", err, out)
	}
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "u@full.test ") {
			line = l
		}
	}
	if f := strings.Fields(line); len(f) < 5 || f[1] != "pending" && f[1] != "deferred" || f[3] != "quota" || f[4] != "452" {
		t.Errorf("queue show: u@full.test's line is %q, want status, site, category quota, then the 452:\n%s", line, out)
	}
}
