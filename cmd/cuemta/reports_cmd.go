package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// reportKind is one of the report senders the server runs: TLS reports
// (RFC 8460) and DMARC aggregate reports (RFC 7489 §7.2). Both are sent
// now by one POST whose answer lists the reports with the same fields.
type reportKind struct {
	command, path, usage, nothing string
}

var (
	tlsrptKind = reportKind{command: "tlsrpt", path: "/api/v1/tlsrpt/send", nothing: "no TLS results to report",
		usage: `usage: cuemta tlsrpt COMMAND [flags]

commands:
  send    close the current TLS reporting windows and send every pending
          report (RFC 8460) now, without waiting for the UTC day to end

flags: -c CONFIG | --admin HOST:PORT [--token T], --json
`}
	dmarcKind = reportKind{command: "dmarc", path: "/api/v1/dmarc/send", nothing: "no DMARC results to report",
		usage: `usage: cuemta dmarc COMMAND [flags]

commands:
  send    close the current DMARC reporting windows and send every pending
          aggregate report (RFC 7489) now, without waiting for the UTC day
          to end

flags: -c CONFIG | --admin HOST:PORT [--token T], --json
`}
)

// sentReport is the part of an entry of either endpoint's answer the
// table shows (admin.TLSReportsResponse, admin.DMARCReportsResponse).
type sentReport struct {
	Domain   string   `json:"domain"`
	ReportID string   `json:"report_id"`
	Rua      []string `json:"rua"`
	Refused  []string `json:"refused"`
	Outcome  string   `json:"outcome"`
	Error    string   `json:"error"`
}

// runTLSRpt implements `cuemta tlsrpt send`.
func runTLSRpt(args []string, stdout, stderr io.Writer) int {
	return runReportSend(tlsrptKind, args, stdout, stderr)
}

// runDMARC implements `cuemta dmarc send`.
func runDMARC(args []string, stdout, stderr io.Writer) int {
	return runReportSend(dmarcKind, args, stdout, stderr)
}

// runReportSend POSTs k.path on the running server. It exits 1 when a
// report could not be sent (it is tried again later) or the server keeps
// no such reports.
func runReportSend(k reportKind, args []string, stdout, stderr io.Writer) int {
	_, fs, af, code := adminSubcommand(k.command, k.usage, args, func(n string) bool { return n == "send" }, stderr)
	if fs == nil {
		return code
	}
	asJSON := fs.Bool("json", false, "print the API's JSON reply")
	if err := fs.Parse(interleaved(fs, args[1:])); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "cuemta %s send: want no arguments, got %d\n%s", k.command, fs.NArg(), k.usage)
		return 2
	}
	c, err := af.client()
	if err != nil {
		return reportError(stderr, k.command+" send", err)
	}
	var resp struct {
		Reports []sentReport `json:"reports"`
	}
	raw, err := call(c, "POST", k.path, nil, &resp)
	if err != nil {
		return reportError(stderr, k.command+" send", err)
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
		fmt.Fprintln(stdout, k.nothing)
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
		for _, r := range resp.Reports {
			for _, why := range r.Refused {
				fmt.Fprintf(stdout, "%s: not sent to %s\n", r.Domain, why)
			}
		}
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "cuemta %s send: %d reports not sent; they are tried again later\n", k.command, failed)
		return 1
	}
	return 0
}
