package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cuemta/cuemta/admin"
)

// adminCommand parses the flags of an admin command that takes no
// arguments (-c, --admin, --token, --json) and returns its API client, or
// nil and the exit code.
func adminCommand(name string, args []string, stderr io.Writer) (*adminClient, bool, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var af adminFlags
	af.register(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON reply")
	if err := fs.Parse(args); err != nil {
		return nil, false, 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: cuemta %s [-c CONFIG | --admin HOST:PORT [--token T]] [--json]\n", name)
		return nil, false, 2
	}
	c, err := af.client()
	if err != nil {
		return nil, false, reportError(stderr, name, err)
	}
	return c, *asJSON, 0
}

// runStatus implements `cuemta status`: what the running server is doing.
func runStatus(args []string, stdout, stderr io.Writer) int {
	c, asJSON, code := adminCommand("status", args, stderr)
	if c == nil {
		return code
	}
	var st admin.Status
	raw, err := call(c, "GET", "/api/v1/status", nil, &st)
	if err != nil {
		return reportError(stderr, "status", err)
	}
	if asJSON {
		stdout.Write(raw)
		return 0
	}
	writeStatus(stdout, c.Addr(), &st)
	return 0
}

func writeStatus(w io.Writer, addr string, st *admin.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if st.Hostname != "" {
		fmt.Fprintf(tw, "hostname\t%s\n", st.Hostname)
	}
	if st.Version != "" {
		fmt.Fprintf(tw, "version\t%s\n", st.Version)
	}
	fmt.Fprintf(tw, "admin API\t%s\n", addr)
	uptime := time.Duration(st.UptimeSeconds * float64(time.Second)).Round(time.Second)
	fmt.Fprintf(tw, "uptime\t%s (since %s)\n", age(uptime), st.Started.UTC().Format(time.RFC3339))
	ready := "yes"
	if !st.Ready {
		ready = "no"
	}
	fmt.Fprintf(tw, "ready\t%s\n", ready)
	fmt.Fprintf(tw, "generation\t%d\n", st.Generation)
	fmt.Fprintf(tw, "queue\t%d messages\n", st.QueueSize)
	fmt.Fprintf(tw, "suspensions\t%d\n", st.Suspensions)
	for i, l := range st.Listeners {
		label := ""
		if i == 0 {
			label = "listeners"
		}
		fmt.Fprintf(tw, "%s\t%s %s (%s, %d connections)\n", label, l.Name, l.Addr, l.Mode, l.Connections)
	}
	if len(st.ConfigFiles) > 0 {
		fmt.Fprintf(tw, "config\t%s\n", strings.Join(st.ConfigFiles, ", "))
	}
	if !st.LastReload.IsZero() {
		outcome := "applied"
		if len(st.LastReloadErrors) > 0 {
			outcome = "refused"
		}
		fmt.Fprintf(tw, "last reload\t%s, %s\n", st.LastReload.UTC().Format(time.RFC3339), outcome)
	}
	tw.Flush()
	for _, e := range st.LastReloadErrors {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

// runReload implements `cuemta reload`: the server reloads its config. It
// prints the new generation, or the positioned errors one per line (like
// `cuemta vet`) and exits 1; the running config then stays in force.
func runReload(args []string, stdout, stderr io.Writer) int {
	c, asJSON, code := adminCommand("reload", args, stderr)
	if c == nil {
		return code
	}
	var res admin.ReloadResult
	raw, err := call(c, "POST", "/api/v1/reload", nil, &res)
	var apiErr *apiError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnprocessableEntity {
		return reloadRefused(stdout, stderr, apiErr, asJSON)
	}
	if err != nil {
		return reportError(stderr, "reload", err)
	}
	if asJSON {
		stdout.Write(raw)
		return 0
	}
	fmt.Fprintf(stdout, "reloaded: generation %d\n", res.Generation)
	return 0
}

func reloadRefused(stdout, stderr io.Writer, e *apiError, asJSON bool) int {
	if asJSON {
		stdout.Write(e.Body)
		return 1
	}
	var res admin.ReloadResult
	if err := json.Unmarshal(e.Detail, &res); err != nil {
		return reportError(stderr, "reload", e)
	}
	for _, l := range res.Errors {
		fmt.Fprintln(stdout, l)
	}
	fmt.Fprintf(stderr, "cuemta reload: configuration refused (%d errors); generation %d stays in force\n", len(res.Errors), res.Generation)
	return 1
}
