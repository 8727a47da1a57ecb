package main

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestQueueLsMessages(t *testing.T) {
	b, args := startAdmin(t, "")
	code, out, stderr := run(runQueue, append([]string{"ls", "--messages"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	wantText(t, out, `ID  AGE  FROM              TO                SITE                SOURCE  LAST REPLY
m1  2h   news@example.com  bob@gmail.com     gmail               ip1     421 4.7.28 rate limited
m2  5m   <>                dave@example.org  domain:example.org  -       -
2 of 2 messages
`)
	code, out, stderr = run(runQueue, append([]string{"ls", "--messages", "--provider", "GOO*", "--limit", "1", "--json"}, args...)...)
	var resp struct {
		Total    int               `json:"total"`
		Filter   map[string]string `json:"filter"`
		Messages []struct {
			ID         string `json:"id"`
			From       string `json:"from"`
			Recipients []struct {
				LastReply string `json:"last_reply"`
			} `json:"recipients"`
		} `json:"messages"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &resp) != nil {
		t.Fatalf("--json: exit %d, %s %s", code, out, stderr)
	}
	if resp.Total != 1 || len(resp.Messages) != 1 || resp.Messages[0].ID != "m1" || resp.Messages[0].From != "news@example.com" ||
		resp.Messages[0].Recipients[0].LastReply != "421 4.7.28 rate limited" || resp.Filter["provider"] != "GOO*" {
		t.Errorf("--json: %s", out)
	}
	if want := []string{"Messages all", "Messages provider=GOO*"}; !reflect.DeepEqual(b.Calls(), want) {
		t.Errorf("calls %v, want %v", b.Calls(), want)
	}
}

func TestQueueBulk(t *testing.T) {
	for _, c := range []struct {
		args  []string
		out   string
		calls []string
	}{
		{[]string{"retry", "--site", "gmail", "--dry-run"}, "dry run: would make due now 1 messages (filter site=gmail)\n", []string{"Messages site=gmail"}},
		{[]string{"retry", "--site", "gmail"}, "made due now 1 messages (filter site=gmail): 1 matched, 0 gone meanwhile, 0 failed\n", []string{"Messages site=gmail", "Retry m1"}},
		{[]string{"bounce", "--to", "*@example.org", "--reason", "closed"}, "bounced 1 messages (filter to=*@example.org): 1 matched, 0 gone meanwhile, 0 failed\n", []string{"Messages to=*@example.org", "Bounce m2 closed"}},
		// m2 is unknown to Delete: gone meanwhile, not failed.
		{[]string{"delete", "--all"}, "deleted 1 messages (filter all): 2 matched, 1 gone meanwhile, 0 failed\n", []string{"Messages all", "Delete m1", "Delete m2"}},
		{[]string{"suspend", "--older-than", "1h", "--for", "2h"}, "held 1 messages until 2026-03-14T17:00:00Z (filter older_than=1h0m0s): 1 matched, 0 gone meanwhile, 0 failed\n", []string{"Messages older_than=1h0m0s", "Hold m1 2026-03-14T17:00:00Z"}},
		{[]string{"retry", "--class", "untried", "--source", "ip9"}, "made due now 0 messages (filter source=ip9 class=untried): 0 matched, 0 gone meanwhile, 0 failed\n", []string{"Messages source=ip9 class=untried"}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			b, args := startAdmin(t, "")
			code, out, stderr := run(runQueue, append(c.args, args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			wantText(t, out, c.out)
			calls := b.Calls()
			if len(calls) > 1 { // the workers run concurrently
				slices.Sort(calls[1:])
			}
			if !reflect.DeepEqual(calls, c.calls) {
				t.Errorf("calls %v, want %v", calls, c.calls)
			}
		})
	}
}

func TestQueueBulkRefused(t *testing.T) {
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"retry"}, 2, "want 1 arguments, got 0"},
		{[]string{"retry", "m1", "--site", "gmail"}, 2, "want 0 arguments, got 1"},
		{[]string{"retry", "m1", "--dry-run"}, 2, "--dry-run is for a bulk action"},
		{[]string{"ls", "--site", "gmail"}, 2, "the filters need --messages"},
		{[]string{"suspend", "--site", "gmail"}, 2, "--for DURATION is required"},
		{[]string{"retry", "--older-than", "-1h"}, 1, "bad older_than"},
		{[]string{"retry", "--class", "6xx"}, 1, "bad class"},
		{[]string{"bounce", "--category", "nonsense"}, 1, "unknown category"},
		{[]string{"suspend", "--site", "gmail", "--for", "90d"}, 1, "bad duration"},
		{[]string{"ls", "--messages", "--limit", "0"}, 1, "bad limit"},
		{[]string{"delete", "--site", "a\x01b"}, 1, "control character"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			b, args := startAdmin(t, "")
			code, _, stderr := run(runQueue, append(c.args, args...)...)
			if code != c.code || !strings.Contains(stderr, c.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, c.code, c.stderr)
			}
			if calls := b.Calls(); len(calls) != 0 {
				t.Errorf("refused input reached the backend: %v", calls)
			}
		})
	}
}
