package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/deliverylog"
	"github.com/cuemta/cuemta/sim"
)

// TestReputationWatch: a source whose address the sim's DNSBL lists and
// a sending domain its domain list lists show in
// cuemta_reputation_listed and in reputation events; with suspend, the
// listed source is suspended (origin reputation) and its mail is held,
// while the clean source's pool delivers.
func TestReputationWatch(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"dest": {Domains: []string{"dest.test"}, MX: []sim.MXHost{{Host: "mx.dest.test", IP: "127.0.0.51"}}},
	}, func(c *sim.Config) {
		c.DNS.Records = []string{
			`bl.test. 300 IN TXT "test DNSBL"`,
			`77.0.0.127.bl.test. 300 IN A 127.0.0.2`,
			`77.0.0.127.bl.test. 300 IN TXT "listed for sending to traps"`,
			`dbl.test. 300 IN TXT "test domain list"`,
			`sender.test.dbl.test. 300 IN A 127.0.1.2`,
		}
	})
	logFile := filepath.Join(t.TempDir(), "delivery.log")
	dir := mtaConfig(t, s, `
log: file: "`+logFile+`"
pools: main: sources: clean: addr: "127.0.0.1"
pools: bulk: sources: listed: addr: "127.0.0.77"
delivery: defaultPool: "main"
rules: message: [{name: "bulk", when: "sender.startsWith('bulk@')", pool: "bulk"}]
reputation: {
	dnsbls: ["bl.test"]
	domainLists: ["dbl.test"]
	domains: ["sender.test", "clean.test"]
	interval: "1h"
	suspend: true
}
`)
	srv := startServer(t, dir, "mx")
	listed := `cuemta_reputation_listed{domain="",list="bl.test",source="listed"}`
	waitFor(t, 10*time.Second, "the first round", func() bool { return strings.Contains(srv.log.String(), "reputation: listed") })
	for sample, want := range map[string]float64{
		listed: 1,
		`cuemta_reputation_listed{domain="",list="bl.test",source="clean"}`:        0,
		`cuemta_reputation_listed{domain="sender.test",list="dbl.test",source=""}`: 1,
		`cuemta_reputation_listed{domain="clean.test",list="dbl.test",source=""}`:  0,
	} {
		if got := metricValue(t, srv.admin, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
	// The suspension follows the round's events.
	var out string
	waitFor(t, 10*time.Second, "the listed source's suspension", func() bool {
		var err error
		out, err = cli(t, "", "queue", "suspensions", "--admin", srv.admin)
		return err == nil && strings.Contains(out, "listed") && strings.Contains(out, "reputation")
	})
	t.Logf("queue suspensions:\n%s", out)

	inject(t, srv.addrs["mx"], 1, 1, "alice@sender.test", func(int) []string { return []string{"u1@dest.test"} })
	inject(t, srv.addrs["mx"], 1, 1, "bulk@sender.test", func(int) []string { return []string{"u2@dest.test"} })
	var held []deliverylog.Event
	waitFor(t, 20*time.Second, "the clean source's delivery and the listed source's mail held", func() bool {
		held = nil
		for _, ev := range logEvents(t, logFile, "transient") {
			if ev.Rcpt == "u2@dest.test" {
				held = append(held, ev)
			}
		}
		return len(messagesTo(s, "dest")) == 1 && len(held) > 0
	})
	if m := messagesTo(s, "dest")[0]; m.ClientIP.String() != "127.0.0.1" || m.Rcpts[0] != "u1@dest.test" {
		t.Errorf("delivered %v from %s, want u1@dest.test from the clean source 127.0.0.1", m.Rcpts, m.ClientIP)
	}
	if ev := held[0]; ev.Source != "listed" || ev.Category != "reputation" {
		t.Errorf("held mail: source %q category %q, want listed and reputation (%+v)", ev.Source, ev.Category, ev)
	}

	var events []string
	for _, ev := range logEvents(t, logFile, "reputation") {
		events = append(events, ev.Action+" "+ev.Source+ev.Domain+" "+ev.Addr+" "+ev.List+" "+ev.Reason)
	}
	want := []string{
		"listed listed 127.0.0.77 bl.test 127.0.0.2 listed for sending to traps",
		"listed sender.test  dbl.test 127.0.1.2",
	}
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Errorf("reputation events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	var susp []string
	for _, ev := range logEvents(t, logFile, "suspension") {
		susp = append(susp, ev.Action+" "+ev.Source+" "+ev.Actor)
	}
	if strings.Join(susp, ",") != "suspend listed reputation" {
		t.Errorf("suspension events %q, want [suspend listed reputation]", susp)
	}
}
