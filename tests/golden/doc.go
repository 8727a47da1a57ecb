// Package golden holds the golden tests of cuemta's command-line output:
// vet/<case>/ directories with a config and the exact `cuemta vet` output
// expected of it (want.txt; empty for a valid config), and test/<case>/
// directories for `cuemta test`. Run `go test ./tests/golden -update` to
// rewrite the expectations, then review the diff.
package golden
