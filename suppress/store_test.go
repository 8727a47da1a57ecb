package suppress

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func open(t *testing.T, dir string, c *clock) *Store {
	t.Helper()
	s, err := Open(dir, Options{Now: c.now, CompactAfter: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestLookupTenantGlobalAndNormalised(t *testing.T) {
	c := &clock{t0}
	s := open(t, t.TempDir(), c)
	if err := s.Add(
		Entry{Address: "Global@Example.COM", Source: SourceOperator, Reason: "asked"},
		Entry{Tenant: "acme", Address: "only-acme@example.com", Source: SourceBounce},
		Entry{Address: "u@Bücher.example", Source: SourceImport},
	); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tenant, addr string
		want         bool
		wantTenant   string
	}{
		{"", "global@example.com", true, ""},
		{"acme", "GLOBAL@example.com", true, ""},
		{"acme", "only-acme@example.com", true, "acme"},
		{"", "only-acme@example.com", false, ""},
		{"other", "only-acme@example.com", false, ""},
		{"", "u@xn--bcher-kva.example", true, ""},
		{"", "nobody@example.com", false, ""},
	} {
		e, ok := s.Lookup(tc.tenant, tc.addr)
		if ok != tc.want || ok && e.Tenant != tc.wantTenant || s.Suppressed(tc.tenant, tc.addr) != tc.want {
			t.Errorf("Lookup(%q, %q) = %+v, %v; want %v in tenant %q", tc.tenant, tc.addr, e, ok, tc.want, tc.wantTenant)
		}
	}
	e, _ := s.Lookup("", "global@example.com")
	if e.Reason != "asked" || e.Source != SourceOperator || !e.Added.Equal(t0) {
		t.Errorf("entry = %+v", e)
	}
}

func TestAddRefusesBadEntriesAndAddsNone(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t0})
	for _, e := range []Entry{
		{Address: "no-at", Source: SourceOperator},
		{Address: "a@b", Source: "whim"},
		{Address: "a@b", Source: SourceOperator, Reason: "two\nlines"},
		{Address: "a@b", Source: SourceOperator, Reason: strings.Repeat("x", MaxText+1)},
	} {
		if err := s.Add(Entry{Address: "good@example.com", Source: SourceOperator}, e); err == nil {
			t.Errorf("Add(%+v) succeeded", e)
		}
	}
	if s.Len() != 0 {
		t.Errorf("Len = %d after refused adds", s.Len())
	}
}

func TestExpiryAndRemove(t *testing.T) {
	c := &clock{t0}
	dir := t.TempDir()
	s := open(t, dir, c)
	if err := s.Add(Entry{Address: "soon@example.com", Source: SourceBounce, Expires: t0.Add(time.Hour)},
		Entry{Address: "keep@example.com", Source: SourceBounce}); err != nil {
		t.Fatal(err)
	}
	if !s.Suppressed("", "soon@example.com") {
		t.Fatal("not suppressed before expiry")
	}
	c.t = t0.Add(time.Hour)
	if s.Suppressed("", "soon@example.com") {
		t.Fatal("suppressed at expiry")
	}
	if ok, err := s.Remove("", "soon@example.com"); ok || err != nil {
		t.Fatalf("Remove of an expired entry = %v, %v", ok, err)
	}
	if ok, err := s.Remove("", "KEEP@example.com"); !ok || err != nil {
		t.Fatalf("Remove = %v, %v", ok, err)
	}
	if s.Suppressed("", "keep@example.com") {
		t.Fatal("suppressed after Remove")
	}
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 0 {
		t.Fatalf("Len = %d after compaction; the expired entry should be dropped", s.Len())
	}
}

func TestReopenAfterLogAndCompaction(t *testing.T) {
	c := &clock{t0}
	dir := t.TempDir()
	s := open(t, dir, c)
	// 28 changes, 12 live, CompactAfter 10: the last remove compacts.
	for i := range 20 {
		if err := s.Add(Entry{Address: addr(i), Source: SourceImport}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 8 {
		if _, err := s.Remove("", addr(i)); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, snapshotName)); err != nil || fi.Size() == 0 {
		t.Fatalf("no snapshot after compaction: %v", err)
	}
	// And one more change only in the log.
	if err := s.Add(Entry{Address: addr(20), Source: SourceImport}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir, c)
	for i := range 21 {
		if got, want := s.Suppressed("", addr(i)), i >= 8; got != want {
			t.Errorf("after reopen %s suppressed = %v, want %v", addr(i), got, want)
		}
	}
	if s.Len() != 13 {
		t.Errorf("Len = %d, want 13", s.Len())
	}
}

// A crash between the snapshot and the truncation of the log replays the
// log over a snapshot that holds it already.
func TestReplayOverSnapshotIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t0}
	s := open(t, dir, c)
	s.Add(Entry{Address: "a@example.com", Source: SourceImport})
	s.Remove("", "a@example.com")
	s.Add(Entry{Address: "b@example.com", Source: SourceImport})
	log, _ := os.ReadFile(filepath.Join(dir, logName))
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, logName), log, 0o640); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, c)
	if s.Suppressed("", "a@example.com") || !s.Suppressed("", "b@example.com") || s.Len() != 1 {
		t.Fatalf("after replay over the snapshot: a=%v b=%v len=%d", s.Suppressed("", "a@example.com"), s.Suppressed("", "b@example.com"), s.Len())
	}
}

