// Package simtest starts the fake ISP's DNS for a test: a zone of the
// records given, answered on a loopback port for the test's lifetime,
// and a resolver on it that never asks the system resolver.
package simtest

import (
	"log/slog"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/sim"
)

// DNS serves records (zone-file lines, as sim's dns.records) on a
// loopback port until the test ends and returns a resolver on it that
// caches nothing, so every lookup is the zone's answer.
func DNS(tb testing.TB, records ...string) *mx.Resolver {
	tb.Helper()
	s, err := sim.New(&sim.Config{Hostname: "sim.test", DNS: sim.DNSConfig{TTL: sim.Duration(time.Minute), Records: records}},
		sim.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	r, err := mx.New(mx.Options{Servers: []string{s.DNSAddr()}, Timeout: 2 * time.Second, CacheSize: -1})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}
