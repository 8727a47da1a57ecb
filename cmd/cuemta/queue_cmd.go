package main

import (
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cuemta/cuemta/admin"
)

const queueUsage = `usage: cuemta queue COMMAND [flags]

commands:
  ls [--by site|pool|tenant]               queued messages by group
  ls --messages [FILTER] [--limit N] [--after ID]
                                           the messages themselves, by id, a page at a time
  show ID                                  one message and its recipients
  suspensions                              suspensions in force
  suspend SCOPE KEY --for 1h [--reason R]  stop deliveries; SCOPE is site, source, provider, tenant or campaign
  resume SCOPE KEY                         lift a suspension
  retry ID                                 make a message due now
  bounce ID [--reason R]                   fail a message and send a bounce to its sender
  delete ID                                remove a message without a bounce
  retry|bounce|delete FILTER [--dry-run]   the same for every message the filter selects
  suspend FILTER --for 1h [--dry-run]      hold the messages the filter selects for a while (retry releases them)

FILTER (all given must match; patterns take * and ignore case):
  --site S --provider P --source S --pool P --tenant T --campaign C
  --from PATTERN --to PATTERN --older-than 2h|3d
  --class untried|4xx|421|4.7.28 --category rate-limited
  --all                                    act on every message (a bulk action needs a filter or --all)

flags of every command: -c CONFIG | --admin HOST:PORT [--token T], --json
`

// cliNow is the clock of the client commands (ages in tables); tests fix
// it. Times are printed in UTC, RFC 3339, like the delivery log.
var cliNow = time.Now

// queueCmd is one `cuemta queue` subcommand.
type queueCmd struct {
	args int // positional arguments
	run  func(c *adminClient, q *queueRun) error
}

// queueRun is what a subcommand gets: its positional arguments and flags.
type queueRun struct {
	name   string
	args   []string
	json   bool
	by     string
	dur    string
	reason string
	stdout io.Writer
	now    time.Time

	// Message filters (ls --messages and the bulk actions).
	messages bool
	filter   map[string]*string
	all      bool
	dryRun   bool
	limit    int
	after    string
}

// filterFlags are the filter flags and the admin.FilterKeys they set.
var filterFlags = [][2]string{
	{"site", "site"}, {"provider", "provider"}, {"pool", "pool"}, {"source", "source"},
	{"tenant", "tenant"}, {"campaign", "campaign"}, {"from", "from"}, {"to", "to"},
	{"older-than", "older_than"}, {"class", "class"}, {"category", "category"},
}

// filterFields is the filter given on the command line.
func (q *queueRun) filterFields() map[string]string {
	out := map[string]string{}
	for k, v := range q.filter {
		if *v != "" {
			out[k] = *v
		}
	}
	return out
}

// bulk reports whether the command acts on a filter rather than an id.
func (q *queueRun) bulk() bool { return len(q.filterFields()) > 0 || q.all }

var queueCmds = map[string]queueCmd{
	"ls":          {0, queueLs},
	"show":        {1, queueShow},
	"suspensions": {0, queueSuspensions},
	"suspend":     {2, queueSuspend},
	"resume":      {2, queueResume},
	"retry":       {1, queueRetry},
	"bounce":      {1, queueBounce},
	"delete":      {1, queueDelete},
}

