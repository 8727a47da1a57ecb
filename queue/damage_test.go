package queue

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidwall/wal"
)

// Damage tests: bytes of a closed spool are changed at random and Open and
// Salvage must never present a wrong message as right.

// damageFixture is a closed spool built deterministically (explicit IDs,
// a fixed clock, batches composed by holding the committer), with
// everything the tests need to know about where each record and body
// frame lies.
type damageFixture struct {
	dir     string
	opts    Options
	entries []logEntry             // every log entry, in log order
	bodies  map[string][]byte      // every message's body by ID
	final   map[string]*logEntry   // the live messages: their latest put
	puts    map[string][]*logEntry // every put of each message
}

// logEntry is one log entry of the fixture.
type logEntry struct {
	seg      string // file name under wal/
	off, end int64  // its bytes, length prefix included
	batch    uint64
	put      bool
	id       string
	env      Envelope // put
	ref      bodyRef  // put
}

var fixClock = time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)

func damageOpts(t testing.TB) Options {
	o := testOpts(t)
	o.SegmentSize = 2 << 10 // ~9 segments
	o.BodyFileSize = 4 << 10
	o.Now = func() time.Time { return fixClock }
	return o
}

func fixEnv(n int) *Envelope {
	e := testEnv(n)
	e.ID = fmt.Sprintf("m%03d", n)
	e.Received = fixClock.Add(time.Duration(n) * time.Second)
	if n%3 == 0 {
		e.Recipients = append(e.Recipients, Recipient{Addr: fmt.Sprintf("cc%d@example.net", n)})
	}
	return e
}

func fixBody(n int) []byte { return testBody(n, 60+(n*137)%900) }

