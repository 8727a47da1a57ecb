package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/cuemta/cuemta/vet"
)

// runVet implements `cuemta vet [--offline] PATH...`: silent and exit 0
// when every config is valid, else one line per problem and exit 1. With
// --offline the files the configs name are listed as skipped, not read,
// and do not count either way.
func runVet(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	offline := fs.Bool("offline", false, "do not read the DKIM key, TLS certificate and TLS key files the config names: list them as skipped (they do not change the exit status)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: cuemta vet [--offline] PATH...

PATH is a directory holding a CUE package, a .cue file, or DIR/... for every
directory below DIR holding .cue files. Prints one line per problem,
file:line:col: message, and exits 1 if there is any, 0 if there is none.

Without --offline vet also reads every DKIM key file and TLS certificate and
key file the config names, as the server does when it loads the config. With
--offline (for CI or a build host that does not hold the secrets) it checks
everything else and prints, for each of those files,
  skipped (offline): dkim key "NAME" file PATH not read
so the files are neither passed nor failed: the exit status does not depend
on them.

flags:`)
		fs.PrintDefaults()
	}
	// Flags may come after the paths too: `cuemta vet DIR --offline`.
	var paths []string
	for {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		paths = append(paths, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(paths) == 0 {
		fs.Usage()
		return 2
	}
	r := vet.Run(paths, vet.Options{Offline: *offline})
	for _, l := range r.Problems {
		fmt.Fprintln(stdout, l)
	}
	for _, l := range r.Skipped {
		fmt.Fprintln(stdout, l)
	}
	for _, l := range r.Notes {
		fmt.Fprintln(stdout, l)
	}
	if !r.OK() {
		return 1
	}
	return 0
}
