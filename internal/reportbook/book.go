// Package reportbook keeps the windows of a daily report to other
// domains (TLS reports, RFC 8460; DMARC aggregate reports, RFC 7489):
// one window of counts per domain and UTC day, closed when the day ends
// or when a report is forced (Cut), and kept closed until its report is
// sent or given up. What a window counts is its package's business; the
// book owns the windows' life, their bounds and their file.
//
// Invariants:
//
//   - Memory is bounded: at most MaxDomains open windows (a result for
//     one more domain is dropped and counted) and 3×MaxDomains closed
//     ones (the oldest go first, counted).
//   - A window's report is sent at most once to each destination: the
//     destinations that took it are kept with it (SentTo), across
//     restarts too.
//   - Counting never stops mail: the state is written to Path replaced
//     atomically (internal/atomicfile) by Flush, and a file that cannot
//     be read is renamed aside and counting starts afresh. A crash loses
//     what was counted since the last Flush.
package reportbook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cuemta/cuemta/internal/atomicfile"
)

// Head is what every window has. A package's window type embeds it, so
// that its fields stand at the window's top level in the saved JSON.
type Head struct {
	// Seq is unique in the book; it identifies the window and its
	// report.
	Seq    uint64    `json:"seq"`
	Domain string    `json:"domain"`
	Start  time.Time `json:"start"`
	// End is zero while the window is open; a day's window ends at the
	// last second of the day, a cut one when it was cut.
	End time.Time `json:"end,omitzero"`
	// Sending state of a closed window.
	Attempts  int       `json:"attempts,omitempty"`
	NextTry   time.Time `json:"nextTry,omitzero"`
	LastError string    `json:"lastError,omitempty"`
	// SentTo are the destinations that took the report already: a
	// retry goes to the others only.
	SentTo []string `json:"sentTo,omitempty"`
}

// ReportID is the unique id of the window's report, in the form of a
// message id's inside (both RFCs put it in angle brackets in the
// Subject): its start, its sequence number, the cluster node that
// counted it ("" for a server alone: nodes of one cluster may share a
// hostname and a start second), its domain and the submitting host. It
// depends on the window only, so every try of a report carries the same
// id.
func (h *Head) ReportID(hostname, node string) string {
	id := h.Start.UTC().Format("20060102T150405Z") + "." + strconv.FormatUint(h.Seq, 10) + "."
	if node != "" {
		id += node + "."
	}
	return id + h.Domain + "@" + hostname
}

// WindowHead returns h; through embedding, it makes a window type a
// Window.
func (h *Head) WindowHead() *Head { return h }

// Window is a package's window type: a pointer to a struct that embeds
// Head.
type Window interface {
	comparable
	WindowHead() *Head
}

// State is the book as saved. Record's add function may change it (the
// counters) while the book is locked.
type State[W Window] struct {
	Version int `json:"version"`
	// Day is the UTC midnight that began the day of the open windows.
	Day  time.Time    `json:"day"`
	Open map[string]W `json:"open,omitempty"`
	// Closed windows wait for their report to be sent, oldest first.
	Closed []W `json:"closed,omitempty"`
	// DroppedResults counts results not counted (the caps, or results
	// the package could not use); DroppedWindows counts closed windows
	// dropped unsent (too many, too old).
	DroppedResults int64 `json:"droppedResults,omitempty"`
	DroppedWindows int64 `json:"droppedWindows,omitempty"`
	// Counters are the package's own counts of what it dropped.
	Counters map[string]int64 `json:"counters,omitempty"`
	// LastSeq numbers windows: two cut in the same second stay apart.
	LastSeq uint64 `json:"lastSeq"`
}

// Count adds one to the package's counter name.
func (st *State[W]) Count(name string) {
	if st.Counters == nil {
		st.Counters = map[string]int64{}
	}
	st.Counters[name]++
}

// Options configure a Book.
type Options[W Window] struct {
	// Name prefixes errors and log lines ("tlsrpt").
	Name string
	// Path is the state file; "" keeps the counts in memory only.
	Path string
	// Version is the state file's format; a file of another is set
	// aside.
	Version int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MaxDomains bounds the open windows (must be > 0).
	MaxDomains int
	// Fix, when set, is given each window read from the file; false
	// drops it (JSON allows null where the package needs a value).
	Fix    func(W) bool
	Logger *slog.Logger
}

// Book is the windows of one kind of report. It is safe for concurrent
// use.
type Book[W Window] struct {
	opts Options[W]
	// flushMu orders flushes, so an older state never replaces a newer.
	flushMu sync.Mutex

	mu    sync.Mutex
	st    State[W]
	dirty bool
}

