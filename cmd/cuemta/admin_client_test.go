package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/admin"
	"github.com/cuemta/cuemta/config"
	_ "github.com/cuemta/cuemta/internal/golden" // defines -update
)

var fixedNow = time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)

// cliBackend is an admin.Backend with canned answers that records calls.
type cliBackend struct {
	mu     sync.Mutex
	calls  []string
	reload *admin.ReloadResult
}

func (b *cliBackend) record(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, s)
}

func (b *cliBackend) Calls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

func (b *cliBackend) Enqueue(ctx context.Context, m *admin.Message) (string, error) {
	return "id", nil
}

func (b *cliBackend) Queue(ctx context.Context, by string) ([]admin.QueueGroup, error) {
	b.record("Queue " + by)
	return []admin.QueueGroup{
		{Key: "yahoo", Count: 2, Oldest: fixedNow.Add(-5 * time.Minute)},
		{Key: "gmail", Count: 120, Oldest: fixedNow.Add(-26*time.Hour - 30*time.Minute)},
		{Key: "outlook", Count: 7, Oldest: fixedNow.Add(-90 * time.Minute), SuspendedUntil: fixedNow.Add(45 * time.Minute), SuspendReason: "S3150 block"},
	}, nil
}

func (b *cliBackend) Message(ctx context.Context, id string) (*admin.MessageInfo, error) {
	b.record("Message " + id)
	if id != "m1" {
		return nil, admin.ErrNotFound
	}
	return &admin.MessageInfo{
		ID: "m1", From: "news@example.com", Received: fixedNow.Add(-2 * time.Hour), Size: 5120, Attempts: 3,
		NextAttempt: fixedNow.Add(10 * time.Minute), Pool: "bulk", Tenant: "acme",
		Recipients: []admin.RecipientInfo{
			{Address: "bob@gmail.com", Status: admin.RecipientDeferred, Site: "gmail", LastReply: "421 4.7.28 rate limited", Category: "rate-limited"},
			{Address: "carol@yahoo.com", Status: admin.RecipientDelivered, Site: "yahoo", LastReply: "250 ok"},
		},
	}, nil
}

func (b *cliBackend) Suspend(ctx context.Context, s admin.Suspension) error {
	b.record("Suspend " + s.Scope + " " + s.Key + " " + s.Reason)
	return nil
}

func (b *cliBackend) Resume(ctx context.Context, scope, key string) error {
	b.record("Resume " + scope + " " + key)
	return nil
}

func (b *cliBackend) Suspensions(ctx context.Context) ([]admin.Suspension, error) {
	b.record("Suspensions")
	return []admin.Suspension{{Scope: "site", Key: "outlook", Until: fixedNow.Add(45 * time.Minute), Reason: "S3150 block", Origin: "ms-block"}}, nil
}

func (b *cliBackend) Retry(ctx context.Context, id string) error {
	b.record("Retry " + id)
	return nil
}

func (b *cliBackend) Bounce(ctx context.Context, id, reason string) error {
	b.record("Bounce " + id + " " + reason)
	return nil
}

func (b *cliBackend) Delete(ctx context.Context, id string) error {
	b.record("Delete " + id)
	if id != "m1" {
		return admin.ErrNotFound
	}
	return nil
}

func (b *cliBackend) Reload(ctx context.Context) (*admin.ReloadResult, error) {
	b.record("Reload")
	return b.reload, nil
}

func (b *cliBackend) Status(ctx context.Context) (*admin.Status, error) {
	b.record("Status")
	return &admin.Status{
		Version: "1.2.3", Hostname: "mta.example", Generation: 4, Started: fixedNow.Add(-50 * time.Hour),
		UptimeSeconds: 50 * 3600, QueueSize: 129, Suspensions: 1,
		Listeners: []admin.ListenerStatus{
			{Name: "mx", Addr: "0.0.0.0:25", Mode: "mx", Connections: 12},
			{Name: "submission", Addr: "0.0.0.0:587", Mode: "submission", Connections: 1},
		},
		ConfigFiles:      []string{"/etc/cuemta/main.cue"},
		LastReload:       fixedNow.Add(-time.Hour),
		LastReloadErrors: []string{"/etc/cuemta/main.cue:12:3: pools.bulk: unknown source"},
	}, nil
}

func (b *cliBackend) Ready() bool { return true }

// startAdmin serves the admin API on a fake backend and returns the flags
// that reach it.
func startAdmin(t *testing.T, token string) (*cliBackend, []string) {
	t.Helper()
	b := &cliBackend{reload: &admin.ReloadResult{Generation: 5, OK: true}}
	srv, err := admin.New(config.Admin{Addr: "127.0.0.1:0", Token: token}, b, nil, nil,
		admin.WithClock(func() time.Time { return fixedNow }))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	cliNow = func() time.Time { return fixedNow }
	t.Cleanup(func() { cliNow = time.Now })
	args := []string{"--admin", strings.TrimPrefix(ts.URL, "http://")}
	if token != "" {
		args = append(args, "--token", token)
	}
	return b, args
}

