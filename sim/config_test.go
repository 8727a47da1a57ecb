package sim

import (
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	cfg, err := loadSrc(t, `
sites: gmail: {
	domains: ["gmail.test", "googlemail.test"]
	mx: [{host: "mx1.gmail.test", ip: "127.0.20.1"}, {host: "mx2.gmail.test", ip: "127.0.20.2"}]
	maxConnections: 3
	rateLimit: {messages: 10, per: "1m"}
	greylist: delay: "5m"
	unknownUsers: ["nobody"]
}
dns: nullMX: ["nomail.test"]
`)
	if err != nil {
		t.Fatal(err)
	}
	g := cfg.Sites["gmail"]
	if cfg.Port != 2525 || cfg.DNS.Addr != "127.0.0.1:5353" || cfg.Hostname != "sim.invalid" || cfg.DNS.TTL.D() != 5*time.Minute {
		t.Errorf("defaults: %+v", cfg)
	}
	if g.MaxConnections != 3 || g.MaxMessageSize != 10485760 || g.RateLimit.Per.D() != time.Minute ||
		!strings.HasPrefix(g.RateLimit.Reply, "421 4.7.28") || g.Greylist.Delay.D() != 5*time.Minute ||
		!strings.HasPrefix(g.Greylist.Reply, "451 4.7.1") || len(g.MX) != 2 || g.Latency != 0 {
		t.Errorf("site: %+v", g)
	}
	if len(cfg.DNS.NullMX) != 1 {
		t.Errorf("dns: %+v", cfg.DNS)
	}
}

func TestLoadRejects(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"misspelt field (closed)", `sites: a: {domains: ["a.test"], mx: [{host: "mx.a.test", ip: "127.0.0.2"}], maxConnection: 2}`, "maxConnection"},
		{"not loopback", `sites: a: {domains: ["a.test"], mx: [{host: "mx.a.test", ip: "10.0.0.2"}]}`, "ip"},
		{"no MX", `sites: a: {domains: ["a.test"], mx: []}`, "mx"},
		{"bad duration", `sites: a: {domains: ["a.test"], mx: [{host: "mx.a.test", ip: "127.0.0.2"}], latency: "soon"}`, "latency"},
		{"rate without per", `sites: a: {domains: ["a.test"], mx: [{host: "mx.a.test", ip: "127.0.0.2"}], rateLimit: messages: 3}`, "per"},
		{"bad reply", `sites: a: {domains: ["a.test"], mx: [{host: "mx.a.test", ip: "127.0.0.2"}], replies: mail: "no"}`, "mail"},
		{"shared address", `sites: {
			a: {domains: ["a.test"], mx: [{host: "mx.a.test", ip: "127.0.0.2"}]}
			b: {domains: ["b.test"], mx: [{host: "mx.b.test", ip: "127.0.0.2"}]}
		}`, "already used by site a"},
		{"shared domain", `sites: {
			a: {domains: ["a.test"], mx: [{host: "mx.a.test", ip: "127.0.0.2"}]}
			b: {domains: ["A.test"], mx: [{host: "mx.b.test", ip: "127.0.0.3"}]}
		}`, "already belongs to site a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadSrc(t, tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}
