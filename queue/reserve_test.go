package queue

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeDisk is the statfs hook of a filesystem that holds only the spool:
// free = capacity - the size of the spool's files. fixed >= 0 overrides
// it with a constant.
type fakeDisk struct {
	dir      string
	capacity atomic.Int64
	fixed    atomic.Int64
	calls    atomic.Int64
	fail     atomic.Bool
}

func newFakeDisk(dir string) *fakeDisk {
	d := &fakeDisk{dir: dir}
	d.capacity.Store(1 << 40)
	d.fixed.Store(-1)
	return d
}

func (d *fakeDisk) statfs(*os.File) (int64, error) {
	d.calls.Add(1)
	if d.fail.Load() {
		return 0, syscall.EIO
	}
	if f := d.fixed.Load(); f >= 0 {
		return f, nil
	}
	return d.capacity.Load() - duBytes(d.dir), nil
}

// duBytes is the size of the files under dir.
func duBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func reserveOpts(t testing.TB, d *fakeDisk, reserve int64) Options {
	opts := testOpts(t)
	opts.Reserve = reserve
	opts.hooks = &hooks{statfs: d.statfs}
	return opts
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantLowSpaceErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("reception Enqueue succeeded below the reserve")
	}
	if !errors.Is(err, ErrLowSpace) || !errors.Is(err, ErrNoSpace) || !IsNoSpace(err) {
		t.Fatalf("error %v: want ErrLowSpace wrapping ErrNoSpace", err)
	}
}

// TestReserveRefusesReceptionOnly: below the reserve, Enqueue is refused
// and stores nothing, while every call that drains the queue, and
// EnqueueReserved, still works; the state heals once space returns.
func TestReserveRefusesReceptionOnly(t *testing.T) {
	dir := t.TempDir()
	d := newFakeDisk(dir)
	const reserve = 1 << 20
	s := mustOpen(t, dir, reserveOpts(t, d, reserve))
	defer mustClose(t, s)

	var ids []string
	for i := range 4 {
		id, err := s.Enqueue(ctx, testEnv(i), testBody(i, 2000))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if s.LowSpace() {
		t.Fatal("LowSpace with a terabyte free")
	}

	// 10 KiB above the reserve: a 20 KB message does not fit, and since
	// the headroom is below the hysteresis margin the spool goes low.
	d.fixed.Store(reserve + 10<<10)
	_, err := s.Enqueue(ctx, testEnv(10), testBody(10, 20000))
	wantLowSpaceErr(t, err)
	if !s.LowSpace() {
		t.Fatal("LowSpace false after a refusal at the reserve")
	}
	// Now even a small one is refused.
	_, err = s.Enqueue(ctx, testEnv(11), testBody(11, 100))
	wantLowSpaceErr(t, err)
	if n := s.Len(); n != 4 {
		t.Fatalf("%d messages queued, want the 4 accepted before", n)
	}
	if st := s.SpaceStatus(); !st.Low || st.Reserve != reserve || st.Free != reserve+10<<10 || st.Checked.IsZero() {
		t.Fatalf("SpaceStatus %+v", st)
	}

	// Everything else may use the reserve.
	d.fixed.Store(reserve / 2)
	if err := s.RecordAttempt(ids[0], []RecipientResult{{Addr: "rcpt0@example.com", Status: RcptPending, Reply: "421 down"}}, time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("RecordAttempt below the reserve: %v", err)
	}
	if err := s.Reschedule(ids[1], time.Now()); err != nil {
		t.Fatalf("Reschedule below the reserve: %v", err)
	}
	if err := s.Update(ids[2], func(e *Envelope) error { e.Priority = 9; return nil }); err != nil {
		t.Fatalf("Update below the reserve: %v", err)
	}
	if err := s.Complete(ids[3], OutcomeDeleted, "operator"); err != nil {
		t.Fatalf("Complete below the reserve: %v", err)
	}
	dsn, err := s.EnqueueReserved(ctx, &Envelope{From: "", Recipients: []Recipient{{Addr: "sender0@example.org"}}}, testBody(99, 3000))
	if err != nil {
		t.Fatalf("EnqueueReserved below the reserve: %v", err)
	}
	if b, err := s.Body(dsn); err != nil || len(b) != 3000 {
		t.Fatalf("DSN body: %d bytes, %v", len(b), err)
	}
	if _, err := s.Compact(); err != nil {
		t.Fatalf("Compact below the reserve: %v", err)
	}

	// Space returns: within a check interval the spool is accepting again.
	d.fixed.Store(100 << 20)
	start := time.Now()
	waitUntil(t, 3*time.Second, "LowSpace to clear", func() bool { return !s.LowSpace() })
	t.Logf("healed %v after space returned", time.Since(start).Round(time.Millisecond))
	if _, err := s.Enqueue(ctx, testEnv(12), testBody(12, 100)); err != nil {
		t.Fatalf("Enqueue after healing: %v", err)
	}
}

// TestReserveHysteresis: low state ends only once the reserve plus the
// margin is free; a reception batch measures again, without the ticker.
func TestReserveHysteresis(t *testing.T) {
	dir := t.TempDir()
	d := newFakeDisk(dir)
	const reserve = 4 << 20
	d.fixed.Store(reserve - 1)
	s := mustOpen(t, dir, reserveOpts(t, d, reserve))
	defer mustClose(t, s)
	if !s.LowSpace() {
		t.Fatal("a spool opened below its reserve is not LowSpace")
	}
	d.fixed.Store(reserve + hysteresis(reserve) - 1)
	_, err := s.Enqueue(ctx, testEnv(0), testBody(0, 100))
	wantLowSpaceErr(t, err)
	time.Sleep(1200 * time.Millisecond) // a tick
	if !s.LowSpace() {
		t.Fatal("LowSpace ended inside the hysteresis margin")
	}
	d.fixed.Store(reserve + hysteresis(reserve))
	if _, err := s.Enqueue(ctx, testEnv(1), testBody(1, 100)); err != nil {
		t.Fatalf("Enqueue with the reserve and margin free: %v", err)
	}
	if s.LowSpace() {
		t.Fatal("still LowSpace")
	}
}

// TestReserveLargeMessage: one message larger than the headroom is
// refused without refusing the next, smaller one.
func TestReserveLargeMessage(t *testing.T) {
	dir := t.TempDir()
	d := newFakeDisk(dir)
	const reserve = 1 << 20
	d.fixed.Store(reserve + 2<<20)
	s := mustOpen(t, dir, reserveOpts(t, d, reserve))
	defer mustClose(t, s)
	_, err := s.Enqueue(ctx, testEnv(0), testBody(0, 3<<20))
	wantLowSpaceErr(t, err)
	if s.LowSpace() {
		t.Fatal("one large message made the spool LowSpace with 2 MiB of headroom")
	}
	if _, err := s.Enqueue(ctx, testEnv(1), testBody(1, 10000)); err != nil {
		t.Fatal(err)
	}
}

// TestReserveCountsStagedBytes: concurrent messages share batches; each
// batch measures once and subtracts what it has staged, so the reserve
// holds however the messages are batched.
func TestReserveCountsStagedBytes(t *testing.T) {
	dir := t.TempDir()
	d := newFakeDisk(dir)
	const reserve = 1 << 20
	opts := reserveOpts(t, d, reserve)
	opts.GroupCommitWindow = 20 * time.Millisecond // big batches
	s := mustOpen(t, dir, opts)
	defer mustClose(t, s)
	d.capacity.Store(duBytes(dir) + reserve + 200<<10)
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Enqueue(ctx, testEnv(i), testBody(i, 10000))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrLowSpace):
				refused.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	free, _ := d.statfs(nil)
	t.Logf("accepted %d, refused %d, %d bytes free above the reserve", ok.Load(), refused.Load(), free-reserve)
	if ok.Load() == 0 || ok.Load() > 21 {
		t.Errorf("%d of 60 10 KB messages accepted with 200 KiB above the reserve", ok.Load())
	}
	if free < reserve {
		t.Errorf("reception left %d bytes free, below the %d reserve", free, reserve)
	}
	if !s.LowSpace() {
		t.Error("not LowSpace after filling to the reserve")
	}
}

