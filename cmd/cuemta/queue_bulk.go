package main

import (
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cuemta/cuemta/admin"
)

// queueLsMessages is `cuemta queue ls --messages`: one page of the
// messages a filter selects.
func queueLsMessages(c *adminClient, q *queueRun) error {
	v := url.Values{}
	for k, f := range q.filterFields() {
		v.Set(k, f)
	}
	v.Set("limit", strconv.Itoa(q.limit))
	if q.after != "" {
		v.Set("after", q.after)
	}
	var resp struct {
		Total    int                 `json:"total"`
		Capped   bool                `json:"capped"`
		Messages []admin.MessageInfo `json:"messages"`
		Next     string              `json:"next"`
	}
	raw, err := call(c, "GET", "/api/v1/messages?"+v.Encode(), nil, &resp)
	if err != nil {
		return err
	}
	if q.json {
		q.printRaw(raw)
		return nil
	}
	writeMessageList(q.stdout, resp.Messages, q.now)
	more := ""
	if resp.Capped {
		more = fmt.Sprintf(" (more than %d: narrow the filter)", admin.BulkMax)
	}
	fmt.Fprintf(q.stdout, "%d of %d messages%s\n", len(resp.Messages), resp.Total, more)
	if resp.Next != "" {
		fmt.Fprintf(q.stdout, "next page: --after %s\n", resp.Next)
	}
	return nil
}

// writeMessageList prints one line per message: its first pending
// recipient stands for the others (+N).
func writeMessageList(w io.Writer, msgs []admin.MessageInfo, now time.Time) {
	if len(msgs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAGE\tFROM\tTO\tSITE\tSOURCE\tLAST REPLY")
	for _, m := range msgs {
		var pending []admin.RecipientInfo
		for _, r := range m.Recipients {
			if r.Status != admin.RecipientDelivered && r.Status != admin.RecipientBounced && r.Status != "failed" {
				pending = append(pending, r)
			}
		}
		if len(pending) == 0 {
			pending = m.Recipients
		}
		sort.SliceStable(pending, func(i, j int) bool { return pending[i].Address < pending[j].Address })
		r := pending[0]
		to := r.Address
		if len(pending) > 1 {
			to += fmt.Sprintf(" +%d", len(pending)-1)
		}
		from := m.From
		if from == "" {
			from = "<>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, age(now.Sub(m.Received)), from, to, orDash(r.Site), orDash(r.Source), orDash(r.LastReply))
	}
	tw.Flush()
}

// bulkVerbs are the past tense and conditional of each bulk action.
var bulkVerbs = map[string][2]string{
	"retry":   {"made due now", "make due now"},
	"bounce":  {"bounced", "bounce"},
	"delete":  {"deleted", "delete"},
	"suspend": {"held", "hold"},
}

// queueBulk is `cuemta queue retry|bounce|delete|suspend FILTER`.
func queueBulk(c *adminClient, q *queueRun) error {
	action := q.name
	body := map[string]any{"action": action, "filter": q.filterFields(), "dry_run": q.dryRun}
	if q.all {
		body["all"] = true
	}
	if q.reason != "" {
		body["reason"] = q.reason
	}
	if action == "suspend" {
		body["duration"] = q.dur
	}
	var res admin.BulkResult
	raw, err := call(c, "POST", "/api/v1/messages/bulk", body, &res)
	if err != nil {
		return err
	}
	if q.json {
		q.printRaw(raw)
		return nil
	}
	writeBulkResult(q.stdout, &res)
	return nil
}

func writeBulkResult(w io.Writer, res *admin.BulkResult) {
	verbs := bulkVerbs[res.Action]
	filter := filterText(res.Filter)
	until := ""
	if !res.Until.IsZero() {
		until = " until " + res.Until.UTC().Format(time.RFC3339)
	}
	if res.DryRun {
		n := res.Matched
		if res.Capped {
			n = res.Limit
		}
		fmt.Fprintf(w, "dry run: would %s %d messages%s (filter %s)\n", verbs[1], n, until, filter)
	} else {
		fmt.Fprintf(w, "%s %d messages%s (filter %s): %d matched, %d gone meanwhile, %d failed\n",
			verbs[0], res.Done, until, filter, res.Matched, res.Gone, res.Failed)
		for _, e := range res.Errors {
			fmt.Fprintln(w, "  "+e)
		}
		if res.Cancelled {
			fmt.Fprintln(w, "cancelled before the end: run it again for the rest")
		}
	}
	if res.Capped {
		fmt.Fprintf(w, "%d matched, more than the %d one request acts on: run it again for the rest\n", res.Matched, res.Limit)
	}
}

// filterText is a filter as key=value pairs in admin.FilterKeys order.
func filterText(f map[string]string) string {
	var parts []string
	for _, k := range admin.FilterKeys {
		if v, ok := f[k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}
