// Package golden holds the golden tests of cuemta's command-line output.
// The tests build the cuemta binary once and run it, so each expectation
// is what the real command prints and the exit status it really returns
// (the last line, "exit N"; stderr, if any, follows a "--- stderr" line).
//
// vet/<case>/ directories hold a config and want.txt, the output of
// `cuemta vet <case>`; a case named valid-* must exit 0, any other 1. A
// want<FLAGS>.txt beside it is the output of `cuemta vet <FLAGS> <case>`
// (want--offline.txt: `cuemta vet --offline`). test/<case>/ directories
// hold a config and the output of `cuemta test <case>`. Run
// `go test ./tests/golden -update` to rewrite the expectations, then
// review the diff.
package golden
