package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/cuemta/cuemta/internal/golden"
	"github.com/cuemta/cuemta/sim"
)

// consoleRig is a server with mail in three states: delivered (to
// good.test), deferred forever by a 451 (busy.test, provider busy) and
// the bounces of the test's bulk bounces (to origin.test).
type consoleRig struct {
	sim     *sim.Sim
	srv     *server
	base    string
	token   string
	logFile string
	admin   []string // the CLI's flags that reach the admin API
}

const consoleToken = "console-token"

func startConsoleRig(t *testing.T) *consoleRig {
	t.Helper()
	s := startSim(t, map[string]*sim.Site{
		"good":   {Domains: []string{"good.test"}, MX: []sim.MXHost{{Host: "mx1.mail.good.test", IP: "127.0.0.21"}}},
		"busy":   {Domains: []string{"busy.test"}, MX: []sim.MXHost{{Host: "mx1.mail.busy.test", IP: "127.0.0.22"}}, Replies: sim.Replies{Rcpt: "451 4.7.1 Greylisted, try again later"}},
		"origin": {Domains: []string{"origin.test"}, MX: []sim.MXHost{{Host: "mx.origin.test", IP: "127.0.0.23"}}},
	})
	logFile := filepath.Join(t.TempDir(), "delivery.log")
	dir := writeConfig(t, fmt.Sprintf(`
hostname: "mta.test"
listeners: mx: addr: "127.0.0.1:0"
admin: {addr: "127.0.0.1:0", token: %q}
spool: dir: %q
dns: servers: [%q]
delivery: port: %d
log: file: %q
profiles: {
	good: {match: mx: ["*.mail.good.test"], provider: maxConnections: 4}
	busy: {match: mx: ["*.mail.busy.test"], provider: maxConnections: 4}
}
`, consoleToken, t.TempDir()+"/spool", s.DNSAddr(), s.Port(), logFile))
	srv := startServer(t, dir, "mx")
	r := &consoleRig{sim: s, srv: srv, base: "http://" + srv.admin, token: consoleToken, logFile: logFile,
		admin: []string{"--admin", srv.admin, "--token", consoleToken}}
	inject(t, srv.addrs["mx"], 2, 6, "news@origin.test", func(i int) []string { return []string{fmt.Sprintf("u%d@good.test", i)} })
	inject(t, srv.addrs["mx"], 2, 4, "news@origin.test", func(i int) []string { return []string{fmt.Sprintf("n%d@busy.test", i)} })
	inject(t, srv.addrs["mx"], 2, 4, "alerts@origin.test", func(i int) []string { return []string{fmt.Sprintf("a%d@busy.test", i)} })
	waitFor(t, 20*time.Second, "6 messages at good.test", func() bool { return len(messagesTo(s, "good")) == 6 })
	r.waitDeferred(t, 8, 1)
	return r
}

