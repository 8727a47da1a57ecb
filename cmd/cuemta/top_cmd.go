package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cuemta/cuemta/admin"
)

const topUsage = `usage: cuemta top [-c CONFIG | --admin HOST:PORT [--token T]] [--interval 2s] [--frames N]

A terminal view of the running server, refreshed every interval: the
throughput of the last minute, then providers and sites with their
delivery rates (per second, last minute), queue, oldest message and open
connections, then the suspensions and throttles in force. On a terminal
the screen is redrawn and the tables are cut to its size; otherwise each
refresh is printed after the last. Ctrl-C ends it.

  --interval D   time between refreshes (default 2s, at least 100ms)
  --frames N     stop after N refreshes (default 0: until interrupted)
`

// runTop implements `cuemta top`, like KumoMTA's `kcli top`: the admin
// API's GET /api/v1/console as a refreshing table.
func runTop(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, topUsage) }
	af := &adminFlags{}
	af.register(fs)
	interval := fs.Duration("interval", 2*time.Second, "time between refreshes")
	frames := fs.Int("frames", 0, "stop after N refreshes (0: until interrupted)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 || *interval < 100*time.Millisecond || *frames < 0 {
		fmt.Fprint(stderr, "cuemta top: takes no arguments; --interval at least 100ms, --frames 0 or more\n"+topUsage)
		return 2
	}
	c, err := af.client()
	if err != nil {
		return reportError(stderr, "top", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	term := terminalSize(stdout)
	if term != nil {
		fmt.Fprint(stdout, "\x1b[?25l")       // hide the cursor while redrawing
		defer fmt.Fprint(stdout, "\x1b[?25h") // and show it again
	}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for n := 1; ; n++ {
		var cons admin.Console
		if _, err := c.Do(ctx, "GET", "/api/v1/console", nil, &cons); err != nil {
			if ctx.Err() != nil {
				return 0
			}
			return reportError(stderr, "top", err)
		}
		var b strings.Builder
		writeTop(&b, &cons, cliNow())
		frame := b.String()
		if size := terminalSize(stdout); size != nil {
			frame = "\x1b[H\x1b[2J" + fitScreen(frame, size[0], size[1])
		}
		if _, err := io.WriteString(stdout, frame); err != nil {
			return reportError(stderr, "top", err)
		}
		if *frames > 0 && n >= *frames {
			return 0
		}
		select {
		case <-ctx.Done():
			return 0
		case <-tick.C:
		}
	}
}

// terminalSize is the rows and columns of w when it is a terminal, nil
// otherwise.
func terminalSize(w io.Writer) []int {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Row == 0 || ws.Col == 0 {
		return nil
	}
	return []int{int(ws.Row), int(ws.Col)}
}

// fitScreen cuts a frame to rows lines of at most cols characters, with
// CRLF line ends (a terminal in any mode starts each line at column 0).
func fitScreen(frame string, rows, cols int) string {
	lines := strings.Split(strings.TrimRight(frame, "\n"), "\n")
	if len(lines) > rows-1 {
		lines = lines[:rows-1]
	}
	for i, l := range lines {
		if r := []rune(l); len(r) > cols {
			lines[i] = string(r[:cols])
		}
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

// writeTop prints one frame.
func writeTop(w io.Writer, c *admin.Console, now time.Time) {
	r := admin.LastMinute(c.Throughput)
	fmt.Fprintf(w, "cuemta  %s  generation %d  queue %d  connections %d\n", c.Time.UTC().Format(time.RFC3339), c.Generation, c.QueueSize, c.Connections)
	fmt.Fprintf(w, "per second (last minute): received %.2f  delivered %.2f  deferred %.2f  bounced %.2f\n", r.Received, r.Delivered, r.Deferred, r.Bounced)
	for _, e := range c.LastReloadErrors {
		fmt.Fprintf(w, "last reload refused: %s\n", e)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tSITES\tDELIV/S\tDEFER/S\tBOUNCE/S\tQUEUED\tOLDEST\tCONNS\tTOP DEFERRAL")
	for _, p := range c.Providers {
		top := "-"
		if len(p.TopDeferrals) > 0 {
			top = fmt.Sprintf("%d× %s", p.TopDeferrals[0].Count, p.TopDeferrals[0].Text)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%d\t%s\t%d\t%s\n", p.Provider, p.Sites, p.Delivered, p.Deferred, p.Bounced,
			p.Queued, age(time.Duration(p.Oldest)*time.Second), p.Connections, top)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tPROVIDER\tDELIV/S\tDEFER/S\tBOUNCE/S\tQUEUED\tOLDEST\tCONNS")
	for _, s := range c.Sites {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.2f\t%d\t%s\t%d\n", s.Site, orDash(s.Provider), s.Delivered, s.Deferred, s.Bounced,
			s.Queued, age(time.Duration(s.Oldest)*time.Second), s.Connections)
	}
	tw.Flush()
	if len(c.Suspensions)+len(c.Throttles) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SHAPING\tSCOPE\tKEY\tLEFT\tBY\tDETAIL")
		for _, s := range c.Suspensions {
			fmt.Fprintf(tw, "suspended\t%s\t%s\t%s\t%s\t%s\n", s.Scope, s.Key, age(s.Until.Sub(now)), orDash(s.Origin), orDash(s.Reason))
		}
		for _, t := range c.Throttles {
			detail := []string{}
			if t.MaxConnections > 0 {
				detail = append(detail, fmt.Sprintf("max %d connections", t.MaxConnections))
			}
			if t.MessageRate != "" {
				detail = append(detail, t.MessageRate)
			}
			fmt.Fprintf(tw, "throttled\t%s\t%s\t%s\t%s\t%s\n", t.Scope, t.Key, age(t.Until.Sub(now)), orDash(t.Rule), orDash(strings.Join(detail, ", ")))
		}
		tw.Flush()
	}
}
