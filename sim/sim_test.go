package sim

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A Config built in Go gets the schema's defaults from New.
func TestGoConfig(t *testing.T) {
	cfg := &Config{Sites: map[string]*Site{
		"b": {
			Domains:   []string{"b.test"},
			MX:        []MXHost{{Host: "mx.b.test", IP: "127.0.50.1"}},
			RateLimit: &RateLimit{Messages: 1, Per: Duration(time.Minute)},
			Greylist:  &Greylist{Delay: Duration(time.Minute)},
		},
	}}
	s, err := New(cfg, Options{Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := cfg.Sites["b"]
	if cfg.Hostname != "sim.invalid" || cfg.DNS.TTL.D() != 5*time.Minute || b.MaxMessageSize != 10<<20 ||
		!strings.HasPrefix(b.RateLimit.Reply, "421 ") || !strings.HasPrefix(b.Greylist.Reply, "451 ") {
		t.Errorf("defaults not applied: %+v %+v", cfg, b)
	}
	if s.Port() == 0 || !strings.HasPrefix(s.DNSAddr(), "127.0.0.1:") {
		t.Errorf("port %d dns %s", s.Port(), s.DNSAddr())
	}
	var out bytes.Buffer
	s.Describe(&out)
	if !strings.Contains(out.String(), "site b mx mx.b.test 127.0.50.1:") {
		t.Errorf("Describe: %s", out.String())
	}

	if _, err := New(&Config{Sites: map[string]*Site{"x": {Domains: []string{"x.test"}, MX: []MXHost{{Host: "mx", IP: "192.0.2.1"}}}}}, Options{}); err == nil {
		t.Error("non-loopback MX accepted")
	}
}

func TestKeep(t *testing.T) {
	tests := []struct {
		keep, want int
	}{{0, 3}, {2, 2}, {-1, 0}}
	for _, tt := range tests {
		s, err := New(&Config{Sites: map[string]*Site{"b": {Domains: []string{"b.test"}, MX: []MXHost{{Host: "mx.b.test", IP: "127.0.51.1"}}}}}, Options{Keep: tt.keep})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			s.record(Message{Site: "b", From: string(rune('a' + i))})
		}
		got := s.Messages()
		if len(got) != tt.want || s.Stats().Sites["b"].Messages != 3 {
			t.Errorf("Keep %d: kept %d, counted %d", tt.keep, len(got), s.Stats().Sites["b"].Messages)
		}
		if tt.keep == 2 && got[0].From != "b" {
			t.Errorf("Keep 2 kept %v, want the most recent", got)
		}
		s.ResetStats()
		if len(s.Messages()) != 0 || s.Stats().Sites["b"].Messages != 0 {
			t.Error("ResetStats kept something")
		}
	}
}