// runQueue implements `cuemta queue`: inspect and control the queue of a
// running server through its admin API.
func runQueue(args []string, stdout, stderr io.Writer) int {
	name, fs, af, code := adminSubcommand("queue", queueUsage, args, func(n string) bool { _, ok := queueCmds[n]; return ok }, stderr)
	if fs == nil {
		return code
	}
	cmd := queueCmds[name]
	q := &queueRun{name: name, stdout: stdout, now: cliNow()}
	fs.BoolVar(&q.json, "json", false, "print the API's JSON reply")
	switch name {
	case "ls", "retry", "bounce", "delete", "suspend":
		q.filter = map[string]*string{}
		for _, f := range filterFlags {
			q.filter[f[1]] = fs.String(f[0], "", "select messages by "+strings.ReplaceAll(f[1], "_", " "))
		}
	}
	switch name {
	case "retry", "bounce", "delete", "suspend":
		fs.BoolVar(&q.all, "all", false, "act on every message in the queue")
		fs.BoolVar(&q.dryRun, "dry-run", false, "count the messages the filter selects; change nothing")
	}
	switch name {
	case "ls":
		fs.StringVar(&q.by, "by", "site", "group by `site`, pool or tenant")
		fs.BoolVar(&q.messages, "messages", false, "list the messages, not groups")
		fs.IntVar(&q.limit, "limit", 100, "messages per page (ls --messages, up to 1000)")
		fs.StringVar(&q.after, "after", "", "start after message `ID` (the next page that ls --messages printed)")
	case "suspend":
		fs.StringVar(&q.dur, "for", "", "how long, as a Go `duration` (90m, 1h, 24h)")
		fallthrough
	case "bounce":
		fs.StringVar(&q.reason, "reason", "", "`reason` recorded in the log (and in the bounce)")
	}
	if err := fs.Parse(interleaved(fs, args[1:])); err != nil {
		return 2
	}
	want := cmd.args
	switch {
	case name == "ls" && !q.messages && len(q.filterFields()) > 0:
		fmt.Fprintln(stderr, "cuemta queue ls: the filters need --messages")
		return 2
	case q.filter != nil && name != "ls" && q.bulk():
		want = 0 // a bulk action: the filter, not an id, says which messages
	case q.dryRun:
		fmt.Fprintf(stderr, "cuemta queue %s: --dry-run is for a bulk action: give a filter (or --all)\n", name)
		return 2
	}
	if fs.NArg() != want {
		fmt.Fprintf(stderr, "cuemta queue %s: want %d arguments, got %d\n%s", name, want, fs.NArg(), queueUsage)
		return 2
	}
	if want == 0 && cmd.args > 0 {
		cmd.run = queueBulk
	}
	if name == "ls" && q.messages {
		cmd.run = queueLsMessages
	}
	if name == "suspend" && q.dur == "" {
		fmt.Fprintln(stderr, "cuemta queue suspend: --for DURATION is required (for example --for 1h)")
		return 2
	}
	q.args = fs.Args()
	c, err := af.client()
	if err != nil {
		return reportError(stderr, "queue "+name, err)
	}
	if err := cmd.run(c, q); err != nil {
		return reportError(stderr, "queue "+name, err)
	}
	return 0
}

// printRaw prints a JSON reply as received, for --json.
func (q *queueRun) printRaw(data []byte) {
	q.stdout.Write(data)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		fmt.Fprintln(q.stdout)
	}
}

func queueLs(c *adminClient, q *queueRun) error {
	var resp struct {
		By     string             `json:"by"`
		Groups []admin.QueueGroup `json:"groups"`
	}
	raw, err := call(c, "GET", "/api/v1/queue?by="+url.QueryEscape(q.by), nil, &resp)
	if err != nil {
		return err
	}
	if q.json {
		q.printRaw(raw)
		return nil
	}
	writeQueueTable(q.stdout, resp.By, resp.Groups, q.now)
	return nil
}

