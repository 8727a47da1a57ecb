package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/cuemta/cuemta/queue"
)

const spoolUsage = `usage: cuemta spool COMMAND

commands:
  salvage DIR [-o FRESH]   copy every readable message of the spool in DIR
                           (one that cuemta refuses to open as corrupt) into
                           a new spool in FRESH (default DIR.salvaged), and
                           report what could not be read. DIR is only read;
                           stop cuemta first. Exit status: 0 everything was
                           recovered, 1 something was lost, 2 usage or I/O
                           error.
`

// runSpool implements `cuemta spool`: offline tools that work on a spool
// directory, with no server running.
func runSpool(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, spoolUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "salvage":
		return runSalvage(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "cuemta spool: unknown command %q\n%s", args[0], spoolUsage)
	return 2
}

func runSalvage(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("spool salvage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, spoolUsage) }
	out := fs.String("o", "", "`directory` for the fresh spool (default DIR.salvaged)")
	if err := fs.Parse(interleaved(fs, args)); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "cuemta spool salvage: want the spool directory, got %d arguments\n%s", fs.NArg(), spoolUsage)
		return 2
	}
	dir := fs.Arg(0)
	fresh := *out
	if fresh == "" {
		fresh = filepath.Clean(dir) + ".salvaged"
	}
	// Checked here too so that the refusal is a usage error, before anything
	// is read.
	if des, err := os.ReadDir(fresh); err == nil && len(des) > 0 {
		fmt.Fprintf(stderr, "cuemta spool salvage: %s exists and is not empty; name a new directory with -o\n", fresh)
		return 2
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stderr, "cuemta spool salvage: %v\n", err)
		return 2
	}
	// The fresh spool's own log lines (it is opened, filled, closed) are
	// noise here; its warnings and errors are not.
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := queue.Salvage(dir, fresh, queue.Options{Logger: logger})
	if err != nil {
		fmt.Fprintf(stderr, "cuemta spool salvage: %v\n", err)
		return 2
	}
	if writeSalvageReport(stdout, dir, fresh, &rep) {
		return 1
	}
	return 0
}

// writeSalvageReport prints the report and says whether something was lost:
// a message whose body could not be read, or a log range other than a torn
// tail (a crash's unacknowledged last write, which Open itself would cut).
func writeSalvageReport(w io.Writer, dir, fresh string, rep *queue.SalvageReport) bool {
	fmt.Fprintf(w, "salvaged %s into %s\n", dir, fresh)
	fmt.Fprintf(w, "recovered: %d messages (%d log entries read)\n", rep.Recovered, rep.Entries)
	damaged := false // a range other than a torn tail
	fmt.Fprintf(w, "unreadable log ranges: %d\n", len(rep.Damaged))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range rep.Damaged {
		name := r.File
		if rel, err := filepath.Rel(dir, r.File); err == nil {
			name = rel
		}
		note := ""
		if r.Tail {
			note = " (end of the newest segment: what a crash during a write leaves)"
		} else {
			damaged = true
		}
		if r.Length == 0 {
			fmt.Fprintf(tw, "  %s\t%s%s\n", name, r.Cause, note)
			continue
		}
		fmt.Fprintf(tw, "  %s\tbytes %d-%d (%d bytes)\t%s%s\n", name, r.Offset, r.Offset+r.Length, r.Length, r.Cause, note)
	}
	tw.Flush()
	lost := damaged || len(rep.Lost) > 0
	fmt.Fprintf(w, "lost messages: %d\n", len(rep.Lost))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, l := range rep.Lost {
		note := ""
		if l.LastBatch {
			note = " (in the log's last batch, which may never have been acknowledged)"
		}
		fmt.Fprintf(tw, "  %s\t%v%s\n", l.ID, l.Err, note)
	}
	tw.Flush()
	if damaged {
		fmt.Fprintln(w, "note: a message whose only log records were in an unreadable range is lost without its ID; one finished there may have been copied as queued and will be delivered again")
	}
	if lost {
		fmt.Fprintln(w, "result: something was lost")
	} else {
		fmt.Fprintln(w, "result: everything was recovered")
	}
	return lost
}