// Open loads the state at opts.Path, if any.
func Open[W Window](opts Options[W]) (*Book[W], error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxDomains <= 0 {
		return nil, fmt.Errorf("%s: MaxDomains must be positive", opts.Name)
	}
	b := &Book[W]{opts: opts}
	now := opts.Now()
	b.st = State[W]{Version: opts.Version, Day: dayOf(now), Open: map[string]W{}}
	if opts.Path == "" {
		return b, nil
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Name, err)
	}
	raw, err := os.ReadFile(opts.Path)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Name, err)
	}
	var st State[W]
	err = json.Unmarshal(raw, &st)
	if err == nil && st.Version != opts.Version {
		err = fmt.Errorf("version %d, want %d", st.Version, opts.Version)
	}
	if err != nil {
		// Counts are worth less than mail: keep the file for a look and
		// start afresh rather than refuse to start.
		aside := opts.Path + ".damaged-" + strconv.FormatInt(now.Unix(), 10)
		if rerr := os.Rename(opts.Path, aside); rerr != nil {
			return nil, fmt.Errorf("%s: %s unreadable (%v) and not renamed aside: %w", opts.Name, opts.Path, err, rerr)
		}
		opts.Logger.Error(opts.Name+": state unreadable, renamed aside; counting starts afresh", "path", opts.Path, "aside", aside, "err", err)
		return b, nil
	}
	b.st = b.sanitize(st, now)
	b.mu.Lock()
	b.rollLocked(now)
	b.mu.Unlock()
	return b, nil
}

// sanitize makes a decoded state safe to use: no null windows, open
// windows under their own domain, a day.
func (b *Book[W]) sanitize(st State[W], now time.Time) State[W] {
	var zero W
	keep := func(w W) bool {
		return w != zero && w.WindowHead().Domain != "" && (b.opts.Fix == nil || b.opts.Fix(w))
	}
	if st.Day.IsZero() {
		st.Day = dayOf(now)
	}
	open := map[string]W{}
	for _, w := range st.Open {
		if keep(w) {
			open[w.WindowHead().Domain] = w
		}
	}
	st.Open = open
	st.Closed = slices.DeleteFunc(st.Closed, func(w W) bool { return !keep(w) })
	return st
}

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// maxClosed bounds the closed windows kept: a few days of every domain.
func (b *Book[W]) maxClosed() int { return 3 * b.opts.MaxDomains }

// Record adds a result to domain's open window, made by create when the
// day has none yet: add counts it, with the book locked (it may change
// the state's counters). A result for one more domain than MaxDomains
// is dropped and counted instead. domain is as the package normalised
// it.
func (b *Book[W]) Record(domain string, create func(Head) W, add func(W, *State[W])) {
	now := b.opts.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rollLocked(now)
	b.dirty = true
	w, ok := b.st.Open[domain]
	if !ok {
		if len(b.st.Open) >= b.opts.MaxDomains {
			b.st.DroppedResults++
			return
		}
		b.st.LastSeq++
		w = create(Head{Seq: b.st.LastSeq, Domain: domain, Start: now.UTC().Truncate(time.Second)})
		b.st.Open[domain] = w
	}
	add(w, &b.st)
}

// Drop counts a result not counted, one the package could not use.
func (b *Book[W]) Drop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.DroppedResults++
	b.dirty = true
}

// rollLocked closes the open windows when their UTC day has ended: they
// end at the day's last second (both RFCs' reports cover UTC days).
func (b *Book[W]) rollLocked(now time.Time) {
	today := dayOf(now)
	if !today.After(b.st.Day) {
		return
	}
	b.closeLocked(b.st.Day.Add(24*time.Hour - time.Second))
	b.st.Day = today
}

func (b *Book[W]) closeLocked(end time.Time) {
	for _, d := range slices.Sorted(maps.Keys(b.st.Open)) {
		w := b.st.Open[d]
		w.WindowHead().End = end
		b.st.Closed = append(b.st.Closed, w)
	}
	clear(b.st.Open)
	if n := len(b.st.Closed) - b.maxClosed(); n > 0 {
		b.st.DroppedWindows += int64(n)
		b.opts.Logger.Warn(b.opts.Name+": too many unsent reports; the oldest are dropped", "dropped", n)
		b.st.Closed = slices.Delete(b.st.Closed, 0, n)
	}
	b.dirty = true
}

// Cut closes every open window now, so that its report can be sent before
// the day ends; counting goes on in new windows from now.
func (b *Book[W]) Cut() {
	now := b.opts.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rollLocked(now)
	b.closeLocked(now.UTC().Truncate(time.Second))
}

// Roll closes the windows of a day that has ended (Record does too, but
// the last results of a day may come long before the next).
func (b *Book[W]) Roll() {
	now := b.opts.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rollLocked(now)
}

// Due returns copies of the closed windows whose report is due at now:
// at least delay plus the window's share of jitter (Jitter) after its
// end, and not before its next try after a failed send.
func (b *Book[W]) Due(now time.Time, delay, jitter time.Duration) []W {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []W
	for _, w := range b.st.Closed {
		h := w.WindowHead()
		if now.Before(h.End.Add(delay+Jitter(h, jitter))) || now.Before(h.NextTry) {
			continue
		}
		out = append(out, clone(w))
	}
	return out
}

