package main

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// TestSetMemoryLimit: the runtime's soft limit is 90% of what the cgroup
// allows; none without a limit or a cgroup; GOMEMLIMIT and AUTOMEMLIMIT=off
// in the environment leave it alone.
func TestSetMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		provider memlimit.Provider
		want     int64 // the runtime's limit after; 0: as before
		log      string
	}{
		{name: "cgroup limit of 1 GiB", provider: memlimit.Limit(1 << 30), want: 966367641, // 0.9 GiB, truncated
			log: `msg="memory limit" bytes=966367641 from=cgroup ratio=0.9`},
		{name: "cgroup without a limit", provider: func() (uint64, error) { return 0, memlimit.ErrNoLimit }, want: math.MaxInt64,
			log: `msg="memory limit: none" reason="the cgroup sets none"`},
		{name: "no cgroup", provider: func() (uint64, error) { return 0, errors.New("process is not in cgroup") },
			log: `msg="memory limit: none" reason="failed to set GOMEMLIMIT: process is not in cgroup"`},
		{name: "GOMEMLIMIT wins", env: map[string]string{"GOMEMLIMIT": "123MiB"}, provider: memlimit.Limit(1 << 30),
			log: `from=GOMEMLIMIT`},
		{name: "AUTOMEMLIMIT=off", env: map[string]string{"AUTOMEMLIMIT": "off"}, provider: memlimit.Limit(1 << 30),
			log: `msg="memory limit: none" from="AUTOMEMLIMIT=off"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := debug.SetMemoryLimit(-1)
			defer debug.SetMemoryLimit(before)
			for _, k := range []string{"GOMEMLIMIT", "AUTOMEMLIMIT"} {
				t.Setenv(k, "") // restored after the test
				os.Unsetenv(k)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var logs bytes.Buffer
			got := setMemoryLimit(slog.New(slog.NewTextHandler(&logs, nil)), tc.provider)
			want := tc.want
			if want == 0 {
				want = before
			}
			if now := debug.SetMemoryLimit(-1); now != want || got != want {
				t.Errorf("runtime limit %d, returned %d; want %d", now, got, want)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log %q lacks %q", logs.String(), tc.log)
			}
		})
	}
}