// run runs a command and returns its exit code and output.
func run(fn func([]string, io.Writer, io.Writer) int, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := fn(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestDefaultAdminAddr(t *testing.T) {
	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.Addr != defaultAdminAddr {
		t.Errorf("the embedded config's admin.addr is %s, defaultAdminAddr %s", cfg.Admin.Addr, defaultAdminAddr)
	}
}

func TestAdminFlagsFromConfig(t *testing.T) {
	dir := t.TempDir()
	src := "listeners: mx: addr: \"127.0.0.1:2526\"\nadmin: addr: \"0.0.0.0:9025\"\nadmin: token: \"from-config\"\n"
	if err := os.WriteFile(filepath.Join(dir, "main.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envAdminToken, "from-env")
	for _, c := range []struct {
		f           adminFlags
		addr, token string
	}{
		{adminFlags{config: dir}, "0.0.0.0:9025", "from-config"},
		{adminFlags{config: dir, token: "flag"}, "0.0.0.0:9025", "flag"},
		{adminFlags{config: dir, addr: "[::1]:1"}, "[::1]:1", "from-env"},
		{adminFlags{}, defaultAdminAddr, "from-env"},
	} {
		addr, token, err := c.f.resolve()
		if err != nil {
			t.Fatal(err)
		}
		if addr != c.addr || token != c.token {
			t.Errorf("%+v: addr %s token %s, want %s %s", c.f, addr, token, c.addr, c.token)
		}
	}
	if _, err := (&adminFlags{config: filepath.Join(dir, "missing")}).client(); err == nil || !strings.Contains(err.Error(), "cannot read admin.addr") {
		t.Errorf("missing config: %v", err)
	}
}

func TestUnreachableServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, _, stderr := run(runStatus, "--admin", addr)
	if code != 1 || !strings.Contains(stderr, "cannot reach cuemta admin API at "+addr+": is `cuemta serve` running?") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestTokenErrors(t *testing.T) {
	_, args := startAdmin(t, "s3cret")
	code, _, stderr := run(runStatus, args[:2]...) // without --token
	if code != 1 || !strings.Contains(stderr, "bearer token") || !strings.Contains(stderr, "--token") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := run(runStatus, args...); code != 0 {
		t.Errorf("with the token: exit %d, stderr %q", code, stderr)
	}
}

// wantText compares a command's output with the expected text, showing
// both in full when they differ.
func wantText(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("output differs:\n--- got ---\n%s--- want ---\n%s", got, want)
	}
}

// cliMessages are the queued messages of the fake backend's listing.
var cliMessages = []admin.MessageInfo{
	{ID: "m1", From: "news@example.com", Received: fixedNow.Add(-2 * time.Hour), Pool: "bulk", Tenant: "acme",
		Recipients: []admin.RecipientInfo{
			{Address: "bob@gmail.com", Status: "pending", Site: "gmail", Provider: "google", Source: "ip1", LastReply: "421 4.7.28 rate limited", Category: "rate-limited"},
			{Address: "carol@yahoo.com", Status: admin.RecipientDelivered, Site: "yahoo", LastReply: "250 ok"},
		}},
	{ID: "m2", From: "", Received: fixedNow.Add(-5 * time.Minute),
		Recipients: []admin.RecipientInfo{{Address: "dave@example.org", Status: "pending", Site: "domain:example.org"}}},
}

func (b *cliBackend) Messages(ctx context.Context, f admin.MessageFilter, max int) ([]admin.MessageInfo, int, error) {
	b.record("Messages " + f.String())
	var out []admin.MessageInfo
	for _, m := range cliMessages {
		if f.Match(&m, fixedNow) {
			out = append(out, m)
		}
	}
	total := len(out)
	return out[:min(max, total)], total, nil
}

func (b *cliBackend) Hold(ctx context.Context, id string, until time.Time) error {
	b.record("Hold " + id + " " + until.UTC().Format(time.RFC3339))
	return nil
}

func (b *cliBackend) Console(ctx context.Context) (*admin.Console, error) {
	b.record("Console")
	return &cliConsole, nil
}

// cliConsole is the fake backend's console.
var cliConsole = admin.Console{
	Time: fixedNow, Generation: 4, QueueSize: 129, Connections: 6,
	Throughput: admin.Throughput{Start: fixedNow.Unix() - 59,
		Received: ones(60, 2), Delivered: ones(60, 1.5), Deferred: ones(60, 0.25), Bounced: ones(60, 0)},
	Providers: []admin.ConsoleGroup{
		{Provider: "google", Sites: 2, Queued: 120, Oldest: 26*3600 + 1800, Connections: 5, Delivered: 1.25, Deferred: 0.25,
			Classes: map[string]int{"421 4.7.28": 100, "untried": 20}, TopDeferrals: []admin.TextCount{{Text: "421 4.7.28 rate limited", Count: 100}}},
		{Provider: "-", Sites: 1, Queued: 2, Oldest: 300, Connections: 1, Delivered: 0.25},
	},
	Sites: []admin.ConsoleSite{
		{Site: "gmail", Provider: "google", Queued: 100, Oldest: 26*3600 + 1800, Connections: 4, Delivered: 1, Deferred: 0.25},
		{Site: "aspmx.l.google.com", Provider: "google", Queued: 20, Oldest: 600, Connections: 1, Delivered: 0.25},
		{Site: "yahoo", Queued: 2, Oldest: 300, Connections: 1, Delivered: 0.25},
	},
	Suspensions: []admin.Suspension{{Scope: "site", Key: "outlook", Until: fixedNow.Add(45 * time.Minute), Reason: "S3150 block", Origin: "ms-block"}},
	Throttles:   []admin.Throttle{{Scope: "provider", Key: "google/ip1", Until: fixedNow.Add(30 * time.Minute), Rule: "google-unusual-rate", MessageRate: "10/1m0s"}},
}

func ones(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}
