//go:build race

package reception

// raceEnabled relaxes timing checks: the race detector slows byte loops ~10x.
const raceEnabled = true
