package queue

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/tidwall/wal"
)

// faults injects storage errors into the spool's write path.
type faults struct {
	bodyWrite, bodySync, walWrite atomic.Pointer[error]
	walWriteThenFail              atomic.Bool // the log write happens, its "fsync" fails
}

func (f *faults) hooks() *hooks {
	return &hooks{
		bodyWrite: func(file *os.File, p []byte, off int64) (int, error) {
			if e := f.bodyWrite.Load(); e != nil {
				n, _ := file.WriteAt(p[:len(p)/2], off) // a partial write, as a filling disk does
				return n, &os.PathError{Op: "write", Path: file.Name(), Err: *e}
			}
			return file.WriteAt(p, off)
		},
		bodySync: func(file *os.File) error {
			if e := f.bodySync.Load(); e != nil {
				return &os.PathError{Op: "fsync", Path: file.Name(), Err: *e}
			}
			return file.Sync()
		},
		walWrite: func(l *wal.Log, b *wal.Batch) error {
			if e := f.walWrite.Load(); e != nil {
				if f.walWriteThenFail.Load() {
					if err := l.WriteBatch(b); err != nil {
						return err
					}
				}
				return *e
			}
			return l.WriteBatch(b)
		},
	}
}

func TestStorageFaults(t *testing.T) {
	enospc, eio := error(syscall.ENOSPC), error(syscall.EIO)
	cases := []struct {
		name      string
		set       func(f *faults)
		wantSpace bool // the error must satisfy IsNoSpace
		logFault  bool // the fault hits log writes too (so Complete fails)
	}{
		{"body write ENOSPC", func(f *faults) { f.bodyWrite.Store(&enospc) }, true, false},
		{"log write ENOSPC", func(f *faults) { f.walWrite.Store(&enospc) }, true, true},
		{"log written, fsync EIO", func(f *faults) { f.walWrite.Store(&eio); f.walWriteThenFail.Store(true) }, false, true},
		{"log written, body fsync ENOSPC", func(f *faults) { f.bodySync.Store(&enospc) }, true, false},
		{"everything ENOSPC", func(f *faults) { f.bodyWrite.Store(&enospc); f.walWrite.Store(&enospc) }, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			f := &faults{}
			opts := testOpts(t)
			opts.hooks = f.hooks()
			s := mustOpen(t, dir, opts)
			var first string
			for i := range 10 {
				id, err := s.Enqueue(ctx, testEnv(i), testBody(i, 1500))
				if err != nil {
					t.Fatal(err)
				}
				if first == "" {
					first = id
				}
			}
			acked := snapshot(t, s)

			c.set(f)
			var wg sync.WaitGroup
			for i := range 5 { // concurrent, so a batch of several fails at once
				wg.Add(1)
				go func() {
					defer wg.Done()
					id, err := s.Enqueue(ctx, testEnv(100+i), testBody(100+i, 1500))
					if err == nil {
						t.Errorf("Enqueue during the fault succeeded (id %s)", id)
						return
					}
					if c.wantSpace && (!IsNoSpace(err) || !errors.Is(err, ErrNoSpace)) {
						t.Errorf("error %v does not wrap ErrNoSpace", err)
					}
					if !c.wantSpace && !errors.Is(err, ErrStorage) {
						t.Errorf("error %v does not wrap ErrStorage", err)
					}
				}()
			}
			wg.Wait()
			err := s.Complete(first, OutcomeDelivered, "")
			switch {
			case c.logFault && err == nil:
				t.Error("Complete during the fault succeeded")
			case !c.logFault && err != nil:
				t.Errorf("Complete (no body to write) failed: %v", err)
			case err == nil:
				delete(acked, first)
			}
			sameSnapshot(t, snapshot(t, s), acked)

			f.bodyWrite.Store(nil)
			f.bodySync.Store(nil)
			f.walWrite.Store(nil)
			for i := range 3 {
				id, err := s.Enqueue(ctx, testEnv(200+i), testBody(200+i, 1500))
				if err != nil {
					t.Fatalf("Enqueue after the fault cleared: %v", err)
				}
				e, _ := s.Get(id)
				acked[id] = liveMsg{e, testBody(200+i, 1500)}
			}
			sameSnapshot(t, snapshot(t, s), acked)
			mustClose(t, s)

			s = mustOpen(t, dir, testOpts(t))
			defer mustClose(t, s)
			sameSnapshot(t, snapshot(t, s), acked)
		})
	}
}
