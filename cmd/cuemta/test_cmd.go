package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/cuemta/cuemta/rules"
)

// runTest implements `cuemta test [PATH]`: it runs the policy tests of the
// config at PATH (without PATH, the embedded default config, i.e. the
// built-in profiles' own tests), printing one line per failing test and a
// "N passed, N failed" summary. Exit 1 on a load error or a failed test.
func runTest(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cuemta test [PATH] (a directory holding a CUE package, or a .cue file; default: the embedded config)")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return 2
	}
	cfg, set, ok := loadPolicy(fs.Arg(0), stderr)
	if !ok {
		return 1
	}
	if _, failed := rules.RunTests(cfg, set, stdout); failed > 0 {
		return 1
	}
	return 0
}
