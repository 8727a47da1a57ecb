package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestQueueLs(t *testing.T) {
	b, args := startAdmin(t, "")
	code, out, stderr := run(runQueue, append([]string{"ls"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	wantText(t, out, `SITE     MESSAGES  OLDEST      SUSPENDED
gmail    120       26h30m ago  -
outlook  7         1h30m ago   for 45m: S3150 block
yahoo    2         5m ago      -
129 messages in 3 groups
`)
	code, out, _ = run(runQueue, append([]string{"ls", "--by", "pool", "--json"}, args...)...)
	var resp map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &resp) != nil || resp["by"] != "pool" {
		t.Errorf("--json: exit %d, %s", code, out)
	}
	if want := []string{"Queue site", "Queue pool"}; !reflect.DeepEqual(b.Calls(), want) {
		t.Errorf("calls %v, want %v", b.Calls(), want)
	}
}

func TestQueueShow(t *testing.T) {
	_, args := startAdmin(t, "")
	code, out, stderr := run(runQueue, append([]string{"show", "m1"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	wantText(t, out, `id            m1
from          news@example.com
received      2026-03-14T13:00:00Z (2h ago)
size          5120 bytes
attempts      3
next attempt  2026-03-14T15:10:00Z (in 10m)
pool          bulk
tenant        acme

RECIPIENT        STATUS     SITE   CATEGORY      LAST REPLY
bob@gmail.com    deferred   gmail  rate-limited  421 4.7.28 rate limited
carol@yahoo.com  delivered  yahoo  -             250 ok
`)
	code, _, stderr = run(runQueue, append([]string{"show", "nope"}, args...)...)
	if code != 1 || !strings.Contains(stderr, "message nope: not found") {
		t.Errorf("unknown id: exit %d, stderr %q", code, stderr)
	}
}

func TestQueueSuspensions(t *testing.T) {
	_, args := startAdmin(t, "")
	code, out, stderr := run(runQueue, append([]string{"suspensions"}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	wantText(t, out, `SCOPE  KEY      UNTIL                          BY        REASON
site   outlook  2026-03-14T15:45:00Z (in 45m)  ms-block  S3150 block
`)
}

func TestQueueActions(t *testing.T) {
	for _, c := range []struct {
		args []string
		out  string
		call string
	}{
		// Flags after the arguments work too.
		{[]string{"suspend", "site", "outlook", "--for", "1h", "--reason", "S3150 block"}, "suspended site outlook until 2026-03-14T16:00:00Z (1h)\n", "Suspend site outlook S3150 block"},
		{[]string{"resume", "campaign", "spring/2026"}, "resumed campaign spring/2026\n", "Resume campaign spring/2026"},
		{[]string{"retry", "m1"}, "message m1 is due now\n", "Retry m1"},
		{[]string{"bounce", "m1", "--reason", "complaint"}, "bounced message m1\n", "Bounce m1 complaint"},
		{[]string{"bounce", "m1"}, "bounced message m1\n", "Bounce m1 bounced by the administrator"},
		{[]string{"delete", "m1"}, "deleted message m1\n", "Delete m1"},
	} {
		b, args := startAdmin(t, "")
		code, out, stderr := run(runQueue, append(c.args, args...)...)
		if code != 0 || out != c.out {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", c.args, code, out, stderr, c.out)
		}
		if calls := b.Calls(); len(calls) != 1 || calls[0] != c.call {
			t.Errorf("%v: calls %q, want %q", c.args, calls, c.call)
		}
	}
}

func TestQueueActionJSON(t *testing.T) {
	_, args := startAdmin(t, "")
	code, out, _ := run(runQueue, append([]string{"retry", "m1", "--json"}, args...)...)
	var resp map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &resp) != nil || resp["action"] != "retry" {
		t.Errorf("exit %d, %s", code, out)
	}
}

func TestQueueErrors(t *testing.T) {
	_, args := startAdmin(t, "")
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{nil, 2, "usage: cuemta queue"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"show"}, 2, "want 1 arguments, got 0"},
		{[]string{"suspend", "site", "x"}, 2, "--for DURATION is required"},
		{[]string{"suspend", "site", "x", "--for", "forever"}, 1, "not a Go duration"},
		{[]string{"suspend", "planet", "x", "--for", "1h"}, 1, "scope"},
		{[]string{"ls", "--by", "domain"}, 1, "bad grouping"},
		{[]string{"delete", "zz"}, 1, "not found"},
		{[]string{"retry", "--bogus"}, 2, "flag provided but not defined"},
	} {
		code, _, stderr := run(runQueue, append(c.args, args...)...)
		if code != c.code || !strings.Contains(stderr, c.says) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, c.code, c.says)
		}
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 45 * time.Second: "45s", 12 * time.Minute: "12m", 3*time.Hour + 5*time.Minute: "3h5m",
		2 * time.Hour: "2h", 50 * time.Hour: "2d2h", 72 * time.Hour: "3d",
	} {
		if got := age(d); got != want {
			t.Errorf("age(%v) = %s, want %s", d, got, want)
		}
	}
}
