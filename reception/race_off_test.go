//go:build !race

package reception

const raceEnabled = false
