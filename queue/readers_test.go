package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(des)
}

// TestBodyReadersFollowCompaction: Body keeps a handle per body file, and
// compaction, moving bodies and removing emptied files, never leaves one
// open on a removed file (it would pin the disk space) nor makes a
// concurrent Body fail; Close releases them all.
func TestBodyReadersFollowCompaction(t *testing.T) {
	fds0 := openFDs(t)
	dir := t.TempDir()
	opts := testOpts(t)
	opts.BodyFileSize = 32 << 10 // ~30 bodies of 1000 bytes a file
	s := mustOpen(t, dir, opts)
	var ids []string
	for i := range 600 {
		id, err := s.Enqueue(ctx, testEnv(i), testBody(i, 1000))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	for i, id := range ids { // opens a handle to every body file
		if b, err := s.Body(id); err != nil || !bytes.Equal(b, testBody(i, 1000)) {
			t.Fatalf("Body(%s): %v", id, err)
		}
	}
	if n := len(s.readers.files); n < 10 || n > maxReaders {
		t.Fatalf("%d body-file handles after reading 600 bodies, want 10..%d", n, maxReaders)
	}
	live := map[string]int{}
	for i, id := range ids {
		if i%20 == 7 {
			live[id] = i
			continue
		}
		if err := s.Complete(id, OutcomeDelivered, ""); err != nil {
			t.Fatal(err)
		}
	}
	// Readers of the live bodies run throughout the compaction.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				for id, i := range live {
					select {
					case <-stop:
						return
					default:
					}
					if b, err := s.Body(id); err != nil || !bytes.Equal(b, testBody(i, 1000)) {
						t.Errorf("Body(%s) during compaction: %v", id, err)
						return
					}
				}
			}
		}()
	}
	res, err := s.Compact()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.BodyFilesFreed == 0 {
		t.Fatalf("compaction freed no body file (%+v): the test proves nothing", res)
	}
	for num := range s.readers.files {
		if _, err := os.Stat(filepath.Join(dir, "body", bodyName(num))); err != nil {
			t.Errorf("a handle is still open on body file %s: %v", bodyName(num), err)
		}
	}
	for id, i := range live {
		if b, err := s.Body(id); err != nil || !bytes.Equal(b, testBody(i, 1000)) {
			t.Fatalf("Body(%s) after compaction: %v", id, err)
		}
	}
	mustClose(t, s)
	if n := openFDs(t); n != fds0 {
		t.Fatalf("%d file descriptors open after Close, %d before Open", n, fds0)
	}
}
