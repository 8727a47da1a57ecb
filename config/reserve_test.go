package config

import "testing"

// TestSpoolReserve: spool.reserve when set, else 1.5 × the largest
// listener message size with a 4 MiB floor.
func TestSpoolReserve(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      int64
	}{
		{"schema default size", `listeners: mx: addr: "127.0.0.1:2525"`, 52428800 * 3 / 2},
		{"largest listener", `
listeners: mx: {addr: "127.0.0.1:2525", limits: maxMessageSize: 10485760}
listeners: sub: {addr: "127.0.0.1:2587", limits: maxMessageSize: 20971520}
`, 20971520 * 3 / 2},
		{"floor", `listeners: mx: {addr: "127.0.0.1:2525", limits: maxMessageSize: 1048576}`, MinSpoolReserve},
		{"no listeners", `hostname: "a.example"`, MinSpoolReserve},
		{"explicit", `
listeners: mx: addr: "127.0.0.1:2525"
spool: reserve: 1000000
`, 1000000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := loadString(t, tc.src)
			if got := cfg.SpoolReserve(); got != tc.want {
				t.Errorf("SpoolReserve() = %d, want %d", got, tc.want)
			}
		})
	}
	if _, err := LoadSource("bad.cue", []byte(`spool: reserve: -1`)); err == nil {
		t.Error("a negative spool.reserve was accepted")
	}
}