func buildDamageFixture(t *testing.T) *damageFixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pristine")
	f := &damageFixture{dir: dir, opts: damageOpts(t), bodies: make(map[string][]byte)}
	// The hook holds a batch in its log write while the test queues the
	// requests of the next batch one by one, so batches are the same in
	// every run and so are the bytes on disk.
	var armed atomic.Pointer[chan struct{}]
	blocked := make(chan struct{}, 1)
	opts := f.opts
	opts.hooks = &hooks{walWrite: func(l *wal.Log, b *wal.Batch) error {
		if g := armed.Load(); g != nil {
			blocked <- struct{}{}
			<-*g
		}
		return l.WriteBatch(b)
	}}
	s := mustOpen(t, dir, opts)
	enq := func(n int) func() error {
		f.bodies[fixEnv(n).ID] = fixBody(n)
		return func() error { _, err := s.Enqueue(ctx, fixEnv(n), fixBody(n)); return err }
	}
	attempt := func(n int) func() error {
		return func() error {
			return s.RecordAttempt(fixEnv(n).ID, []RecipientResult{{Addr: fixEnv(n).Recipients[0].Addr, Status: RcptPending, Reply: "451 4.7.1 try later"}},
				fixClock.Add(time.Duration(n)*time.Minute))
		}
	}
	complete := func(n int) func() error {
		return func() error { return s.Complete(fixEnv(n).ID, OutcomeDelivered, "250 ok") }
	}
	resched := func(n int) func() error {
		return func() error { return s.Reschedule(fixEnv(n).ID, fixClock.Add(time.Hour)) }
	}
	serial := func(ops ...func() error) {
		for _, op := range ops {
			if err := op(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// together commits ops[0] alone, then the rest as one batch, in order.
	together := func(ops ...func() error) {
		g := make(chan struct{})
		armed.Store(&g)
		errs := make(chan error, len(ops))
		go func() { errs <- ops[0]() }()
		<-blocked
		armed.Store(nil)
		for i, op := range ops[1:] {
			go func() { errs <- op() }()
			for len(s.reqs) < i+1 {
				time.Sleep(20 * time.Microsecond)
			}
		}
		close(g)
		for range ops {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	span := func(mk func(int) func() error, from, to int) []func() error {
		var ops []func() error
		for n := from; n <= to; n++ {
			ops = append(ops, mk(n))
		}
		return ops
	}
	cat := func(parts ...[]func() error) []func() error {
		var ops []func() error
		for _, p := range parts {
			ops = append(ops, p...)
		}
		return ops
	}
	together(span(enq, 0, 9)...)
	together(span(enq, 10, 19)...)
	serial(span(enq, 20, 29)...)
	together(cat(span(attempt, 0, 1), span(complete, 2, 3), span(resched, 4, 4), span(enq, 30, 34))...)
	serial(cat(span(complete, 5, 9), span(attempt, 10, 14))...)
	together(span(enq, 35, 49)...)
	together(cat(span(complete, 20, 24), span(attempt, 25, 29), span(enq, 50, 54))...)
	serial(span(enq, 55, 64)...)
	together(cat(span(complete, 30, 31), span(attempt, 32, 32))...)
	together(span(enq, 65, 69)...) // the last batch holds 66..69
	mustClose(t, s)
	f.parse(t)
	return f
}

// parse reads the pristine log with the codec (not with replay) to learn
// where every entry lies.
func (f *damageFixture) parse(t *testing.T) {
	segs, _, err := listSegments(filepath.Join(f.dir, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	for _, sg := range segs {
		data, err := os.ReadFile(sg.path)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(sg.path)
		_, err = walkEntries(data, func(off int, b []byte) error {
			rec, err := decodeRecord(b)
			if err != nil {
				return err
			}
			e := logEntry{seg: name, off: int64(off), end: int64(off + len(b) + uvarintLen(len(b))), batch: rec.batch, put: rec.kind == recPut, id: rec.id}
			if e.put {
				if e.env, err = decodeEnvelope(rec.env); err != nil {
					return err
				}
				e.id, e.ref = e.env.ID, rec.ref
			}
			f.entries = append(f.entries, e)
			return nil
		})
		if err != nil {
			t.Fatalf("pristine segment %s: %v", sg.path, err)
		}
	}
	f.final = liveAfter(f.entries)
	f.puts = make(map[string][]*logEntry)
	for i := range f.entries {
		if e := &f.entries[i]; e.put {
			f.puts[e.id] = append(f.puts[e.id], e)
		}
	}
	bodyFiles, _ := listBodyFiles(filepath.Join(f.dir, "body"))
	batches := map[uint64]int{}
	for _, e := range f.entries {
		batches[e.batch]++
	}
	if len(segs) < 4 || len(bodyFiles) < 4 || len(batches) < 20 || len(f.final) < 40 || len(f.final) == len(f.bodies) {
		t.Fatalf("fixture too small: %d segments, %d body files, %d batches, %d live of %d", len(segs), len(bodyFiles), len(batches), len(f.final), len(f.bodies))
	}
	if last := f.entries[len(f.entries)-1]; batches[last.batch] < 2 {
		t.Fatalf("the last batch holds %d records; want several", batches[last.batch])
	}
	t.Logf("fixture: %d log entries in %d segments, %d batches, %d body files, %d live of %d messages",
		len(f.entries), len(segs), len(batches), len(bodyFiles), len(f.final), len(f.bodies))
}

func uvarintLen(v int) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// liveAfter is the spool's state after entries: the latest put of every
// message not followed by a done.
func liveAfter(entries []logEntry) map[string]*logEntry {
	m := make(map[string]*logEntry)
	for i := range entries {
		if e := &entries[i]; e.put {
			m[e.id] = e
		} else {
			delete(m, e.id)
		}
	}
	return m
}

func (e *logEntry) frameEnd() int64 { return e.ref.off + frameLen(len(e.id), e.ref.n) }

// hits is what a damaged copy differs in, mapped onto the fixture.
type hits struct {
	entries map[int]bool    // log entries with a changed byte
	frames  map[string]bool // messages whose body frame has a changed byte
	desc    []string
}

// mutation is one planned change to a copy of the fixture.
type mutation struct {
	sub, name string // "wal" or "body", and the file name
	pos       int64
	kind      string // "bit flip", "random bytes" or "zeros"
	bit       uint
	n         int64  // random bytes, zeros: how many (clipped at the end)
	vals      []byte // random bytes
}

// planDamage picks 1-3 places in the fixture's files, chosen by size (40 %
// body files, 60 % log segments), and a change for each: a bit flip, 1-8
// random bytes or 1-64 zeros. Planning only draws from rng, so the plans
// of a seed are the same whatever order they are applied in.
func (f *damageFixture) planDamage(t *testing.T, rng *rand.Rand) []mutation {
	var plan []mutation
	for range 1 + rng.IntN(3) {
		m := mutation{sub: "wal"}
		if rng.IntN(5) < 2 {
			m.sub = "body"
		}
		files, total, err := sizedFiles(filepath.Join(f.dir, m.sub))
		if err != nil {
			t.Fatal(err)
		}
		m.pos = rng.Int64N(total)
		for _, fi := range files {
			if m.pos < fi.size {
				m.name = filepath.Base(fi.path)
				break
			}
			m.pos -= fi.size
		}
		switch k := rng.IntN(10); {
		case k < 5:
			m.kind, m.bit = "bit flip", uint(rng.IntN(8))
		case k < 8:
			m.kind, m.n = "random bytes", 1+rng.Int64N(8)
			for range m.n {
				m.vals = append(m.vals, byte(rng.Uint32()))
			}
		default:
			m.kind, m.n = "zeros", 1+rng.Int64N(64)
		}
		plan = append(plan, m)
	}
	return plan
}

// damage copies the fixture to dir, applies plan and says what it hit.
func (f *damageFixture) damage(plan []mutation, dir string) (hits, error) {
	h := hits{entries: map[int]bool{}, frames: map[string]bool{}}
	if err := copyTree(f.dir, dir); err != nil {
		return h, err
	}
	for _, m := range plan {
		path := filepath.Join(dir, m.sub, m.name)
		data, err := os.ReadFile(path)
		if err != nil {
			return h, err
		}
		orig := bytes.Clone(data)
		switch m.kind {
		case "bit flip":
			data[m.pos] ^= 1 << m.bit
		case "random bytes":
			copy(data[m.pos:], m.vals)
		case "zeros":
			clear(data[m.pos:min(m.pos+m.n, int64(len(data)))])
		}
		if err := os.WriteFile(path, data, 0o640); err != nil {
			return h, err
		}
		h.desc = append(h.desc, fmt.Sprintf("%s in %s/%s at %d", m.kind, m.sub, m.name, m.pos))
		for p := range data {
			if data[p] == orig[p] {
				continue
			}
			for i := range f.entries {
				e := &f.entries[i]
				if m.sub == "wal" && e.seg == m.name && e.off <= int64(p) && int64(p) < e.end {
					h.entries[i] = true
				}
				if m.sub == "body" && e.put && bodyName(e.ref.file) == m.name && e.ref.off <= int64(p) && int64(p) < e.frameEnd() {
					h.frames[e.id] = true
				}
			}
		}
	}
	return h, nil
}

type sizedFile struct {
	path string
	size int64
}

func sizedFiles(dir string) ([]sizedFile, int64, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	var out []sizedFile
	var total int64
	for _, de := range des {
		fi, err := de.Info()
		if err != nil {
			return nil, 0, err
		}
		if fi.Size() > 0 {
			out = append(out, sizedFile{filepath.Join(dir, de.Name()), fi.Size()})
			total += fi.Size()
		}
	}
	return out, total, nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o640)
	})
}

// treeHash covers every file's name, size, mode and bytes.
func treeHash(dir string) ([32]byte, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d %v\n", p, fi.Size(), fi.Mode())
		if !d.IsDir() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, err
}

func mustTreeHash(t testing.TB, dir string) [32]byte {
	t.Helper()
	sum, err := treeHash(dir)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// expectOpen says what Open must do with a damaged copy: refuse, or open
// with the state after a prefix of the log. Damage in an older segment, or
// damage in the tail followed by an intact entry, must be refused. Damage
// confined to the entries at the very end cannot be told from a write torn
// by a crash and is cut (the entries from the first damaged one go); and
// when the last remaining batch references a damaged body, that batch is
// dropped as unacknowledged, as replay does after a crash.
func (f *damageFixture) expectOpen(h hits) (refuse bool, prefix int) {
	tail := f.entries[len(f.entries)-1].seg
	first := -1
	for i := range f.entries {
		if h.entries[i] {
			if f.entries[i].seg != tail {
				return true, 0
			}
			if first < 0 {
				first = i
			}
		}
	}
	prefix = len(f.entries)
	if first >= 0 {
		for i := first + 1; i < len(f.entries); i++ {
			if !h.entries[i] {
				return true, 0
			}
		}
		prefix = first
	}
	if prefix == 0 {
		return false, 0
	}
	lastBatch := f.entries[prefix-1].batch
	start := prefix - 1
	for start > 0 && f.entries[start-1].batch == lastBatch {
		start--
	}
	final := make(map[string]*logEntry)
	for i := start; i < prefix; i++ {
		if e := &f.entries[i]; e.put {
			final[e.id] = e
		} else {
			final[e.id] = nil
		}
	}
	for id, e := range final {
		if e != nil && h.frames[id] {
			return false, start
		}
	}
	return false, prefix
}

// TestRandomDamage changes bytes of copies of a closed spool at random
// (seeded) and checks both readers of a damaged spool:
//
//   - Salvage leaves the damaged directory unchanged, recovers every live
//     message whose latest record and body frame are intact with exactly
//     its envelope and body, never returns a body or envelope that was not
//     stored for that ID, reports a damaged range at every damaged log
//     entry, and names as lost only messages whose body frame was damaged.
//   - Open refuses with ErrCorrupt, or opens with exactly the state
//     expectOpen computes from what was damaged; a damaged body that Open
//     does not read is reported by Body as ErrCorrupt, never returned.
//
// The damage is planned in order from the seed; copies are damaged and
// checked by a few workers at once, since the work waits on the disk.
// CUEMTA_DAMAGE_SEED and CUEMTA_DAMAGE_ITER change the seed and the count.
func TestRandomDamage(t *testing.T) {
	seed, iters := uint64(1), 200
	if v, err := strconv.ParseUint(os.Getenv("CUEMTA_DAMAGE_SEED"), 10, 64); err == nil {
		seed = v
	}
	if v, err := strconv.Atoi(os.Getenv("CUEMTA_DAMAGE_ITER")); err == nil {
		iters = v
	}
	if testing.Short() {
		iters /= 5
	}
	f := buildDamageFixture(t)
	// What is checked here is what Open and Salvage make of damaged bytes,
	// not durability: skipping the directory and body fsyncs (about 20 per
	// iteration) keeps the test fast on a busy disk.
	f.opts.hooks = &hooks{dirSync: func(string) error { return nil }, bodySync: func(*os.File) error { return nil }}
	rng := rand.New(rand.NewPCG(seed, 0))
	plans := make([][]mutation, iters)
	for i := range plans {
		plans[i] = f.planDamage(t, rng)
	}
	root := t.TempDir()
	start := time.Now()
	var (
		mu     sync.Mutex
		st     damageStats
		failed atomic.Bool
		wg     sync.WaitGroup
		next   atomic.Int64
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				it := int(next.Add(1) - 1)
				if it >= iters {
					return
				}
				var one damageStats
				if err := f.checkDamage(plans[it], filepath.Join(root, fmt.Sprintf("d%d", it)), &one); err != nil {
					failed.Store(true)
					t.Errorf("seed %d iteration %d: %v", seed, it, err)
					return
				}
				mu.Lock()
				st.add(one)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("seed %d: %d iterations, %d corruptions in %v", seed, iters, st.corruptions, time.Since(start).Round(time.Millisecond))
	t.Logf("Open: %d refused (ErrCorrupt), %d opened exact, %d opened with damaged bodies reported by Body, %d cut as a torn tail (%d of them reaching before the last batch)",
		st.refused, st.openedExact, st.openedBodyErr, st.openedCut, st.cutPastLastBatch)
	t.Logf("Salvage: %d of %d intact live messages recovered exactly; %d recovered in all (%d in an older state, %d completed ones back); %d reported lost; %d damaged ranges",
		st.intact, st.intact, st.recovered, st.olderState, st.resurrected, st.lost, st.ranges)
	if st.refused == 0 || st.openedExact+st.openedBodyErr == 0 {
		t.Fatalf("the damage never exercised both outcomes: %+v", st)
	}
}

type damageStats struct {
	corruptions, refused, openedExact, openedBodyErr, openedCut int
	cutPastLastBatch                                            int
	intact, recovered, olderState, resurrected, lost, ranges    int
}

func (s *damageStats) add(o damageStats) {
	s.corruptions += o.corruptions
	s.refused += o.refused
	s.openedExact += o.openedExact
	s.openedBodyErr += o.openedBodyErr
	s.openedCut += o.openedCut
	s.cutPastLastBatch += o.cutPastLastBatch
	s.intact += o.intact
	s.recovered += o.recovered
	s.olderState += o.olderState
	s.resurrected += o.resurrected
	s.lost += o.lost
	s.ranges += o.ranges
}

// checkDamage applies one plan to a copy in dir and checks Salvage and
// Open on it (see TestRandomDamage). It runs on worker goroutines, so it
// returns what is wrong instead of failing the test.
func (f *damageFixture) checkDamage(plan []mutation, dir string, st *damageStats) error {
	h, err := f.damage(plan, dir)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st.corruptions += len(h.desc)
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: %s", strings.Join(h.desc, "; "), fmt.Sprintf(format, args...))
	}

	// Salvage first: Open repairs what it accepts.
	before, err := treeHash(dir)
	if err != nil {
		return err
	}
	fresh := dir + ".salvaged"
	defer os.RemoveAll(fresh)
	rep, err := Salvage(dir, fresh, f.opts)
	if err != nil {
		return fail("Salvage: %v", err)
	}
	if after, err := treeHash(dir); err != nil || after != before {
		return fail("Salvage modified the damaged spool (%v)", err)
	}
	st.lost += len(rep.Lost)
	st.ranges += len(rep.Damaged)
	for i := range h.entries {
		e := &f.entries[i]
		covered := false
		for _, r := range rep.Damaged {
			covered = covered || filepath.Base(r.File) == e.seg && r.Offset <= e.off && e.off < r.Offset+r.Length
		}
		if !covered {
			return fail("damaged entry %d (%s at %d) is in no reported range: %+v", i, e.seg, e.off, rep.Damaged)
		}
	}
	if len(h.entries) == 0 && len(rep.Damaged) > 0 {
		return fail("log intact, but Salvage reports damage: %+v", rep.Damaged)
	}
	for _, l := range rep.Lost {
		if !h.frames[l.ID] {
			return fail("Salvage lost %s, whose body frame is intact: %v", l.ID, l.Err)
		}
	}
	got, err := readAll(fresh, f.opts)
	if err != nil {
		return fail("the salvaged spool: %v", err)
	}
	if len(got) != rep.Recovered {
		return fail("report says %d recovered, the fresh spool holds %d", rep.Recovered, len(got))
	}
	for id, e := range f.final {
		if h.frames[id] || h.entries[entryIndex(f, e)] {
			continue
		}
		st.intact++
		g, ok := got[id]
		if !ok {
			return fail("intact message %s not recovered", id)
		}
		if !sameEnv(g.env, e.env) {
			return fail("intact message %s recovered with envelope %+v, want %+v", id, g.env, e.env)
		}
	}
	for id, g := range got {
		st.recovered++
		if !bytes.Equal(g.body, f.bodies[id]) {
			return fail("salvaged %s with a wrong body", id)
		}
		stored := false
		for _, p := range f.puts[id] {
			stored = stored || sameEnv(p.env, g.env)
		}
		switch e := f.final[id]; {
		case !stored:
			return fail("salvaged %s with an envelope never stored for it: %+v", id, g.env)
		case e == nil:
			st.resurrected++ // its done record was damaged
		case !sameEnv(e.env, g.env):
			st.olderState++ // its latest put was damaged
		}
	}

	// Then Open.
	refuse, prefix := f.expectOpen(h)
	s, err := Open(dir, f.opts)
	if refuse {
		if s != nil {
			s.Close()
		}
		if !isCorrupt(err) {
			return fail("Open: %v, want ErrCorrupt", err)
		}
		st.refused++
		return nil
	}
	if err != nil {
		return fail("Open: %v, want it to open with the first %d of %d entries", err, prefix, len(f.entries))
	}
	defer s.Close()
	want := liveAfter(f.entries[:prefix])
	if s.Len() != len(want) {
		return fail("opened with %d messages, want %d", s.Len(), len(want))
	}
	bodyErrs := 0
	for id, e := range want {
		env, ok := s.Get(id)
		if !ok || !sameEnv(env, e.env) {
			return fail("opened with %s = %+v (%v), want %+v", id, env, ok, e.env)
		}
		b, err := s.Body(id)
		switch {
		case h.frames[id]:
			if !isCorrupt(err) {
				return fail("damaged body of %s read as %d bytes, %v; want ErrCorrupt", id, len(b), err)
			}
			bodyErrs++
		case err != nil || !bytes.Equal(b, f.bodies[id]):
			return fail("body of %s: %v", id, err)
		}
	}
	switch {
	case prefix < len(f.entries):
		st.openedCut++
		if prefix < f.lastBatchStart() {
			st.cutPastLastBatch++
		}
	case bodyErrs > 0:
		st.openedBodyErr++
	default:
		st.openedExact++
	}
	return s.Close()
}

// readAll opens the spool in dir and returns every message with its body.
func readAll(dir string, opts Options) (map[string]liveMsg, error) {
	s, err := Open(dir, opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	out := make(map[string]liveMsg)
	var berr error
	s.Each(func(e Envelope) bool {
		b, err := s.Body(e.ID)
		if err != nil {
			berr = err
			return false
		}
		out[e.ID] = liveMsg{e, b}
		return true
	})
	return out, berr
}

// sameEnv compares envelopes by their canonical encoding (every field,
// times to the nanosecond): envEqual's reflection is too slow for the
// thousands of comparisons per run.
func sameEnv(a, b Envelope) bool {
	return bytes.Equal(encodeEnvelope(nil, &a), encodeEnvelope(nil, &b))
}

// lastBatchStart is the index of the first entry of the last batch.
func (f *damageFixture) lastBatchStart() int {
	i := len(f.entries) - 1
	for i > 0 && f.entries[i-1].batch == f.entries[i].batch {
		i--
	}
	return i
}

func entryIndex(f *damageFixture, e *logEntry) int {
	for i := range f.entries {
		if &f.entries[i] == e {
			return i
		}
	}
	return -1
}

// entryOffsets returns the byte offset of every entry in a segment.
func entryOffsets(t *testing.T, path string) ([]int, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	if _, err := walkEntries(data, func(off int, _ []byte) error { offs = append(offs, off); return nil }); err != nil {
		t.Fatal(err)
	}
	return offs, data
}

// TestTailDamage: damage in the tail segment is cut only when it is a
// torn tail. Record 10 of 100 damaged (a bit, its length prefix, all of
// it) has 90 acknowledged records after it: Open refuses, naming the file
// and offset, and Salvage recovers the other 99. A tail cut mid-record is
// what a crash during a write leaves: Open cuts it and has everything that
// was acknowledged before.
func TestTailDamage(t *testing.T) {
	cases := []struct {
		name   string
		damage func(data []byte, offs []int) []byte
		torn   bool
	}{
		{"bit flip in record 10", func(d []byte, offs []int) []byte { d[offs[9]+40] ^= 0x08; return d }, false},
		{"length prefix of record 10", func(d []byte, offs []int) []byte { d[offs[9]] = 0xff; return d }, false},
		{"record 10 zeroed", func(d []byte, offs []int) []byte { clear(d[offs[9]:offs[10]]); return d }, false},
		{"tail cut mid-record", func(d []byte, offs []int) []byte { return d[:offs[100]+30] }, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			want := fill(t, dir, 100)
			path := lastSegment(t, dir)
			if segs, _, _ := listSegments(filepath.Join(dir, "wal")); len(segs) != 1 {
				t.Fatalf("want the 100 records in one (tail) segment, have %d segments", len(segs))
			}
			// A 101st message, whose record the torn case cuts as a
			// crash in the middle of writing it would.
			s := mustOpen(t, dir, testOpts(t))
			extra, err := s.Enqueue(ctx, testEnv(100), testBody(100, 300))
			if err != nil {
				t.Fatal(err)
			}
			if !c.torn {
				want[extra] = snapshot(t, s)[extra]
			}
			mustClose(t, s)
			offs, data := entryOffsets(t, path)
			if len(offs) != 101 {
				t.Fatalf("%d entries in the tail segment, want 101", len(offs))
			}
			if err := os.WriteFile(path, c.damage(data, offs), 0o640); err != nil {
				t.Fatal(err)
			}
			if !c.torn {
				// The damaged message is record 10's: its only record.
				ids := sortedIDs(want)
				delete(want, ids[9])
				fresh := filepath.Join(t.TempDir(), "fresh")
				rep, err := Salvage(dir, fresh, testOpts(t))
				if err != nil {
					t.Fatal(err)
				}
				if rep.Recovered != 100 || len(rep.Lost) != 0 || len(rep.Damaged) != 1 ||
					rep.Damaged[0].File != path || rep.Damaged[0].Offset != int64(offs[9]) || rep.Damaged[0].Tail {
					t.Fatalf("salvage report %+v, want 100 recovered and one range at byte %d of %s", rep, offs[9], path)
				}
				s := mustOpen(t, fresh, testOpts(t))
				sameSnapshot(t, snapshot(t, s), want)
				mustClose(t, s)
			}
			s, err = Open(dir, testOpts(t))
			if !c.torn {
				if !isCorrupt(err) {
					t.Fatalf("Open: %v, want ErrCorrupt", err)
				}
				for _, part := range []string{path, fmt.Sprintf("at byte %d", offs[9]), "salvage"} {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not name %q", err, part)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Open after a torn write: %v", err)
			}
			defer mustClose(t, s)
			sameSnapshot(t, snapshot(t, s), want)
		})
	}
}

func sortedIDs(m map[string]liveMsg) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// TestFindEntry: the resync scan finds the next entry from any starting
// byte, skips entries of older batches and rejects garbage, zeros and a
// record whose CRC fails.
func TestFindEntry(t *testing.T) {
	var log []byte
	var offs []int
	for i, batch := range []uint64{5, 5, 6, 9} {
		rec := appendPut(nil, batch, bodyRef{file: 1, off: int64(i * 100), n: 10}, encodeEnvelope(nil, fixEnv(i)))
		offs = append(offs, len(log))
		log = append(binary.AppendUvarint(log, uint64(len(rec))), rec...)
	}
	done := appendDone(nil, 9, "m001", OutcomeDelivered, "250 ok")
	offs = append(offs, len(log))
	log = append(binary.AppendUvarint(log, uint64(len(done))), done...)
	for _, c := range []struct {
		name     string
		data     []byte
		from     int
		minBatch uint64
		want     int
	}{
		{"at an entry", log, offs[1], 0, offs[1]},
		{"one byte in", log, offs[1] + 1, 0, offs[2]},
		{"older batches skipped", log, 0, 6, offs[2]},
		{"done record", log, offs[3] + 1, 9, offs[4]},
		{"none left", log, offs[4] + 1, 0, -1},
		{"batch too old for all", log, 0, 10, -1},
		{"zeros", make([]byte, 4096), 0, 0, -1},
		{"garbage", bytes.Repeat([]byte("\x81\x01\xff garbage \x02"), 300), 0, 0, -1},
		{"bad CRC", func() []byte { b := bytes.Clone(log[offs[3]:]); b[20] ^= 1; return b }(), 0, 0, offs[4] - offs[3]},
	} {
		if got := findEntry(c.data, c.from, c.minBatch); got != c.want {
			t.Errorf("%s: findEntry = %d, want %d", c.name, got, c.want)
		}
	}
	// A megabyte of random bytes is scanned quickly and yields nothing.
	rng := rand.New(rand.NewPCG(2, 0))
	junk := make([]byte, 1<<20)
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	start := time.Now()
	if got := findEntry(junk, 0, 0); got != -1 {
		t.Errorf("random bytes: an entry at %d", got)
	}
	t.Logf("1 MiB of random bytes scanned in %v", time.Since(start))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("scanning 1 MiB of random bytes took %v", d)
	}
}

// TestSalvageClean: a healthy spool is copied whole, with every envelope
// field and body, and the source stays untouched; refusals are explicit.
func TestSalvageClean(t *testing.T) {
	f := buildDamageFixture(t)
	before := mustTreeHash(t, f.dir)
	fresh := filepath.Join(t.TempDir(), "fresh")
	rep, err := Salvage(f.dir, fresh, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Recovered != len(f.final) || len(rep.Lost)+len(rep.Damaged) != 0 || rep.Entries != len(f.entries) {
		t.Fatalf("report %+v; want %d recovered of %d entries, nothing lost", rep, len(f.final), len(f.entries))
	}
	if mustTreeHash(t, f.dir) != before {
		t.Fatal("Salvage modified the source spool")
	}
	src := mustOpen(t, f.dir, f.opts)
	want := snapshot(t, src)
	mustClose(t, src)
	s := mustOpen(t, fresh, f.opts)
	sameSnapshot(t, snapshot(t, s), want)
	mustClose(t, s)

	// Refusals: a non-empty output, the source itself, a directory that
	// is not a spool, and a spool in use.
	for _, c := range []struct{ src, dst, says string }{
		{f.dir, fresh, "not empty"},
		{f.dir, f.dir, "outside"},
		{f.dir, filepath.Join(f.dir, "inner"), "outside"},
		{t.TempDir(), filepath.Join(t.TempDir(), "o"), "not a spool"},
	} {
		if _, err := Salvage(c.src, c.dst, f.opts); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("Salvage(%s, %s): %v, want %q", c.src, c.dst, err, c.says)
		}
	}
	s = mustOpen(t, f.dir, f.opts)
	defer mustClose(t, s)
	if _, err := Salvage(f.dir, filepath.Join(t.TempDir(), "o"), f.opts); !errors.Is(err, ErrLocked) {
		t.Errorf("Salvage of a spool in use: %v, want ErrLocked", err)
	}
}

// TestSalvageInterruptedTruncation: a crash inside wal's TruncateFront can
// leave NAME.START (the rest of the log from NAME's index on) next to the
// segments it replaces; Salvage reads it as wal.Open would use it, without
// finishing the rename.
func TestSalvageInterruptedTruncation(t *testing.T) {
	f := buildDamageFixture(t)
	dir := filepath.Join(t.TempDir(), "d")
	if err := copyTree(f.dir, dir); err != nil {
		t.Fatal(err)
	}
	walDir := filepath.Join(dir, "wal")
	segs, _, _ := listSegments(walDir)
	// TruncateFront(i) with i inside segment 2 writes the rest of that
	// segment as i.START; crash before it removes segments 1 and 2.
	offs, data := entryOffsets(t, segs[1].path)
	i := segs[1].start + 1
	if err := os.WriteFile(filepath.Join(walDir, fmt.Sprintf("%020d.START", i)), data[offs[1]:], 0o640); err != nil {
		t.Fatal(err)
	}
	before := mustTreeHash(t, dir)
	fresh := filepath.Join(t.TempDir(), "fresh")
	rep, err := Salvage(dir, fresh, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if mustTreeHash(t, dir) != before {
		t.Fatal("Salvage finished the truncation (modified the spool)")
	}
	want := liveAfter(f.entries[int(i-1):])
	if rep.Recovered != len(want) || len(rep.Damaged) != 0 || rep.Entries != len(f.entries)-int(i-1) {
		t.Fatalf("report %+v; want %d recovered from %d entries", rep, len(want), len(f.entries)-int(i-1))
	}
	// Open finishes the truncation and must agree with the copy.
	s := mustOpen(t, dir, f.opts)
	opened := snapshot(t, s)
	mustClose(t, s)
	s = mustOpen(t, fresh, f.opts)
	defer mustClose(t, s)
	sameSnapshot(t, snapshot(t, s), opened)
}
