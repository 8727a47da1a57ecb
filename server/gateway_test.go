package server

import (
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/reception"
)

// TestGatewayStateAcrossReloads: a reload that keeps the DNS settings
// keeps the DNSBL checker (and its cache); one that changes them gets a
// new one; the greylist store is opened once, under the spool, and only
// for a config that greylists.
func TestGatewayStateAcrossReloads(t *testing.T) {
	dir := t.TempDir()
	cfgOf := func(servers []string, budget int, greylist bool) *config.Config {
		c := &config.Config{Spool: config.Spool{Dir: dir}, DNS: config.DNS{Servers: servers},
			DNSBL:    config.DNSBL{Timeout: config.Duration(time.Second), Budget: budget, CacheSize: 100},
			Greylist: config.Greylisting{Delay: config.Duration(time.Minute), MaxEntries: 100, IPv4Prefix: 24, IPv6Prefix: 64}}
		c.Rules.Connect = []*config.StageRule{{Name: "c", When: "true"}}
		if greylist {
			c.Rules.Rcpt = []*config.StageRule{{Name: "g", Greylist: true}}
		}
		return c
	}
	s := &Server{logger: slog.New(slog.DiscardHandler)}
	defer s.gw.close()
	policy := func(c *config.Config) reception.Policy {
		t.Helper()
		var p reception.Policy
		if err := s.stagePolicy(&p, c, &Snapshot{}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p1 := policy(cfgOf([]string{"127.0.0.1:5300"}, 20, false))
	if p1.DNSBL == nil || p1.Greylist != nil {
		t.Fatalf("first: DNSBL %v, greylist %v", p1.DNSBL, p1.Greylist)
	}
	if p2 := policy(cfgOf([]string{"127.0.0.1:5300"}, 20, true)); p2.DNSBL != p1.DNSBL || p2.Greylist == nil {
		t.Errorf("same DNS settings: checker replaced (%v) or no greylist", p2.DNSBL != p1.DNSBL)
	}
	if p3 := policy(cfgOf([]string{"127.0.0.1:5300"}, 5, true)); p3.DNSBL == p1.DNSBL {
		t.Error("a new budget kept the old checker")
	}
	if p4 := policy(cfgOf([]string{"127.0.0.1:5301"}, 5, true)); p4.DNSBL == p1.DNSBL {
		t.Error("new servers kept the old checker")
	}
	if got, _ := filepath.Glob(filepath.Join(dir, "greylist", "greylist.log")); len(got) != 1 {
		t.Errorf("greylist log: %v", got)
	}
	var none reception.Policy
	if err := s.stagePolicy(&none, &config.Config{}, &Snapshot{}); err != nil || none.Stages != nil || none.DNSBL != nil {
		t.Errorf("no stage rules: %+v, %v", none, err)
	}
}
