// Command cuemta is a mail transfer agent whose behaviour is declared in
// CUE. Run `cuemta help` for the commands.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/cuemta/cuemta/server"
)

// command is one subcommand: it takes its arguments and the output
// streams, and returns the process exit code.
type command struct {
	run     func(args []string, stdout, stderr io.Writer) int
	summary string
}

var commands = map[string]command{
	"serve":    {runServe, "run the MTA (embedded default config without -c)"},
	"vet":      {runVet, "validate configs: vet [--offline] PATH... (exit 1 and file:line:col per problem)"},
	"profile":  {runProfile, "show the effective delivery profile and provider limits: profile -c PATH DOMAIN_OR_MXHOST|--route HOST[:PORT] [--json]"},
	"test":     {runTest, "run policy tests: test [PATH] (built-in profiles' tests without PATH)"},
	"explain":  {runExplain, "show which rules match a message or a reply: explain -c PATH ..."},
	"sim":      {runSim, "run a fake mail provider for tests: sim -c sim.cue"},
	"queue":    {runQueue, "inspect and act on the queue: queue ls|show|suspend|resume|retry|bounce|delete (by id or by filter)"},
	"suppress": {runSuppress, "the suppression list: suppress ls|add|rm|import|export"},
	"tlsrpt":   {runTLSRpt, "TLS reports (RFC 8460): tlsrpt send sends every pending report now"},
	"dmarc":    {runDMARC, "DMARC aggregate reports (RFC 7489): dmarc send sends every pending report now"},
	"status":   {runStatus, "show the running server's status"},
	"top":      {runTop, "a refreshing terminal view of providers and sites: rates, queue, connections, shaping"},
	"reload":   {runReload, "reload the running server's config (prints the new generation or the errors)"},
	"sendmail": {runSendmail, "submit a message from stdin, sendmail-style (-t -i -f -F)"},
	"spool":    {runSpool, "offline spool tools: spool salvage DIR [-o FRESH] copies a damaged spool's readable messages"},
	"version":  {runVersion, "print the version"},
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	server.Version = version
	// Installed as (or linked to) sendmail, mailq or newaliases, behave so.
	switch filepath.Base(os.Args[0]) {
	case "sendmail", "mailq", "newaliases":
		os.Exit(sendmailMain(os.Args, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(dispatch(os.Args, os.Stdout, os.Stderr))
}

func dispatch(argv []string, stdout, stderr io.Writer) int {
	if len(argv) < 2 {
		usage(stderr)
		return 2
	}
	name := argv[1]
	if name == "help" || name == "-h" || name == "--help" {
		usage(stdout)
		return 0
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "cuemta: unknown command %q\n", name)
		usage(stderr)
		return 2
	}
	return cmd.run(argv[2:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s COMMAND [ARGS]\n\ncommands:\n", filepath.Base(os.Args[0]))
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
}

func runVersion(_ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, "cuemta", version)
	return 0
}
