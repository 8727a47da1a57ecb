package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/cuemta/cuemta/engine"
)

// runVet implements `cuemta vet PATH...`: silent and exit 0 when every
// config is valid, else one line per problem and exit 1.
func runVet(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cuemta vet PATH... (a directory holding a CUE package, or .cue files)")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	lines := engine.Vet(fs.Args())
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	if len(lines) > 0 {
		return 1
	}
	return 0
}
