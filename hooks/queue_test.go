package hooks

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cuemta/cuemta/internal/walseg"
)

func appendN(t *testing.T, q *Queue, from, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := from; i < from+n; i++ {
		wg.Add(1)
		go func() { // concurrent: they share group commits
			defer wg.Done()
			errs <- q.Append(fmt.Appendf(nil, `{"n":%d}`, i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func payloads(b Batch) map[string]bool {
	m := map[string]bool{}
	for _, e := range b.Entries {
		m[string(e.Payload)] = true
	}
	return m
}

func TestQueueAppendAckReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hooks", "crm") // created by OpenQueue, as under the spool
	q, err := OpenQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, q, 0, 50)
	b, _ := q.Peek(20)
	if len(b.Entries) != 20 || b.Through != 20 {
		t.Fatalf("peek: %d entries through %d, want 20 through 20", len(b.Entries), b.Through)
	}
	if err := q.Ack(b); err != nil {
		t.Fatal(err)
	}
	if st := q.Stats(); st.Queued != 30 || st.Oldest.IsZero() {
		t.Fatalf("after ack: %+v, want 30 queued with an oldest time", st)
	}
	q.Close()

	q, err = OpenQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st := q.Stats()
	if st.Queued != 30 {
		t.Fatalf("after reopen: %d queued, want 30", st.Queued)
	}
	b, _ = q.Peek(100)
	if len(b.Entries) != 30 || b.Entries[0].Index != 21 {
		t.Fatalf("after reopen: %d entries from %d, want 30 from 21", len(b.Entries), b.Entries[0].Index)
	}
	q.Ack(b)
	if st := q.Stats(); st.Queued != 0 || st.Bytes != 0 || !st.Oldest.IsZero() {
		t.Fatalf("all acknowledged: %+v", st)
	}
	appendN(t, q, 50, 1)
	if b, _ := q.Peek(10); len(b.Entries) != 1 || string(b.Entries[0].Payload) != `{"n":50}` {
		t.Fatalf("append after emptying: %+v", b)
	}
	// The events hold addresses and headers: private, as the spool.
	for _, p := range []string{dir, tailSegment(t, dir), filepath.Join(dir, ackedFile)} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v, want no group or other access", p, perm)
		}
	}
}

func TestQueueTruncatesFront(t *testing.T) {
	dir := t.TempDir()
	q, err := OpenQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, q, 0, truncateEvery+10)
	b, _ := q.Peek(truncateEvery + 10)
	if err := q.Ack(b); err != nil {
		t.Fatal(err)
	}
	first, _ := q.log.FirstIndex()
	if want := uint64(truncateEvery + 10); first != want {
		t.Fatalf("first index after acknowledging all: %d, want %d (the last one kept)", first, want)
	}
	q.Close()
	q, err = OpenQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if st := q.Stats(); st.Queued != 0 {
		t.Fatalf("reopened: %d queued, want 0", st.Queued)
	}
}

// tailSegment is the path of the newest wal segment.
func tailSegment(t *testing.T, dir string) string {
	start, err := walseg.TailStart(dir)
	if err != nil || start == 0 {
		t.Fatalf("no segment in %s: %v", dir, err)
	}
	return filepath.Join(dir, fmt.Sprintf("%020d", start))
}

func TestQueueTornTail(t *testing.T) {
	cases := []struct {
		name   string
		damage func(data []byte) []byte
		want   int // entries left of 10
	}{
		{"half of the last entry", func(d []byte) []byte { return d[:len(d)-5] }, 9},
		{"garbage after the last entry", func(d []byte) []byte { return append(d, 0x7f, 1, 2, 3) }, 10},
		{"last entry's payload flipped", func(d []byte) []byte { d[len(d)-2] ^= 0xff; return d }, 9},
		{"a zero length prefix", func(d []byte) []byte { return append(d, 0) }, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			q, err := OpenQueue(dir)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				appendN(t, q, i, 1) // one by one: a known order
			}
			q.Close()
			seg := tailSegment(t, dir)
			data, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(seg, tc.damage(data), 0o600); err != nil {
				t.Fatal(err)
			}
			q, err = OpenQueue(dir)
			if err != nil {
				t.Fatalf("reopen after damage: %v", err)
			}
			defer q.Close()
			b, _ := q.Peek(100)
			if len(b.Entries) != tc.want {
				t.Fatalf("%d entries after repair, want %d", len(b.Entries), tc.want)
			}
			for i, e := range b.Entries {
				if want := fmt.Sprintf(`{"n":%d}`, i); string(e.Payload) != want {
					t.Fatalf("entry %d is %s, want %s", i, e.Payload, want)
				}
			}
			// The queue takes appends after the cut, contiguous.
			appendN(t, q, 99, 1)
			b, _ = q.Peek(100)
			if last := b.Entries[len(b.Entries)-1]; string(last.Payload) != `{"n":99}` || last.Index != uint64(tc.want+1) {
				t.Fatalf("append after repair: %d %s", last.Index, last.Payload)
			}
		})
	}
}

// TestQueueStaleAcked: segments deleted by hand, ACKED left behind; the
// new entries that reuse the old indexes are not taken as acknowledged.
func TestQueueStaleAcked(t *testing.T) {
	dir := t.TempDir()
	q, err := OpenQueue(dir)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, q, 0, 20)
	b, _ := q.Peek(20)
	q.Ack(b)
	q.Close()
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if de.Name() != ackedFile {
			os.Remove(filepath.Join(dir, de.Name()))
		}
	}
	for round := range 2 { // the second reopen reads the ACKED the first left
		q, err = OpenQueue(dir)
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			appendN(t, q, 100, 5)
		}
		if st := q.Stats(); st.Queued != 5 {
			t.Fatalf("round %d: %d queued, want the 5 new entries", round, st.Queued)
		}
		q.Close()
	}
}