// console fetches GET /api/v1/console.
func (r *consoleRig) console(t *testing.T) consoleJSON {
	t.Helper()
	req, _ := http.NewRequest("GET", r.base+"/api/v1/console", nil)
	req.Header.Set("Authorization", "Bearer "+r.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c consoleJSON
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || resp.StatusCode != 200 {
		t.Fatalf("console: %d %v", resp.StatusCode, err)
	}
	return c
}

type consoleJSON struct {
	Generation  int `json:"generation"`
	QueueSize   int `json:"queue_size"`
	Connections int `json:"connections"`
	Sites       []struct {
		Site, Provider string
		Queued         int `json:"queued"`
	} `json:"sites"`
	Providers []struct {
		Provider     string         `json:"provider"`
		Queued       int            `json:"queued"`
		Classes      map[string]int `json:"classes"`
		TopDeferrals []struct {
			Text  string `json:"text"`
			Count int    `json:"count"`
		} `json:"top_deferrals"`
	} `json:"providers"`
	Throughput struct {
		Totals struct{ Received, Delivered, Deferred, Bounced float64 } `json:"totals"`
	} `json:"throughput"`
	Suspensions []struct{ Scope, Key, Origin string } `json:"suspensions"`
}

// messages lists the queued messages a filter (a query string) selects.
func (r *consoleRig) messages(t *testing.T, query string) []messageJSON {
	t.Helper()
	out, err := cli(t, "", append([]string{"queue", "ls", "--messages", "--json", "--limit", "1000"}, append(strings.Fields(query), r.admin...)...)...)
	if err != nil {
		t.Fatalf("queue ls --messages %s: %v\n%s", query, err, out)
	}
	var resp struct {
		Total    int           `json:"total"`
		Messages []messageJSON `json:"messages"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Total != len(resp.Messages) {
		t.Fatalf("queue ls --messages --json: %v\n%s", err, out)
	}
	return resp.Messages
}

type messageJSON struct {
	ID          string    `json:"id"`
	From        string    `json:"from"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	Recipients  []struct {
		Address   string `json:"address"`
		Status    string `json:"status"`
		Site      string `json:"site"`
		Provider  string `json:"provider"`
		Source    string `json:"source"`
		LastReply string `json:"last_reply"`
		Category  string `json:"category"`
	} `json:"recipients"`
}

// waitDeferred waits until n messages to busy.test have been tried at
// least attempts times and are waiting for the next.
func (r *consoleRig) waitDeferred(t *testing.T, n, attempts int) {
	t.Helper()
	waitFor(t, 20*time.Second, fmt.Sprintf("%d messages deferred %d times", n, attempts), func() bool {
		ms := r.messages(t, "--to *@busy.test")
		done := 0
		for _, m := range ms {
			if m.Attempts >= attempts && m.NextAttempt.After(time.Now()) {
				done++
			}
		}
		return len(ms) == n && done == n
	})
}

// TestBulkQueueOperations drives every filter and bulk action of `cuemta
// queue` against the real binary and the fake ISP, and reads back what
// each did in the queue and in the delivery log.
func TestBulkQueueOperations(t *testing.T) {
	r := startConsoleRig(t)
	q := func(args ...string) string {
		t.Helper()
		out, err := cli(t, "", append(append([]string{"queue"}, args...), r.admin...)...)
		if err != nil {
			t.Fatalf("queue %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	// Each filter selects what it names, from the real spool.
	ms := r.messages(t, "--provider busy")
	if len(ms) != 8 {
		t.Fatalf("provider busy: %d messages, want 8", len(ms))
	}
	rc := ms[0].Recipients[0]
	if ms[0].ID == "" || rc.Site != "mx:mx1.mail.busy.test" || rc.Provider != "busy" || rc.Status != "pending" ||
		!strings.HasPrefix(rc.LastReply, "451 4.7.1") || rc.Source == "" {
		t.Errorf("listing: %+v", ms[0])
	}
	for _, c := range []struct {
		query string
		want  int
	}{
		{"--site mx:mx1.mail.busy.test", 8},
		{"--site *.good.test", 0}, {"--site mx:*.busy.test", 8}, // delivered: not queued
		{"--provider good", 0},
		{"--source " + rc.Source, 8},
		{"--source nowhere", 0},
		{"--pool default", 8},
		{"--pool bulk", 0},
		{"--from alerts@*", 4},
		{"--from NEWS@ORIGIN.TEST", 4},
		{"--to a1@busy.test", 1},
		{"--older-than 1s", 8},
		{"--older-than 1h", 0},
		{"--class 4xx", 8},
		{"--class 4.7.1", 8},
		{"--class untried", 0},
		{"--class 5xx", 0},
		{"--tenant nobody", 0},
		{"--campaign nothing", 0},
	} {
		if got := len(r.messages(t, c.query)); got != c.want {
			t.Errorf("%s: %d messages, want %d", c.query, got, c.want)
		}
	}
	if len(r.messages(t, "--category "+rc.Category)) != 8 || rc.Category == "" {
		t.Errorf("category %q does not select the 8", rc.Category)
	}
	table := q("ls", "--messages", "--from", "alerts@*", "--limit", "3")
	if !regexp.MustCompile(`(?s)^ID +AGE +FROM +TO +SITE +SOURCE +LAST REPLY\n(\S+ +\S+ +alerts@origin.test +a\d@busy.test +mx:mx1.mail.busy.test +\S+ +451 4.7.1 [^\n]+\n){3}3 of 4 messages\nnext page: --after \S+\n$`).MatchString(table) {
		t.Errorf("ls --messages table:\n%s", table)
	}

	// Bad input: a 4xx, exit 1, and nothing changed.
	for _, args := range [][]string{
		{"bounce", "--category", "nonsense"},
		{"delete", "--older-than", "yesterday"},
		{"retry", "--class", "9xx"},
		{"suspend", "--provider", "busy", "--for", "1000h"},
	} {
		out, err := cli(t, "", append(append([]string{"queue"}, args...), r.admin...)...)
		if err == nil || !strings.Contains(out, "cuemta queue "+args[0]+": bad") && !strings.Contains(out, "unknown category") {
			t.Errorf("queue %v: %v\n%s", args, err, out)
		}
	}
	if out, err := cli(t, "", append([]string{"queue", "delete"}, r.admin...)...); err == nil {
		t.Errorf("queue delete without an id or a filter succeeded:\n%s", out)
	}
	if n := len(r.messages(t, "")); n != 8 {
		t.Fatalf("refused requests changed the queue: %d messages, want 8", n)
	}

	// Dry run: the count, nothing changed.
	if out := q("bounce", "--from", "alerts@*", "--dry-run"); out != "dry run: would bounce 4 messages (filter from=alerts@*)\n" {
		t.Errorf("dry run: %q", out)
	}
	if n := len(r.messages(t, "")); n != 8 {
		t.Fatalf("the dry run changed the queue: %d messages", n)
	}

	// Bounce: the senders get a DSN each (delivered to origin.test).
	if out := q("bounce", "--from", "alerts@*", "--reason", "list closed"); out != "bounced 4 messages (filter from=alerts@*): 4 matched, 0 gone meanwhile, 0 failed\n" {
		t.Errorf("bounce: %q", out)
	}
	waitFor(t, 20*time.Second, "4 DSNs at origin.test", func() bool { return len(messagesTo(r.sim, "origin")) == 4 })
	if ms := r.messages(t, "--to *@busy.test"); len(ms) != 4 || ms[0].From != "news@origin.test" {
		t.Fatalf("after the bounce: %d messages to busy.test, want the 4 of news@", len(ms))
	}

	// Suspend holds them; retry releases them and they are tried again.
	out := q("suspend", "--provider", "busy", "--for", "1h")
	if !regexp.MustCompile(`^held 4 messages until \S+ \(filter provider=busy\): 4 matched, 0 gone meanwhile, 0 failed\n$`).MatchString(out) {
		t.Errorf("suspend: %q", out)
	}
	for _, m := range r.messages(t, "--provider busy") {
		if time.Until(m.NextAttempt) < 59*time.Minute {
			t.Errorf("%s: next attempt %v, want an hour from now", m.ID, m.NextAttempt)
		}
	}
	if out := q("retry", "--site", "mx:mx1.mail.busy.test"); out != "made due now 4 messages (filter site=mx:mx1.mail.busy.test): 4 matched, 0 gone meanwhile, 0 failed\n" {
		t.Errorf("retry: %q", out)
	}
	r.waitDeferred(t, 4, 2)

	// Delete: gone without a bounce.
	dsns := len(messagesTo(r.sim, "origin"))
	if out := q("delete", "--to", "*@busy.test", "--older-than", "1s"); out != "deleted 4 messages (filter to=*@busy.test older_than=1s): 4 matched, 0 gone meanwhile, 0 failed\n" {
		t.Errorf("delete: %q", out)
	}
	waitFor(t, 10*time.Second, "an empty queue", func() bool { return len(r.messages(t, "")) == 0 })
	if n := len(messagesTo(r.sim, "origin")); n != dsns {
		t.Errorf("delete sent %d bounces", n-dsns)
	}

	// The delivery log: one event per bulk action and one per message.
	// The log is written behind the actions: wait for the last one.
	var data []byte
	waitFor(t, 10*time.Second, "the bulk delete in the delivery log", func() bool {
		data, _ = os.ReadFile(r.logFile)
		return bytes.Contains(data, []byte(`"action":"bulk-delete"`))
	})
	counts := map[string]int{}
	var bulk []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var ev struct{ Type, Action, Reason, Actor, MessageID string }
		if json.Unmarshal([]byte(line), &ev) != nil || ev.Type != "admin" {
			continue
		}
		counts[ev.Action]++
		if strings.HasPrefix(ev.Action, "bulk-") {
			bulk = append(bulk, ev.Action+": "+ev.Reason)
			if !strings.HasPrefix(ev.Actor, "cli:") {
				t.Errorf("bulk event actor %q", ev.Actor)
			}
		}
	}
	want := map[string]int{"bounce": 4, "bulk-bounce": 1, "suspend": 4, "bulk-suspend": 1, "retry": 4, "bulk-retry": 1, "delete": 4, "bulk-delete": 1}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("delivery log: %d admin events %q, want %d (all: %v)", counts[k], k, n, counts)
		}
	}
	if len(bulk) != 4 || !strings.HasPrefix(bulk[0], "bulk-bounce: list closed; filter from=alerts@*; 4 matched, 4 done, 0 gone, 0 failed") ||
		!strings.HasPrefix(bulk[3], "bulk-delete: filter to=*@busy.test older_than=1s; 4 matched, 4 done") {
		t.Errorf("bulk events:\n%s", strings.Join(bulk, "\n"))
	}
}

// chromium runs the Debian chromium headless with its own profile.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (make deps installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// TestConsolePage opens the status page in a real headless Chromium,
// without the token (the admin listener is on loopback), and checks that
// the DOM its script renders shows the numbers the API gives.
func TestConsolePage(t *testing.T) {
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Skip("chromium is not installed (make deps installs it)")
	}
	r := startConsoleRig(t)
	if out, err := cli(t, "", append([]string{"queue", "suspend", "provider", "busy", "--for", "2h", "--reason", "reputation block"}, r.admin...)...); err != nil {
		t.Fatalf("queue suspend: %v\n%s", err, out)
	}
	api := r.console(t)
	dom := chromium(t, "--dump-dom", r.base+"/")
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	body := find(doc, func(n *html.Node) bool { return n.Data == "body" })
	if attr(body, "data-live") != "yes" || attr(body, "data-polls") == "" {
		t.Fatalf("the script did not refresh the page (body %v):\n%s", body.Attr, dom)
	}
	byID := func(id string) string {
		n := find(doc, func(n *html.Node) bool { return attr(n, "id") == id })
		if n == nil {
			t.Fatalf("no #%s in the page", id)
		}
		return textOf(n)
	}
	for id, want := range map[string]string{
		"generation":      strconv.Itoa(api.Generation),
		"queue-size":      strconv.Itoa(api.QueueSize),
		"total-received":  fmt.Sprint(api.Throughput.Totals.Received),
		"total-delivered": fmt.Sprint(api.Throughput.Totals.Delivered),
		"total-deferred":  fmt.Sprint(api.Throughput.Totals.Deferred),
	} {
		if got := byID(id); got != want {
			t.Errorf("#%s shows %q, the API %q", id, got, want)
		}
	}
	if api.QueueSize != 8 || api.Throughput.Totals.Received != 14 || api.Throughput.Totals.Delivered != 6 || api.Throughput.Totals.Deferred < 8 {
		t.Errorf("the API's numbers are not the mail sent: %+v", api)
	}
	row := func(attrName, key string) *html.Node {
		return find(doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, attrName) == key })
	}
	cellText := func(tr *html.Node, class string) string {
		if tr == nil {
			return "<no row>"
		}
		if c := find(tr, func(n *html.Node) bool { return n.Data == "td" && attr(n, "class") == class }); c != nil {
			return textOf(c)
		}
		return "<no cell>"
	}
	for _, s := range api.Sites {
		if got := cellText(row("data-site", s.Site), "queued"); got != strconv.Itoa(s.Queued) {
			t.Errorf("site %s: page queued %q, API %d", s.Site, got, s.Queued)
		}
	}
	busy := row("data-provider", "busy")
	if got := cellText(busy, "queued"); got != "8" {
		t.Errorf("provider busy: queued %q, want 8", got)
	}
	if got := cellText(busy, "classes"); !strings.Contains(got, "451 4.7.1: 8") {
		t.Errorf("provider busy: classes %q, want 451 4.7.1: 8", got)
	}
	if got := cellText(busy, "texts"); len(api.Providers) == 0 || !strings.Contains(got, "8 451 4.7.1 Greylisted, try again later") {
		t.Errorf("provider busy: top deferrals %q", got)
	}
	sus := row("data-key", "busy")
	if got := cellText(sus, "left"); got != "1h59m" && got != "2h" {
		t.Errorf("suspension of busy: remaining %q, want 1h59m", got)
	}
	if got := cellText(sus, "reason"); !strings.Contains(got, "reputation block") {
		t.Errorf("suspension of busy: reason %q", got)
	}
	chart := find(doc, func(n *html.Node) bool { return attr(n, "id") == "chart" })
	lines := findAll(chart, func(n *html.Node) bool { return n.Data == "polyline" })
	if len(lines) != 4 {
		t.Fatalf("chart: %d series, want 4", len(lines))
	}
	for _, l := range lines {
		n, _ := strconv.Atoi(attr(l, "data-points"))
		if n < 2 || len(strings.Fields(attr(l, "points"))) != n {
			t.Errorf("chart series %s: %s points %q", attr(l, "class"), attr(l, "data-points"), attr(l, "points"))
		}
	}
	if m, _ := strconv.ParseFloat(attr(chart, "data-max"), 64); m < 6 {
		t.Errorf("chart maximum %v: the 14 messages received are not drawn", m)
	}

	// A screenshot of the same page: a real picture of the right size.
	shot := filepath.Join(t.TempDir(), "console.png")
	chromium(t, "--screenshot="+shot, "--window-size=1200,900", "--hide-scrollbars", r.base+"/")
	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 900 {
		t.Errorf("screenshot %v, want 1200x900", b)
	}
	colours := map[uint32]bool{}
	for y := 0; y < 900; y += 7 {
		for x := 0; x < 1200; x += 7 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[r>>12<<8|g>>12<<4|b>>12] = true
		}
	}
	if len(colours) < 5 {
		t.Errorf("the screenshot has %d colours: a blank page?", len(colours))
	}
	if *golden.Update {
		// docs/console.png is this picture (go test ./tests/e2e -run TestConsolePage -update).
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console.png"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func attr(n *html.Node, key string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func find(n *html.Node, f func(*html.Node) bool) *html.Node {
	if all := findAll(n, f); len(all) > 0 {
		return all[0]
	}
	return nil
}

func findAll(n *html.Node, f func(*html.Node) bool) []*html.Node {
	if n == nil {
		return nil
	}
	var out []*html.Node
	if n.Type == html.ElementNode && f(n) {
		out = append(out, n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		out = append(out, findAll(c, f)...)
	}
	return out
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.TrimSpace(b.String())
}
