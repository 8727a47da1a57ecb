package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/mail"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/dkim"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/smtpreply"
)

// explainFlags are the options of `cuemta explain`.
type explainFlags struct {
	config string
	// A message.
	message, from, to, listener, clientIP, user, tenant, campaign string
	// A reply.
	reply, domain, mx, stage, source, pool string
	attempt, previous                      int
	// A stage of reception (stage rules).
	at, helo, clientName, tags string
	tls                        bool
	dnsbl, rhsbl               listFlag
}

// listFlag is a flag that may be given more than once.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// runExplain implements `cuemta explain`: it shows every rule evaluated
// for a message (--message FILE --to ADDR...) or a reply (--reply "CODE
// [ENHANCED] TEXT" --domain D), whether it matched, and the decision.
func runExplain(args []string, stdout, stderr io.Writer) int {
	var f explainFlags
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "c", "", "config `PATH` (default: the embedded default config)")
	fs.StringVar(&f.message, "message", "", "RFC 5322 message `FILE` to run the message rules on")
	fs.StringVar(&f.from, "from", "", "envelope sender `ADDR` (default: the From header's address; \"<>\" for the null sender)")
	fs.StringVar(&f.to, "to", "", "envelope recipients `ADDR[,ADDR]`")
	fs.StringVar(&f.listener, "listener", "mx", "listener `NAME` the message arrived on")
	fs.StringVar(&f.clientIP, "client-ip", "127.0.0.1", "client `IP` address")
	fs.StringVar(&f.user, "user", "", "authenticated `USER`")
	fs.StringVar(&f.tenant, "tenant", "", "tenant (default: from the tenant header)")
	fs.StringVar(&f.campaign, "campaign", "", "campaign (default: from the campaign header)")
	fs.StringVar(&f.reply, "reply", "", "SMTP reply to run the response rules on, as `\"CODE [ENHANCED] TEXT\"`")
	fs.StringVar(&f.domain, "domain", "", "recipient `DOMAIN` of the reply")
	fs.StringVar(&f.mx, "mx", "", "MX `HOST` that sent the reply")
	fs.StringVar(&f.stage, "stage", "rcpt", "SMTP `STAGE` of the reply (connect, greeting, ehlo, starttls, auth, mail, rcpt, data, eod)")
	fs.StringVar(&f.source, "source", "default", "egress source `NAME`")
	fs.StringVar(&f.pool, "pool", "default", "egress pool `NAME`")
	fs.IntVar(&f.attempt, "attempt", 1, "delivery attempt `N`")
	fs.IntVar(&f.previous, "previous", 0, "matching replies already seen from the site (for threshold rules)")
	fs.StringVar(&f.at, "at", "", "run the stage rules of `STAGE` (connect, helo, mail, rcpt) instead")
	fs.StringVar(&f.helo, "helo", "mail.example.com", "HELO/EHLO `NAME` (stage rules)")
	fs.StringVar(&f.clientName, "client-name", "", "the client's reverse DNS `NAME` (stage rules)")
	fs.StringVar(&f.tags, "tags", "", "tags of the stage rules `T[,T]` (stage and message rules)")
	fs.BoolVar(&f.tls, "tls", false, "the session is over TLS (stage rules)")
	fs.Var(&f.dnsbl, "dnsbl", "`ZONE=CODE[,CODE]`: zone lists the client IP (stage rules; repeatable; others: not listed)")
	fs.Var(&f.rhsbl, "rhsbl", "`ZONE:DOMAIN=CODE[,CODE]`: zone lists the domain (stage rules; repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cuemta explain [-c PATH] --message FILE --to ADDR[,ADDR] [--from ADDR] [--listener NAME] [--client-ip IP] [--user U]")
		fmt.Fprintln(stderr, "       cuemta explain [-c PATH] --reply \"421 4.7.28 text\" --domain D [--mx HOST] [--stage rcpt]")
		fmt.Fprintln(stderr, "       cuemta explain [-c PATH] --at connect|helo|mail|rcpt [--client-ip IP] [--helo NAME] [--from ADDR] [--to ADDR] [--dnsbl ZONE=CODE]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	given := 0
	for _, v := range []string{f.message, f.reply, f.at} {
		if v != "" {
			given++
		}
	}
	if fs.NArg() > 0 || given != 1 {
		fmt.Fprintln(stderr, "cuemta explain: give exactly one of --message, --reply or --at")
		fs.Usage()
		return 2
	}
	cfg, set, ok := loadPolicy(f.config, stderr)
	if !ok {
		return 1
	}
	var err error
	switch {
	case f.at != "":
		err = explainStage(set, &f, stdout)
	case f.message != "":
		err = explainMessage(cfg, set, &f, stdout)
	default:
		err = explainReply(cfg, set, &f, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "cuemta explain:", err)
		return 1
	}
	return 0
}

