package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/rules"
)

// explainStage shows the stage rules of f.at for the session the flags
// describe. DNS answers are the flags' own (--dnsbl, --rhsbl): explain
// asks no DNS server.
func explainStage(set *rules.Set, f *explainFlags, w io.Writer) error {
	if !slices.Contains(config.Stages, f.at) {
		return fmt.Errorf("--at %q: want one of %s", f.at, strings.Join(config.Stages, ", "))
	}
	t := &config.TestStage{Stage: f.at, ClientIP: f.clientIP, ClientName: f.clientName, Helo: f.helo, TLS: f.tls,
		User: f.user, Listener: f.listener, Sender: f.from, Recipient: f.to,
		DNSBL: map[string][]string{}, RHSBL: map[string]map[string][]string{}}
	if t.Sender == "<>" {
		t.Sender = ""
	}
	t.Tags = splitList(f.tags)
	for _, v := range f.dnsbl {
		zone, codes, ok := strings.Cut(v, "=")
		if !ok || zone == "" {
			return fmt.Errorf("--dnsbl %q: want ZONE=CODE[,CODE]", v)
		}
		t.DNSBL[strings.ToLower(strings.TrimSuffix(zone, "."))] = splitList(codes)
	}
	for _, v := range f.rhsbl {
		zd, codes, ok := strings.Cut(v, "=")
		zone, domain, ok2 := strings.Cut(zd, ":")
		if !ok || !ok2 || zone == "" || domain == "" {
			return fmt.Errorf("--rhsbl %q: want ZONE:DOMAIN=CODE[,CODE]", v)
		}
		zone = strings.ToLower(strings.TrimSuffix(zone, "."))
		if t.RHSBL[zone] == nil {
			t.RHSBL[zone] = map[string][]string{}
		}
		t.RHSBL[zone][strings.ToLower(strings.TrimSuffix(domain, "."))] = splitList(codes)
	}
	d, steps := set.ExplainStage(rules.StageTestInput(t))

	fmt.Fprintf(w, "stage:   %s\n", f.at)
	fmt.Fprintf(w, "client:  %s (%s), listener %s, tls %t\n", t.ClientIP, orDash(t.ClientName), t.Listener, t.TLS)
	idx := slices.Index(config.Stages, f.at)
	if idx >= 1 {
		fmt.Fprintf(w, "helo:    %s\n", t.Helo)
	}
	if idx >= 2 {
		fmt.Fprintf(w, "from:    %s, user %s\n", quoteEmpty(t.Sender), orDash(t.User))
	}
	if idx >= 3 {
		fmt.Fprintf(w, "to:      %s\n", orDash(t.Recipient))
	}
	fmt.Fprintf(w, "tags:    %s\n\n", orDash(strings.Join(t.Tags, ", ")))
	fmt.Fprintf(w, "%s rules:\n", f.at)
	writeSteps(w, steps, false)

	fmt.Fprintln(w, "\ndecision:")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	result := d.Action
	switch {
	case d.Reply != nil && f.at == config.StageConnect:
		result = fmt.Sprintf("%s: %d %s %s instead of the greeting, then close (RFC 5321 §3.1)", d.Action, d.Reply.Code, d.Reply.Enhanced, d.Reply.Text)
	case d.Reply != nil:
		result = fmt.Sprintf("%s: %d %s %s", d.Action, d.Reply.Code, d.Reply.Enhanced, d.Reply.Text)
	case d.Action == rules.ActionGreylist:
		result = "greylist: 451 4.7.1 until the triplet has waited greylist.delay"
	case d.Action == rules.ActionAccept:
		result = "accept (ends the " + f.at + " rules; the built-in checks still apply)"
	}
	fmt.Fprintf(tw, "  result\t%s\n", result)
	fmt.Fprintf(tw, "  rule\t%s\n", orDash(d.Rule))
	fmt.Fprintf(tw, "  tags added\t%s\n", orDash(strings.Join(d.Tags, ", ")))
	fmt.Fprintf(tw, "  matched\t%s\n", orDash(strings.Join(d.Matched, ", ")))
	return tw.Flush()
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