func TestTornTailIsCutDamageIsReported(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(b []byte) []byte
		wantErr string
		want    int // entries after reopen
	}{
		{"half a record", func(b []byte) []byte { return b[:len(b)-5] }, "", 2},
		{"header only", func(b []byte) []byte { return append(b, 0, 0, 0) }, "", 3},
		{"flipped byte in the last record", func(b []byte) []byte { b[len(b)-2] ^= 0xff; return b }, "", 2},
		{"damage followed by much more", func(b []byte) []byte {
			b[recordHeader+1] ^= 0xff
			return append(b, make([]byte, 2*maxRecord)...)
		}, "damaged at byte 0", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := &clock{t0}
			s, err := Open(dir, Options{Now: c.now})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				s.Add(Entry{Address: addr(i), Source: SourceImport})
			}
			s.Close()
			path := filepath.Join(dir, logName)
			b, _ := os.ReadFile(path)
			os.WriteFile(path, tc.damage(b), 0o640)
			s, err = Open(dir, Options{Now: c.now})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open = %v, want an error with %q", err, tc.wantErr)
				}
				if after, _ := os.ReadFile(path); len(after) != len(b)+2*maxRecord {
					t.Fatalf("the damaged log was changed: %d bytes", len(after))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Len() != tc.want {
				t.Fatalf("Len = %d, want %d", s.Len(), tc.want)
			}
			// The log is writable after the cut: a new entry survives.
			if err := s.Add(Entry{Address: "after@example.com", Source: SourceImport}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s, err = Open(dir, Options{Now: c.now})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if !s.Suppressed("", "after@example.com") || s.Len() != tc.want+1 {
				t.Fatalf("after the cut and one more add: Len = %d", s.Len())
			}
		})
	}
}

func TestEachIsOrdered(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t0})
	s.Add(Entry{Tenant: "b", Address: "z@x.example", Source: SourceImport},
		Entry{Address: "y@x.example", Source: SourceImport},
		Entry{Tenant: "a", Address: "x@x.example", Source: SourceImport})
	var got []string
	s.Each(func(e Entry) bool { got = append(got, e.Tenant+"/"+e.Address); return true })
	if want := "/y@x.example a/x@x.example b/z@x.example"; strings.Join(got, " ") != want {
		t.Fatalf("Each = %v, want %s", got, want)
	}
}

// A key whose hash tag and table position another key has must not match
// it; and keys sharing probe runs are all found across growth.
func TestCollisionIsChecked(t *testing.T) {
	x := newIndex()
	x.put(&Entry{Address: "a@example.com", Source: SourceImport})
	h := x.hash("", "b@example.com")
	x.slots[0].tag = uint32(h >> 32)
	clear(x.table)
	x.table[int(h)&(len(x.table)-1)] = 1
	if _, ok := x.lookup("", "b@example.com", t0); ok {
		t.Fatal("b matched a's slot")
	}

	x = newIndex()
	for i := range 1000 {
		x.put(&Entry{Tenant: fmt.Sprint(i % 3), Address: fmt.Sprintf("k%d@example.com", i), Source: SourceImport})
	}
	for i := range 1000 {
		if _, ok := x.lookup(fmt.Sprint(i%3), fmt.Sprintf("k%d@example.com", i), t0); !ok {
			t.Fatalf("k%d not found after growth to %d", i, len(x.table))
		}
		if _, ok := x.lookup(fmt.Sprint((i+1)%3), fmt.Sprintf("k%d@example.com", i), t0); ok {
			t.Fatalf("k%d found under the wrong tenant", i)
		}
	}
}

func addr(i int) string { return "user" + string(rune('a'+i)) + "@example.com" }

// Lookups run while entries are added, removed and compacted; run with
// -race. Every address added and not removed is found at the end.
func TestConcurrentUse(t *testing.T) {
	s := open(t, t.TempDir(), &clock{t0})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			if err := s.Add(Entry{Address: fmt.Sprintf("c%d@example.com", i), Source: SourceImport}); err != nil {
				t.Error(err)
				return
			}
			if i%2 == 0 {
				if _, err := s.Remove("", fmt.Sprintf("c%d@example.com", i)); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	for {
		select {
		case <-done:
			for i := range 200 {
				if got, want := s.Suppressed("", fmt.Sprintf("c%d@example.com", i)), i%2 == 1; got != want {
					t.Errorf("c%d suppressed = %v, want %v", i, got, want)
				}
			}
			return
		default:
			s.Suppressed("", "c1@example.com")
			s.Each(func(Entry) bool { return false })
		}
	}
}

// At start, expired entries are compacted away; a damaged snapshot is an
// error that names it, and nothing is changed.
func TestOpenDropsExpiredAndRefusesDamagedSnapshot(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t0}
	s := open(t, dir, c)
	s.Add(Entry{Address: "short@example.com", Source: SourceBounce, Expires: t0.Add(time.Minute)},
		Entry{Address: "long@example.com", Source: SourceBounce})
	s.Close()
	c.t = t0.Add(time.Hour)
	s = open(t, dir, c)
	if s.Len() != 1 || !s.Suppressed("", "long@example.com") {
		t.Fatalf("after reopen past the expiry: Len %d", s.Len())
	}
	if log, _ := os.ReadFile(filepath.Join(dir, logName)); len(log) != 0 {
		t.Fatalf("the log was not compacted at start: %d bytes", len(log))
	}
	s.Close()
	path := filepath.Join(dir, snapshotName)
	snap, _ := os.ReadFile(path)
	snap[len(snap)-3] ^= 0xff
	os.WriteFile(path, snap, 0o640)
	if _, err := Open(dir, Options{Now: c.now}); err == nil || !strings.Contains(err.Error(), path+" damaged at byte") {
		t.Fatalf("Open of a damaged snapshot: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(snap) {
		t.Fatal("the damaged snapshot was changed")
	}
}