// TestReserveStatfsOncePerBatch: the free space is measured for batches
// with a reception Enqueue, not for state changes.
func TestReserveStatfsOncePerBatch(t *testing.T) {
	dir := t.TempDir()
	d := newFakeDisk(dir)
	s := mustOpen(t, dir, reserveOpts(t, d, 1<<20))
	defer mustClose(t, s)
	id, err := s.Enqueue(ctx, testEnv(0), testBody(0, 100))
	if err != nil {
		t.Fatal(err)
	}
	before := d.calls.Load()
	start := time.Now()
	for range 50 {
		if err := s.Reschedule(id, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	ticks := int64(time.Since(start)/spaceCheckEvery) + 1
	if n := d.calls.Load() - before; n > ticks {
		t.Errorf("50 Reschedules measured the free space %d times (ticks: %d)", n, ticks)
	}
	before = d.calls.Load()
	for i := range 20 {
		if _, err := s.Enqueue(ctx, testEnv(i), testBody(i, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.calls.Load() - before; n < 20 || n > 20+ticks {
		t.Errorf("20 sequential Enqueues (20 batches) measured %d times", n)
	}
}

// TestReserveHealsByCompaction: a spool filled to its reserve whose
// messages are then delivered frees the space by itself: it retires the
// mostly dead active body file and compacts early, with no Compact call
// and the periodic compactor off.
func TestReserveHealsByCompaction(t *testing.T) {
	dir := t.TempDir()
	d := newFakeDisk(dir)
	const reserve = 1 << 20
	opts := reserveOpts(t, d, reserve)
	opts.BodyFileSize = 64 << 20 // one body file: only retiring it frees space
	s := mustOpen(t, dir, opts)
	defer mustClose(t, s)
	d.capacity.Store(duBytes(dir) + reserve + 1<<20)
	var ids []string
	for i := 0; ; i++ {
		id, err := s.Enqueue(ctx, testEnv(i), testBody(i, 16000))
		if errors.Is(err, ErrLowSpace) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if !s.LowSpace() {
		t.Fatal("not LowSpace after filling to the reserve")
	}
	st0, _ := s.Stats()
	for _, id := range ids {
		if err := s.Complete(id, OutcomeDelivered, ""); err != nil {
			t.Fatalf("Complete below the reserve: %v", err)
		}
	}
	start := time.Now()
	waitUntil(t, 5*time.Second, "the spool to heal", func() bool { return !s.LowSpace() })
	st, _ := s.Stats()
	t.Logf("%d messages accepted; healed %v after delivery; disk %d -> %d bytes, body files %d -> %d",
		len(ids), time.Since(start).Round(time.Millisecond), st0.DiskBytes, st.DiskBytes, st0.BodyFiles, st.BodyFiles)
	if _, err := s.Enqueue(ctx, testEnv(0), testBody(0, 16000)); err != nil {
		t.Fatalf("Enqueue after healing: %v", err)
	}
}

// TestReserveWriteFailure: ENOSPC from a write makes the spool LowSpace
// even where statfs sees room (quotas), until a check shows room again.
func TestReserveWriteFailure(t *testing.T) {
	dir := t.TempDir()
	d := newFakeDisk(dir)
	f := &faults{}
	opts := testOpts(t)
	opts.hooks = f.hooks()
	opts.hooks.statfs = d.statfs
	s := mustOpen(t, dir, opts)
	defer mustClose(t, s)
	enospc := error(syscall.ENOSPC)
	f.walWrite.Store(&enospc)
	if _, err := s.Enqueue(ctx, testEnv(0), testBody(0, 100)); !IsNoSpace(err) {
		t.Fatalf("Enqueue during ENOSPC: %v", err)
	}
	if !s.LowSpace() {
		t.Fatal("an ENOSPC write did not make the spool LowSpace")
	}
	f.walWrite.Store(nil)
	waitUntil(t, 3*time.Second, "LowSpace to clear", func() bool { return !s.LowSpace() })
	if _, err := s.Enqueue(ctx, testEnv(1), testBody(1, 100)); err != nil {
		t.Fatal(err)
	}
}

// TestReserveDisabledAndSetReserve: a negative reserve disables the
// checks; SetReserve changes the reserve of a running spool.
func TestReserveDisabledAndSetReserve(t *testing.T) {
	dir := t.TempDir()
	d := newFakeDisk(dir)
	d.fixed.Store(1000)
	s := mustOpen(t, dir, reserveOpts(t, d, -1))
	defer mustClose(t, s)
	if s.LowSpace() || d.calls.Load() != 0 {
		t.Fatalf("disabled reserve: LowSpace %v, %d statfs calls", s.LowSpace(), d.calls.Load())
	}
	if _, err := s.Enqueue(ctx, testEnv(0), testBody(0, 100)); err != nil {
		t.Fatal(err)
	}
	if st := s.SpaceStatus(); st.Reserve != -1 || st.Free != -1 {
		t.Fatalf("SpaceStatus %+v", st)
	}
	s.SetReserve(0)
	if got := s.SpaceStatus().Reserve; got != DefaultReserve {
		t.Fatalf("SetReserve(0): reserve %d, want %d", got, DefaultReserve)
	}
	waitUntil(t, 3*time.Second, "LowSpace after the reserve was set", s.LowSpace)
	s.SetReserve(-1)
	waitUntil(t, 3*time.Second, "LowSpace to clear when disabled", func() bool { return !s.LowSpace() })
}

// TestReserveStatfsFailure: a failing measurement does not refuse mail.
func TestReserveStatfsFailure(t *testing.T) {
	dir := t.TempDir()
	d := newFakeDisk(dir)
	d.fail.Store(true)
	s := mustOpen(t, dir, reserveOpts(t, d, 1<<20))
	defer mustClose(t, s)
	if _, err := s.Enqueue(ctx, testEnv(0), testBody(0, 100)); err != nil {
		t.Fatal(err)
	}
	if s.LowSpace() {
		t.Fatal("LowSpace without a measurement")
	}
}

// TestFreeBytes: the real hook agrees with statfs(2) on the directory.
func TestFreeBytes(t *testing.T) {
	f, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := freeBytes(f)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(f.Name(), &st); err != nil {
		t.Fatal(err)
	}
	want := int64(st.Bavail) * st.Bsize
	if diff := got - want; got <= 0 || diff > 64<<20 || diff < -64<<20 {
		t.Fatalf("freeBytes %d, statfs %d", got, want)
	}
}

// BenchmarkFreeBytes is the cost of one free-space measurement (fstatfs
// on the lock file), paid once per batch holding a reception Enqueue.
func BenchmarkFreeBytes(b *testing.B) {
	f, err := os.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for b.Loop() {
		if _, err := freeBytes(f); err != nil {
			b.Fatal(err)
		}
	}
}
