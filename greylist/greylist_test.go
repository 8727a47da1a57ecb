package greylist

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var policy = Policy{Delay: 5 * time.Minute, RetryWindow: 48 * time.Hour, Expiry: 840 * time.Hour, AutoWhitelist: 2, IPv4Prefix: 24, IPv6Prefix: 64}

func open(t *testing.T, dir string, max int, c *clock) *Store {
	t.Helper()
	s, err := Open(dir, max, c.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func check(t *testing.T, s *Store, ip, from, to string) bool {
	t.Helper()
	ok, err := s.Check(policy, netip.MustParseAddr(ip), from, to)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestGreylistLifecycle walks one triplet and its network through every
// state, as a table of steps on one clock.
func TestGreylistLifecycle(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, t.TempDir(), 1000, c)
	steps := []struct {
		name         string
		advance      time.Duration
		ip, from, to string
		want         bool
	}{
		{"first sight", 0, "192.0.2.10", "a@x.example", "b@y.example", false},
		{"retry too early", 4 * time.Minute, "192.0.2.10", "a@x.example", "b@y.example", false},
		{"other host of the /24 is the same triplet, still early", 30 * time.Second, "192.0.2.77", "a@x.example", "b@y.example", false},
		{"retry after the delay", time.Minute, "192.0.2.11", "a@x.example", "b@y.example", true},
		{"passed triplet", time.Hour, "192.0.2.10", "a@x.example", "b@y.example", true},
		{"another recipient: new triplet", 0, "192.0.2.10", "a@x.example", "c@y.example", false},
		{"another network: new triplet", 0, "198.51.100.1", "a@x.example", "b@y.example", false},
		{"second triplet passes", 6 * time.Minute, "192.0.2.10", "a@x.example", "c@y.example", true},
		{"network whitelisted after two", 0, "192.0.2.10", "new@z.example", "d@y.example", true},
		{"v6 /64 shares", 0, "2001:db8:1:2::1", "a@x.example", "b@y.example", false},
		{"v6 same /64 other host, after delay", 6 * time.Minute, "2001:db8:1:2::ffff", "a@x.example", "b@y.example", true},
		{"first retry past the window starts over", 0, "203.0.113.5", "late@x.example", "b@y.example", false},
		{"...so 49h later it is new again", 49 * time.Hour, "203.0.113.5", "late@x.example", "b@y.example", false},
		{"whitelist expires", 841 * time.Hour, "192.0.2.10", "new2@z.example", "d@y.example", false},
	}
	for _, st := range steps {
		c.advance(st.advance)
		if got := check(t, s, st.ip, st.from, st.to); got != st.want {
			t.Fatalf("%s: got %v, want %v", st.name, got, st.want)
		}
	}
}

// TestGreylistDurable: first sight and passing survive a reopen (a
// restart), and a torn last line is skipped.
func TestGreylistDurable(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, dir, 1000, c)
	check(t, s, "192.0.2.1", "a@x", "b@y") // first sight
	check(t, s, "192.0.2.1", "p@x", "q@y")
	c.advance(10 * time.Minute)
	check(t, s, "192.0.2.1", "p@x", "q@y") // passes
	s.Close()
	f, err := os.OpenFile(filepath.Join(dir, FileName), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"t":"t","k":"torn`)
	f.Close()

	s2 := open(t, dir, 1000, c)
	if !check(t, s2, "192.0.2.1", "a@x", "b@y") {
		t.Error("first sight lost over the restart: retry after the delay refused")
	}
	if !check(t, s2, "192.0.2.1", "p@x", "q@y") {
		t.Error("passed triplet lost over the restart")
	}
	b, _ := os.ReadFile(filepath.Join(dir, FileName))
	if strings.Contains(string(b), "torn") {
		t.Error("the torn line survived compaction at open")
	}
}

// TestGreylistBounded: past maxEntries the least recently seen triplet
// goes, and the log is compacted so it stays bounded too.
func TestGreylistBounded(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, dir, 100, c)
	for i := range 3000 {
		check(t, s, "192.0.2.1", "s@x", "r"+strconv.Itoa(i)+"@y")
	}
	st := s.Stats()
	if st.Entries != 100 || st.Evicted != 2900 {
		t.Fatalf("stats %+v", st)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if lines := s.lines; lines > 2*100+compactSlack+1 {
		t.Fatalf("log holds %d lines (%d bytes)", lines, fi.Size())
	}
	c.advance(6 * time.Minute)
	if !check(t, s, "192.0.2.1", "s@x", "r2999@y") {
		t.Error("a recent triplet was evicted")
	}
	if check(t, s, "192.0.2.1", "s@x", "r0@y") {
		t.Error("the oldest triplet was kept")
	}
}

func TestNetwork(t *testing.T) {
	for ip, want := range map[string]string{
		"192.0.2.200":        "192.0.2.0/24",
		"::ffff:192.0.2.200": "192.0.2.0/24",
		"2001:db8:1:2:3::1":  "2001:db8:1:2::/64",
	} {
		if got := policy.Network(netip.MustParseAddr(ip)); got != want {
			t.Errorf("%s: %s, want %s", ip, got, want)
		}
	}
}

// TestGreylistConcurrent: many sessions at once (run under -race): each
// triplet is greylisted exactly once, then passes.
func TestGreylistConcurrent(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := open(t, t.TempDir(), 10000, c)
	p := policy
	p.AutoWhitelist = 0
	var wg sync.WaitGroup
	first := make([]int, 20)
	var mu sync.Mutex
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				ok, err := s.Check(p, netip.MustParseAddr("192.0.2.1"), "s@x", "r"+strconv.Itoa(i)+"@y")
				if err != nil {
					t.Error(err)
				}
				if !ok {
					mu.Lock()
					first[i]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for i, n := range first {
		if n != 8 { // all eight asked within the delay: all refused
			t.Errorf("triplet %d refused %d times, want 8", i, n)
		}
	}
	c.advance(6 * time.Minute)
	for i := range 20 {
		if ok, _ := s.Check(p, netip.MustParseAddr("192.0.2.1"), "s@x", "r"+strconv.Itoa(i)+"@y"); !ok {
			t.Errorf("triplet %d not passed after the delay", i)
		}
	}
	if st := s.Stats(); st.Entries != 20 {
		t.Errorf("entries %d, want 20", st.Entries)
	}
}
