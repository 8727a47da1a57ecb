package queue

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/wal"
)

func TestGroupCommitBatches(t *testing.T) {
	var fsyncs atomic.Int64
	opts := testOpts(t)
	opts.hooks = &hooks{walWrite: func(l *wal.Log, b *wal.Batch) error {
		fsyncs.Add(1)
		return l.WriteBatch(b)
	}}
	s := mustOpen(t, t.TempDir(), opts)
	defer mustClose(t, s)
	const n = 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := s.Enqueue(ctx, testEnv(i), testBody(i, 2048)); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	got := fsyncs.Load()
	t.Logf("%d concurrent Enqueues took %d log fsyncs", n, got)
	if s.Len() != n {
		t.Fatalf("Len = %d, want %d", s.Len(), n)
	}
	if got > n/5 {
		t.Fatalf("%d log fsyncs for %d concurrent Enqueues: not batching", got, n)
	}
}

// TestGroupCommitWindow checks that a window lets serial-ish arrivals share
// one batch.
func TestGroupCommitWindow(t *testing.T) {
	var fsyncs atomic.Int64
	opts := testOpts(t)
	opts.GroupCommitWindow = 50e6 // 50 ms
	opts.hooks = &hooks{walWrite: func(l *wal.Log, b *wal.Batch) error {
		fsyncs.Add(1)
		return l.WriteBatch(b)
	}}
	s := mustOpen(t, t.TempDir(), opts)
	defer mustClose(t, s)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Enqueue(ctx, testEnv(i), nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := fsyncs.Load(); got > 3 {
		t.Fatalf("%d fsyncs for 10 Enqueues inside one window", got)
	}
}

// fill enqueues n messages and returns what the spool holds.
func fill(t *testing.T, dir string, n int) map[string]liveMsg {
	t.Helper()
	s := mustOpen(t, dir, testOpts(t))
	for i := range n {
		if _, err := s.Enqueue(ctx, testEnv(i), testBody(i, 200+i)); err != nil {
			t.Fatal(err)
		}
	}
	want := snapshot(t, s)
	mustClose(t, s)
	return want
}

func TestTornTail(t *testing.T) {
	cases := []struct {
		name string
		// damage changes the last segment (size = its length) and returns
		// how many of the last messages are expected to be lost.
		damage func(t *testing.T, path string, size int64) int
	}{
		{"cut mid-record", func(t *testing.T, path string, size int64) int {
			return cutTo(t, path, size-7)
		}},
		{"cut inside length prefix", func(t *testing.T, path string, size int64) int {
			data, _ := os.ReadFile(path)
			last := lastEntryOffset(t, data)
			return cutTo(t, path, int64(last)+1)
		}},
		{"garbage appended", func(t *testing.T, path string, size int64) int {
			appendBytes(t, path, []byte("\x05garbage that is not a record\xff\xff\xff"))
			return 0
		}},
		{"zeros appended (unwritten blocks)", func(t *testing.T, path string, size int64) int {
			appendBytes(t, path, make([]byte, 4096))
			return 0
		}},
		{"plausible record with bad CRC appended", func(t *testing.T, path string, size int64) int {
			rec := appendPut(nil, 99, bodyRef{}, encodeEnvelope(nil, testEnv(1)))
			rec[len(rec)-1] ^= 1
			appendBytes(t, path, append([]byte{byte(len(rec))}, rec...))
			return 0
		}},
		{"last record bit flip", func(t *testing.T, path string, size int64) int {
			data, _ := os.ReadFile(path)
			data[len(data)-3] ^= 0x40
			if err := os.WriteFile(path, data, 0o640); err != nil {
				t.Fatal(err)
			}
			return 1
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			want := fill(t, dir, 40)
			path := lastSegment(t, dir)
			fi, _ := os.Stat(path)
			lost := c.damage(t, path, fi.Size())
			s := mustOpen(t, dir, testOpts(t))
			// Generated IDs increase, so the lost messages are the last ones.
			ids := make([]string, 0, len(want))
			for id := range want {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids[len(ids)-lost:] {
				delete(want, id)
			}
			sameSnapshot(t, snapshot(t, s), want)
			// The repaired log takes new writes and replays cleanly.
			id, err := s.Enqueue(ctx, testEnv(1000), []byte("after repair"))
			if err != nil {
				t.Fatal(err)
			}
			mustClose(t, s)
			s = mustOpen(t, dir, testOpts(t))
			defer mustClose(t, s)
			if b, err := s.Body(id); err != nil || string(b) != "after repair" {
				t.Fatalf("message written after repair: %q, %v", b, err)
			}
		})
	}
}

// TestCorruptOldSegmentFails: damage to acknowledged data outside the tail
// is reported, not silently dropped.
func TestCorruptOldSegmentFails(t *testing.T) {
	dir := t.TempDir()
	fill(t, dir, 1500) // several 64 KiB segments
	segs, _, _ := listSegments(filepath.Join(dir, "wal"))
	if len(segs) < 2 {
		t.Fatalf("want several segments, have %d", len(segs))
	}
	data, _ := os.ReadFile(segs[0].path)
	data[len(data)/2] ^= 0xff
	os.WriteFile(segs[0].path, data, 0o640)
	if _, err := Open(dir, testOpts(t)); err == nil || !isCorrupt(err) {
		t.Fatalf("Open with a damaged old segment: %v, want ErrCorrupt", err)
	}
}

// TestUnwrittenBodiesDropLastBatch: a crash between the log fsync and the
// body fsync of the last batch leaves log records pointing at body bytes
// that never arrived; that batch was not acknowledged and is dropped.
func TestUnwrittenBodiesDropLastBatch(t *testing.T) {
	dir := t.TempDir()
	want := fill(t, dir, 20)
	// One more message in its own batch, then lose its body bytes.
	s := mustOpen(t, dir, testOpts(t))
	id, err := s.Enqueue(ctx, testEnv(99), testBody(99, 5000))
	if err != nil {
		t.Fatal(err)
	}
	ref := func() bodyRef { s.idx.mu.RLock(); defer s.idx.mu.RUnlock(); return s.idx.m[id].ref() }()
	mustClose(t, s)
	cutTo(t, filepath.Join(dir, "body", bodyName(ref.file)), ref.off+100)
	s = mustOpen(t, dir, testOpts(t))
	sameSnapshot(t, snapshot(t, s), want)
	if _, err := s.Enqueue(ctx, testEnv(100), []byte("next")); err != nil {
		t.Fatal(err)
	}
	mustClose(t, s)
	s = mustOpen(t, dir, testOpts(t)) // the dropped batch stays dropped
	defer mustClose(t, s)
	if s.Len() != len(want)+1 {
		t.Fatalf("Len = %d, want %d", s.Len(), len(want)+1)
	}
	if _, ok := s.Get(id); ok {
		t.Fatal("message of the dropped batch came back")
	}
}

func cutTo(t *testing.T, path string, size int64) int {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	return 1
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func lastEntryOffset(t *testing.T, data []byte) int {
	last := -1
	if _, err := walkEntries(data, func(off int, _ []byte) error { last = off; return nil }); err != nil || last < 0 {
		t.Fatalf("walk: %v", err)
	}
	return last
}

// TestNewSegmentsDirSynced: wal never fsyncs its directory, so the spool
// must do it whenever a batch made wal start a new segment.
func TestNewSegmentsDirSynced(t *testing.T) {
	dir := t.TempDir()
	walDir := filepath.Join(dir, "wal")
	var syncs atomic.Int64
	opts := testOpts(t)
	opts.hooks = &hooks{dirSync: func(d string) error {
		if d == walDir {
			syncs.Add(1)
		}
		return syncDir(d)
	}}
	s := mustOpen(t, dir, opts)
	defer mustClose(t, s)
	after := syncs.Load()
	for i := range 1500 {
		if _, err := s.Enqueue(ctx, testEnv(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	segs, _, _ := listSegments(walDir)
	if got := syncs.Load() - after; got < int64(len(segs)-1) || len(segs) < 3 {
		t.Fatalf("%d segments created, %d log directory fsyncs", len(segs)-1, got)
	}
}

// TestOpenSyncsLastBatch: after a process crash the last batch may be in
// the page cache only. Open accepts it, so before anything builds on it
// Open must fsync the body files its live messages reference and the log
// segment holding it, ahead of the directory fsyncs and the new body file.
func TestOpenSyncsLastBatch(t *testing.T) {
	type setup struct {
		s       *Spool
		old     string // a message enqueued by an earlier Open, so in an older body file
		oldFile uint32
	}
	cases := []struct {
		name   string
		window time.Duration
		// last writes the last batch and returns the body files it references.
		last func(t *testing.T, c setup) []uint32
	}{
		{"enqueue", 0, func(t *testing.T, c setup) []uint32 {
			id, err := c.s.Enqueue(ctx, testEnv(2), testBody(2, 500))
			if err != nil {
				t.Fatal(err)
			}
			return []uint32{fileOf(c.s, id)}
		}},
		{"attempt on an older message", 0, func(t *testing.T, c setup) []uint32 {
			if err := c.s.Reschedule(c.old, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			return []uint32{c.oldFile}
		}},
		{"both in one batch", 300 * time.Millisecond, func(t *testing.T, c setup) []uint32 {
			var wg sync.WaitGroup
			var id string
			var err1, err2 error
			wg.Add(2)
			go func() { defer wg.Done(); id, err1 = c.s.Enqueue(ctx, testEnv(3), testBody(3, 500)) }()
			go func() { defer wg.Done(); err2 = c.s.Reschedule(c.old, time.Now().Add(time.Hour)) }()
			wg.Wait()
			if err1 != nil || err2 != nil {
				t.Fatal(err1, err2)
			}
			return []uint32{fileOf(c.s, id), c.oldFile}
		}},
		{"complete (no live body)", 0, func(t *testing.T, c setup) []uint32 {
			if err := c.s.Complete(c.old, OutcomeDelivered, ""); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, dir, testOpts(t))
			old, err := s.Enqueue(ctx, testEnv(1), testBody(1, 500))
			if err != nil {
				t.Fatal(err)
			}
			oldFile := fileOf(s, old)
			mustClose(t, s)
			opts := testOpts(t)
			opts.GroupCommitWindow = c.window
			s = mustOpen(t, dir, opts)
			files := c.last(t, setup{s, old, oldFile})
			mustClose(t, s)

			var mu sync.Mutex
			var events []string
			opts = testOpts(t)
			opts.hooks = &hooks{
				bodySync: func(f *os.File) error {
					mu.Lock()
					events = append(events, "fsync "+f.Name())
					mu.Unlock()
					return f.Sync()
				},
				dirSync: func(d string) error {
					mu.Lock()
					events = append(events, "dirsync "+d)
					mu.Unlock()
					return syncDir(d)
				},
			}
			s = mustOpen(t, dir, opts)
			mustClose(t, s)
			want := []string{"fsync " + lastSegment(t, dir)}
			for _, num := range files {
				want = append(want, "fsync "+filepath.Join(dir, "body", bodyName(num)))
			}
			// The file fsyncs come first, before any directory fsync, and
			// so before the new body file.
			var got []string
			for _, e := range events {
				if !strings.HasPrefix(e, "fsync ") {
					break
				}
				got = append(got, e)
			}
			sort.Strings(got)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Fatalf("Open fsynced %q before the directories (events %q); want %q", got, events, want)
			}
		})
	}
}

func fileOf(s *Spool, id string) uint32 {
	s.idx.mu.RLock()
	defer s.idx.mu.RUnlock()
	return s.idx.m[id].file
}