func explainMessage(cfg *config.Config, set *rules.Set, f *explainFlags, w io.Writer) error {
	if f.to == "" {
		return errors.New("--message needs --to")
	}
	file, err := os.Open(f.message)
	if err != nil {
		return err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return err
	}
	msg, err := mail.ReadMessage(bufio.NewReader(file))
	if err != nil {
		return fmt.Errorf("%s: %w", f.message, err)
	}
	sender := f.from
	if sender == "" {
		if a, err := mail.ParseAddress(msg.Header.Get("From")); err == nil {
			sender = a.Address
		}
	}
	if sender == "<>" {
		sender = ""
	}
	var rcpts []string
	for _, r := range strings.Split(f.to, ",") {
		if r = strings.TrimSpace(r); r != "" {
			rcpts = append(rcpts, r)
		}
	}
	in := &rules.MessageInput{
		Sender:     sender,
		Recipients: rcpts,
		Headers:    rules.HeadersFromMIME(msg.Header),
		Size:       st.Size(),
		Listener:   f.listener,
		ClientIP:   f.clientIP,
		User:       f.user,
		Tenant:     f.tenant,
		Campaign:   f.campaign,
		Tags:       splitList(f.tags),
	}
	rules.FillFromHeaders(in, cfg.Rules.TenantHeader, cfg.Rules.CampaignHeader)
	d, steps := set.ExplainMessage(in)

	fmt.Fprintf(w, "message: %s, %d bytes, %d header fields\n", f.message, in.Size, len(in.Headers))
	fmt.Fprintf(w, "from:    %s\nto:      %s\nvia:     listener %s, client %s, user %s\n\n",
		orDash(quoteEmpty(in.Sender)), strings.Join(in.Recipients, ", "), in.Listener, in.ClientIP, orDash(in.User))
	fmt.Fprintln(w, "message rules:")
	writeSteps(w, steps, false)

	fmt.Fprintln(w, "\ndecision:")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	if d.Reject != nil {
		fmt.Fprintf(tw, "  result\treject %d %s %s\n", d.Reject.Code, d.Reject.Enhanced, d.Reject.Text)
	} else {
		fmt.Fprintf(tw, "  result\taccept\n")
	}
	fmt.Fprintf(tw, "  pool\t%s\n", d.Pool)
	fmt.Fprintf(tw, "  route\t%s\n", orDash(d.Route))
	fmt.Fprintf(tw, "  tenant\t%s\n", orDash(d.Tenant))
	fmt.Fprintf(tw, "  campaign\t%s\n", orDash(d.Campaign))
	fmt.Fprintf(tw, "  priority\t%d\n", d.Priority)
	fmt.Fprintf(tw, "  dkim\t%s\n", explainSigning(cfg, in, &d))
	var add []string
	for _, h := range d.AddHeaders {
		add = append(add, h.Name+": "+h.Value)
	}
	fmt.Fprintf(tw, "  add headers\t%s\n", orDash(strings.Join(add, "; ")))
	fmt.Fprintf(tw, "  remove headers\t%s\n", orDash(strings.Join(d.RemoveHeaders, ", ")))
	fmt.Fprintf(tw, "  matched\t%s\n", orDash(strings.Join(d.Matched, ", ")))
	return tw.Flush()
}