// Ripe closes the windows of a day that has ended (Roll) and returns
// those due at now (Due): what a reporter's cycle sends.
func (b *Book[W]) Ripe(now time.Time, delay, jitter time.Duration) []W {
	b.Roll()
	return b.Due(now, delay, jitter)
}

// CutAll closes every open window (Cut) and returns every closed one,
// whatever delays and retry waits say: what a forced send sends.
func (b *Book[W]) CutAll() []W {
	b.Cut()
	return b.Due(time.Unix(1<<40, 0), 0, 0)
}

// Run calls cycle and saves the state every interval until ctx ends;
// then it saves the state one last time.
func (b *Book[W]) Run(ctx context.Context, interval time.Duration, cycle func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := b.Flush(); err != nil {
				b.opts.Logger.Error(b.opts.Name+": save counts at shutdown", "err", err)
			}
			return
		case <-t.C:
		}
		cycle()
		if err := b.Flush(); err != nil {
			b.opts.Logger.Error(b.opts.Name+": save counts", "err", err)
		}
	}
}

// Jitter is a window's share of jitter: fixed per domain and window
// start, so a restart does not move it, and spread over the domains so
// that not every report of every sender arrives at 00:00 UTC.
func Jitter(h *Head, jitter time.Duration) time.Duration {
	if jitter <= 0 {
		return 0
	}
	f := fnv.New64a()
	io.WriteString(f, h.Domain+"\x00"+h.Start.UTC().Format(time.RFC3339))
	return time.Duration(f.Sum64() % uint64(jitter))
}

// clone is a deep copy of w through its JSON form, so a reporter reads
// a window while Record goes on; unexported fields (indexes) are left
// for the package to rebuild.
func clone[W Window](w W) W {
	raw, err := json.Marshal(w)
	if err != nil {
		panic(fmt.Sprintf("reportbook: a window that cannot be encoded: %v", err))
	}
	var c W
	if err := json.Unmarshal(raw, &c); err != nil {
		panic(fmt.Sprintf("reportbook: a window that cannot be decoded: %v", err))
	}
	return c
}

// Pending is the number of closed windows not yet sent.
func (b *Book[W]) Pending() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.st.Closed)
}

// Total sums size over every window, open and closed, and gives the sum
// to use, all with the book locked: for a package to keep a count of
// what its windows hold in step with windows the book dropped. use must
// not call the book.
func (b *Book[W]) Total(size func(W) int, use func(total int)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, w := range b.st.Open {
		n += size(w)
	}
	for _, w := range b.st.Closed {
		n += size(w)
	}
	use(n)
}

// OpenWindow returns a copy of the open window of domain, and whether
// there is one.
func (b *Book[W]) OpenWindow(domain string) (W, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	w, ok := b.st.Open[domain]
	if !ok {
		return w, false
	}
	return clone(w), true
}

// Dropped returns the counts of results not counted and of windows
// dropped unsent.
func (b *Book[W]) Dropped() (results, windows int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.DroppedResults, b.st.DroppedWindows
}

// Counter is one of the package's counters.
func (b *Book[W]) Counter(name string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.Counters[name]
}

// closed applies f to the closed window of seq, if it is still there.
func (b *Book[W]) closed(seq uint64, f func(*Head)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.st.Closed {
		if h := c.WindowHead(); h.Seq == seq {
			f(h)
		}
	}
	b.dirty = true
}

// Done removes the closed window of seq: its report was sent, or it is
// given up.
func (b *Book[W]) Done(seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Closed = slices.DeleteFunc(b.st.Closed, func(c W) bool { return c.WindowHead().Seq == seq })
	b.dirty = true
}

// GiveUp removes the closed window of seq unsent, and counts it.
func (b *Book[W]) GiveUp(seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Closed = slices.DeleteFunc(b.st.Closed, func(c W) bool { return c.WindowHead().Seq == seq })
	b.st.DroppedWindows++
	b.dirty = true
}

// Failed records a failed send: the window is tried again at next.
func (b *Book[W]) Failed(seq uint64, next time.Time, err error) {
	b.closed(seq, func(h *Head) {
		h.Attempts++
		h.NextTry = next
		h.LastError = err.Error()
	})
}

// SentTo records that the destination dest took the report of seq.
func (b *Book[W]) SentTo(seq uint64, dest string) {
	b.closed(seq, func(h *Head) {
		if !slices.Contains(h.SentTo, dest) {
			h.SentTo = append(h.SentTo, dest)
		}
	})
}

// Flush writes the state when it changed since the last flush.
func (b *Book[W]) Flush() error {
	if b.opts.Path == "" {
		return nil
	}
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	b.mu.Lock()
	if !b.dirty {
		b.mu.Unlock()
		return nil
	}
	raw, err := json.Marshal(&b.st)
	b.dirty = false
	b.mu.Unlock()
	if err == nil {
		err = atomicfile.Write(b.opts.Path, raw, 0o600)
	}
	if err != nil {
		b.mu.Lock()
		b.dirty = true // try again next time
		b.mu.Unlock()
		return fmt.Errorf("%s: save counts: %w", b.opts.Name, err)
	}
	return nil
}
