package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/cuemta/cuemta/admin"
)

const suppressUsage = `usage: cuemta suppress COMMAND [flags]

commands:
  ls [--tenant T] [--address A] [--limit N]      entries (the global list is --tenant "")
  add ADDRESS... [--tenant T] [--reason R] [--for 720h]
                                                 suppress addresses (until removed, or for a duration)
  rm ADDRESS... [--tenant T]                     remove entries
  import FILE|- [--format csv|jsonl] [--source import|operator]
                                                 add the entries of a file (all checked before any is added)
  export [--format csv|jsonl] [--tenant T]       write every entry to stdout

flags of every command: -c CONFIG | --admin HOST:PORT [--token T]; ls and add: --json
`

// suppressRun is what a subcommand gets.
type suppressRun struct {
	args     []string
	tenant   string
	byTenant bool
	address  string
	limit    int
	reason   string
	dur      time.Duration
	format   string
	source   string
	json     bool
	stdin    io.Reader
	stdout   io.Writer
	now      time.Time
}

var suppressCmds = map[string]func(c *adminClient, s *suppressRun) error{
	"ls": suppressLs, "add": suppressAdd, "rm": suppressRm, "import": suppressImport, "export": suppressExport,
}

// suppressStdin is what `import -` reads; tests replace it.
var suppressStdin io.Reader = os.Stdin

// runSuppress implements `cuemta suppress`: the suppression list of a
// running server, through its admin API.
func runSuppress(args []string, stdout, stderr io.Writer) int {
	name, fs, af, code := adminSubcommand("suppress", suppressUsage, args, func(n string) bool { _, ok := suppressCmds[n]; return ok }, stderr)
	if fs == nil {
		return code
	}
	cmd := suppressCmds[name]
	s := &suppressRun{stdin: suppressStdin, stdout: stdout, now: cliNow()}
	fs.StringVar(&s.tenant, "tenant", "", "the `tenant` whose list; \"\" is the list for every tenant")
	switch name {
	case "ls":
		fs.StringVar(&s.address, "address", "", "only this `address`")
		fs.IntVar(&s.limit, "limit", 1000, "list at most `N` entries")
		fs.BoolVar(&s.json, "json", false, "print the API's JSON reply")
	case "add":
		fs.StringVar(&s.reason, "reason", "", "`reason` kept with the entries")
		fs.DurationVar(&s.dur, "for", 0, "the entries expire after this `duration`; 0: never")
		fs.BoolVar(&s.json, "json", false, "print the API's JSON reply")
	case "import", "export":
		fs.StringVar(&s.format, "format", "csv", "`csv` or jsonl")
		if name == "import" {
			fs.StringVar(&s.source, "source", "import", "source of entries that name none: `import` or operator")
		}
	}
	if err := fs.Parse(interleaved(fs, args[1:])); err != nil {
		return 2
	}
	fs.Visit(func(f *flag.Flag) { s.byTenant = s.byTenant || f.Name == "tenant" })
	s.args = fs.Args()
	want := map[string][2]int{"ls": {0, 0}, "add": {1, -1}, "rm": {1, -1}, "import": {1, 1}, "export": {0, 0}}[name]
	if len(s.args) < want[0] || want[1] >= 0 && len(s.args) > want[1] {
		fmt.Fprintf(stderr, "cuemta suppress %s: wrong number of arguments (%d)\n%s", name, len(s.args), suppressUsage)
		return 2
	}
	c, err := af.client()
	if err != nil {
		return reportError(stderr, "suppress "+name, err)
	}
	if err := cmd(c, s); err != nil {
		return reportError(stderr, "suppress "+name, err)
	}
	return 0
}

func suppressLs(c *adminClient, s *suppressRun) error {
	list, raw, err := c.Suppressions(context.Background(), admin.SuppressionQuery{Tenant: s.tenant, ByTenant: s.byTenant, Address: s.address, Limit: s.limit})
	if err != nil {
		return err
	}
	if s.json {
		s.stdout.Write(raw)
		return nil
	}
	if list.Count == 0 {
		fmt.Fprintln(s.stdout, "no suppressed addresses")
		return nil
	}
	tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tADDRESS\tSOURCE\tADDED\tEXPIRES\tREASON")
	for _, e := range list.Suppressions {
		expires := "-"
		if !e.Expires.IsZero() {
			expires = "in " + age(e.Expires.Sub(s.now))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\t%s\n", orDash(e.Tenant), e.Address, e.Source, age(s.now.Sub(e.Added)), expires, orDash(e.Reason))
	}
	tw.Flush()
	if list.Truncated {
		fmt.Fprintf(s.stdout, "%d of %d entries (--limit, or export for all)\n", len(list.Suppressions), list.Count)
	} else {
		fmt.Fprintf(s.stdout, "%d %s\n", list.Count, plural(list.Count, "entry", "entries"))
	}
	return nil
}

func suppressAdd(c *adminClient, s *suppressRun) error {
	entries := make([]admin.SuppressionEntry, len(s.args))
	for i, a := range s.args {
		entries[i] = admin.SuppressionEntry{Tenant: s.tenant, Address: a, Reason: s.reason, Source: "operator"}
		if s.dur > 0 {
			entries[i].Expires = s.now.Add(s.dur)
		}
	}
	n, err := c.Suppress(context.Background(), entries)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.stdout, "%d %s suppressed%s\n", n, plural(n, "address", "addresses"), forTenant(s.tenant))
	return nil
}

func suppressRm(c *adminClient, s *suppressRun) error {
	for _, a := range s.args {
		if err := c.Unsuppress(context.Background(), s.tenant, a); err != nil {
			return err
		}
		fmt.Fprintf(s.stdout, "%s removed%s\n", a, forTenant(s.tenant))
	}
	return nil
}

func suppressImport(c *adminClient, s *suppressRun) error {
	var r io.Reader = s.stdin
	if path := s.args[0]; path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	n, err := c.ImportSuppressions(context.Background(), r, s.format, s.source)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.stdout, "%d %s imported\n", n, plural(n, "entry", "entries"))
	return nil
}

func suppressExport(c *adminClient, s *suppressRun) error {
	return c.ExportSuppressions(context.Background(), admin.SuppressionQuery{Tenant: s.tenant, ByTenant: s.byTenant}, s.format, s.stdout)
}

func forTenant(t string) string {
	if t == "" {
		return " for every tenant"
	}
	return " for tenant " + t
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