// writeQueueTable prints groups largest first.
func writeQueueTable(w io.Writer, by string, groups []admin.QueueGroup, now time.Time) {
	if len(groups) == 0 {
		fmt.Fprintln(w, "the queue is empty")
		return
	}
	sort.SliceStable(groups, func(i, j int) bool {
		if groups[i].Count != groups[j].Count {
			return groups[i].Count > groups[j].Count
		}
		return groups[i].Key < groups[j].Key
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\tMESSAGES\tOLDEST\tSUSPENDED\n", strings.ToUpper(by))
	total := 0
	for _, g := range groups {
		total += g.Count
		suspended := "-"
		if !g.SuspendedUntil.IsZero() {
			suspended = "for " + age(g.SuspendedUntil.Sub(now))
			if g.SuspendReason != "" {
				suspended += ": " + g.SuspendReason
			}
		}
		oldest := "-"
		if !g.Oldest.IsZero() {
			oldest = age(now.Sub(g.Oldest)) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", orDash(g.Key), g.Count, oldest, suspended)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d messages in %d groups\n", total, len(groups))
}

// age formats a duration for people: 45s, 12m, 3h5m, 2d4h.
func age(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		h := int(d.Hours())
		if m := int(d.Minutes()) % 60; m != 0 {
			return fmt.Sprintf("%dh%dm", h, m)
		}
		return fmt.Sprintf("%dh", h)
	default:
		days := int(d.Hours()) / 24
		if h := int(d.Hours()) % 24; h != 0 {
			return fmt.Sprintf("%dd%dh", days, h)
		}
		return fmt.Sprintf("%dd", days)
	}
}

func queueShow(c *adminClient, q *queueRun) error {
	var m admin.MessageInfo
	raw, err := call(c, "GET", "/api/v1/messages/"+url.PathEscape(q.args[0]), nil, &m)
	if err != nil {
		return err
	}
	if q.json {
		q.printRaw(raw)
		return nil
	}
	writeMessage(q.stdout, &m, q.now)
	return nil
}

func writeMessage(w io.Writer, m *admin.MessageInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	from := m.From
	if from == "" {
		from = "<>"
	}
	fmt.Fprintf(tw, "id\t%s\n", m.ID)
	fmt.Fprintf(tw, "from\t%s\n", from)
	fmt.Fprintf(tw, "received\t%s (%s ago)\n", m.Received.UTC().Format(time.RFC3339), age(now.Sub(m.Received)))
	fmt.Fprintf(tw, "size\t%d bytes\n", m.Size)
	fmt.Fprintf(tw, "attempts\t%d\n", m.Attempts)
	if !m.NextAttempt.IsZero() {
		fmt.Fprintf(tw, "next attempt\t%s (in %s)\n", m.NextAttempt.UTC().Format(time.RFC3339), age(m.NextAttempt.Sub(now)))
	}
	for _, kv := range [][2]string{{"pool", m.Pool}, {"tenant", m.Tenant}, {"campaign", m.Campaign}} {
		if kv[1] != "" {
			fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECIPIENT\tSTATUS\tSITE\tCATEGORY\tLAST REPLY")
	for _, r := range m.Recipients {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Address, r.Status, orDash(r.Site), orDash(r.Category), orDash(r.LastReply))
	}
	tw.Flush()
}

func queueSuspensions(c *adminClient, q *queueRun) error {
	var resp struct {
		Suspensions []admin.Suspension `json:"suspensions"`
	}
	raw, err := call(c, "GET", "/api/v1/suspensions", nil, &resp)
	if err != nil {
		return err
	}
	if q.json {
		q.printRaw(raw)
		return nil
	}
	if len(resp.Suspensions) == 0 {
		fmt.Fprintln(q.stdout, "no suspensions")
		return nil
	}
	tw := tabwriter.NewWriter(q.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tKEY\tUNTIL\tBY\tREASON")
	for _, s := range resp.Suspensions {
		fmt.Fprintf(tw, "%s\t%s\t%s (in %s)\t%s\t%s\n", s.Scope, s.Key, s.Until.UTC().Format(time.RFC3339), age(s.Until.Sub(q.now)), orDash(s.Origin), orDash(s.Reason))
	}
	tw.Flush()
	return nil
}

func queueSuspend(c *adminClient, q *queueRun) error {
	body := map[string]string{"scope": q.args[0], "key": q.args[1], "duration": q.dur, "reason": q.reason}
	var s admin.Suspension
	raw, err := call(c, "POST", "/api/v1/suspensions", body, &s)
	if err != nil {
		return err
	}
	if q.json {
		q.printRaw(raw)
		return nil
	}
	fmt.Fprintf(q.stdout, "suspended %s %s until %s (%s)\n", s.Scope, s.Key, s.Until.UTC().Format(time.RFC3339), q.dur)
	return nil
}

func queueResume(c *adminClient, q *queueRun) error {
	path := "/api/v1/suspensions/" + url.PathEscape(q.args[0]) + "/" + url.PathEscape(q.args[1])
	return q.action(c, "DELETE", path, nil, fmt.Sprintf("resumed %s %s", q.args[0], q.args[1]))
}

func queueRetry(c *adminClient, q *queueRun) error {
	return q.action(c, "POST", "/api/v1/messages/"+url.PathEscape(q.args[0])+"/retry", nil, "message "+q.args[0]+" is due now")
}

func queueBounce(c *adminClient, q *queueRun) error {
	var body any
	if q.reason != "" {
		body = map[string]string{"reason": q.reason}
	}
	return q.action(c, "POST", "/api/v1/messages/"+url.PathEscape(q.args[0])+"/bounce", body, "bounced message "+q.args[0])
}

func queueDelete(c *adminClient, q *queueRun) error {
	return q.action(c, "DELETE", "/api/v1/messages/"+url.PathEscape(q.args[0]), nil, "deleted message "+q.args[0])
}

// action performs a request whose reply people only need confirmed.
func (q *queueRun) action(c *adminClient, method, path string, body any, done string) error {
	raw, err := call(c, method, path, body, nil)
	if err != nil {
		return err
	}
	if q.json {
		q.printRaw(raw)
		return nil
	}
	fmt.Fprintln(q.stdout, done)
	return nil
}
