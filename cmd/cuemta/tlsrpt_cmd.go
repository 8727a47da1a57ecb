package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cuemta/cuemta/admin"
)

const tlsrptUsage = `usage: cuemta tlsrpt COMMAND [flags]

commands:
  send    close the current TLS reporting windows and send every pending
          report (RFC 8460) now, without waiting for the UTC day to end

flags: -c CONFIG | --admin HOST:PORT [--token T], --json
`

// runTLSRpt implements `cuemta tlsrpt send`: POST /api/v1/tlsrpt/send on
// the running server. It exits 1 when a report could not be sent (it is
// tried again later) or the server keeps no TLS reports.
func runTLSRpt(args []string, stdout, stderr io.Writer) int {
	_, fs, af, code := adminSubcommand("tlsrpt", tlsrptUsage, args, func(n string) bool { return n == "send" }, stderr)
	if fs == nil {
		return code
	}
	asJSON := fs.Bool("json", false, "print the API's JSON reply")
	if err := fs.Parse(interleaved(fs, args[1:])); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "cuemta tlsrpt send: want no arguments, got %d\n%s", fs.NArg(), tlsrptUsage)
		return 2
	}
	c, err := af.client()
	if err != nil {
		return reportError(stderr, "tlsrpt send", err)
	}
	var resp admin.TLSReportsResponse
	raw, err := call(c, "POST", "/api/v1/tlsrpt/send", nil, &resp)
	if err != nil {
		return reportError(stderr, "tlsrpt send", err)
	}
	failed := 0
	for _, r := range resp.Reports {
		if r.Outcome == "retry" || r.Outcome == "expired" {
			failed++
		}
	}
	if *asJSON {
		stdout.Write(raw)
		if len(raw) > 0 && raw[len(raw)-1] != '\n' {
			fmt.Fprintln(stdout)
		}
	} else if len(resp.Reports) == 0 {
		fmt.Fprintln(stdout, "no TLS results to report")
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DOMAIN\tOUTCOME\tRUA\tREPORT-ID")
		for _, r := range resp.Reports {
			rua := strings.Join(r.Rua, ",")
			if r.Error != "" {
				rua = r.Error
			}
			if rua == "" {
				rua = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Domain, r.Outcome, rua, r.ReportID)
		}
		tw.Flush()
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "cuemta tlsrpt send: %d reports not sent; they are tried again later\n", failed)
		return 1
	}
	return 0
}
