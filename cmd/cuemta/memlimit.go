package main

import (
	"log/slog"
	"math"
	"os"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memoryLimitRatio is the share of the cgroup's memory limit given to the
// Go runtime as its soft limit: the rest is for what the runtime does not
// count (stacks of goroutines being created, the binary, page tables).
const memoryLimitRatio = 0.9

// setMemoryLimit gives the Go runtime a soft memory limit (GOMEMLIMIT) of
// 90% of the memory limit of the process's cgroup (a container's limit,
// systemd's MemoryMax=). Large messages leave copies behind as garbage,
// outside the reception budget, which the collector would let grow to
// the live heap's size again; with the limit it collects before the
// kernel's OOM killer counts them. GOMEMLIMIT in the environment wins,
// and AUTOMEMLIMIT=off leaves the runtime's default (no limit). Without
// a cgroup limit nothing changes. It returns the limit now in force
// (math.MaxInt64: none).
func setMemoryLimit(logger *slog.Logger, provider memlimit.Provider) int64 {
	limit, err := memlimit.Set(memlimit.WithProvider(provider), memlimit.WithRatio(memoryLimitRatio))
	switch {
	case os.Getenv("GOMEMLIMIT") != "":
		logger.Info("memory limit", "bytes", limit, "from", "GOMEMLIMIT")
	case os.Getenv("AUTOMEMLIMIT") == "off":
		logger.Info("memory limit: none", "from", "AUTOMEMLIMIT=off")
	case err != nil:
		// Not in a cgroup with a memory controller: as without a limit.
		logger.Info("memory limit: none", "reason", err)
	case limit == math.MaxInt64:
		logger.Info("memory limit: none", "reason", "the cgroup sets none")
	default:
		logger.Info("memory limit", "bytes", limit, "from", "cgroup", "ratio", memoryLimitRatio)
	}
	return limit
}