func explainReply(cfg *config.Config, set *rules.Set, f *explainFlags, w io.Writer) error {
	reply, err := smtpreply.Parse(f.reply)
	if err != nil {
		return fmt.Errorf("--reply: %w", err)
	}
	code, enhanced, text := reply.Code, reply.Enhanced, reply.Text
	if !rules.IsStage(f.stage) {
		return fmt.Errorf("--stage %q: want one of connect, greeting, ehlo, starttls, auth, mail, rcpt, data, eod", f.stage)
	}
	if f.domain == "" && f.mx == "" {
		return errors.New("--reply needs --domain (and/or --mx)")
	}
	in, chain := rules.ReplyInput(cfg, &config.TestReply{
		Code: code, Enhanced: enhanced, Text: text, Stage: f.stage,
		Domain: f.domain, MX: f.mx, Source: f.source, Pool: f.pool, Attempt: f.attempt,
	})
	d, steps := set.WithTracker(rules.NewTracker(rules.WithPrevious(f.previous))).ExplainResponse(in, chain)

	fmt.Fprintf(w, "reply:       %d %s %q at stage %s\n", code, orDash(enhanced), text, f.stage)
	fmt.Fprintf(w, "destination: domain %s, mx %s\n", orDash(f.domain), orDash(f.mx))
	fmt.Fprintf(w, "profiles:    %s (most specific first; global rules run before them)\n\n", orDash(strings.Join(chain, " > ")))
	fmt.Fprintln(w, "response rules:")
	writeSteps(w, steps, true)

	fmt.Fprintln(w, "\ndecision:")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	switch {
	case d.Rule == "":
		fmt.Fprintf(tw, "  rule\t- (no rule decided: classified by code class)\n")
	case d.Profile == "":
		fmt.Fprintf(tw, "  rule\t%s (global)\n", d.Rule)
	default:
		fmt.Fprintf(tw, "  rule\t%s (profile %s)\n", d.Rule, d.Profile)
	}
	fmt.Fprintf(tw, "  classify\t%s\n", d.Classify)
	if d.Suspend != nil {
		fmt.Fprintf(tw, "  suspend\t%s for %s\n", d.Suspend.Scope, d.Suspend.For)
	}
	if t := d.Throttle; t != nil {
		var parts []string
		if t.MaxConnections > 0 {
			parts = append(parts, "maxConnections "+strconv.Itoa(t.MaxConnections))
		}
		if t.MessageRate != nil {
			parts = append(parts, "messageRate "+t.MessageRate.String())
		}
		parts = append(parts, "for "+t.For.String())
		fmt.Fprintf(tw, "  throttle\t%s (slower, not paused): %s\n", t.Scope, strings.Join(parts, ", "))
	}
	if d.RetryAfter != nil {
		fmt.Fprintf(tw, "  retryAfter\t%s\n", *d.RetryAfter)
	}
	fmt.Fprintf(tw, "  bounce\t%t\n", d.Bounce)
	fmt.Fprintf(tw, "  category\t%s\n", orDash(d.Category))
	fmt.Fprintf(tw, "  matched\t%s\n", orDash(strings.Join(d.Matched, ", ")))
	return tw.Flush()
}

// writeSteps prints one line per rule evaluation.
func writeSteps(w io.Writer, steps []rules.Step, withProfile bool) {
	if len(steps) == 0 {
		fmt.Fprintln(w, "  (none evaluated)")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, s := range steps {
		verdict := "no"
		switch {
		case s.Err != "":
			verdict = "error"
		case s.Matched:
			verdict = "yes"
		}
		var notes []string
		if s.Decided {
			notes = append(notes, "decides")
		}
		if s.Note != "" {
			notes = append(notes, s.Note)
		}
		if s.Err != "" {
			notes = append(notes, s.Err+" (counted as not matching)")
		}
		cells := []string{verdict}
		if withProfile {
			cells = append(cells, orGlobal(s.Profile))
		}
		cells = append(cells, s.Rule)
		if len(notes) > 0 {
			cells = append(cells, strings.Join(notes, "; "))
		}
		// No tab after the last cell, so that lines carry no padding.
		fmt.Fprintf(tw, "  %s\n", strings.Join(cells, "\t"))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orGlobal(profile string) string {
	if profile == "" {
		return "global"
	}
	return profile
}

func quoteEmpty(s string) string {
	if s == "" {
		return "<>"
	}
	return s
}

// explainSigning is the keys that sign the message and which step of the
// selection chose them (dkim.SigningTable).
func explainSigning(cfg *config.Config, in *rules.MessageInput, d *rules.MessageDecision) string {
	from := dkim.FromDomain(d.HeaderAfter(in, "From"))
	sel := dkim.NewSigningTable(&cfg.DKIM).Select(d.DKIM, from, in.Sender)
	var why string
	switch sel.By {
	case dkim.ByRule:
		why = "a message rule"
	case dkim.ByFrom:
		why = "the From: domain (keys of " + sel.Domain + ")"
	case dkim.BySender:
		why = "the envelope sender domain (keys of " + sel.Domain + ")"
	case dkim.ByDefault:
		why = "dkim.default"
	}
	if len(sel.Names) == 0 {
		if why == "" {
			why = "no key for the From: or sender domain, no dkim.default"
		}
		return "- (unsigned: " + why + ")"
	}
	parts := make([]string, len(sel.Names))
	for i, n := range sel.Names {
		parts[i] = n
		if k := cfg.DKIM.Keys[n]; k != nil {
			parts[i] += fmt.Sprintf(" (d=%s, %s)", k.Domain, dkim.Alignment(k.Domain, from))
		}
	}
	return strings.Join(parts, ", ") + "; chosen by " + why
}
